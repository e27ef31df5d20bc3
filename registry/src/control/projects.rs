//! Projects and project tokens (admin only), and project-wide pull tokens.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::{json, rfc3339, Caller, JsonBody};
use crate::api::AppState;
use crate::auth::{new_secret, secret_hash, PROJECT_TOKEN_PREFIX};
use crate::builds::{random_id, Project};
use crate::error::{Error, Result};
use crate::metadata::{Metadata, TokenInfo};

/// Default retention of a project's builds.
pub const DEFAULT_RETENTION_SECS: i64 = 7 * 24 * 3600;
/// Default and longest lifetime of a pull token.
pub const DEFAULT_PULL_TOKEN_SECS: i64 = 3600;
pub const MAX_PULL_TOKEN_SECS: i64 = 7 * 24 * 3600;

pub fn view(p: &Project) -> serde_json::Value {
    json!({
        "id": p.id,
        "name": p.name,
        "repository": p.id,
        "retention_secs": p.retention_secs,
        "created_at": rfc3339(p.created_at),
    })
}

pub fn token_view(t: &TokenInfo) -> serde_json::Value {
    json!({
        "id": t.id,
        "project": t.project,
        "name": t.name,
        "created_at": rfc3339(t.created_at),
        "revoked_at": t.revoked_at.map(rfc3339),
    })
}

fn check_name(name: &str) -> Result<()> {
    if name.trim().is_empty() || name.len() > 200 || name.chars().any(char::is_control) {
        return Err(Error::invalid_request(
            "name must be 1-200 printable characters",
        ));
    }
    Ok(())
}

fn check_retention(secs: i64) -> Result<()> {
    if !(60..=crate::builds::MAX_RETENTION_SECS).contains(&secs) {
        return Err(Error::invalid_request(format!(
            "retention_secs must be between 60 and {} seconds (ten years)",
            crate::builds::MAX_RETENTION_SECS
        )));
    }
    Ok(())
}

/// Creates a project (shared by the API and `depot-registry admin`).
pub async fn new_project(
    meta: &Metadata,
    name: String,
    retention_secs: Option<i64>,
    now: i64,
) -> Result<Project> {
    check_name(&name)?;
    let retention_secs = retention_secs.unwrap_or(DEFAULT_RETENTION_SECS);
    check_retention(retention_secs)?;
    let project = Project {
        id: random_id(10),
        name,
        retention_secs,
        created_at: now,
    };
    meta.create_project(&project).await?;
    tracing::info!(project = %project.id, "project created");
    Ok(project)
}

/// Creates a project token; returns it with its secret, which is stored only as a hash.
pub async fn new_project_token(
    meta: &Metadata,
    project: &str,
    name: String,
    now: i64,
) -> Result<(TokenInfo, String)> {
    check_name(&name)?;
    let secret = new_secret(PROJECT_TOKEN_PREFIX);
    let info = TokenInfo {
        id: random_id(12),
        project: project.to_owned(),
        name,
        created_at: now,
        revoked_at: None,
    };
    meta.create_project_token(&info, &secret_hash(&secret))
        .await?;
    tracing::info!(project = %info.project, token_id = %info.id, "project token created");
    Ok((info, secret))
}

/// A project the caller may see, or 404.
pub(crate) async fn visible_project(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<Project> {
    let not_found = || Error::not_found(format!("project {id} not found"));
    if !caller.sees_project(id) {
        return Err(not_found());
    }
    state.meta.project(id).await?.ok_or_else(not_found)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateProject {
    name: String,
    retention_secs: Option<i64>,
}

pub(crate) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(req): JsonBody<CreateProject>,
) -> Result<Response> {
    caller.require_admin()?;
    let project = new_project(
        &state.meta,
        req.name,
        req.retention_secs,
        state.clock.now_ms(),
    )
    .await?;
    Ok(json(StatusCode::CREATED, &view(&project)))
}

pub(crate) async fn list(State(state): State<AppState>, caller: Caller) -> Result<Response> {
    let projects = state.meta.list_projects().await?;
    let visible: Vec<_> = projects
        .iter()
        .filter(|p| caller.sees_project(&p.id))
        .map(view)
        .collect();
    Ok(json(StatusCode::OK, &json!({ "projects": visible })))
}

pub(crate) async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
    caller: Caller,
) -> Result<Response> {
    let project = visible_project(&state, &caller, &id).await?;
    Ok(json(StatusCode::OK, &view(&project)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateProject {
    name: Option<String>,
    retention_secs: Option<i64>,
}

pub(crate) async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    caller: Caller,
    JsonBody(req): JsonBody<UpdateProject>,
) -> Result<Response> {
    caller.require_admin()?;
    let mut project = visible_project(&state, &caller, &id).await?;
    if let Some(name) = req.name {
        check_name(&name)?;
        project.name = name;
    }
    if let Some(secs) = req.retention_secs {
        check_retention(secs)?;
        project.retention_secs = secs;
    }
    state
        .meta
        .update_project(&project.id, &project.name, project.retention_secs)
        .await?;
    Ok(json(StatusCode::OK, &view(&project)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateToken {
    name: String,
}

pub(crate) async fn create_token(
    State(state): State<AppState>,
    Path(id): Path<String>,
    caller: Caller,
    JsonBody(req): JsonBody<CreateToken>,
) -> Result<Response> {
    caller.require_admin()?;
    let project = visible_project(&state, &caller, &id).await?;
    let (info, secret) =
        new_project_token(&state.meta, &project.id, req.name, state.clock.now_ms()).await?;
    let mut body = token_view(&info);
    // The only time the secret is ever shown.
    body["token"] = json!(secret);
    Ok(json(StatusCode::CREATED, &body))
}

pub(crate) async fn list_tokens(
    State(state): State<AppState>,
    Path(id): Path<String>,
    caller: Caller,
) -> Result<Response> {
    caller.require_admin()?;
    let project = visible_project(&state, &caller, &id).await?;
    let tokens = state.meta.list_project_tokens(&project.id).await?;
    let tokens: Vec<_> = tokens.iter().map(token_view).collect();
    Ok(json(StatusCode::OK, &json!({ "tokens": tokens })))
}

pub(crate) async fn revoke_token(
    State(state): State<AppState>,
    Path((id, token)): Path<(String, String)>,
    caller: Caller,
) -> Result<Response> {
    caller.require_admin()?;
    let project = visible_project(&state, &caller, &id).await?;
    if !state
        .meta
        .revoke_project_token(&project.id, &token, state.clock.now_ms())
        .await?
    {
        return Err(Error::not_found(format!(
            "no live token {token} in project {id}"
        )));
    }
    tracing::info!(project = %project.id, token_id = ?token, "project token revoked");
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct PullTokenRequest {
    pub ttl_secs: Option<i64>,
}

impl PullTokenRequest {
    pub fn ttl(&self) -> Result<i64> {
        let ttl = self.ttl_secs.unwrap_or(DEFAULT_PULL_TOKEN_SECS);
        if !(1..=MAX_PULL_TOKEN_SECS).contains(&ttl) {
            return Err(Error::invalid_request(format!(
                "ttl_secs must be between 1 and {MAX_PULL_TOKEN_SECS}"
            )));
        }
        Ok(ttl)
    }
}

/// Mints a pull token (`None` build: the whole project) and answers with it.
pub(crate) fn pull_token_response(
    state: &AppState,
    caller: &Caller,
    project: &str,
    build: Option<&str>,
    ttl: i64,
) -> Result<Response> {
    let Some(auth) = state.access.auth() else {
        return Err(Error::not_found(
            "authentication is disabled (--no-auth): no tokens are issued",
        ));
    };
    let (token, exp) = auth.mint_pull(project, build, ttl, caller.0.root_token());
    Ok(json(
        StatusCode::CREATED,
        &json!({
            "token": token,
            "username": "x-token",
            "project": project,
            "build": build,
            "expires_at": rfc3339(exp * 1000),
        }),
    ))
}

pub(crate) async fn pull_token(
    State(state): State<AppState>,
    Path(id): Path<String>,
    caller: Caller,
    JsonBody(req): JsonBody<PullTokenRequest>,
) -> Result<Response> {
    let project = visible_project(&state, &caller, &id).await?;
    if !caller.manages_project(&project.id) {
        return Err(Error::denied(
            "pull tokens are minted with a project or admin token",
        ));
    }
    pull_token_response(&state, &caller, &project.id, None, req.ttl()?)
}
