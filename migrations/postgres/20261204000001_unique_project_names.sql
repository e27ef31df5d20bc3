-- Project names are unique: a name is how people tell projects apart (in pickers, in
-- `depot list projects`). Earlier duplicates keep the oldest project's name; each other one gets
-- its id appended, so nothing is lost and every name is unique before the index is made.
UPDATE projects SET name = name || '-' || id
 WHERE EXISTS (SELECT 1 FROM projects p
                WHERE p.name = projects.name
                  AND (p.created_at < projects.created_at
                       OR (p.created_at = projects.created_at AND p.id < projects.id)));
CREATE UNIQUE INDEX projects_by_name ON projects (name);
