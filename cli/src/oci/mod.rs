//! A small OCI distribution client on `reqwest`: the token/Basic auth flow, retries with
//! backoff, resumable chunked uploads, cross-repository mounts, and blob reads that resume and
//! verify their digest.
//!
//! Why not `oci-client`: its `push_blob` takes the whole blob in memory, `push_blob_stream`
//! cannot resume an interrupted upload (a consumed stream cannot be replayed, and it never asks
//! the registry where the upload stands), `mount_blob` asks for push scope on the target only
//! (token registries then refuse the mount: the `from` repository needs pull scope too), and it
//! does not retry 429/5xx with `Retry-After`. Those are exactly what `depot push` must do, so
//! this module does them; `oci-spec` supplies image references.

mod auth;
mod blob;
mod client;
pub mod creds;
pub mod manifest;
pub mod tls;
mod upload;

pub use auth::Credentials;
pub use blob::BlobReader;
pub use client::{own_registry_hint, Registry};
pub use upload::{Started, Upload, UploadError};

/// A content descriptor: what manifests say about the blobs and manifests they point at.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<manifest::Platform>,
}

/// What went wrong talking to a registry, with what the registry said.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}", http_message(.0))]
    Http(#[from] reqwest::Error),
    #[error("{method} {url}: {status} {message}")]
    Status {
        method: String,
        url: String,
        status: u16,
        message: String,
    },
    #[error("{0}")]
    Other(String),
}

impl Error {
    pub fn other(msg: impl Into<String>) -> Self {
        Error::Other(msg.into())
    }

    /// The HTTP status, when the registry answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A transport error with its causes ("connection refused") and without URL queries.
fn http_message(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    if let Some(u) = e.url() {
        s = s.replace(u.as_str(), client::short_url(u.as_str()));
    }
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Reads an error answer into an [`Error`], keeping the registry's OCI error message if it sent
/// one (`{"errors": [{"code", "message"}]}`).
pub(crate) async fn status_error(method: &str, resp: reqwest::Response) -> Error {
    let status = resp.status().as_u16();
    // Without the query: upload `_state` tokens are long and say nothing to a user.
    let url = client::short_url(resp.url().as_str()).to_owned();
    let body = resp.text().await.unwrap_or_default();
    let message = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| {
            let errors = v.get("errors")?.as_array()?;
            Some(
                errors
                    .iter()
                    .map(|e| {
                        format!(
                            "{}: {}",
                            e.get("code").and_then(|c| c.as_str()).unwrap_or("ERROR"),
                            e.get("message").and_then(|m| m.as_str()).unwrap_or("")
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })
        .unwrap_or_else(|| body.chars().take(300).collect());
    Error::Status {
        method: method.to_owned(),
        url,
        status,
        message,
    }
}
