-- Retention by count, and deleting a project. Kept in step with the other dialect's file.
--
-- `keep_builds`: keep the newest N saved builds (NULL: no count limit); `keep_days`: beyond
-- those, keep every saved build younger than D days. A build outside the policy is expired at
-- once (its `expires_at` is set), exactly as an age expiry, and garbage collection reclaims it.
ALTER TABLE projects ADD COLUMN keep_builds BIGINT;
ALTER TABLE projects ADD COLUMN keep_days BIGINT;

-- A deleted project keeps its row (its builds' rows reference it until collection reaps them)
-- but frees its name.
ALTER TABLE projects ADD COLUMN deleted_at BIGINT;
DROP INDEX projects_by_name;
CREATE UNIQUE INDEX projects_by_name ON projects (name) WHERE deleted_at IS NULL;

-- When a build was saved: the count policy keeps the most recently saved builds (a build that
-- ran long and was saved last is the newest, whenever it started). Builds saved before this
-- migration were last updated when they were saved, or extended since: close enough to rank by.
ALTER TABLE builds ADD COLUMN saved_at BIGINT;
UPDATE builds SET saved_at = updated_at WHERE state = 'saved';
CREATE INDEX builds_saved ON builds (project, state, saved_at, id);

-- How many builds a collection expired because they were beyond their project's policy.
ALTER TABLE gc_runs ADD COLUMN builds_beyond_policy BIGINT NOT NULL DEFAULT 0;
