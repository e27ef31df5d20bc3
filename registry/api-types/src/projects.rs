//! Projects, project tokens, pull tokens and the test clock.

use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

/// A `PATCH` field that may be left out (`None`: unchanged) or `null` (`Some(None)`: cleared).
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// A project: its builds' repository and how long they are kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Project {
    pub id: String,
    pub name: String,
    /// The repository its builds are pushed to (the project id).
    pub repository: String,
    pub retention_secs: i64,
    /// Retention by count: the most recently saved builds kept (older saved builds expire at
    /// once); `null`: no count limit.
    pub keep_builds: Option<i64>,
    /// With `keep_builds`: saved builds younger than this many days are kept too.
    pub keep_days: Option<i64>,
    #[schema(format = DateTime)]
    pub created_at: String,
}

/// `GET /projects`: the projects the caller may see.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ProjectList {
    pub projects: Vec<Project>,
}

/// `POST /projects` (admin).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProject {
    pub name: String,
    /// How long its builds are kept (default 7 days, at most ten years).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_secs: Option<i64>,
    /// Keep only the N most recently saved builds (1 to 100,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_builds: Option<i64>,
    /// With `keep_builds`: also keep saved builds younger than D days (1 to 3650).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_days: Option<i64>,
}

/// `PATCH /projects/{project}` (admin): what to change; a field left out stays as it is.
/// A new `retention_secs` applies to builds created from then on; a count policy applies at
/// once to the builds saved already.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProject {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_secs: Option<i64>,
    /// Keep only the N most recently saved builds; `null` removes the count policy (and
    /// `keep_days` with it).
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<i64>, nullable)]
    pub keep_builds: Option<Option<i64>>,
    /// Beside `keep_builds`, keep saved builds younger than D days; `null`: no age exception.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<i64>, nullable)]
    pub keep_days: Option<Option<i64>>,
}

/// `DELETE /projects/{project}` (admin): what went with the project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ProjectDeleted {
    pub id: String,
    /// Its builds that were live: they answer 404 from now on, and collection reclaims them.
    pub builds_expired: u64,
    /// Its project tokens, revoked (with every token minted with them).
    pub tokens_revoked: u64,
    /// Its trust policies, removed (with every credential they admitted).
    pub trust_policies_removed: u64,
}

/// A project token: what CI jobs authenticate with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Token {
    pub id: String,
    pub project: String,
    pub name: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub revoked_at: Option<String>,
    /// The secret: only in the answer to creation, never again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// `GET /projects/{project}/tokens`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TokenList {
    pub tokens: Vec<Token>,
}

/// `POST /projects/{project}/tokens` (admin).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    pub name: String,
}

/// `POST .../pull-token`: how long the token lives (default an hour, at most a week).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PullTokenRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_secs: Option<i64>,
}

/// A minted pull token, for a build or (no `build`) a whole project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PullToken {
    pub token: String,
    /// The user name to present it with (`x-token`).
    pub username: String,
    pub project: String,
    pub build: Option<String>,
    #[schema(format = DateTime)]
    pub expires_at: String,
}

/// `POST /admin/clock` (admin, `--test-clock` only): moves the registry clock forward.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClockRequest {
    pub advance_secs: i64,
}

/// The registry clock after it moved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ClockAnswer {
    #[schema(format = DateTime)]
    pub now: String,
}
