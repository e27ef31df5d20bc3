-- Every deletion of stored bytes first asks which of its keys a blob's location is
-- (`Metadata::referenced_locations`), and reconcile asks it of every key it lists: an index, so
-- that costs a lookup per key, not a scan of the blobs table.
CREATE INDEX blobs_location ON blobs (location);
