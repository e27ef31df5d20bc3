-- Registry metadata: repositories, blobs and what each repository may see, upload sessions,
-- manifests (with their exact bytes), tags and the references manifests make.
-- Times are Unix milliseconds. Kept in step with ../postgres/ (same tables, same columns).

CREATE TABLE repositories (
    name        TEXT PRIMARY KEY,
    created_at  BIGINT NOT NULL
);

-- A stored blob: one row per digest, however many repositories hold it.
CREATE TABLE blobs (
    digest      TEXT PRIMARY KEY,
    size        BIGINT NOT NULL,
    created_at  BIGINT NOT NULL
);

-- Which repositories may read which blobs (pushed or mounted there).
CREATE TABLE repo_blobs (
    repo        TEXT NOT NULL,
    digest      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (repo, digest)
);
CREATE INDEX repo_blobs_digest ON repo_blobs (digest);

-- Upload sessions; `hash_state` is the resumable hasher's state after `size` bytes.
CREATE TABLE uploads (
    id          TEXT PRIMARY KEY,
    repo        TEXT NOT NULL,
    size        BIGINT NOT NULL,
    hash_state  BLOB NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX uploads_updated ON uploads (updated_at);

CREATE TABLE manifests (
    repo          TEXT NOT NULL,
    digest        TEXT NOT NULL,
    media_type    TEXT NOT NULL,
    content       BLOB NOT NULL,
    size          BIGINT NOT NULL,
    subject       TEXT,
    artifact_type TEXT,
    annotations   TEXT,
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (repo, digest)
);
CREATE INDEX manifests_subject ON manifests (repo, subject);

-- What a manifest points at: kind is 'blob' (config, layers) or 'manifest' (index children).
CREATE TABLE manifest_refs (
    repo        TEXT NOT NULL,
    manifest    TEXT NOT NULL,
    child       TEXT NOT NULL,
    kind        TEXT NOT NULL,
    PRIMARY KEY (repo, manifest, child)
);
CREATE INDEX manifest_refs_child ON manifest_refs (child);

CREATE TABLE tags (
    repo        TEXT NOT NULL,
    name        TEXT NOT NULL,
    digest      TEXT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (repo, name)
);
CREATE INDEX tags_order ON tags (repo, lower(name), name);
CREATE INDEX tags_digest ON tags (repo, digest);
