-- The web dashboard (`/ui/`). Kept in step with the other dialect's file.
--
-- A signed-in browser holds a random session id in an HttpOnly cookie; the server keeps only
-- its SHA-256, what it signed in as (the admin token, or a project token by id: revoking the
-- token ends the session), the session's CSRF token and when it ends. Signing out deletes the
-- row, so a copied cookie stops working at once, on every replica.
CREATE TABLE ui_sessions (
    id_hash     TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    project     TEXT,
    token_id    TEXT NOT NULL,
    csrf        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX ui_sessions_expiry ON ui_sessions (expires_at);

-- A project's usage over time, one row per project and hour: the bytes its repositories hold
-- and its live saved builds (as last sampled in that hour), and the manifest requests answered
-- for it (every replica adds what it counted).
CREATE TABLE project_usage (
    project        TEXT NOT NULL,
    at             BIGINT NOT NULL,
    storage_bytes  BIGINT NOT NULL,
    builds_saved   BIGINT NOT NULL,
    pulls          BIGINT NOT NULL,
    PRIMARY KEY (project, at)
);
