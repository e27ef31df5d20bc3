//! Content discovery: tag lists and the catalog (paginated with `n`, `last` and `Link`), and the
//! referrers API.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use super::{AppState, Call, OCI_FILTERS_APPLIED};
use crate::error::{Code, Error, Result};
use depot_store::digest::Digest;
use depot_store::manifest::OCI_INDEX;
use depot_store::names::RepoName;

/// Largest page served; larger `n` (or none) is cut to this with a `Link` to the rest.
pub const MAX_PAGE: i64 = 10_000;

/// The page size asked for, clamped, and whether the client asked at all.
fn page_size(call: &Call) -> Result<i64> {
    match call.query("n") {
        None => Ok(MAX_PAGE),
        Some(n) => match n.parse::<i64>() {
            Ok(n) if n >= 0 => Ok(n.min(MAX_PAGE)),
            _ => Err(Error::bad_request(
                Code::Unsupported,
                format!("n must be a non-negative integer, got {n:?}"),
            )),
        },
    }
}

/// Builds a page response: `items` holds up to `n + 1` entries, the extra one only telling that a
/// next page exists.
fn page(
    path: &str,
    key: &str,
    name: Option<&RepoName>,
    mut items: Vec<String>,
    n: i64,
) -> Response {
    let more = items.len() as i64 > n;
    items.truncate(n as usize);
    let mut body = Map::new();
    if let Some(name) = name {
        body.insert("name".into(), json!(name.as_str()));
    }
    body.insert(key.into(), json!(items));
    let mut response = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        Value::Object(body).to_string(),
    )
        .into_response();
    if more && n > 0 {
        if let Some(last) = items.last() {
            let query = serde_urlencoded::to_string([("n", n.to_string()), ("last", last.clone())])
                .unwrap_or_default();
            if let Ok(v) = format!("<{path}?{query}>; rel=\"next\"").parse() {
                response.headers_mut().insert(header::LINK, v);
            }
        }
    }
    response
}

pub(crate) async fn tags(state: &AppState, call: &Call, repo: &RepoName) -> Result<Response> {
    let n = page_size(call)?;
    if !state.content.meta.repository_exists(repo).await? {
        return Err(Error::name_unknown(repo));
    }
    let items = if n == 0 {
        Vec::new()
    } else {
        state
            .content
            .meta
            .list_tags(repo, n + 1, call.query("last"), state.content.now_ms())
            .await?
    };
    Ok(page(
        &format!("/v2/{repo}/tags/list"),
        "tags",
        Some(repo),
        items,
        n,
    ))
}

pub(crate) async fn catalog(state: &AppState, call: &Call) -> Result<Response> {
    let n = page_size(call)?;
    let items = if n == 0 {
        Vec::new()
    } else {
        state
            .content
            .meta
            .list_repositories(n + 1, call.query("last"))
            .await?
    };
    Ok(page("/v2/_catalog", "repositories", None, items, n))
}

pub(crate) async fn referrers(
    state: &AppState,
    call: &Call,
    repo: &RepoName,
    subject: &Digest,
) -> Result<Response> {
    let filter = call.query("artifactType").filter(|t| !t.is_empty());
    let found = state
        .content
        .meta
        .referrers(repo, subject, filter, state.content.now_ms())
        .await?;
    let manifests: Vec<Value> = found
        .into_iter()
        .map(|r| {
            let mut d = json!({ "mediaType": r.media_type, "digest": r.digest, "size": r.size });
            if let Some(t) = r.artifact_type {
                d["artifactType"] = json!(t);
            }
            if let Some(a) = r
                .annotations
                .and_then(|a| serde_json::from_str::<Value>(&a).ok())
            {
                d["annotations"] = a;
            }
            d
        })
        .collect();
    let body = json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests });
    let mut response = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, OCI_INDEX)],
        body.to_string(),
    )
        .into_response();
    if filter.is_some() {
        response.headers_mut().insert(
            OCI_FILTERS_APPLIED,
            header::HeaderValue::from_static("artifactType"),
        );
    }
    Ok(response)
}
