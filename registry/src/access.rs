//! The single place where a registry request's identity and permissions are decided.
//!
//! Every `/v2/` request passes through [`Access::authorize`] before its handler runs, with the
//! endpoint already parsed, so a handler never decides access itself. Two layers:
//! 1. the access token's `access` claim must grant the endpoint's action on its repository
//!    (otherwise `401` with a challenge for the missing scope, as the token spec says);
//! 2. build-scoped credentials are held to their build: a push token writes only its own build's
//!    tags and only while the build accepts pushes; a build pull token reads only what that build
//!    holds (otherwise `403 DENIED`: no other token would help).
//!
//! Nothing about a repository is looked up before layer 1 passes, so a token of one project
//! learns nothing (not even whether a blob exists) about another.

use std::sync::Arc;

use axum::http::{header, HeaderMap};

use crate::auth::{Auth, Claims, CredKind, ResourceActions, TokenKind};
use crate::endpoint::Endpoint;
use crate::error::{Error, Result};
use depot_store::assemble;
use depot_store::metadata::Metadata;
use depot_store::model::{cache_repository, Build, TagRole};
use depot_store::names::{Reference, RepoName};

/// What a caller may do to a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Pull,
    Push,
    Delete,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::Pull => "pull",
            Action::Push => "push",
            Action::Delete => "delete",
        }
    }
}

/// Who is calling, as far as the registry knows.
#[derive(Debug, Clone)]
pub enum Identity {
    /// Authentication disabled (`--no-auth`): everything is allowed.
    Open,
    /// A verified access token.
    Token {
        claims: Arc<Claims>,
        /// For a build push token pushing: the build, checked to accept pushes.
        pushing: Option<Box<Build>>,
    },
}

impl Identity {
    /// Whether this caller may `action` on `repo`, a secondary repository such as the source of
    /// a cross-repository mount: what the token grants, or anything for an admin's token (the
    /// admin may read every repository, so a mount without `from` can find the blob anywhere).
    pub fn may(&self, repo: &RepoName, action: Action) -> bool {
        match self {
            Identity::Open => true,
            Identity::Token { claims, .. } => {
                claims.cred == Some(CredKind::Admin)
                    || grants(&claims.access, "repository", repo.as_str(), action.as_str())
            }
        }
    }

    /// The build whose push this is, if the caller is a build push token.
    pub fn pushing_build(&self) -> Option<&Build> {
        match self {
            Identity::Token { pushing, .. } => pushing.as_deref(),
            Identity::Open => None,
        }
    }
}

fn grants(access: &[ResourceActions], kind: &str, name: &str, action: &str) -> bool {
    access.iter().any(|r| {
        r.kind == kind && r.name == name && r.actions.iter().any(|a| a == action || a == "*")
    })
}

/// The action an endpoint needs on its repository.
pub fn required_action(endpoint: &Endpoint) -> Option<Action> {
    use Endpoint::*;
    match endpoint {
        Base | Catalog => None,
        BlobGet { .. } | ManifestGet { .. } | TagsList { .. } | Referrers { .. } => {
            Some(Action::Pull)
        }
        UploadStart { .. }
        | UploadPatch { .. }
        | UploadFinish { .. }
        | UploadStatus { .. }
        | UploadCancel { .. }
        | ManifestPut { .. } => Some(Action::Push),
        BlobDelete { .. } | ManifestDelete { .. } => Some(Action::Delete),
    }
}

/// The scope a challenge for `endpoint` names (push routes ask for `pull,push`, as clients
/// need both to push).
fn challenge_scope(endpoint: &Endpoint) -> Option<String> {
    if matches!(endpoint, Endpoint::Catalog) {
        return Some("registry:catalog:*".into());
    }
    let repo = endpoint.repository()?;
    let actions = match required_action(endpoint)? {
        Action::Pull => "pull",
        Action::Push => "pull,push",
        Action::Delete => "delete",
    };
    Some(format!("repository:{repo}:{actions}"))
}

/// Decides access for requests: open, or checked against tokens signed by [`Auth`].
#[derive(Debug, Clone, Default)]
pub struct Access {
    auth: Option<Arc<Auth>>,
}

impl Access {
    /// Every request allowed (`--no-auth`).
    pub fn open() -> Self {
        Access { auth: None }
    }

    pub fn with_auth(auth: Auth) -> Self {
        Access {
            auth: Some(Arc::new(auth)),
        }
    }

    pub fn auth(&self) -> Option<&Auth> {
        self.auth.as_deref()
    }

    /// Resolves the caller and checks it may perform `endpoint`; the error is the response
    /// (`UNAUTHORIZED` with a challenge, or `DENIED`).
    pub async fn authorize(
        &self,
        meta: &Metadata,
        headers: &HeaderMap,
        endpoint: &Endpoint,
    ) -> Result<Identity> {
        let Some(auth) = self.auth.as_deref() else {
            return Ok(Identity::Open);
        };
        let scope = challenge_scope(endpoint);
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim());
        let Some(token) = token else {
            return Err(auth.challenge(headers, scope.as_deref(), None));
        };
        let claims = auth
            .verify(token, TokenKind::Access)
            .map_err(|_| auth.challenge(headers, scope.as_deref(), Some("invalid_token")))?;
        let allowed = match endpoint {
            Endpoint::Base => true,
            Endpoint::Catalog => grants(&claims.access, "registry", "catalog", "*"),
            _ => match (endpoint.repository(), required_action(endpoint)) {
                (Some(repo), Some(action)) => {
                    grants(&claims.access, "repository", repo.as_str(), action.as_str())
                }
                _ => false,
            },
        };
        if !allowed {
            return Err(auth.challenge(headers, scope.as_deref(), Some("insufficient_scope")));
        }
        let pushing = build_rules(auth, meta, &claims, endpoint).await?;
        Ok(Identity::Token {
            claims,
            pushing: pushing.map(Box::new),
        })
    }
}

/// Layer 2: holds build-scoped credentials to their build. Returns the build a push token is
/// pushing to.
async fn build_rules(
    auth: &Auth,
    meta: &Metadata,
    claims: &Claims,
    endpoint: &Endpoint,
) -> Result<Option<Build>> {
    let Some(build_id) = claims.build.as_deref() else {
        return Ok(None);
    };
    match claims.cred {
        Some(CredKind::Push) => {
            if required_action(endpoint) != Some(Action::Push) {
                return Ok(None);
            }
            let build = auth.pushable(build_id).await?;
            // In the project's build cache any tag goes (cache keys): what is pushed there
            // belongs to the build all the same, and expires with it.
            let in_cache = endpoint.repository().map(RepoName::as_str)
                == Some(cache_repository(&build.project).as_str());
            if let (
                Endpoint::ManifestPut {
                    name,
                    reference,
                    tags,
                },
                false,
            ) = (endpoint, in_cache)
            {
                // Every tag the push points, the reference's or a multi-tag push's: one the
                // build may not take refuses the whole push.
                let reference_tag = match reference {
                    Reference::Tag(tag) => Some(tag),
                    Reference::Digest(_) => None,
                };
                for tag in reference_tag.into_iter().chain(tags) {
                    let own = match build.tag_role(tag.as_str()) {
                        None => false,
                        Some(TagRole::Save { .. }) => {
                            assemble::may_take_save_tag(meta, name, tag.as_str(), &build).await?
                        }
                        Some(_) => true,
                    };
                    if !own {
                        return Err(Error::denied(format!(
                            "tag {tag} is not one of build {build_id}'s tags"
                        )));
                    }
                }
            }
            Ok(Some(build))
        }
        Some(CredKind::Pull) => {
            use Endpoint::*;
            let inside = match endpoint {
                ManifestGet {
                    name,
                    reference: Reference::Tag(tag),
                    ..
                } => meta.tag_owner(name, tag.as_str()).await?.as_deref() == Some(build_id),
                ManifestGet {
                    name,
                    reference: Reference::Digest(d),
                    ..
                } => meta.build_has_manifest(build_id, name, d.as_str()).await?,
                BlobGet { name, digest, .. } => {
                    meta.build_references_blob(build_id, name, digest.as_str())
                        .await?
                }
                Referrers { name, digest } => {
                    meta.build_has_manifest(build_id, name, digest.as_str())
                        .await?
                }
                Base => true,
                _ => false,
            };
            if inside {
                Ok(None)
            } else {
                Err(Error::denied(format!(
                    "this token reads only build {build_id}"
                )))
            }
        }
        _ => Ok(None),
    }
}
