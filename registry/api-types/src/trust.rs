//! Keyless CI: trust policies (which CI jobs may exchange the OIDC token their provider issues
//! for a short-lived credential on a project) and the exchange itself.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The CI systems whose OIDC tokens the registry can verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OidcProvider {
    /// GitHub Actions (github.com, or GitHub Enterprise Server with `--oidc-issuer github=URL`).
    Github,
    /// GitLab CI (gitlab.com, or a self-hosted GitLab with `--oidc-issuer gitlab=URL`).
    Gitlab,
    Circleci,
    Buildkite,
}

impl OidcProvider {
    pub const ALL: [OidcProvider; 4] = [
        OidcProvider::Github,
        OidcProvider::Gitlab,
        OidcProvider::Circleci,
        OidcProvider::Buildkite,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OidcProvider::Github => "github",
            OidcProvider::Gitlab => "gitlab",
            OidcProvider::Circleci => "circleci",
            OidcProvider::Buildkite => "buildkite",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

/// What a matching job may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TrustAccess {
    /// Pull the project's builds.
    Pull,
    /// Create builds (and push through their push tokens), and pull.
    Build,
}

impl TrustAccess {
    pub fn as_str(self) -> &'static str {
        match self {
            TrustAccess::Pull => "pull",
            TrustAccess::Build => "build",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pull" => Some(TrustAccess::Pull),
            "build" => Some(TrustAccess::Build),
            _ => None,
        }
    }
}

/// A trust policy's rules: `provider`, `access`, and the fields of that provider (a field of
/// another provider is refused). Patterns (`refs`, `branches`) may hold `*`, which matches any
/// run of characters (`refs/tags/v*`); empty lists match everything.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TrustPolicySpec {
    pub provider: Option<OidcProvider>,
    pub access: Option<TrustAccess>,
    /// GitHub: the repository's owner (user or organisation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// GitHub: the repository's name, without the owner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// GitHub and GitLab: the refs a job may run on (`refs/heads/main`, `refs/tags/v*`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refs: Vec<String>,
    /// GitHub: the deployment environments a job may run in (none: any, or none at all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub environments: Vec<String>,
    /// GitHub: the workflows a job may run in, by name or by path
    /// (`.github/workflows/release.yml`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workflows: Vec<String>,
    /// GitLab: the group or user namespace (`acme` or `acme/platform`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// GitLab: the project's path inside the namespace (`app`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// GitLab: only jobs on protected branches and tags.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub protected_only: bool,
    /// CircleCI: the organisation's id (a UUID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization_id: Option<String>,
    /// CircleCI: the project's id (a UUID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    /// Buildkite: the organisation's slug.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<String>,
    /// Buildkite: the pipeline's slug.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<String>,
    /// Buildkite: the branches a job may build.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub branches: Vec<String>,
}

/// A trust policy of a project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TrustPolicy {
    pub id: String,
    #[serde(flatten)]
    pub spec: TrustPolicySpec,
    #[schema(format = DateTime)]
    pub created_at: String,
}

/// `GET /projects/{project}/trust-policies`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TrustPolicyList {
    pub policies: Vec<TrustPolicy>,
}

/// `POST /oidc/token`: a CI job's OIDC ID token, for a credential on `project`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OidcExchange {
    pub project: String,
    /// The ID token the CI provider issued to the job (a JWT).
    pub token: String,
}

/// The credential an exchange gives: present it like any depot token (Bearer to the API,
/// `x-token` and it as password to `/token`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OidcCredential {
    pub token: String,
    /// Always `x-token`.
    pub username: String,
    #[schema(format = DateTime)]
    pub expires_at: String,
    pub access: TrustAccess,
    pub project: String,
    /// The policy that matched.
    pub policy: String,
}

/// `GET /oidc`: what a CI job needs to know before asking its provider for a token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OidcConfig {
    /// The `aud` the registry requires.
    pub audience: String,
    pub issuers: Vec<OidcIssuer>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OidcIssuer {
    pub provider: OidcProvider,
    /// The issuer URL (CircleCI's: the prefix before `/<organization id>`).
    pub issuer: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_reads_back_and_refuses_unknown_fields() {
        let body = r#"{"provider": "github", "owner": "acme", "repository": "app",
            "refs": ["refs/heads/main", "refs/tags/v*"], "environments": [], "workflows": [],
            "access": "build"}"#;
        let spec: TrustPolicySpec = serde_json::from_str(body).unwrap();
        assert_eq!(spec.provider, Some(OidcProvider::Github));
        assert_eq!(spec.access, Some(TrustAccess::Build));
        assert_eq!(spec.refs.len(), 2);
        assert!(serde_json::from_str::<TrustPolicySpec>(r#"{"ownr": "x"}"#).is_err());
        let policy = TrustPolicy {
            id: "tp1".into(),
            spec,
            created_at: "2026-12-02T00:00:00Z".into(),
        };
        let text = serde_json::to_string(&policy).unwrap();
        assert!(text.contains(r#""provider":"github""#), "{text}");
        assert_eq!(serde_json::from_str::<TrustPolicy>(&text).unwrap(), policy);
    }
}
