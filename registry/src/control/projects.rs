//! Projects and project tokens (admin only), and project-wide pull tokens.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use depot_api_types as api;
use depot_store::metadata::{Metadata, ProjectDeleted, TokenInfo};
use depot_store::model::{random_id, KeepPolicy, Project};
use depot_store::names::RepoName;

use super::{json, rfc3339, Caller, JsonBody, TOKEN_USERNAME};
use crate::auth::{new_secret, secret_hash, PROJECT_TOKEN_PREFIX};
use crate::error::{Error, Result};
use crate::state::AppState;

/// Default retention of a project's builds.
pub const DEFAULT_RETENTION_SECS: i64 = 7 * 24 * 3600;
/// Default and longest lifetime of a pull token.
pub const DEFAULT_PULL_TOKEN_SECS: i64 = 3600;
pub const MAX_PULL_TOKEN_SECS: i64 = 7 * 24 * 3600;

pub fn view(p: &Project) -> api::Project {
    api::Project {
        id: p.id.clone(),
        name: p.name.clone(),
        repository: p.id.clone(),
        retention_secs: p.retention_secs,
        keep_builds: p.keep.map(|k| k.builds),
        keep_days: p.keep.and_then(|k| k.days),
        created_at: rfc3339(p.created_at),
    }
}

/// A token as answers show it; the secret only when `secret` is given (at creation).
pub fn token_view(t: &TokenInfo, secret: Option<String>) -> api::Token {
    api::Token {
        id: t.id.clone(),
        project: t.project.clone(),
        name: t.name.clone(),
        created_at: rfc3339(t.created_at),
        revoked_at: t.revoked_at.map(rfc3339),
        token: secret,
    }
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
    if !(60..=depot_store::model::MAX_RETENTION_SECS).contains(&secs) {
        return Err(Error::invalid_request(format!(
            "retention_secs must be between 60 and {} seconds (ten years)",
            depot_store::model::MAX_RETENTION_SECS
        )));
    }
    Ok(())
}

/// A count policy from its two fields, checked: `keep_days` only beside `keep_builds`.
pub fn keep_policy(builds: Option<i64>, days: Option<i64>) -> Result<Option<KeepPolicy>> {
    let keep = match (builds, days) {
        (None, None) => return Ok(None),
        (None, Some(_)) => {
            return Err(Error::invalid_request(
                "keep_days keeps builds beyond keep_builds: give keep_builds too",
            ))
        }
        (Some(builds), days) => KeepPolicy { builds, days },
    };
    keep.validate().map_err(Error::invalid_request)?;
    Ok(Some(keep))
}

/// Creates a project (shared by the API and `depot-registry admin`).
pub async fn new_project(meta: &Metadata, req: api::CreateProject, now: i64) -> Result<Project> {
    let api::CreateProject {
        name,
        retention_secs,
        keep_builds,
        keep_days,
    } = req;
    check_name(&name)?;
    let retention_secs = retention_secs.unwrap_or(DEFAULT_RETENTION_SECS);
    check_retention(retention_secs)?;
    let project = Project {
        id: random_id(10),
        name,
        retention_secs,
        created_at: now,
        keep: keep_policy(keep_builds, keep_days)?,
    };
    if !meta.create_project(&project).await? {
        return Err(name_taken(&project.name));
    }
    tracing::info!(project = %project.id, "project created");
    Ok(project)
}

/// Names are unique, so that people can tell projects apart.
fn name_taken(name: &str) -> Error {
    Error::conflict(format!("a project named {name:?} exists already"))
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
    state.content.meta.project(id).await?.ok_or_else(not_found)
}

/// Create a project (admin).
#[utoipa::path(post, operation_id = "create_project", path = "/projects", tag = "projects",
    request_body = api::CreateProject,
    responses((status = 201, description = "created", body = api::Project),
              (status = "default", description = "error", body = api::ErrorBody)))]
pub(crate) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(req): JsonBody<api::CreateProject>,
) -> Result<Response> {
    caller.require_admin()?;
    let project = new_project(&state.content.meta, req, state.content.now_ms()).await?;
    Ok(json(StatusCode::CREATED, &view(&project)))
}

/// List the projects the caller may see.
#[utoipa::path(get, operation_id = "list_projects", path = "/projects", tag = "projects",
    responses((status = 200, description = "projects", body = api::ProjectList),
              (status = "default", description = "error", body = api::ErrorBody)))]
pub(crate) async fn list(State(state): State<AppState>, caller: Caller) -> Result<Response> {
    let projects = state.content.meta.list_projects().await?;
    let visible: Vec<_> = projects
        .iter()
        .filter(|p| caller.sees_project(&p.id))
        .map(view)
        .collect();
    Ok(json(
        StatusCode::OK,
        &api::ProjectList { projects: visible },
    ))
}

/// Show a project.
#[utoipa::path(get, operation_id = "show_project", path = "/projects/{project}", tag = "projects",
    params(("project" = String, Path, description = "project id")),
    responses((status = 200, description = "the project", body = api::Project),
              (status = "default", description = "error", body = api::ErrorBody)))]
pub(crate) async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
    caller: Caller,
) -> Result<Response> {
    let project = visible_project(&state, &caller, &id).await?;
    Ok(json(StatusCode::OK, &view(&project)))
}

/// Rename a project, change its retention or its count policy (admin). A count policy
/// applies at once: saved builds beyond it expire now (or at its age limit).
#[utoipa::path(patch, operation_id = "update_project", path = "/projects/{project}", tag = "projects",
    params(("project" = String, Path, description = "project id")),
    request_body = api::UpdateProject,
    responses((status = 200, description = "the project", body = api::Project),
              (status = "default", description = "error", body = api::ErrorBody)))]
pub(crate) async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    caller: Caller,
    JsonBody(req): JsonBody<api::UpdateProject>,
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
    project.keep = match (req.keep_builds, req.keep_days) {
        (None, None) => project.keep,
        // Clearing the count clears the age exception that only extends it.
        (Some(None), _) => None,
        (builds, days) => keep_policy(
            builds.unwrap_or(project.keep.map(|k| k.builds)),
            days.unwrap_or(project.keep.and_then(|k| k.days)),
        )?,
    };
    let meta = &state.content.meta;
    if !meta.update_project(&project).await? {
        // The project was just read, so it is the name.
        return Err(name_taken(&project.name));
    }
    let moved = state.content.apply_keep_policy(&project).await?;
    if moved > 0 {
        tracing::info!(project = %project.id, builds = moved, "count policy expired builds");
    }
    Ok(json(StatusCode::OK, &view(&project)))
}

/// The repository a project's builds are pushed to (named by its id).
pub(crate) fn project_repo(id: &str) -> Result<RepoName> {
    id.parse()
        .map_err(|_| Error::internal(format!("project id {id:?} is not a repository name")))
}

/// What deleting project `id` did, as answers show it (shared by the API and
/// `depot-registry admin`), logged once.
pub fn deleted_view(id: &str, done: ProjectDeleted) -> api::ProjectDeleted {
    tracing::info!(project = %id, builds = done.builds_expired, tokens = done.tokens_revoked,
        policies = done.policies_removed, "project deleted");
    api::ProjectDeleted {
        id: id.to_owned(),
        builds_expired: done.builds_expired,
        tokens_revoked: done.tokens_revoked,
        trust_policies_removed: done.policies_removed,
    }
}

/// Delete a project (admin): its builds answer 404 at once, its tokens and trust policies stop
/// working, garbage collection reclaims its storage, and its name may be used again.
#[utoipa::path(delete, operation_id = "delete_project", path = "/projects/{project}", tag = "projects",
    params(("project" = String, Path, description = "project id")),
    responses((status = 200, description = "deleted: what went with it", body = api::ProjectDeleted),
              (status = "default", description = "error", body = api::ErrorBody)))]
pub(crate) async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    caller: Caller,
) -> Result<Response> {
    caller.require_admin()?;
    let project = visible_project(&state, &caller, &id).await?;
    let done = state
        .content
        .delete_project(&project.id)
        .await?
        .ok_or_else(|| Error::not_found(format!("project {id} not found")))?;
    Ok(json(StatusCode::OK, &deleted_view(&project.id, done)))
}

/// Create a project token (admin); its secret is shown this once.
#[utoipa::path(post, operation_id = "create_token", path = "/projects/{project}/tokens", tag = "projects",
    params(("project" = String, Path, description = "project id")),
    request_body = api::CreateToken,
    responses((status = 201, description = "created, with `token`", body = api::Token),
              (status = "default", description = "error", body = api::ErrorBody)))]
pub(crate) async fn create_token(
    State(state): State<AppState>,
    Path(id): Path<String>,
    caller: Caller,
    JsonBody(req): JsonBody<api::CreateToken>,
) -> Result<Response> {
    caller.require_admin()?;
    let project = visible_project(&state, &caller, &id).await?;
    let (info, secret) = new_project_token(
        &state.content.meta,
        &project.id,
        req.name,
        state.content.now_ms(),
    )
    .await?;
    // The only time the secret is ever shown.
    Ok(json(StatusCode::CREATED, &token_view(&info, Some(secret))))
}

/// List a project's tokens (admin), revoked ones too; never their secrets.
#[utoipa::path(get, operation_id = "list_tokens", path = "/projects/{project}/tokens", tag = "projects",
    params(("project" = String, Path, description = "project id")),
    responses((status = 200, description = "tokens", body = api::TokenList),
              (status = "default", description = "error", body = api::ErrorBody)))]
pub(crate) async fn list_tokens(
    State(state): State<AppState>,
    Path(id): Path<String>,
    caller: Caller,
) -> Result<Response> {
    caller.require_admin()?;
    let project = visible_project(&state, &caller, &id).await?;
    let tokens = state.content.meta.list_project_tokens(&project.id).await?;
    let tokens = tokens.iter().map(|t| token_view(t, None)).collect();
    Ok(json(StatusCode::OK, &api::TokenList { tokens }))
}

/// Revoke a project token (admin): it, and every token minted with it, stop working.
#[utoipa::path(delete, operation_id = "revoke_token", path = "/projects/{project}/tokens/{token_id}", tag = "projects",
    params(("project" = String, Path, description = "project id"),
           ("token_id" = String, Path, description = "token id")),
    responses((status = 204, description = "revoked"),
              (status = "default", description = "error", body = api::ErrorBody)))]
pub(crate) async fn revoke_token(
    State(state): State<AppState>,
    Path((id, token)): Path<(String, String)>,
    caller: Caller,
) -> Result<Response> {
    caller.require_admin()?;
    let project = visible_project(&state, &caller, &id).await?;
    if !state
        .content
        .meta
        .revoke_project_token(&project.id, &token, state.content.now_ms())
        .await?
    {
        return Err(Error::not_found(format!(
            "no live token {token} in project {id}"
        )));
    }
    tracing::info!(project = %project.id, token_id = ?token, "project token revoked");
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The lifetime a pull token request asks for, checked.
pub(crate) fn pull_ttl(request: &api::PullTokenRequest) -> Result<i64> {
    let ttl = request.ttl_secs.unwrap_or(DEFAULT_PULL_TOKEN_SECS);
    if !(1..=MAX_PULL_TOKEN_SECS).contains(&ttl) {
        return Err(Error::invalid_request(format!(
            "ttl_secs must be between 1 and {MAX_PULL_TOKEN_SECS}"
        )));
    }
    Ok(ttl)
}

/// Mints a pull token (`None` build: the whole project): the token and when it expires (Unix
/// seconds), never beyond the credential minting it (a CI job's ends within the hour).
pub(crate) fn mint_pull_token(
    state: &AppState,
    caller: &Caller,
    project: &str,
    build: Option<&str>,
    ttl: i64,
) -> Result<(String, i64)> {
    let Some(auth) = state.access.auth() else {
        return Err(Error::not_found(
            "authentication is disabled (--no-auth): no tokens are issued",
        ));
    };
    let ttl = match caller.0.expires_at() {
        Some(limit) => ttl
            .min(limit - state.content.now_ms().div_euclid(1000))
            .max(1),
        None => ttl,
    };
    Ok(auth.mint_pull(project, build, ttl, caller.0.root_token()))
}

/// Mints a pull token (`None` build: the whole project) and answers with it.
pub(crate) fn pull_token_response(
    state: &AppState,
    caller: &Caller,
    project: &str,
    build: Option<&str>,
    ttl: i64,
) -> Result<Response> {
    let (token, exp) = mint_pull_token(state, caller, project, build, ttl)?;
    Ok(json(
        StatusCode::CREATED,
        &api::PullToken {
            token,
            username: TOKEN_USERNAME.to_owned(),
            project: project.to_owned(),
            build: build.map(str::to_owned),
            expires_at: rfc3339(exp * 1000),
        },
    ))
}

/// Mint a pull token for every build of a project (project or admin token).
#[utoipa::path(post, operation_id = "project_pull_token", path = "/projects/{project}/pull-token", tag = "projects",
    params(("project" = String, Path, description = "project id")),
    request_body = api::PullTokenRequest,
    responses((status = 201, description = "minted", body = api::PullToken),
              (status = "default", description = "error", body = api::ErrorBody)))]
pub(crate) async fn pull_token(
    State(state): State<AppState>,
    Path(id): Path<String>,
    caller: Caller,
    JsonBody(req): JsonBody<api::PullTokenRequest>,
) -> Result<Response> {
    let project = visible_project(&state, &caller, &id).await?;
    if !caller.builds_in(&project.id) {
        return Err(Error::denied(
            "pull tokens are minted with a project or admin token",
        ));
    }
    pull_token_response(&state, &caller, &project.id, None, pull_ttl(&req)?)
}
