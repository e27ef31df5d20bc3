-- Registry metadata: repositories, blobs and what each repository may see, upload sessions,
-- manifests (with their exact bytes), tags and the references manifests make.
-- Times are Unix milliseconds. Kept in step with ../sqlite/ (same tables, same columns).
-- Text keys use the "C" collation so ordering (tags, catalog) is by bytes, as in SQLite.

CREATE TABLE repositories (
    name        TEXT COLLATE "C" PRIMARY KEY,
    created_at  BIGINT NOT NULL
);

-- A stored blob: one row per digest, however many repositories hold it.
CREATE TABLE blobs (
    digest      TEXT COLLATE "C" PRIMARY KEY,
    size        BIGINT NOT NULL,
    created_at  BIGINT NOT NULL
);

-- Which repositories may read which blobs (pushed or mounted there).
CREATE TABLE repo_blobs (
    repo        TEXT COLLATE "C" NOT NULL,
    digest      TEXT COLLATE "C" NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (repo, digest)
);
CREATE INDEX repo_blobs_digest ON repo_blobs (digest);

-- Upload sessions; `hash_state` is the resumable hasher's state after `size` bytes.
CREATE TABLE uploads (
    id          TEXT COLLATE "C" PRIMARY KEY,
    repo        TEXT COLLATE "C" NOT NULL,
    size        BIGINT NOT NULL,
    hash_state  BYTEA NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX uploads_updated ON uploads (updated_at);

CREATE TABLE manifests (
    repo          TEXT COLLATE "C" NOT NULL,
    digest        TEXT COLLATE "C" NOT NULL,
    media_type    TEXT NOT NULL,
    content       BYTEA NOT NULL,
    size          BIGINT NOT NULL,
    subject       TEXT COLLATE "C",
    artifact_type TEXT,
    annotations   TEXT,
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (repo, digest)
);
CREATE INDEX manifests_subject ON manifests (repo, subject);

-- What a manifest points at: kind is 'blob' (config, layers) or 'manifest' (index children).
CREATE TABLE manifest_refs (
    repo        TEXT COLLATE "C" NOT NULL,
    manifest    TEXT COLLATE "C" NOT NULL,
    child       TEXT COLLATE "C" NOT NULL,
    kind        TEXT NOT NULL,
    PRIMARY KEY (repo, manifest, child)
);
CREATE INDEX manifest_refs_child ON manifest_refs (child);

CREATE TABLE tags (
    repo        TEXT COLLATE "C" NOT NULL,
    name        TEXT COLLATE "C" NOT NULL,
    digest      TEXT COLLATE "C" NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (repo, name)
);
CREATE INDEX tags_order ON tags (repo, lower(name), name);
CREATE INDEX tags_digest ON tags (repo, digest);
