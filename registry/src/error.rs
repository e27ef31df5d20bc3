//! The one error type of the registry API and its mapping to OCI error codes.
//!
//! The store below returns its own [`depot_store::Error`]; it becomes this error in one place
//! (`From<StoreError>`): a lost database or storage connection becomes `503`, a full disk `507`,
//! an invalid manifest its OCI code, and anything else a `500` whose cause is logged once by the
//! failure-logging middleware (never sent to the client). Every response is the spec's
//! `{"errors":[{"code","message","detail"}]}` envelope.

use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{json, Value};

use depot_store::Error as StoreError;

/// The error codes of the distribution spec (section "Error Codes").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Code {
    /// Blob unknown to registry.
    BlobUnknown,
    /// Blob upload invalid.
    BlobUploadInvalid,
    /// Blob upload unknown to registry.
    BlobUploadUnknown,
    /// Provided digest did not match uploaded content.
    DigestInvalid,
    /// Manifest references a manifest or blob unknown to registry.
    ManifestBlobUnknown,
    /// Manifest invalid.
    ManifestInvalid,
    /// Manifest unknown to registry.
    ManifestUnknown,
    /// Invalid repository name.
    NameInvalid,
    /// Repository name not known to registry.
    NameUnknown,
    /// Provided length did not match content length.
    SizeInvalid,
    /// Authentication required.
    Unauthorized,
    /// Requested access to the resource is denied.
    Denied,
    /// The operation is unsupported.
    Unsupported,
    /// Too many requests.
    Toomanyrequests,
    // Codes of the control-plane API (`/api/v1`), outside the distribution spec.
    /// The request body or parameters are not acceptable.
    InvalidRequest,
    /// No such project, token or build (or not one the caller may see).
    NotFound,
    /// The request conflicts with the resource's state (e.g. finalizing a failed build).
    Conflict,
}

impl Code {
    fn message(self) -> &'static str {
        match self {
            Code::BlobUnknown => "blob unknown to registry",
            Code::BlobUploadInvalid => "blob upload invalid",
            Code::BlobUploadUnknown => "blob upload unknown to registry",
            Code::DigestInvalid => "provided digest did not match uploaded content",
            Code::ManifestBlobUnknown => {
                "manifest references a manifest or blob unknown to registry"
            }
            Code::ManifestInvalid => "manifest invalid",
            Code::ManifestUnknown => "manifest unknown to registry",
            Code::NameInvalid => "invalid repository name",
            Code::NameUnknown => "repository name not known to registry",
            Code::SizeInvalid => "provided length did not match content length",
            Code::Unauthorized => "authentication required",
            Code::Denied => "requested access to the resource is denied",
            Code::Unsupported => "the operation is unsupported",
            Code::Toomanyrequests => "too many requests",
            Code::InvalidRequest => "invalid request",
            Code::NotFound => "not found",
            Code::Conflict => "conflict with the current state",
        }
    }
}

/// A failed request: what the client is told, plus (for server faults) what the log is told.
#[derive(Debug)]
pub struct Error {
    pub status: StatusCode,
    pub code: Code,
    pub message: String,
    pub detail: Value,
    /// Extra response headers (e.g. `Range` on a 416, `WWW-Authenticate` on a 401).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The cause of a 5xx, for the log only.
    pub internal: Option<String>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attached to 5xx responses so the logging middleware can report the cause once.
#[derive(Debug, Clone)]
pub struct InternalCause(pub String);

impl Error {
    pub fn new(status: StatusCode, code: Code) -> Self {
        Error {
            status,
            code,
            message: code.message().to_owned(),
            detail: Value::Null,
            headers: Vec::new(),
            internal: None,
        }
    }

    pub fn message(mut self, message: impl Into<String>) -> Self {
        self.message = message.into();
        self
    }

    pub fn detail(mut self, detail: Value) -> Self {
        self.detail = detail;
        self
    }

    pub fn header(mut self, name: HeaderName, value: impl AsRef<str>) -> Self {
        if let Ok(v) = HeaderValue::from_str(value.as_ref()) {
            self.headers.push((name, v));
        }
        self
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Error::new(StatusCode::UNAUTHORIZED, Code::Unauthorized).message(message)
    }

    pub fn denied(message: impl Into<String>) -> Self {
        Error::new(StatusCode::FORBIDDEN, Code::Denied).message(message)
    }

    pub fn invalid_request(message: impl Into<String>) -> Self {
        Error::new(StatusCode::BAD_REQUEST, Code::InvalidRequest).message(message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Error::new(StatusCode::NOT_FOUND, Code::NotFound).message(message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Error::new(StatusCode::CONFLICT, Code::Conflict).message(message)
    }

    pub fn blob_unknown(digest: impl std::fmt::Display) -> Self {
        Error::new(StatusCode::NOT_FOUND, Code::BlobUnknown)
            .detail(json!({ "digest": digest.to_string() }))
    }

    /// A manifest references a blob (or child manifest) the repository does not hold.
    pub fn manifest_blob_unknown(digest: impl std::fmt::Display) -> Self {
        Error::new(StatusCode::BAD_REQUEST, Code::ManifestBlobUnknown)
            .detail(json!({ "digest": digest.to_string() }))
    }

    pub fn manifest_unknown(reference: impl std::fmt::Display) -> Self {
        Error::new(StatusCode::NOT_FOUND, Code::ManifestUnknown)
            .detail(json!({ "reference": reference.to_string() }))
    }

    pub fn name_unknown(name: impl std::fmt::Display) -> Self {
        Error::new(StatusCode::NOT_FOUND, Code::NameUnknown)
            .detail(json!({ "name": name.to_string() }))
    }

    pub fn upload_unknown() -> Self {
        Error::new(StatusCode::NOT_FOUND, Code::BlobUploadUnknown)
    }

    /// A digest the registry cannot use: malformed, of an unsupported algorithm, or missing.
    /// `message` says which (the code's own message is about a mismatch, and would be false).
    pub fn digest_invalid(message: impl Into<String>) -> Self {
        Error::new(StatusCode::BAD_REQUEST, Code::DigestInvalid).message(message)
    }

    /// Content whose digest is not the one the client named.
    pub fn digest_mismatch(
        expected: &impl std::fmt::Display,
        actual: &impl std::fmt::Display,
    ) -> Self {
        Error::new(StatusCode::BAD_REQUEST, Code::DigestInvalid)
            .detail(json!({ "expected": expected.to_string(), "actual": actual.to_string() }))
    }

    pub fn manifest_invalid(detail: impl Into<String>) -> Self {
        Error::new(StatusCode::BAD_REQUEST, Code::ManifestInvalid)
            .detail(Value::String(detail.into()))
    }

    pub fn size_invalid(detail: impl Into<String>) -> Self {
        Error::new(StatusCode::BAD_REQUEST, Code::SizeInvalid).detail(Value::String(detail.into()))
    }

    pub fn unsupported(status: StatusCode, detail: impl Into<String>) -> Self {
        Error::new(status, Code::Unsupported).detail(Value::String(detail.into()))
    }

    /// A bad query parameter, header or body that no more specific code describes.
    pub fn bad_request(code: Code, detail: impl Into<String>) -> Self {
        Error::new(StatusCode::BAD_REQUEST, code).detail(Value::String(detail.into()))
    }

    /// `416` for an upload chunk that does not start where the upload stands.
    pub fn range_not_satisfiable(location: &str, size: u64) -> Self {
        Error::new(StatusCode::RANGE_NOT_SATISFIABLE, Code::BlobUploadInvalid)
            .message("chunk out of order")
            .header(header::LOCATION, location)
            .header(header::RANGE, upload_range(size))
    }

    /// A server-side fault: the client sees a generic 500, the log sees `cause`.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        let mut e = Error::new(StatusCode::INTERNAL_SERVER_ERROR, Code::Unsupported)
            .message("internal server error");
        e.internal = Some(cause.to_string());
        e
    }

    /// `507`: the blob store has no room left for what the client sent.
    pub fn insufficient_storage(cause: impl std::fmt::Display) -> Self {
        let mut e = Error::new(StatusCode::INSUFFICIENT_STORAGE, Code::Unsupported)
            .message("insufficient storage: the registry's disk is full");
        e.internal = Some(cause.to_string());
        e
    }

    /// A backend (database, storage) that cannot be reached: the client may retry.
    pub fn unavailable(cause: impl std::fmt::Display) -> Self {
        let mut e = Error::new(StatusCode::SERVICE_UNAVAILABLE, Code::Unsupported)
            .message("backend unavailable, retry later")
            .header(header::RETRY_AFTER, "1");
        e.internal = Some(cause.to_string());
        e
    }
}

/// The answer to a method a route does not have (a router's `method_not_allowed_fallback`).
pub async fn method_not_allowed() -> Response {
    Error::new(StatusCode::METHOD_NOT_ALLOWED, Code::Unsupported)
        .message("method not allowed on this resource")
        .into_response()
}

/// The `Range` header value of an upload holding `size` bytes (`0-0` while empty, as distribution does).
pub fn upload_range(size: u64) -> String {
    format!("0-{}", size.saturating_sub(1))
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let mut entry = json!({ "code": self.code, "message": self.message });
        if !self.detail.is_null() {
            entry["detail"] = self.detail;
        }
        let body = json!({ "errors": [entry] });
        let mut response = (
            self.status,
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response();
        for (name, value) in self.headers {
            response.headers_mut().insert(name, value);
        }
        if let Some(cause) = self.internal {
            response.extensions_mut().insert(InternalCause(cause));
        }
        response
    }
}

impl Error {
    /// The bytes of a stored blob are gone from the store (deleted outside the registry, or
    /// lost): a server fault no retry mends, so a `500`, never a "retry later".
    pub fn data_missing(cause: impl std::fmt::Display) -> Self {
        let mut e = Error::internal(cause);
        e.message = "the blob's data is missing from storage".into();
        e
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {:?}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )?;
        if !self.detail.is_null() {
            write!(f, " ({})", self.detail)?;
        }
        if let Some(cause) = &self.internal {
            write!(f, ": {cause}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

/// The one place a store failure becomes what a client is told.
impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) | StoreError::Conflict(_) => Error::unavailable(e),
            StoreError::StateConflict(m) => Error::conflict(m),
            StoreError::BlobUnknown { digest } => Error::manifest_blob_unknown(digest),
            StoreError::InvalidManifest(detail) => Error::manifest_invalid(detail),
            StoreError::UploadBusy => {
                Error::new(StatusCode::RANGE_NOT_SATISFIABLE, Code::BlobUploadInvalid)
                    .message("another request is writing to this upload")
            }
            StoreError::UploadLost { .. } => {
                let mut out = Error::upload_unknown()
                    .message("this upload's stored bytes are gone: start a new upload");
                out.internal = Some(e.to_string());
                out
            }
            StoreError::DataMissing { .. } => Error::data_missing(e),
            StoreError::StorageFull(_) => Error::insufficient_storage(e),
            StoreError::Corrupt(_) | StoreError::Internal(_) => Error::internal(e),
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        StoreError::from(e).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn envelope_shape() {
        let response = Error::blob_unknown("sha256:x").into_response();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        let body = http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap()
            .to_bytes();
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["errors"][0]["code"], "BLOB_UNKNOWN");
        assert_eq!(v["errors"][0]["detail"]["digest"], "sha256:x");
    }

    #[test]
    fn internal_cause_is_not_sent() {
        let response = Error::internal("secret path /x").into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(response.extensions().get::<InternalCause>().is_some());
    }
}
