-- Projects, their tokens, and builds saved under their build IDs.
-- Times are Unix milliseconds. Kept in step with ../sqlite/ (same tables, same columns).

CREATE TABLE projects (
    id              TEXT COLLATE "C" PRIMARY KEY,
    name            TEXT COLLATE "C" NOT NULL,
    retention_secs  BIGINT NOT NULL,
    created_at      BIGINT NOT NULL
);

-- Project tokens are stored only as the SHA-256 of the secret.
CREATE TABLE project_tokens (
    id          TEXT COLLATE "C" PRIMARY KEY,
    project     TEXT COLLATE "C" NOT NULL REFERENCES projects (id),
    name        TEXT COLLATE "C" NOT NULL,
    secret_hash TEXT COLLATE "C" NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);
CREATE INDEX project_tokens_project ON project_tokens (project);

-- `spec` is the JSON of what the build expects (platforms, targets, save tags).
CREATE TABLE builds (
    id               TEXT COLLATE "C" PRIMARY KEY,
    project          TEXT COLLATE "C" NOT NULL REFERENCES projects (id),
    state            TEXT COLLATE "C" NOT NULL,
    spec             TEXT COLLATE "C" NOT NULL,
    failure          TEXT COLLATE "C",
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    lease_expires_at BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL
);
CREATE INDEX builds_project ON builds (project, created_at, id);
CREATE INDEX builds_expires ON builds (expires_at);

-- The images builders pushed, one per target and platform ('' when the build has one).
CREATE TABLE build_images (
    build_id    TEXT COLLATE "C" NOT NULL,
    target      TEXT COLLATE "C" NOT NULL,
    platform    TEXT COLLATE "C" NOT NULL,
    digest      TEXT COLLATE "C" NOT NULL,
    media_type  TEXT COLLATE "C" NOT NULL,
    size        BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (build_id, target, platform)
);

-- Every manifest a build pushed or the registry wrote for it (images, indexes, referrers).
CREATE TABLE build_manifests (
    build_id    TEXT COLLATE "C" NOT NULL,
    repo        TEXT COLLATE "C" NOT NULL,
    digest      TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (build_id, repo, digest)
);
CREATE INDEX build_manifests_digest ON build_manifests (repo, digest);

-- A build's tags and manifests vanish at its expiry without waiting for garbage collection:
-- reads filter on these columns (NULL: not owned by a build, never expires).
ALTER TABLE tags ADD COLUMN build_id TEXT COLLATE "C";
ALTER TABLE tags ADD COLUMN expires_at BIGINT;
ALTER TABLE manifests ADD COLUMN expires_at BIGINT;
CREATE INDEX tags_build ON tags (build_id);
