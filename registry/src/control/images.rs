//! A project's images (`depot image list`, `depot image rm`): the live tags of its repository,
//! each mapped onto what it is (a build's output, a save tag, or a tag no build owns). Removing
//! a build's own tag deletes the build (and its save tags with it); removing a save tag or an
//! unowned tag removes only that tag.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use depot_api_types as api;
use depot_store::metadata::TagEntry;
use depot_store::model::{Build, TagRole};

use super::paging::{cursor, Page, PageQuery};
use super::projects::{project_repo, visible_project};
use super::{json, rfc3339, Caller, QueryParams};
use crate::error::{Error, Result};
use crate::state::AppState;

/// What a tag is, and of which build and target; `None` for a platform tag (one platform of
/// an image the list already shows by its output tag).
fn classify(entry: &TagEntry, build: Option<&Build>) -> Option<(api::ImageKind, Option<String>)> {
    let Some(build) = build else {
        return Some((api::ImageKind::Tag, None));
    };
    let target = |t: String| (!t.is_empty()).then_some(t);
    match build.tag_role(&entry.name) {
        Some(TagRole::Output { target: t }) => Some((api::ImageKind::Build, target(t))),
        Some(TagRole::Save { target: t }) => Some((api::ImageKind::SaveTag, target(t))),
        Some(TagRole::PlatformImage { .. }) => None,
        // Owned by the build but none of its names (a `?tag=` of a multi-tag push).
        None => Some((api::ImageKind::Tag, None)),
    }
}

/// The builds tags name, each read once per request.
struct Builds<'a> {
    state: &'a AppState,
    seen: HashMap<String, Option<Build>>,
}

impl Builds<'_> {
    async fn of(&mut self, entry: &TagEntry) -> Result<Option<&Build>> {
        let Some(id) = &entry.build_id else {
            return Ok(None);
        };
        if !self.seen.contains_key(id) {
            let build = self.state.content.meta.build(id).await?;
            self.seen.insert(id.clone(), build);
        }
        Ok(self.seen[id].as_ref())
    }
}

/// List a project's images, most recently pushed first.
#[utoipa::path(get, operation_id = "list_images", path = "/projects/{project}/images", tag = "images",
    params(("project" = String, Path, description = "project id"),
           ("limit" = Option<i64>, Query, description = "page size, 1 to 500 (default 50)"),
           ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")),
    responses((status = 200, description = "one page", body = api::ImagePage),
              (status = "default", description = "error", body = api::ErrorBody)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    Path(project_id): Path<String>,
    QueryParams(q): QueryParams<PageQuery>,
    caller: Caller,
) -> Result<Response> {
    let project = visible_project(&state, &caller, &project_id).await?;
    let repo = project_repo(&project.id)?;
    let page = Page::of(&q)?;
    let meta = &state.content.meta;
    let now = state.content.now_ms();
    let mut builds = Builds {
        state: &state,
        seen: HashMap::new(),
    };
    let mut images = Vec::new();
    let mut after = page.after.clone();
    let mut more = false;
    // Platform tags are skipped, so a page of tags may hold fewer images: read on until the
    // page is full (and one more, to know there is a next page) or the tags run out.
    'pages: loop {
        let batch = meta
            .live_tags(
                &repo,
                now,
                page.limit + 1,
                after.as_ref().map(|(a, n)| (*a, n.as_str())),
            )
            .await?;
        let exhausted = (batch.len() as i64) <= page.limit;
        for entry in &batch {
            after = Some((entry.updated_at, entry.name.clone()));
            let Some((kind, target)) = classify(entry, builds.of(entry).await?) else {
                continue;
            };
            if images.len() as i64 == page.limit {
                more = true;
                break 'pages;
            }
            images.push((
                entry.updated_at,
                api::Image {
                    tag: entry.name.clone(),
                    digest: entry.digest.clone(),
                    size: meta.image_size(&repo, &entry.digest).await?,
                    pushed_at: rfc3339(entry.updated_at),
                    kind,
                    build: entry.build_id.clone(),
                    target,
                },
            ));
        }
        if exhausted {
            break;
        }
    }
    let next_cursor = more
        .then(|| images.last().map(|(at, i)| cursor(*at, &i.tag)))
        .flatten();
    Ok(json(
        StatusCode::OK,
        &api::ImagePage {
            images: images.into_iter().map(|(_, i)| i).collect(),
            next_cursor,
        },
    ))
}

/// Remove an image by tag (project or admin token): a build's own tag deletes the build, a
/// save tag or a tag no build owns goes alone.
#[utoipa::path(delete, operation_id = "remove_image", path = "/projects/{project}/images/{tag}", tag = "images",
    params(("project" = String, Path, description = "project id"),
           ("tag" = String, Path, description = "the image's tag")),
    responses((status = 200, description = "removed", body = api::ImageRemoved),
              (status = "default", description = "error", body = api::ErrorBody)))]
pub(crate) async fn remove(
    State(state): State<AppState>,
    Path((project_id, tag)): Path<(String, String)>,
    caller: Caller,
) -> Result<Response> {
    let project = visible_project(&state, &caller, &project_id).await?;
    if !caller.manages_project(&project.id) {
        return Err(Error::denied(
            "images are removed with a project or admin token",
        ));
    }
    let repo = project_repo(&project.id)?;
    let meta = &state.content.meta;
    let not_found = || Error::not_found(format!("project {} has no image {tag:?}", project.id));
    let entry = meta
        .live_tag(&repo, &tag, state.content.now_ms())
        .await?
        .ok_or_else(not_found)?;
    let build = match &entry.build_id {
        Some(id) => meta.build(id).await?,
        None => None,
    };
    let removed = match classify(&entry, build.as_ref()) {
        None => {
            return Err(Error::invalid_request(format!(
                "{tag:?} is one platform of build {}: remove the build's own tag to delete it",
                entry.build_id.as_deref().unwrap_or_default()
            )))
        }
        Some((api::ImageKind::Build, _)) => {
            let build = build.ok_or_else(not_found)?;
            super::builds::remove(&state, &build).await?;
            api::ImageKind::Build
        }
        Some((kind, _)) => {
            // Only the tag: a build's manifests live as long as the build.
            let name = tag.parse().map_err(|_| not_found())?;
            if !state.content.delete_tag(&repo, &name).await? {
                return Err(not_found());
            }
            tracing::info!(project = %project.id, tag = ?tag, "tag removed");
            kind
        }
    };
    Ok(json(
        StatusCode::OK,
        &api::ImageRemoved {
            tag,
            kind: removed,
            build: entry.build_id,
        },
    ))
}
