-- Trust policies: which CI jobs (by the claims of the OIDC ID token their provider issues) may
-- exchange that token for a short-lived credential on a project. `rules` is the policy's
-- provider-specific JSON (owner/repository/refs/...), interpreted by the registry; a deleted
-- policy keeps its row (`deleted_at`) so credentials it issued can be told apart from unknown
-- ones, and is never matched again.
CREATE TABLE trust_policies (
    id          TEXT COLLATE "C" PRIMARY KEY,
    project     TEXT COLLATE "C" NOT NULL REFERENCES projects (id),
    provider    TEXT NOT NULL,
    access      TEXT NOT NULL,
    rules       TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    deleted_at  BIGINT
);

CREATE INDEX trust_policies_by_project ON trust_policies (project, provider) WHERE deleted_at IS NULL;
