//! The single place where a request's identity and permissions are decided.
//!
//! Every registry request passes through [`Access::authorize`] before its handler runs, with the
//! endpoint already parsed, so a handler never decides access itself. Today the registry runs
//! open (every caller may pull, push and delete); token authentication plugs in here by
//! resolving the `Authorization` header into an [`Identity`] with per-repository grants.

use axum::http::{HeaderMap, StatusCode};

use crate::endpoint::Endpoint;
use crate::error::{Code, Error, Result};
use crate::names::RepoName;

/// What a caller may do to a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Pull,
    Push,
    Delete,
}

/// Who is calling, as far as the registry knows.
#[derive(Debug, Clone)]
pub enum Identity {
    /// No authentication configured: everything is allowed.
    Open,
}

impl Identity {
    /// Whether this caller may `action` on `repo` (used for secondary repositories, such as the
    /// source of a cross-repository mount).
    pub fn may(&self, _repo: &RepoName, _action: Action) -> bool {
        match self {
            Identity::Open => true,
        }
    }
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

/// Decides access for requests.
#[derive(Debug, Clone, Default)]
pub struct Access {}

impl Access {
    /// Resolves the caller and checks it may perform `endpoint`; the error is the response
    /// (`UNAUTHORIZED` with a challenge, or `DENIED`).
    pub fn authorize(&self, _headers: &HeaderMap, endpoint: &Endpoint) -> Result<Identity> {
        let identity = Identity::Open;
        if let (Some(repo), Some(action)) = (endpoint.repository(), required_action(endpoint)) {
            if !identity.may(repo, action) {
                return Err(Error::new(StatusCode::FORBIDDEN, Code::Denied)
                    .detail(serde_json::json!({ "repository": repo.as_str(), "action": format!("{action:?}") })));
            }
        }
        Ok(identity)
    }
}
