//! `/token`: the token endpoint of the Docker/OCI token authentication flow.
//!
//! `GET /token?service=..&scope=..` with HTTP Basic (`x-token` and a secret as password) or a
//! Bearer secret, as `docker login`-style clients send it; and the OAuth2 form
//! (`POST /token`, `grant_type=password` or `refresh_token`) that containerd and BuildKit try
//! first. Either way the answer is a short-lived access token whose `access` claim holds what was
//! asked for and allowed; what was asked but not allowed is left out, not refused.
//!
//! The secret may also be a CI job's OIDC ID token: a trust policy of the project the scopes
//! name admits it or the request is refused, so `docker login -u x-token` with the job's token
//! works without an exchange first.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::auth::claims::parse_scopes;
use crate::auth::{presented_secret, Auth};
use crate::error::{Error, Result};
use crate::state::AppState;

/// Largest OAuth2 form accepted.
const MAX_FORM_BYTES: usize = 64 * 1024;

pub async fn token(State(state): State<AppState>, request: Request) -> Response {
    let Some(auth) = state.access.auth() else {
        return Error::not_found("authentication is disabled (--no-auth): no tokens are issued")
            .into_response();
    };
    match answer(auth, request).await {
        Ok(r) => r,
        // Whatever was wrong with the credentials, say how to present them.
        Err(e) if e.status == StatusCode::UNAUTHORIZED && e.headers.is_empty() => e
            .header(header::WWW_AUTHENTICATE, "Basic realm=\"depot\"")
            .into_response(),
        Err(e) => e.into_response(),
    }
}

async fn answer(auth: &Auth, request: Request) -> Result<Response> {
    let (parts, body) = request.into_parts();
    let query: Vec<(String, String)> = match parts.uri.query() {
        Some(q) => serde_urlencoded::from_str(q)
            .map_err(|_| Error::invalid_request("malformed query string"))?,
        None => Vec::new(),
    };
    let (secret, params, oauth) = match parts.method {
        Method::GET => (presented_secret(&parts.headers)?, query, false),
        Method::POST => {
            let form = read_form(body).await?;
            let field = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
            let secret = match field("grant_type").as_deref() {
                Some("password") => field("password"),
                Some("refresh_token") => field("refresh_token"),
                _ => {
                    return Err(Error::invalid_request(
                        "grant_type must be password or refresh_token",
                    ))
                }
            };
            (secret, form, true)
        }
        _ => {
            return Err(Error::new(
                StatusCode::METHOD_NOT_ALLOWED,
                crate::error::Code::Unsupported,
            ))
        }
    };
    let secret = secret.filter(|s| !s.is_empty()).ok_or_else(|| {
        Error::unauthorized("credentials required: use x-token and a depot token as password")
    })?;
    let scopes = parse_scopes(
        params
            .iter()
            .filter(|(k, _)| k == "scope")
            .map(|(_, v)| v.as_str()),
    );
    let credential = if auth.oidc.is_ci_token(&secret) {
        auth.ci_credential(&secret, &scopes).await?
    } else {
        auth.credential(&secret).await?
    };
    if let super::Credential::Push { build, .. } = &credential {
        auth.pushable(build)
            .await
            .map_err(|e| Error::unauthorized(e.message))?;
    }
    let issued = auth.issue(&credential, &scopes);
    let body = if oauth {
        let scope: Vec<String> = issued
            .granted
            .iter()
            .map(|r| format!("{}:{}:{}", r.kind, r.name, r.actions.join(",")))
            .collect();
        json!({ "access_token": issued.token, "expires_in": issued.expires_in, "scope": scope.join(" ") })
    } else {
        json!({ "token": issued.token, "access_token": issued.token, "expires_in": issued.expires_in })
    };
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body.to_string(),
    )
        .into_response())
}

async fn read_form(body: Body) -> Result<Vec<(String, String)>> {
    super::form_body(body, MAX_FORM_BYTES).await
}
