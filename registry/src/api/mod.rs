//! The HTTP surface: one router for `/v2/`, which parses each request into an [`Endpoint`],
//! authorizes it in one place and dispatches with an exhaustive `match` to thin handlers.

mod blobs;
mod listing;
mod manifests;
mod uploads;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;

use crate::access::Identity;
use crate::endpoint::Endpoint;
use crate::error::{Code, Error, Result};
use crate::state::AppState;

pub(crate) const DOCKER_CONTENT_DIGEST: HeaderName =
    HeaderName::from_static("docker-content-digest");
pub(crate) const DOCKER_UPLOAD_UUID: HeaderName = HeaderName::from_static("docker-upload-uuid");
pub(crate) const OCI_SUBJECT: HeaderName = HeaderName::from_static("oci-subject");
pub(crate) const OCI_TAG: HeaderName = HeaderName::from_static("oci-tag");
pub(crate) const OCI_FILTERS_APPLIED: HeaderName = HeaderName::from_static("oci-filters-applied");
pub(crate) const OCI_CHUNK_MIN_LENGTH: HeaderName = HeaderName::from_static("oci-chunk-min-length");
const API_VERSION: HeaderName = HeaderName::from_static("docker-distribution-api-version");

/// A request after routing: who is asking and the raw parts handlers need (the body travels
/// separately: it is not `Sync`, and most handlers never touch it).
pub(crate) struct Call {
    pub identity: Identity,
    pub headers: HeaderMap,
    /// The query's parameters in order (a key may repeat: a multi-tag push's `tag`).
    pub query: Vec<(String, String)>,
}

impl Call {
    /// The first value of parameter `key`.
    pub fn query(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn header(&self, name: &HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v2", any(redirect_base))
        .route("/v2/", any(dispatch))
        .route("/v2/{*rest}", any(dispatch))
        .with_state(state)
}

async fn redirect_base() -> Response {
    (StatusCode::MOVED_PERMANENTLY, [(header::LOCATION, "/v2/")]).into_response()
}

async fn dispatch(State(state): State<AppState>, request: Request) -> Response {
    let mut response = match route(state, request).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    response
        .headers_mut()
        .insert(API_VERSION, HeaderValue::from_static("registry/2.0"));
    response
}

async fn route(state: AppState, request: Request) -> Result<Response> {
    let (parts, body) = request.into_parts();
    let query = match parts.uri.query() {
        None => Vec::new(),
        Some(q) => serde_urlencoded::from_str::<Vec<(String, String)>>(q)
            .map_err(|_| Error::bad_request(Code::Unsupported, "malformed query string"))?,
    };
    let endpoint = Endpoint::parse(&parts.method, parts.uri.path(), &query)?;
    let identity = state
        .access
        .authorize(&state.content.meta, &parts.headers, &endpoint)
        .await?;
    let call = Call {
        identity,
        headers: parts.headers,
        query,
    };
    use Endpoint::*;
    match endpoint {
        Base => Ok((
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            "{}",
        )
            .into_response()),
        Catalog => listing::catalog(&state, &call).await,
        BlobGet { name, digest, head } => blobs::get(&state, &call, &name, &digest, head).await,
        BlobDelete { name, digest } => blobs::delete(&state, &name, &digest).await,
        UploadStart { name } => uploads::start(&state, &call, body, &name).await,
        UploadPatch { name, id } => uploads::patch(&state, &call, body, &name, &id).await,
        UploadFinish { name, id } => uploads::finish(&state, &call, body, &name, &id).await,
        UploadStatus { name, id } => uploads::status(&state, &name, &id).await,
        UploadCancel { name, id } => uploads::cancel(&state, &name, &id).await,
        ManifestGet {
            name,
            reference,
            head,
        } => manifests::get(&state, &call, &name, &reference, head).await,
        ManifestPut {
            name,
            reference,
            tags,
        } => manifests::put(&state, &call, body, &name, &reference, tags).await,
        ManifestDelete { name, reference } => manifests::delete(&state, &name, &reference).await,
        TagsList { name } => listing::tags(&state, &call, &name).await,
        Referrers { name, digest } => listing::referrers(&state, &call, &name, &digest).await,
    }
}

/// Any path outside `/v2/`: the JSON envelope too, never a plain-text 404.
pub async fn fallback() -> Response {
    crate::endpoint::not_found().into_response()
}
