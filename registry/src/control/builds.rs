//! Builds: create (with its push token), show, list, finalize, fail, extend, delete, and
//! build-scoped pull tokens.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use depot_api_types as api;
use depot_store::assemble;
use depot_store::content::Change;
use depot_store::model::{
    at_most, build_id_prefix, expiry_after, random_id, Build, BuildSpec, BuildState, Target,
    BUILD_ID_LEN, MAX_RETENTION_SECS,
};
use depot_store::names::RepoName;

use super::paging::{cursor, Page, PageQuery};
use super::projects::{project_repo, pull_token_response, pull_ttl, visible_project};
use super::{
    json, registry_host, rfc3339, wire_state, Caller, JsonBody, QueryParams, TOKEN_USERNAME,
};
use crate::error::{Error, Result};
use crate::state::AppState;

/// Default and longest time builders may push to a build that is still `building`.
pub const DEFAULT_LEASE_SECS: i64 = 3 * 3600;
pub const MAX_LEASE_SECS: i64 = 7 * 24 * 3600;

fn repo_of(build: &Build) -> Result<RepoName> {
    project_repo(&build.project)
}

/// The outputs of `build` that have an image now, each with its size (layers included), named
/// for clients at `host`.
pub(crate) async fn output_images(
    state: &AppState,
    host: &str,
    build: &Build,
    now: i64,
) -> Result<Vec<api::BuildImage>> {
    let repo = repo_of(build)?;
    let meta = &state.content.meta;
    let mut images = Vec::new();
    for output in build.spec.outputs() {
        let tag = build.output_tag(&output.name);
        let Ok(parsed) = tag.parse() else { continue };
        let Some(m) = meta.manifest_by_tag(&repo, &parsed, now).await? else {
            continue;
        };
        let size = meta.image_size(&repo, m.digest.as_str()).await?;
        images.push(api::BuildImage {
            name: format!("{host}/{}:{tag}", build.project),
            target: output.name,
            tag,
            digest: m.digest.to_string(),
            media_type: m.media_type,
            size,
            image_names: output.image_names,
        });
    }
    Ok(images)
}

/// The answer describing a build, with its outputs as they stand now.
async fn view(state: &AppState, headers: &HeaderMap, build: &Build) -> Result<api::Build> {
    let host = registry_host(state, headers);
    let now = state.content.now_ms();
    let meta = &state.content.meta;
    let images = output_images(state, &host, build, now).await?;
    let pushed = meta
        .build_images(&build.id)
        .await?
        .into_iter()
        .map(|i| api::PushedImage {
            target: i.target,
            platform: i.platform,
            digest: i.digest,
            media_type: i.media_type,
            size: i.size,
        })
        .collect();
    Ok(api::Build {
        id: build.id.clone(),
        project: build.project.clone(),
        repository: build.project.clone(),
        image: format!("{host}/{}:{}", build.project, build.id),
        state: wire_state(build.state),
        failure: build.failure.clone(),
        platforms: build.spec.platforms.clone(),
        targets: build
            .spec
            .targets
            .iter()
            .map(|t| api::Target {
                name: t.name.clone(),
                platforms: t.platforms.clone(),
                image_names: t.image_names.clone(),
            })
            .collect(),
        save_tags: build.spec.save_tags.clone(),
        image_names: build.spec.image_names.clone(),
        created_at: rfc3339(build.created_at),
        updated_at: rfc3339(build.updated_at),
        lease_expires_at: rfc3339(build.lease_expires_at),
        expires_at: rfc3339(build.expires_at),
        expired: build.is_expired(now),
        images,
        pushed,
        push_token: None,
        username: None,
    })
}

/// Create a build in a project (project or admin token); the answer carries its push token.
#[utoipa::path(post, operation_id = "create_build", path = "/projects/{project}/builds", tag = "builds",
    params(("project" = String, Path, description = "project id")),
    request_body = api::CreateBuild,
    responses((status = 201, description = "created, with `push_token`", body = api::Build),
              (status = "default", description = "error", body = api::ErrorBody)))]
pub(crate) async fn create(
    State(state): State<AppState>,
    Path(project_id): Path<String>,
    headers: HeaderMap,
    caller: Caller,
    JsonBody(req): JsonBody<api::CreateBuild>,
) -> Result<Response> {
    let project = visible_project(&state, &caller, &project_id).await?;
    if !caller.builds_in(&project.id) {
        return Err(Error::denied(
            "builds are created with a project or admin token, or a CI job's credential of a build trust policy",
        ));
    }
    let spec = BuildSpec {
        platforms: req.platforms,
        targets: req
            .targets
            .into_iter()
            .map(|t| match t {
                api::TargetRequest::Name(name) => Target {
                    name,
                    ..Target::default()
                },
                api::TargetRequest::Full(t) => Target {
                    name: t.name,
                    platforms: t.platforms,
                    image_names: t.image_names,
                },
            })
            .collect(),
        save_tags: req.save_tags,
        image_names: req.image_names,
    };
    let id = random_id(BUILD_ID_LEN);
    spec.validate(&id).map_err(Error::invalid_request)?;
    for tag in spec.derived_save_tags() {
        if let Some(owner) = build_id_prefix(&tag) {
            if let Some(other) = state.content.meta.build(owner).await? {
                if other.project == project.id {
                    return Err(Error::invalid_request(format!(
                        "save tag {tag:?} is named after build {owner}, whose tags stay its own"
                    )));
                }
            }
        }
    }
    let now = state.content.now_ms();
    let retention = req.retention_secs.unwrap_or(project.retention_secs);
    let expires_at =
        expiry_after(now, retention, "retention_secs").map_err(Error::invalid_request)?;
    let lease = req.lease_secs.unwrap_or(DEFAULT_LEASE_SECS);
    if !(1..=MAX_LEASE_SECS).contains(&lease) {
        return Err(Error::invalid_request(format!(
            "lease_secs must be between 1 and {MAX_LEASE_SECS}"
        )));
    }
    let build = Build {
        id,
        project: project.id.clone(),
        state: BuildState::Building,
        spec,
        failure: None,
        created_at: now,
        updated_at: now,
        lease_expires_at: now + lease * 1000,
        expires_at,
    };
    state.content.meta.create_build(&build).await?;
    tracing::info!(build = %build.id, project = %build.project, "build created");
    let mut body = view(&state, &headers, &build).await?;
    if let Some(auth) = state.access.auth() {
        body.push_token = Some(auth.mint_push(&build, caller.0.root_token()));
        body.username = Some(TOKEN_USERNAME.to_owned());
    }
    Ok(json(StatusCode::CREATED, &body))
}

/// A build the caller may see (else 404) and may act on as `allowed` says (else 403).
pub(crate) async fn build_for(
    state: &AppState,
    caller: &Caller,
    id: &str,
    allowed: fn(&Caller, &Build) -> bool,
    refusal: &str,
) -> Result<Build> {
    let build = visible_build(state, caller, id).await?;
    if !allowed(caller, &build) {
        return Err(Error::denied(refusal));
    }
    Ok(build)
}

pub(crate) fn manages(caller: &Caller, build: &Build) -> bool {
    caller.manages_project(&build.project)
}

pub(crate) fn builds_in(caller: &Caller, build: &Build) -> bool {
    caller.builds_in(&build.project)
}

/// Answers with the build as it stands now.
async fn current(
    state: &AppState,
    headers: &HeaderMap,
    caller: &Caller,
    id: &str,
) -> Result<Response> {
    let build = visible_build(state, caller, id).await?;
    Ok(json(StatusCode::OK, &view(state, headers, &build).await?))
}

/// A build the caller may see, or 404.
pub(crate) async fn visible_build(state: &AppState, caller: &Caller, id: &str) -> Result<Build> {
    let not_found = || Error::not_found(format!("build {id} not found"));
    let build = state.content.meta.build(id).await?.ok_or_else(not_found)?;
    if !caller.sees_build(&build) {
        return Err(not_found());
    }
    Ok(build)
}

/// Show a build (any credential that may see it).
#[utoipa::path(get, operation_id = "show_build", path = "/builds/{build}", tag = "builds",
    params(("build" = String, Path, description = "build id")),
    responses((status = 200, description = "the build", body = api::Build),
              (status = "default", description = "error", body = api::ErrorBody)))]
pub(crate) async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    caller: Caller,
) -> Result<Response> {
    current(&state, &headers, &caller, &id).await
}

/// List a project's builds, newest first.
#[utoipa::path(get, operation_id = "list_builds", path = "/projects/{project}/builds", tag = "builds",
    params(("project" = String, Path, description = "project id"),
           ("limit" = Option<i64>, Query, description = "page size, 1 to 500 (default 50)"),
           ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")),
    responses((status = 200, description = "one page", body = api::BuildPage),
              (status = "default", description = "error", body = api::ErrorBody)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    Path(project_id): Path<String>,
    QueryParams(q): QueryParams<PageQuery>,
    headers: HeaderMap,
    caller: Caller,
) -> Result<Response> {
    let project = visible_project(&state, &caller, &project_id).await?;
    let page = Page::of(&q)?;
    let limit = page.limit;
    let mut builds = state
        .content
        .meta
        .list_builds(&project.id, limit + 1, page.after())
        .await?;
    let more = builds.len() as i64 > limit;
    builds.truncate(limit as usize);
    let next = more
        .then(|| builds.last().map(|b| cursor(b.created_at, &b.id)))
        .flatten();
    let now = state.content.now_ms();
    let host = registry_host(&state, &headers);
    // Sizes of what each live saved build holds (two indexed queries per image).
    let mut sizes = Vec::with_capacity(builds.len());
    for b in &builds {
        let live = b.state == BuildState::Saved && !b.is_expired(now);
        sizes.push(if live {
            let images = output_images(&state, &host, b, now).await?;
            Some(images.iter().fold(0u64, |t, i| t.saturating_add(i.size)))
        } else {
            None
        });
    }
    let items = builds
        .iter()
        .zip(sizes)
        .map(|(b, size)| api::BuildSummary {
            id: b.id.clone(),
            state: wire_state(b.state),
            image: format!("{host}/{}:{}", b.project, b.id),
            platforms: b.spec.platforms.clone(),
            targets: b.spec.targets.iter().map(|t| t.name.clone()).collect(),
            save_tags: b.spec.save_tags.clone(),
            created_at: rfc3339(b.created_at),
            expires_at: rfc3339(b.expires_at),
            expired: b.is_expired(now),
            failure: b.failure.clone(),
            size,
        })
        .collect();
    Ok(json(
        StatusCode::OK,
        &api::BuildPage {
            builds: items,
            next_cursor: next,
        },
    ))
}

/// Save the build with what has arrived (a no-op for a saved build).
#[utoipa::path(post, operation_id = "finalize_build", path = "/builds/{build}/finalize", tag = "builds",
    params(("build" = String, Path, description = "build id")),
    responses((status = 200, description = "the saved build", body = api::Build),
              (status = "default", description = "error", body = api::ErrorBody)))]
pub(crate) async fn finalize(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    caller: Caller,
) -> Result<Response> {
    let build = build_for(
        &state,
        &caller,
        &id,
        Caller::drives_build,
        "this credential cannot finalize the build",
    )
    .await?;
    if build.is_expired(state.content.now_ms()) {
        return Err(Error::conflict(format!("build {id} has expired")));
    }
    match build.state {
        BuildState::Failed => return Err(Error::conflict(format!("build {id} has failed"))),
        BuildState::Saved => {}
        BuildState::Building => {
            let images = state.content.meta.build_images(&build.id).await?;
            assemble::save(&state.content, &build, &images, &repo_of(&build)?).await?;
        }
    }
    current(&state, &headers, &caller, &id).await
}

/// Mark the build failed, saying why (and which target and platform).
#[utoipa::path(post, operation_id = "fail_build", path = "/builds/{build}/fail", tag = "builds",
    params(("build" = String, Path, description = "build id")),
    request_body = api::FailBuild,
    responses((status = 200, description = "the failed build", body = api::Build),
              (status = "default", description = "error", body = api::ErrorBody)))]
pub(crate) async fn fail(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    caller: Caller,
    JsonBody(req): JsonBody<api::FailBuild>,
) -> Result<Response> {
    let build = build_for(
        &state,
        &caller,
        &id,
        Caller::drives_build,
        "this credential cannot fail the build",
    )
    .await?;
    let reason = req.reason.unwrap_or_else(|| "failed".into());
    let mut prefix = String::new();
    if let Some(t) = req.target {
        prefix.push_str(&format!("target {}: ", at_most(&t, 200)));
    }
    if let Some(p) = req.platform {
        prefix.push_str(&format!("platform {}: ", at_most(&p, 200)));
    }
    let failure = format!("{prefix}{}", failure_reason(&reason));
    let now = state.content.now_ms();
    if !state
        .content
        .meta
        .transition_build(
            &build.id,
            BuildState::Building,
            BuildState::Failed,
            Some(&failure),
            now,
        )
        .await?
    {
        let current = state
            .content
            .meta
            .build(&id)
            .await?
            .map(|b| b.state.as_str())
            .unwrap_or("gone");
        if current != "failed" {
            return Err(Error::conflict(format!(
                "build {id} is {current}, not building"
            )));
        }
    }
    // Debug formatting escapes what a builder put in the reason (newlines, terminal escapes):
    // a log line stays one line, and says only what the registry says.
    tracing::info!(build = %build.id, failure = ?failure, "build failed");
    current(&state, &headers, &caller, &id).await
}

/// The longest failure reason kept, in characters.
const MAX_FAILURE_CHARS: usize = 4000;

/// A failure reason as stored: whole when it fits, else its first line (what failed) and as
/// much of its end (a builder's last lines, where the cause is) as fits.
fn failure_reason(reason: &str) -> String {
    let chars = reason.chars().count();
    if chars <= MAX_FAILURE_CHARS {
        return reason.to_owned();
    }
    let head = at_most(reason.lines().next().unwrap_or_default(), 500);
    let keep = MAX_FAILURE_CHARS - head.chars().count() - 5;
    let tail: String = reason.chars().skip(chars - keep).collect();
    format!("{head}\n...\n{tail}")
}

/// Keep the build longer (project or admin token).
#[utoipa::path(post, operation_id = "extend_build", path = "/builds/{build}/extend", tag = "builds",
    params(("build" = String, Path, description = "build id")),
    request_body = api::ExtendBuild,
    responses((status = 200, description = "the build with its new expiry", body = api::Build),
              (status = "default", description = "error", body = api::ErrorBody)))]
pub(crate) async fn extend(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    caller: Caller,
    JsonBody(req): JsonBody<api::ExtendBuild>,
) -> Result<Response> {
    let build = build_for(
        &state,
        &caller,
        &id,
        manages,
        "builds are extended with a project or admin token",
    )
    .await?;
    extend_build(&state, &build, req.add_secs, req.expires_in_secs).await?;
    current(&state, &headers, &caller, &id).await
}

/// Sets a build's new expiry: `add_secs` more (from its expiry, or from now if it has passed),
/// or `expires_in_secs` from now; at most ten years from now either way.
pub(crate) async fn extend_build(
    state: &AppState,
    build: &Build,
    add_secs: Option<i64>,
    expires_in_secs: Option<i64>,
) -> Result<()> {
    let now = state.content.now_ms();
    let expires_at = match (add_secs, expires_in_secs) {
        (Some(add), None) => {
            // Every stored expiry is within ten years of its writing, so this cannot overflow.
            let later = expiry_after(build.expires_at.max(now), add, "add_secs")
                .map_err(Error::invalid_request)?;
            let limit = now + MAX_RETENTION_SECS * 1000;
            if later > limit {
                return Err(Error::invalid_request(format!(
                    "add_secs would keep the build more than ten years from now: at most {} more seconds",
                    (limit - build.expires_at.max(now)) / 1000
                )));
            }
            later
        }
        (None, Some(secs)) => {
            expiry_after(now, secs, "expires_in_secs").map_err(Error::invalid_request)?
        }
        _ => {
            return Err(Error::invalid_request(
                "give one of add_secs or expires_in_secs",
            ))
        }
    };
    if !state
        .content
        .meta
        .set_build_expiry(&build.id, expires_at, now)
        .await?
    {
        return Err(Error::conflict(format!(
            "build {} expired and was garbage collected; it cannot be extended",
            build.id
        )));
    }
    // Cached lookups carry the old expiry: an earlier one must not be served past.
    let repo = repo_of(build)?;
    state.content.changed(&repo, &[Change::Everything]).await;
    Ok(())
}

/// Delete the build now (project or admin token).
#[utoipa::path(delete, operation_id = "delete_build", path = "/builds/{build}", tag = "builds",
    params(("build" = String, Path, description = "build id")),
    responses((status = 204, description = "deleted"),
              (status = "default", description = "error", body = api::ErrorBody)))]
pub(crate) async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    caller: Caller,
) -> Result<Response> {
    let build = build_for(
        &state,
        &caller,
        &id,
        manages,
        "builds are deleted with a project or admin token",
    )
    .await?;
    remove(&state, &build).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Deletes a build now: its tags at once, its manifests unless another live build holds them.
pub(crate) async fn remove(state: &AppState, build: &Build) -> Result<()> {
    let repo = repo_of(build)?;
    state
        .content
        .meta
        .delete_build(&build.id, state.content.now_ms())
        .await?;
    // Its tags, and digest entries of manifests only this build held would live on until evicted: forget
    // the repository's lookups here and on every replica.
    state.content.changed(&repo, &[Change::Everything]).await;
    tracing::info!(build = %build.id, project = %build.project, "build deleted");
    Ok(())
}

/// Mint a pull token for this build only (project or admin token).
#[utoipa::path(post, operation_id = "build_pull_token", path = "/builds/{build}/pull-token", tag = "builds",
    params(("build" = String, Path, description = "build id")),
    request_body = api::PullTokenRequest,
    responses((status = 201, description = "minted", body = api::PullToken),
              (status = "default", description = "error", body = api::ErrorBody)))]
pub(crate) async fn pull_token(
    State(state): State<AppState>,
    Path(id): Path<String>,
    caller: Caller,
    JsonBody(req): JsonBody<api::PullTokenRequest>,
) -> Result<Response> {
    let build = build_for(
        &state,
        &caller,
        &id,
        builds_in,
        "pull tokens are minted with a project or admin token",
    )
    .await?;
    pull_token_response(
        &state,
        &caller,
        &build.project,
        Some(&build.id),
        pull_ttl(&req)?,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_failure_reasons_keep_their_first_line_and_their_end() {
        assert_eq!(failure_reason("a\nb"), "a\nb");
        let long = format!(
            "step 3 exited with status 125:\n{}\nthe cause",
            "x".repeat(9000)
        );
        let kept = failure_reason(&long);
        assert_eq!(kept.chars().count(), MAX_FAILURE_CHARS);
        assert!(kept.starts_with("step 3 exited with status 125:\n...\n"));
        assert!(kept.ends_with("\nthe cause"));
    }
}
