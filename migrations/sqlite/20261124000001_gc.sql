-- Garbage collection. Kept in step with the other dialect (same tables, same columns).
--
-- blobs.unreferenced_at: NULL while a manifest is known to reference the blob; otherwise the
-- last time it was seen unreferenced or in use (uploaded, checked, linked). GC deletes a blob
-- only when this is older than its grace period and still no manifest references it. Every use
-- of such a blob moves it forward in the same statement that checks the blob is there, so a
-- push that reuses a layer cannot lose it to a concurrent collection.
ALTER TABLE blobs ADD COLUMN unreferenced_at BIGINT;
UPDATE blobs SET unreferenced_at = created_at
    WHERE NOT EXISTS (SELECT 1 FROM manifest_refs r WHERE r.child = blobs.digest);
CREATE INDEX blobs_unreferenced ON blobs (unreferenced_at) WHERE unreferenced_at IS NOT NULL;

-- When GC removed an expired build's tags and bookkeeping (the row stays, answering "expired").
ALTER TABLE builds ADD COLUMN reaped_at BIGINT;
CREATE INDEX builds_unreaped ON builds (expires_at) WHERE reaped_at IS NULL;

-- Expiring manifests, oldest first: what GC looks at, without scanning the permanent ones.
CREATE INDEX manifests_expiring ON manifests (expires_at) WHERE expires_at IS NOT NULL;

-- Blob bytes whose metadata is gone and which the store must still delete (a run interrupted
-- between the two finishes here).
CREATE TABLE gc_trash (
    location    TEXT PRIMARY KEY,
    size        BIGINT NOT NULL,
    deleted_at  BIGINT NOT NULL
);

-- One row per collection: what it did, for `depot-gc status`.
CREATE TABLE gc_runs (
    id                 TEXT PRIMARY KEY,
    holder             TEXT NOT NULL,
    started_at         BIGINT NOT NULL,
    finished_at        BIGINT NOT NULL,
    dry_run            BIGINT NOT NULL,
    builds_expired     BIGINT NOT NULL,
    manifests_deleted  BIGINT NOT NULL,
    uploads_deleted    BIGINT NOT NULL,
    blobs_deleted      BIGINT NOT NULL,
    bytes_freed        BIGINT NOT NULL,
    errors             BIGINT NOT NULL,
    error              TEXT
);
CREATE INDEX gc_runs_started ON gc_runs (started_at);

-- Who may collect now (SQLite; PostgreSQL uses an advisory lock): a lease renewed while a
-- collection runs, so a crashed collector's lease simply runs out.
CREATE TABLE gc_lease (
    name        TEXT PRIMARY KEY,
    holder      TEXT NOT NULL,
    expires_at  BIGINT NOT NULL
);
