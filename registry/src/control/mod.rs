//! The control-plane API under `/api/v1/` (projects, project tokens, builds, a project's
//! images, pull tokens, CI trust policies and the OIDC exchange) and the
//! token endpoint `/token`, as JSON over HTTP with the same error envelope as `/v2/`.
//!
//! Who may call what is decided by [`Caller`] from the presented credential. Callers are never
//! told about projects and builds they cannot see: those answer `404 NOT_FOUND`, the same as
//! ones that do not exist.

pub(crate) mod builds;
mod images;
mod openapi;
pub(crate) mod paging;
pub mod projects;
mod token_endpoint;
mod trust;

use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use futures::StreamExt;
use serde::de::DeserializeOwned;
use serde::Serialize;

use depot_store::model::{Build, BuildState};

use crate::auth::Credential;
use crate::error::{Error, Result};
use crate::state::AppState;

/// Largest JSON request body.
const MAX_JSON_BYTES: usize = 1024 * 1024;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route(
            "/token",
            get(token_endpoint::token).post(token_endpoint::token),
        )
        .route(
            "/api/v1/projects",
            post(projects::create).get(projects::list),
        )
        .route(
            "/api/v1/projects/{project}",
            get(projects::show)
                .patch(projects::update)
                .delete(projects::delete),
        )
        .route(
            "/api/v1/projects/{project}/tokens",
            post(projects::create_token).get(projects::list_tokens),
        )
        .route(
            "/api/v1/projects/{project}/tokens/{token_id}",
            axum::routing::delete(projects::revoke_token),
        )
        .route(
            "/api/v1/projects/{project}/trust-policies",
            post(trust::create).get(trust::list),
        )
        .route(
            "/api/v1/projects/{project}/trust-policies/{policy}",
            axum::routing::delete(trust::delete),
        )
        .route("/api/v1/oidc", get(trust::config))
        .route("/api/v1/oidc/token", post(trust::exchange))
        .route(
            "/api/v1/projects/{project}/builds",
            post(builds::create).get(builds::list),
        )
        .route("/api/v1/projects/{project}/images", get(images::list))
        .route(
            "/api/v1/projects/{project}/images/{tag}",
            axum::routing::delete(images::remove),
        )
        .route(
            "/api/v1/projects/{project}/pull-token",
            post(projects::pull_token),
        )
        .route(
            "/api/v1/builds/{build}",
            get(builds::show).delete(builds::delete),
        )
        .route("/api/v1/builds/{build}/finalize", post(builds::finalize))
        .route("/api/v1/builds/{build}/fail", post(builds::fail))
        .route("/api/v1/builds/{build}/extend", post(builds::extend))
        .route(
            "/api/v1/builds/{build}/pull-token",
            post(builds::pull_token),
        )
        .route("/api/v1/admin/clock", post(advance_clock))
        .route("/api/v1/openapi.json", get(openapi::serve))
        .method_not_allowed_fallback(crate::error::method_not_allowed)
        .layer(axum::middleware::from_fn(same_site_json))
        .with_state(state)
}

/// Holds `/api/v1` to what scripts and the CLI send, so a web page cannot use a browser's
/// stored credentials (Basic auth is accepted) against it: a request a browser marks as
/// cross-site (`Sec-Fetch-Site`, or an `Origin` other than the registry's own host) is refused,
/// and a body must be `application/json`, which no cross-site form can send without a CORS
/// preflight the API never answers.
async fn same_site_json(request: Request, next: axum::middleware::Next) -> Response {
    if !request.uri().path().starts_with("/api/v1/") {
        return next.run(request).await;
    }
    let headers = request.headers();
    let value = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if value("sec-fetch-site") == Some("cross-site") {
        return Error::denied("cross-site requests to the API are refused").into_response();
    }
    if let Some(origin) = value("origin") {
        let origin_host = origin.split_once("://").map(|(_, h)| h);
        if origin_host.is_none() || origin_host != value("host") {
            return Error::denied(format!("requests from origin {origin:?} are refused"))
                .into_response();
        }
    }
    let content_type = value("content-type").map(|c| {
        c.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    });
    let has_body = value("content-length").is_some_and(|l| l.trim() != "0")
        || headers.contains_key(header::TRANSFER_ENCODING);
    let json = content_type.as_deref() == Some("application/json");
    if (has_body || content_type.is_some()) && !json {
        return Error::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            crate::error::Code::InvalidRequest,
        )
        .message("request bodies must be application/json")
        .into_response();
    }
    next.run(request).await
}

/// The authenticated caller of an API request; as an extractor it answers `401` itself.
pub(crate) struct Caller(pub Credential);

impl FromRequestParts<AppState> for Caller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        Caller::of(state, &parts.headers).await
    }
}

/// A JSON request body (at most [`MAX_JSON_BYTES`]; empty reads as `{}`), refused with the
/// error envelope rather than axum's plain-text rejection.
pub(crate) struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = Error;

    async fn from_request(request: Request, _: &AppState) -> Result<Self> {
        json_body(request.into_body()).await.map(JsonBody)
    }
}

/// Query parameters, refused with the error envelope when malformed.
pub(crate) struct QueryParams<T>(pub T);

impl<T: DeserializeOwned> FromRequestParts<AppState> for QueryParams<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self> {
        serde_urlencoded::from_str(parts.uri.query().unwrap_or(""))
            .map(QueryParams)
            .map_err(|e| Error::invalid_request(format!("invalid query: {e}")))
    }
}

impl Caller {
    /// Resolves the request's credential (everyone is admin under `--no-auth`).
    pub async fn of(state: &AppState, headers: &HeaderMap) -> Result<Self> {
        match state.access.auth() {
            None => Ok(Caller(Credential::Admin)),
            Some(auth) => Ok(Caller(auth.caller(headers).await?)),
        }
    }

    pub fn require_admin(&self) -> Result<()> {
        match self.0 {
            Credential::Admin => Ok(()),
            _ => Err(Error::denied("this needs the admin token")),
        }
    }

    fn is_admin(&self) -> bool {
        self.0 == Credential::Admin
    }

    /// May see the project and its builds (admin, or any credential of the project that is not
    /// limited to one build).
    pub fn sees_project(&self, project: &str) -> bool {
        self.is_admin() || (self.0.project() == Some(project) && self.0.build().is_none())
    }

    /// May manage builds of the project: create, extend, delete, mint pull tokens.
    pub fn manages_project(&self, project: &str) -> bool {
        match &self.0 {
            Credential::Admin => true,
            Credential::Project { project: p, .. } => p == project,
            _ => false,
        }
    }

    pub fn sees_build(&self, build: &Build) -> bool {
        self.sees_project(&build.project)
            || (self.0.project() == Some(build.project.as_str())
                && self.0.build() == Some(build.id.as_str()))
    }

    /// May create builds of the project, and mint pull tokens for it: a manager, or a CI job
    /// a `build` trust policy admitted (which may not extend or delete builds, nor change who
    /// is trusted).
    pub fn builds_in(&self, project: &str) -> bool {
        self.manages_project(project)
            || matches!(&self.0, Credential::Ci { project: p, .. } if p == project)
    }

    /// May report on the build's progress: finalize or fail it (its own push token too).
    pub fn drives_build(&self, build: &Build) -> bool {
        self.builds_in(&build.project)
            || matches!(&self.0, Credential::Push { build: b, .. } if *b == build.id)
    }
}

/// Reads a JSON body of at most [`MAX_JSON_BYTES`]; an empty body reads as `{}`.
pub(crate) async fn json_body<T: DeserializeOwned>(body: Body) -> Result<T> {
    let mut stream = body.into_data_stream();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| Error::invalid_request("request body ended early"))?;
        if bytes.len() + chunk.len() > MAX_JSON_BYTES {
            return Err(Error::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                crate::error::Code::InvalidRequest,
            )
            .message("request body too large"));
        }
        bytes.extend_from_slice(&chunk);
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        bytes = b"{}".to_vec();
    }
    // The path names the field at fault (`keep_builds: invalid type: ...`).
    let mut de = serde_json::Deserializer::from_slice(&bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let at = e.path().to_string();
        match at.as_str() {
            "." | "" => Error::invalid_request(format!("invalid JSON body: {}", e.inner())),
            _ => Error::invalid_request(format!("invalid JSON body: {at}: {}", e.inner())),
        }
    })?;
    de.end()
        .map_err(|e| Error::invalid_request(format!("invalid JSON body: {e}")))?;
    Ok(value)
}

/// Reads an `application/x-www-form-urlencoded` body of at most `max` bytes.
pub(crate) async fn form_body<T: DeserializeOwned>(body: Body, max: usize) -> Result<T> {
    let mut stream = body.into_data_stream();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| Error::invalid_request("request body ended early"))?;
        if bytes.len() + chunk.len() > max {
            return Err(Error::invalid_request("form too large"));
        }
        bytes.extend_from_slice(&chunk);
    }
    serde_urlencoded::from_bytes(&bytes).map_err(|_| Error::invalid_request("malformed form"))
}

pub(crate) fn json<T: Serialize>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_string(value) {
        Ok(body) => (status, [(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => Error::internal(e).into_response(),
    }
}

/// Times in answers (kept here by name for the handlers; the model owns it).
pub use depot_store::model::rfc3339;

/// The host clients reach the registry at, for image names in answers.
pub(crate) fn registry_host(state: &AppState, headers: &HeaderMap) -> String {
    state.base_url.host(headers)
}

/// The user name every registry token is presented with (Basic auth `x-token:<token>`).
pub(crate) const TOKEN_USERNAME: &str = "x-token";

/// A build's state as the wire contract spells it.
pub(crate) fn wire_state(state: BuildState) -> depot_api_types::BuildState {
    match state {
        BuildState::Building => depot_api_types::BuildState::Building,
        BuildState::Saved => depot_api_types::BuildState::Saved,
        BuildState::Failed => depot_api_types::BuildState::Failed,
    }
}

/// `POST /api/v1/admin/clock {"advance_secs": N}`: moves the registry clock forward, only with
/// `--test-clock`, only for the admin.
async fn advance_clock(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(req): JsonBody<depot_api_types::ClockRequest>,
) -> Result<Response> {
    if !state.test_clock {
        return Err(Error::not_found("the test clock is off (--test-clock)"));
    }
    caller.require_admin()?;
    state
        .content
        .clock
        .advance(req.advance_secs.saturating_mul(1000));
    Ok(json(
        StatusCode::OK,
        &depot_api_types::ClockAnswer {
            now: rfc3339(state.content.now_ms()),
        },
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_rfc3339() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(super::rfc3339(1_795_385_285_123), "2026-11-22T22:08:05Z");
    }
}
