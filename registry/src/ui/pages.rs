//! The dashboard's read-only pages: projects, a project's builds (with its usage over time),
//! and one build. Each reads through the same checks as the API (`visible_project`,
//! `visible_build`): a sign-in sees exactly what its token would see, and what it may not see
//! is a 404, as there.

use std::collections::HashMap;
use std::time::Instant;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use depot_store::digest::Digest;
use depot_store::metadata::{BuildFilter, ProjectTotals};
use depot_store::model::{Build, BuildState, Project};
use depot_store::names::RepoName;
use serde::Deserialize;

use super::chart::{self, Series};
use super::format;
use super::session::Session;
use super::{page, Nav};
use crate::control::builds::{output_images, visible_build};
use crate::control::paging::{cursor, parse_cursor};
use crate::control::projects::visible_project;
use crate::control::{registry_host, QueryParams};
use crate::error::{Error, Result};
use crate::state::AppState;

/// Builds per page.
const PAGE: usize = 50;
/// How far back the usage chart looks.
const USAGE_DAYS: i64 = 30;

/// A project as the pages show it.
pub struct ProjectView {
    pub id: String,
    pub name: String,
    pub builds: i64,
    pub live: i64,
    pub storage: String,
    pub storage_bytes: i64,
    /// What it keeps: `builds for 7 d`, `the newest 20 builds (and those younger than 3 d)`.
    pub keeps: String,
}

fn project_view(p: &Project, t: &ProjectTotals) -> ProjectView {
    let age = format::duration(p.retention_secs.saturating_mul(1000));
    let keeps = match p.keep {
        None => format!("each build for {age}"),
        Some(k) => match k.days {
            None => format!("the newest {} builds, each at most {age}", k.builds),
            Some(d) => format!(
                "the newest {} builds and those younger than {d} d, each at most {age}",
                k.builds
            ),
        },
    };
    ProjectView {
        id: p.id.clone(),
        name: p.name.clone(),
        builds: t.builds,
        live: t.live_saved,
        storage: format::bytes(t.storage_bytes.max(0) as u64),
        storage_bytes: t.storage_bytes,
        keeps,
    }
}

#[derive(Template)]
#[template(path = "ui/projects.html")]
struct ProjectsPage {
    nav: Nav,
    projects: Vec<ProjectView>,
}

/// `GET /ui/projects`: every project the sign-in may see.
pub(super) async fn projects(State(state): State<AppState>, session: Session) -> Response {
    let started = Instant::now();
    let nav = Nav::of(&session);
    let result = async {
        let now = state.content.now_ms();
        let mut projects = Vec::new();
        for p in state.content.meta.list_projects().await? {
            if session.caller.sees_project(&p.id) {
                let totals = state.content.meta.project_totals(&p.id, now).await?;
                projects.push(project_view(&p, &totals));
            }
        }
        Ok(ProjectsPage {
            nav: nav.clone(),
            projects,
        })
    }
    .await;
    page(&nav, result, started)
}

/// A build as the lists and its page show it.
pub struct BuildView {
    pub id: String,
    /// `building`, `saved`, `failed` or `expired`.
    pub state: &'static str,
    /// Its platforms, or its targets (each with its own platforms).
    pub what: String,
    pub save_tags: String,
    pub size: Option<String>,
    pub size_bytes: u64,
    pub created: String,
    pub created_iso: String,
    pub expires: String,
    /// Why it failed, with the target and platform the builder named.
    pub failure: Option<String>,
}

fn build_view(b: &Build, size: Option<u64>, now: i64) -> BuildView {
    let state = if b.is_expired(now) {
        "expired"
    } else {
        b.state.as_str()
    };
    let what = if b.spec.targets.is_empty() {
        if b.spec.platforms.is_empty() {
            "the builder's platform".to_owned()
        } else {
            b.spec.platforms.join(", ")
        }
    } else {
        b.spec
            .targets
            .iter()
            .map(|t| {
                let platforms = if t.platforms.is_empty() {
                    &b.spec.platforms
                } else {
                    &t.platforms
                };
                if platforms.is_empty() {
                    t.name.clone()
                } else {
                    format!("{} ({})", t.name, platforms.join(", "))
                }
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    BuildView {
        id: b.id.clone(),
        state,
        what,
        save_tags: b.spec.save_tags.join(", "),
        size: size.map(format::bytes),
        size_bytes: size.unwrap_or(0),
        created: format::time(b.created_at),
        created_iso: depot_store::model::rfc3339(b.created_at),
        expires: format::until(b.expires_at, now),
        failure: b.failure.clone(),
    }
}

/// A `<select>` option.
pub struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

/// A drawn chart and the value it ends at.
pub struct ChartView {
    pub title: &'static str,
    pub svg: String,
    pub latest: String,
}

/// A usage sample as the table shows it.
pub struct UsageRow {
    pub at: String,
    pub storage: String,
    pub builds: i64,
    pub pulls: i64,
}

#[derive(Template)]
#[template(path = "ui/project.html")]
struct ProjectPage {
    nav: Nav,
    project: ProjectView,
    charts: Vec<ChartView>,
    usage: Vec<UsageRow>,
    states: Vec<Choice>,
    filter_tag: String,
    filtered: bool,
    rows: Vec<BuildView>,
    first: bool,
    first_url: String,
    next_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct BuildsQuery {
    #[serde(default)]
    state: String,
    #[serde(default)]
    tag: String,
    cursor: Option<String>,
}

fn filter_of(state: &str) -> Result<BuildFilter> {
    Ok(match state {
        "" | "all" => BuildFilter::All,
        "building" => BuildFilter::Live(BuildState::Building),
        "saved" => BuildFilter::Live(BuildState::Saved),
        "failed" => BuildFilter::Live(BuildState::Failed),
        "expired" => BuildFilter::Expired,
        other => {
            return Err(Error::invalid_request(format!(
                "no state {other:?}: all, building, saved, failed or expired"
            )))
        }
    })
}

/// `/ui/projects/{p}` with these filters, starting after `cursor`.
fn builds_url(project: &str, state: &str, tag: &str, cursor: Option<&str>) -> String {
    let mut query: Vec<(&str, &str)> = Vec::new();
    if !state.is_empty() && state != "all" {
        query.push(("state", state));
    }
    if !tag.is_empty() {
        query.push(("tag", tag));
    }
    if let Some(c) = cursor {
        query.push(("cursor", c));
    }
    let query = serde_urlencoded::to_string(&query).unwrap_or_default();
    if query.is_empty() {
        format!("/ui/projects/{project}")
    } else {
        format!("/ui/projects/{project}?{query}")
    }
}

/// `GET /ui/projects/{p}`: the project's builds, newest first, filtered by state and save
/// tag, a page at a time, under its usage over the last 30 days.
pub(super) async fn project(
    State(state): State<AppState>,
    Path(id): Path<String>,
    QueryParams(q): QueryParams<BuildsQuery>,
    headers: HeaderMap,
    session: Session,
) -> Response {
    let started = Instant::now();
    let nav = Nav::of(&session);
    let result = project_page(&state, &session, &headers, &id, &q, nav.clone()).await;
    page(&nav, result, started)
}

async fn project_page(
    state: &AppState,
    session: &Session,
    headers: &HeaderMap,
    id: &str,
    q: &BuildsQuery,
    nav: Nav,
) -> Result<ProjectPage> {
    let project = visible_project(state, &session.caller, id).await?;
    let meta = &state.content.meta;
    let now = state.content.now_ms();
    let filter = filter_of(&q.state)?;
    let tag = q.tag.trim();
    let mut after = q.cursor.as_deref().map(parse_cursor).transpose()?;
    // A save tag matches the spec's text loosely in SQL and exactly here, so a page may take
    // more than one query to fill.
    let mut builds: Vec<Build> = Vec::new();
    let mut more = false;
    'fill: loop {
        let batch = meta
            .list_builds_where(
                &project.id,
                filter,
                (!tag.is_empty()).then_some(tag),
                now,
                PAGE as i64 + 1,
                after.as_ref().map(|(a, i)| (*a, i.as_str())),
            )
            .await?;
        let exhausted = batch.len() <= PAGE;
        for b in batch {
            after = Some((b.created_at, b.id.clone()));
            if !tag.is_empty() && !b.spec.save_tags.iter().any(|t| t == tag) {
                continue;
            }
            if builds.len() == PAGE {
                more = true;
                break 'fill;
            }
            builds.push(b);
        }
        if exhausted {
            break;
        }
    }
    let host = registry_host(state, headers);
    let mut rows = Vec::with_capacity(builds.len());
    for b in &builds {
        let live = b.state == BuildState::Saved && !b.is_expired(now);
        let size = if live {
            let images = output_images(state, &host, b, now).await?;
            Some(images.iter().fold(0u64, |t, i| t.saturating_add(i.size)))
        } else {
            None
        };
        rows.push(build_view(b, size, now));
    }
    let next_url = more.then(|| builds.last()).flatten().map(|b| {
        builds_url(
            &project.id,
            &q.state,
            tag,
            Some(&cursor(b.created_at, &b.id)),
        )
    });
    let totals = meta.project_totals(&project.id, now).await?;
    let (charts, usage) = usage(state, &project, &totals, now).await?;
    let states = ["all", "building", "saved", "failed", "expired"]
        .iter()
        .map(|s| Choice {
            value: (*s).to_owned(),
            label: (*s).to_owned(),
            selected: *s == q.state || (q.state.is_empty() && *s == "all"),
        })
        .collect();
    Ok(ProjectPage {
        nav,
        project: project_view(&project, &totals),
        charts,
        usage,
        states,
        filter_tag: tag.to_owned(),
        filtered: !matches!(filter, BuildFilter::All) || !tag.is_empty(),
        rows,
        first: q.cursor.is_none(),
        first_url: builds_url(&project.id, &q.state, tag, None),
        next_url,
    })
}

/// The usage charts (storage, saved builds, pulls per hour) and their table: the hourly samples
/// of the last 30 days and, last, the project as it is now.
async fn usage(
    state: &AppState,
    project: &Project,
    totals: &ProjectTotals,
    now: i64,
) -> Result<(Vec<ChartView>, Vec<UsageRow>)> {
    let since = now - USAGE_DAYS * 24 * 3_600_000;
    let mut points = state.content.meta.usage_since(&project.id, since).await?;
    let pending = state.pulls.pending(&project.id);
    let hour = depot_store::metadata::hour_of(now);
    // Now: what is held, and the requests counted since the last sample (in this hour's row
    // when there is one).
    match points.last_mut() {
        Some(last) if last.at == hour => {
            last.storage_bytes = totals.storage_bytes;
            last.builds_saved = totals.live_saved;
            last.pulls += pending;
        }
        _ => points.push(depot_store::metadata::UsagePoint {
            at: hour,
            storage_bytes: totals.storage_bytes,
            builds_saved: totals.live_saved,
            pulls: pending,
        }),
    }
    let series = |f: fn(&depot_store::metadata::UsagePoint) -> i64| -> Vec<(i64, f64)> {
        points.iter().map(|p| (p.at, f(p) as f64)).collect()
    };
    let storage = series(|p| p.storage_bytes);
    let saved = series(|p| p.builds_saved);
    let pulls = series(|p| p.pulls);
    let size_label = |v: f64| format::bytes(v.max(0.0) as u64);
    let count_label = |v: f64| format!("{v:.0}");
    let last = points.last();
    let charts = vec![
        ChartView {
            title: "Storage held",
            svg: chart::svg(&Series {
                title: "Storage held",
                points: &storage,
                label: &size_label,
            }),
            latest: format::bytes(totals.storage_bytes.max(0) as u64),
        },
        ChartView {
            title: "Saved builds",
            svg: chart::svg(&Series {
                title: "Saved builds",
                points: &saved,
                label: &count_label,
            }),
            latest: totals.live_saved.to_string(),
        },
        ChartView {
            title: "Pulls per hour",
            svg: chart::svg(&Series {
                title: "Pulls per hour",
                points: &pulls,
                label: &count_label,
            }),
            latest: last.map_or(0, |p| p.pulls).to_string(),
        },
    ];
    let rows = points
        .iter()
        .rev()
        .map(|p| UsageRow {
            at: format::time(p.at),
            storage: format::bytes(p.storage_bytes.max(0) as u64),
            builds: p.builds_saved,
            pulls: p.pulls,
        })
        .collect();
    Ok((charts, rows))
}

/// A layer of an image.
pub struct LayerView {
    pub digest: String,
    pub short: String,
    pub size: String,
    pub size_bytes: u64,
    /// Another live build holds it too.
    pub shared: bool,
}

/// One platform's image manifest.
pub struct PlatformView {
    pub platform: String,
    pub digest: String,
    pub config: Option<String>,
    pub layers: Vec<LayerView>,
}

/// Something that points at an image (`subject`): an SBOM, a signature, an attestation.
pub struct ReferrerView {
    pub artifact_type: String,
    pub digest: String,
    pub size: String,
}

/// An output of a build: its tag, what it is, its platforms and what points at it.
pub struct OutputView {
    pub target: String,
    pub tag: String,
    pub digest: String,
    pub media_type: String,
    pub size: String,
    pub size_bytes: u64,
    pub platforms: Vec<PlatformView>,
    pub referrers: Vec<ReferrerView>,
}

/// A command to copy.
pub struct CommandView {
    pub label: &'static str,
    pub text: String,
}

#[derive(Template)]
#[template(path = "ui/build.html")]
struct BuildPage {
    nav: Nav,
    b: BuildView,
    project_id: String,
    project_name: String,
    expires_at: String,
    expires_iso: String,
    outputs: Vec<OutputView>,
    commands: Vec<CommandView>,
    can_manage: bool,
    can_mint: bool,
}

/// `GET /ui/builds/{id}`: one build, per target and platform.
pub(super) async fn build(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    session: Session,
) -> Response {
    let started = Instant::now();
    let nav = Nav::of(&session);
    let result = build_page(&state, &session, &headers, &id, nav.clone()).await;
    page(&nav, result, started)
}

fn short(digest: &str) -> String {
    let (algo, hex) = digest.split_once(':').unwrap_or(("", digest));
    format!("{algo}:{}", hex.get(..12).unwrap_or(hex))
}

/// The platform an index entry names (`linux/arm64/v8`).
fn platform_of(entry: &serde_json::Value) -> String {
    let p = &entry["platform"];
    let mut s = format!(
        "{}/{}",
        p["os"].as_str().unwrap_or("?"),
        p["architecture"].as_str().unwrap_or("?")
    );
    if let Some(v) = p["variant"].as_str() {
        s.push('/');
        s.push_str(v);
    }
    s
}

async fn build_page(
    state: &AppState,
    session: &Session,
    headers: &HeaderMap,
    id: &str,
    nav: Nav,
) -> Result<BuildPage> {
    let build = visible_build(state, &session.caller, id).await?;
    let meta = &state.content.meta;
    let now = state.content.now_ms();
    let repo = crate::control::projects::project_repo(&build.project)?;
    let project = meta.project(&build.project).await?;
    let host = registry_host(state, headers);
    let images = output_images(state, &host, &build, now).await?;
    // The platforms builders pushed, by manifest digest (a single-platform output's name).
    let pushed: HashMap<String, String> = meta
        .build_images(&build.id)
        .await?
        .into_iter()
        .filter(|i| !i.platform.is_empty())
        .map(|i| (i.digest, i.platform))
        .collect();
    let mut outputs = Vec::new();
    for image in &images {
        let top = manifest_json(state, &repo, &image.digest, now).await?;
        let mut entries: Vec<(String, String)> = Vec::new();
        match top["manifests"].as_array() {
            Some(children) => {
                for c in children {
                    if let Some(d) = c["digest"].as_str() {
                        entries.push((platform_of(c), d.to_owned()));
                    }
                }
            }
            None => {
                // One image: its platform as the builder reported it, else as its config says.
                let platform = match pushed.get(&image.digest) {
                    Some(p) => p.clone(),
                    None => config_platform(state, &top).await?,
                };
                entries.push((platform, image.digest.clone()));
            }
        }
        let mut platforms = Vec::new();
        let mut referrers = referrers_of(state, &repo, &image.digest, now).await?;
        for (platform, digest) in entries {
            let m = manifest_json(state, &repo, &digest, now).await?;
            let mut layers = Vec::new();
            for l in m["layers"].as_array().into_iter().flatten() {
                let Some(d) = l["digest"].as_str() else {
                    continue;
                };
                let size = l["size"].as_u64().unwrap_or(0);
                layers.push(LayerView {
                    digest: d.to_owned(),
                    short: short(d),
                    size: format::bytes(size),
                    size_bytes: size,
                    shared: meta
                        .blob_shared_with_other_builds(&repo, d, &build.id, now)
                        .await?,
                });
            }
            if digest != image.digest {
                referrers.extend(referrers_of(state, &repo, &digest, now).await?);
            }
            platforms.push(PlatformView {
                platform,
                digest,
                config: m["config"]["digest"].as_str().map(str::to_owned),
                layers,
            });
        }
        outputs.push(OutputView {
            target: image.target.clone(),
            tag: image.tag.clone(),
            digest: image.digest.clone(),
            media_type: image.media_type.clone(),
            size: format::bytes(image.size),
            size_bytes: image.size,
            platforms,
            referrers,
        });
    }
    let size =
        (!images.is_empty()).then(|| images.iter().fold(0u64, |t, i| t.saturating_add(i.size)));
    let live = build.state == BuildState::Saved && !build.is_expired(now);
    let p = &build.project;
    let mut commands = Vec::new();
    if live {
        commands.push(CommandView {
            label: "Pull into Docker",
            text: format!("depot pull --project {p} {}", build.id),
        });
        commands.push(CommandView {
            label: "Promote to a registry",
            text: format!(
                "depot push --project {p} -t <registry>/<repository>:<tag> {}",
                build.id
            ),
        });
        commands.push(CommandView {
            label: "Log Docker in",
            text: format!(
                "depot pull-token --project {p} {} | docker login {host} -u x-token --password-stdin",
                build.id
            ),
        });
        for image in &images {
            commands.push(CommandView {
                label: "Pull with Docker",
                text: format!("docker pull {}", image.name),
            });
        }
    }
    let caller = &session.caller;
    Ok(BuildPage {
        nav,
        b: build_view(&build, size, now),
        project_name: project.map_or_else(|| p.clone(), |p| p.name),
        project_id: p.clone(),
        expires_at: format::time(build.expires_at),
        expires_iso: depot_store::model::rfc3339(build.expires_at),
        outputs,
        commands,
        can_manage: caller.manages_project(p) && !build.is_expired(now),
        can_mint: live && caller.builds_in(p) && state.access.auth().is_some(),
    })
}

/// The platform an image manifest's config names (`linux/amd64`), or `image` when it names none.
async fn config_platform(state: &AppState, manifest: &serde_json::Value) -> Result<String> {
    let config = &manifest["config"];
    let (Some(digest), Some(size)) = (
        config["digest"]
            .as_str()
            .and_then(|d| d.parse::<Digest>().ok()),
        config["size"].as_u64(),
    ) else {
        return Ok("image".to_owned());
    };
    Ok(
        depot_store::assemble::config_platform(&state.content, &digest, size)
            .await?
            .map_or_else(|| "image".to_owned(), |p| p.to_string()),
    )
}

/// A stored manifest of `repo` as JSON (`Null` when it is gone or not JSON).
async fn manifest_json(
    state: &AppState,
    repo: &RepoName,
    digest: &str,
    now: i64,
) -> Result<serde_json::Value> {
    let Ok(d) = digest.parse::<Digest>() else {
        return Ok(serde_json::Value::Null);
    };
    Ok(state
        .content
        .meta
        .manifest_by_digest(repo, &d, now)
        .await?
        .and_then(|m| serde_json::from_slice(&m.content).ok())
        .unwrap_or(serde_json::Value::Null))
}

async fn referrers_of(
    state: &AppState,
    repo: &RepoName,
    digest: &str,
    now: i64,
) -> Result<Vec<ReferrerView>> {
    let Ok(d) = digest.parse::<Digest>() else {
        return Ok(Vec::new());
    };
    Ok(state
        .content
        .meta
        .referrers(repo, &d, None, now)
        .await?
        .into_iter()
        .map(|r| ReferrerView {
            artifact_type: r
                .artifact_type
                .unwrap_or_else(|| "(no artifactType)".to_owned()),
            digest: r.digest,
            size: format::bytes(r.size),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_links_keep_what_was_asked() {
        assert_eq!(builds_url("p1", "", "", None), "/ui/projects/p1");
        assert_eq!(
            builds_url("p1", "saved", "v1.2", Some("5.abc")),
            "/ui/projects/p1?state=saved&tag=v1.2&cursor=5.abc"
        );
        assert!(filter_of("bogus").is_err());
        assert_eq!(filter_of("expired").unwrap(), BuildFilter::Expired);
    }

    #[test]
    fn digests_are_shortened_for_reading() {
        assert_eq!(short("sha256:0123456789abcdef0123"), "sha256:0123456789ab");
        let entry = serde_json::json!({"platform": {"os": "linux", "architecture": "arm", "variant": "v7"}});
        assert_eq!(platform_of(&entry), "linux/arm/v7");
    }
}
