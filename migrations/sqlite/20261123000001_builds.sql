-- Projects, their tokens, and builds saved under their build IDs.
-- Times are Unix milliseconds. Kept in step with ../postgres/ (same tables, same columns).

CREATE TABLE projects (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    retention_secs  BIGINT NOT NULL,
    created_at      BIGINT NOT NULL
);

-- Project tokens are stored only as the SHA-256 of the secret.
CREATE TABLE project_tokens (
    id          TEXT PRIMARY KEY,
    project     TEXT NOT NULL REFERENCES projects (id),
    name        TEXT NOT NULL,
    secret_hash TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);
CREATE INDEX project_tokens_project ON project_tokens (project);

-- `spec` is the JSON of what the build expects (platforms, targets, save tags).
CREATE TABLE builds (
    id               TEXT PRIMARY KEY,
    project          TEXT NOT NULL REFERENCES projects (id),
    state            TEXT NOT NULL,
    spec             TEXT NOT NULL,
    failure          TEXT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    lease_expires_at BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL
);
CREATE INDEX builds_project ON builds (project, created_at, id);
CREATE INDEX builds_expires ON builds (expires_at);

-- The images builders pushed, one per target and platform ('' when the build has one).
CREATE TABLE build_images (
    build_id    TEXT NOT NULL,
    target      TEXT NOT NULL,
    platform    TEXT NOT NULL,
    digest      TEXT NOT NULL,
    media_type  TEXT NOT NULL,
    size        BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (build_id, target, platform)
);

-- Every manifest a build pushed or the registry wrote for it (images, indexes, referrers).
CREATE TABLE build_manifests (
    build_id    TEXT NOT NULL,
    repo        TEXT NOT NULL,
    digest      TEXT NOT NULL,
    PRIMARY KEY (build_id, repo, digest)
);
CREATE INDEX build_manifests_digest ON build_manifests (repo, digest);

-- A build's tags and manifests vanish at its expiry without waiting for garbage collection:
-- reads filter on these columns (NULL: not owned by a build, never expires).
ALTER TABLE tags ADD COLUMN build_id TEXT;
ALTER TABLE tags ADD COLUMN expires_at BIGINT;
ALTER TABLE manifests ADD COLUMN expires_at BIGINT;
CREATE INDEX tags_build ON tags (build_id);
