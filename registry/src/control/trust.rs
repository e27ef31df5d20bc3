//! Keyless CI: a project's trust policies (admin or project token), and the exchange of a CI
//! job's OIDC ID token for a short-lived credential on the project a policy admits it to.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use depot_api_types as api;
use depot_store::metadata::StoredPolicy;
use depot_store::model::random_id;

use super::projects::visible_project;
use super::{json, rfc3339, Caller, JsonBody, TOKEN_USERNAME};
use crate::auth::Auth;
use crate::error::{Error, Result};
use crate::oidc::Policy;
use crate::state::AppState;

/// Most live policies one project may hold (each exchange reads them all).
const MAX_POLICIES: usize = 100;

fn auth(state: &AppState) -> Result<&Auth> {
    state.access.auth().ok_or_else(|| {
        Error::not_found("authentication is disabled (--no-auth): no credentials are issued")
    })
}

fn view(p: &StoredPolicy) -> Result<api::TrustPolicy> {
    let spec = serde_json::from_str(&p.rules).map_err(Error::internal)?;
    Ok(api::TrustPolicy {
        id: p.id.clone(),
        spec,
        created_at: rfc3339(p.created_at),
    })
}

/// The project, if the caller may change who it trusts: its own project token or the admin.
async fn managed_project(state: &AppState, caller: &Caller, id: &str) -> Result<String> {
    let project = visible_project(state, caller, id).await?;
    if !caller.manages_project(&project.id) {
        return Err(Error::denied(
            "trust policies are managed with a project or admin token",
        ));
    }
    Ok(project.id)
}

/// Trust CI jobs matching a policy (project or admin token).
#[utoipa::path(post, operation_id = "create_trust_policy", path = "/projects/{project}/trust-policies", tag = "oidc",
    params(("project" = String, Path, description = "project id")),
    request_body = api::TrustPolicySpec,
    responses((status = 201, description = "created", body = api::TrustPolicy),
              (status = "default", description = "error", body = api::ErrorBody)))]
pub(crate) async fn create(
    State(state): State<AppState>,
    Path(id): Path<String>,
    caller: Caller,
    JsonBody(spec): JsonBody<api::TrustPolicySpec>,
) -> Result<Response> {
    let project = managed_project(&state, &caller, &id).await?;
    let policy = Policy::from_spec(spec).map_err(|e| Error::invalid_request(e.0))?;
    let meta = &state.content.meta;
    if meta.trust_policies(&project).await?.len() >= MAX_POLICIES {
        return Err(Error::conflict(format!(
            "project {project} already has {MAX_POLICIES} trust policies"
        )));
    }
    let stored = StoredPolicy {
        id: format!("tp{}", random_id(12)),
        project: project.clone(),
        provider: policy.provider.as_str().to_owned(),
        access: policy.access.as_str().to_owned(),
        rules: serde_json::to_string(&policy.spec).map_err(Error::internal)?,
        created_at: state.content.now_ms(),
        deleted_at: None,
    };
    meta.create_trust_policy(&stored).await?;
    tracing::info!(project, policy = %stored.id, provider = %stored.provider, access = %stored.access, "trust policy created");
    Ok(json(StatusCode::CREATED, &view(&stored)?))
}

/// A project's trust policies (project or admin token).
#[utoipa::path(get, operation_id = "list_trust_policies", path = "/projects/{project}/trust-policies", tag = "oidc",
    params(("project" = String, Path, description = "project id")),
    responses((status = 200, description = "policies", body = api::TrustPolicyList),
              (status = "default", description = "error", body = api::ErrorBody)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    Path(id): Path<String>,
    caller: Caller,
) -> Result<Response> {
    let project = managed_project(&state, &caller, &id).await?;
    let policies = state.content.meta.trust_policies(&project).await?;
    let policies = policies.iter().map(view).collect::<Result<_>>()?;
    Ok(json(StatusCode::OK, &api::TrustPolicyList { policies }))
}

/// Stop trusting a policy's jobs (project or admin token): no new exchange matches it, and
/// every credential it gave (and the push and pull tokens those minted) stops working.
#[utoipa::path(delete, operation_id = "delete_trust_policy", path = "/projects/{project}/trust-policies/{policy}", tag = "oidc",
    params(("project" = String, Path, description = "project id"),
           ("policy" = String, Path, description = "policy id")),
    responses((status = 204, description = "deleted"),
              (status = "default", description = "error", body = api::ErrorBody)))]
pub(crate) async fn delete(
    State(state): State<AppState>,
    Path((id, policy)): Path<(String, String)>,
    caller: Caller,
) -> Result<Response> {
    let project = managed_project(&state, &caller, &id).await?;
    if !state
        .content
        .meta
        .delete_trust_policy(&project, &policy, state.content.now_ms())
        .await?
    {
        return Err(Error::not_found(format!(
            "no trust policy {policy} in project {project}"
        )));
    }
    tracing::info!(project, policy, "trust policy deleted");
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Exchange a CI job's OIDC ID token for a credential on a project (no other credential).
#[utoipa::path(post, operation_id = "oidc_exchange", path = "/oidc/token", tag = "oidc",
    request_body = api::OidcExchange, security(()),
    responses((status = 200, description = "the credential", body = api::OidcCredential),
              (status = "default", description = "error", body = api::ErrorBody)))]
pub(crate) async fn exchange(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<api::OidcExchange>,
) -> Result<Response> {
    let auth = auth(&state)?;
    let job = auth.oidc.verify(req.token.trim()).await?;
    let admitted = auth
        .oidc
        .admit(&state.content.meta, &req.project, &job)
        .await?;
    let (token, exp) = auth.mint_admitted(&admitted);
    tracing::info!(project = %admitted.project, policy = %admitted.policy, job = %admitted.subject,
        access = admitted.access.as_str(), "OIDC token exchanged");
    let body = api::OidcCredential {
        token,
        username: TOKEN_USERNAME.to_owned(),
        expires_at: rfc3339(exp * 1000),
        access: admitted.access,
        project: admitted.project,
        policy: admitted.policy,
    };
    let mut response = json(StatusCode::OK, &body);
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    Ok(response)
}

/// The audience CI jobs must ask their provider for, and the issuers trusted.
#[utoipa::path(get, operation_id = "oidc_config", path = "/oidc", tag = "oidc", security(()),
    responses((status = 200, description = "the OIDC settings", body = api::OidcConfig),
              (status = "default", description = "error", body = api::ErrorBody)))]
pub(crate) async fn config(State(state): State<AppState>) -> Result<Response> {
    let oidc = &auth(&state)?.oidc;
    let audience = oidc
        .audience()
        .ok_or(crate::oidc::Refused::NoAudience)?
        .to_owned();
    let issuers = oidc
        .issuers()
        .all()
        .map(|(provider, issuer)| api::OidcIssuer {
            provider,
            issuer: issuer.to_owned(),
        })
        .collect();
    Ok(json(StatusCode::OK, &api::OidcConfig { audience, issuers }))
}
