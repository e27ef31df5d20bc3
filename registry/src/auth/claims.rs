//! What the registry's JWTs say, the scopes clients ask for, and what each kind of credential
//! may be granted.
//!
//! One claim set serves four token kinds: `access` tokens (what `/token` issues and `/v2/`
//! accepts, with the standard `access` claim), and the JWT credentials the API mints, build
//! `push` tokens, `pull` tokens and `ci` tokens (what a CI job's OIDC token is exchanged for
//! under a `build` trust policy), exchanged at `/token`, never accepted by `/v2/` directly.

use depot_store::model::cache_repository;
use serde::{Deserialize, Serialize};

/// The kind of a JWT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    Access,
    Push,
    Pull,
    Ci,
}

impl TokenKind {
    /// As messages name it ("this push token expired").
    pub fn name(self) -> &'static str {
        match self {
            TokenKind::Access => "access",
            TokenKind::Push => "push",
            TokenKind::Pull => "pull",
            TokenKind::Ci => "CI",
        }
    }
}

/// The credential an access token was issued for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CredKind {
    Admin,
    Project,
    Push,
    Pull,
    Ci,
}

/// One entry of the `access` claim, and one requested scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceActions {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub actions: Vec<String>,
}

/// Parses `scope` values: space-separated `type[(class)]:name:action[,action]` entries, where
/// the name may itself hold colons (`repository:host:5000/app:pull`). Unparseable entries are
/// dropped, as the spec asks, rather than failing the whole request.
pub fn parse_scopes<'a>(values: impl IntoIterator<Item = &'a str>) -> Vec<ResourceActions> {
    values
        .into_iter()
        .flat_map(str::split_whitespace)
        .filter_map(|entry| {
            let (kind, rest) = entry.split_once(':')?;
            let (name, actions) = rest.rsplit_once(':')?;
            let kind = kind.split('(').next().unwrap_or(kind);
            if kind.is_empty() || name.is_empty() {
                return None;
            }
            Some(ResourceActions {
                kind: kind.to_owned(),
                name: name.to_owned(),
                actions: actions
                    .split(',')
                    .filter(|a| !a.is_empty())
                    .map(str::to_owned)
                    .collect(),
            })
        })
        .collect()
}

/// Claims of every token the registry signs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub nbf: i64,
    pub iat: i64,
    pub jti: String,
    pub kind: TokenKind,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub access: Vec<ResourceActions>,
    /// For access tokens: the credential they were issued for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cred: Option<CredKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// The build a push token (or a build-scoped pull token) is limited to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<String>,
    /// For push, pull and ci tokens: the project token (its id) they were minted with, directly
    /// or through another token it minted, or the trust policy (`trust-policy:<id>`) a CI job
    /// was admitted by. Revoking that token, or deleting that policy, revokes them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minted_by: Option<String>,
}

/// Someone who presented a valid secret at `/token` or to the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    Admin,
    Project {
        project: String,
        token_id: String,
    },
    Push {
        project: String,
        build: String,
        /// Unix seconds.
        expires_at: i64,
        /// The project token it derives from (`None`: minted with the admin token).
        minted_by: Option<String>,
    },
    Pull {
        project: String,
        build: Option<String>,
        expires_at: i64,
        minted_by: Option<String>,
    },
    /// A CI job admitted by a `build` trust policy: creates builds of its project and pulls.
    Ci {
        project: String,
        /// The policy's root (`trust-policy:<id>`): deleting the policy ends the credential.
        minted_by: String,
        expires_at: i64,
        /// The job, as its provider named it (`github:repo:acme/app:ref:refs/heads/main`).
        job: String,
    },
}

impl Credential {
    pub fn kind(&self) -> CredKind {
        match self {
            Credential::Admin => CredKind::Admin,
            Credential::Project { .. } => CredKind::Project,
            Credential::Push { .. } => CredKind::Push,
            Credential::Pull { .. } => CredKind::Pull,
            Credential::Ci { .. } => CredKind::Ci,
        }
    }

    pub fn project(&self) -> Option<&str> {
        match self {
            Credential::Admin => None,
            Credential::Project { project, .. }
            | Credential::Push { project, .. }
            | Credential::Pull { project, .. }
            | Credential::Ci { project, .. } => Some(project),
        }
    }

    /// The project token whose revocation ends this credential (and all it mints): the token
    /// itself, or the one a push or pull token was minted with.
    pub fn root_token(&self) -> Option<&str> {
        match self {
            Credential::Admin => None,
            Credential::Project { token_id, .. } => Some(token_id),
            Credential::Push { minted_by, .. } | Credential::Pull { minted_by, .. } => {
                minted_by.as_deref()
            }
            Credential::Ci { minted_by, .. } => Some(minted_by),
        }
    }

    pub fn build(&self) -> Option<&str> {
        match self {
            Credential::Push { build, .. } => Some(build),
            Credential::Pull { build, .. } => build.as_deref(),
            _ => None,
        }
    }

    /// When the credential itself stops working (Unix seconds); tokens issued for it end then
    /// at the latest.
    pub fn expires_at(&self) -> Option<i64> {
        match self {
            Credential::Push { expires_at, .. }
            | Credential::Pull { expires_at, .. }
            | Credential::Ci { expires_at, .. } => Some(*expires_at),
            _ => None,
        }
    }

    /// A name for logs and the `sub` claim; never a secret.
    pub fn subject(&self) -> String {
        match self {
            Credential::Admin => "admin".into(),
            Credential::Project { token_id, .. } => format!("project-token:{token_id}"),
            Credential::Push { build, .. } => format!("build:{build}"),
            Credential::Pull {
                project,
                build: None,
                ..
            } => format!("pull:{project}"),
            Credential::Pull {
                build: Some(build), ..
            } => format!("pull:build:{build}"),
            Credential::Ci { job, .. } => format!("ci:{job}"),
        }
    }

    /// What a token for `resource` carries: never more than the credential allows; of that,
    /// `pull` and `push` whenever allowed, `delete` and `*` only when asked for. Granting the
    /// read/write pair together serves clients that ask for `pull` first and then push with the
    /// same token (the oras Python SDK re-authenticates only on 403, never on 401).
    pub fn grant(&self, resource: &ResourceActions) -> Vec<String> {
        let allowed: &[&str] = match (self, resource.kind.as_str()) {
            (Credential::Admin, "repository") => &["pull", "push", "delete", "*"],
            (Credential::Admin, "registry") if resource.name == "catalog" => &["*"],
            (_, "repository") if Some(resource.name.as_str()) == self.project() => match self {
                Credential::Push { .. } => &["pull", "push"],
                _ => &["pull"],
            },
            // The project's build cache: written by builders (push tokens), read by anything
            // that reads the whole project.
            (_, "repository")
                if self.project().map(cache_repository).as_deref() == Some(&resource.name) =>
            {
                match self {
                    Credential::Push { .. } => &["pull", "push"],
                    Credential::Pull { build: Some(_), .. } => &[],
                    _ => &["pull"],
                }
            }
            _ => &[],
        };
        if resource.actions.is_empty() {
            return Vec::new();
        }
        allowed
            .iter()
            .filter(|a| matches!(**a, "pull" | "push") || resource.actions.iter().any(|r| r == *a))
            .map(|a| (*a).to_owned())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(s: &str) -> ResourceActions {
        parse_scopes([s]).remove(0)
    }

    #[test]
    fn parses_scopes() {
        let all = parse_scopes([
            "repository:p1:pull,push registry:catalog:*",
            "repository:127.0.0.1:5000/p1:pull",
            "repository(plugin):x:pull",
            "garbage",
        ]);
        assert_eq!(all.len(), 4);
        assert_eq!(all[0].actions, vec!["pull", "push"]);
        assert_eq!(
            (all[1].kind.as_str(), all[1].name.as_str()),
            ("registry", "catalog")
        );
        assert_eq!(all[2].name, "127.0.0.1:5000/p1");
        assert_eq!(all[3].kind, "repository");
    }

    #[test]
    fn grants_never_exceed_the_credential() {
        let push = Credential::Push {
            project: "p1".into(),
            build: "b".into(),
            expires_at: 0,
            minted_by: None,
        };
        assert_eq!(
            push.grant(&scope("repository:p1:pull,push,delete")),
            vec!["pull", "push"]
        );
        assert!(push.grant(&scope("repository:p2:pull")).is_empty());
        assert!(push.grant(&scope("repository:p1/sub:pull")).is_empty());
        // The project's build cache: builders write it, project credentials read it.
        assert_eq!(
            push.grant(&scope("repository:p1/cache:pull,push,delete")),
            vec!["pull", "push"]
        );
        assert!(push.grant(&scope("repository:p2/cache:pull")).is_empty());
        assert!(push.grant(&scope("registry:catalog:*")).is_empty());
        let project = Credential::Project {
            project: "p1".into(),
            token_id: "t".into(),
        };
        assert_eq!(
            project.grant(&scope("repository:p1:pull,push")),
            vec!["pull"]
        );
        assert_eq!(
            push.grant(&scope("repository:p1:pull")),
            vec!["pull", "push"]
        );
        let pull = Credential::Pull {
            project: "p1".into(),
            build: None,
            expires_at: 0,
            minted_by: None,
        };
        assert_eq!(
            pull.grant(&scope("repository:p1:push,delete,*")),
            vec!["pull"]
        );
        assert_eq!(
            pull.grant(&scope("repository:p1/cache:pull,push")),
            vec!["pull"]
        );
        assert_eq!(
            project.grant(&scope("repository:p1/cache:pull,push")),
            vec!["pull"]
        );
        let build_pull = Credential::Pull {
            project: "p1".into(),
            build: Some("b".into()),
            expires_at: 0,
            minted_by: None,
        };
        assert!(build_pull
            .grant(&scope("repository:p1/cache:pull"))
            .is_empty());
        assert_eq!(
            Credential::Admin.grant(&scope("repository:any/thing:pull,delete")),
            vec!["pull", "push", "delete"]
        );
        assert_eq!(
            Credential::Admin.grant(&scope("registry:catalog:*")),
            vec!["*"]
        );
    }
}
