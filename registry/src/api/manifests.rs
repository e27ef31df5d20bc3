//! Manifests: `GET`/`HEAD` with content negotiation, `PUT` with validation, `DELETE` of a tag or
//! of a manifest by digest. Manifests live in SQL with their exact bytes; blobs are never read.

use axum::body::{Body, HttpBody};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::json;

use super::{AppState, Call, DOCKER_CONTENT_DIGEST, OCI_SUBJECT, OCI_TAG};
use crate::error::{Code, Error, Result};
use depot_store::assemble;
use depot_store::digest::{Algorithm, Digest};
use depot_store::manifest::{self, bare_media_type, MAX_MANIFEST_BYTES};
use depot_store::metadata::NewManifest;
use depot_store::names::{Reference, RepoName, Tag};

/// Whether an `Accept` header admits `media_type`. No header, or a wildcard, admits anything:
/// this registry never converts manifests, so the only choice is to serve or to refuse.
fn accepts(call: &Call, media_type: &str) -> bool {
    let values: Vec<&str> = call
        .headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    if values.is_empty() {
        return true;
    }
    values
        .iter()
        .flat_map(|v| v.split(','))
        .map(bare_media_type)
        .any(|t| t == media_type || t == "*/*" || t == "application/*")
}

pub(crate) async fn get(
    state: &AppState,
    call: &Call,
    repo: &RepoName,
    reference: &Reference,
    head: bool,
) -> Result<Response> {
    let m = state
        .content
        .manifest(repo, reference)
        .await?
        .ok_or_else(|| Error::manifest_unknown(reference))?;
    if !accepts(call, &m.media_type) {
        return Err(Error::manifest_unknown(reference).message(format!(
            "the manifest is {} but the Accept header does not allow it",
            m.media_type
        )));
    }
    let len = m.content.len();
    let body = if head {
        Body::empty()
    } else {
        state.pulls.count(repo.as_str());
        Body::from(m.content)
    };
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, &m.media_type)
        .header(header::CONTENT_LENGTH, len)
        .header(header::ETAG, format!("\"{}\"", m.digest))
        .header(DOCKER_CONTENT_DIGEST, m.digest.as_str())
        .body(body)
        .map_err(Error::internal)
}

fn too_large() -> Error {
    Error::new(StatusCode::PAYLOAD_TOO_LARGE, Code::ManifestInvalid)
        .message("manifest too large")
        .detail(json!({ "limit_bytes": MAX_MANIFEST_BYTES }))
}

/// Reads a manifest body of at most `MAX_MANIFEST_BYTES` into memory. A longer one is refused
/// as soon as that shows (by its declared length, before any byte is read); `request_body`
/// drains what is left so the `413` reaches the client.
async fn read_manifest_body(body: Body) -> Result<Vec<u8>> {
    if body.size_hint().lower() > MAX_MANIFEST_BYTES as u64 {
        return Err(too_large());
    }
    let mut stream = body.into_data_stream();
    let mut content = Vec::new();
    while let Some(frame) = stream.next().await {
        let chunk = frame.map_err(|e| {
            Error::bad_request(
                Code::ManifestInvalid,
                format!("request body ended early: {e}"),
            )
        })?;
        if content.len() + chunk.len() > MAX_MANIFEST_BYTES {
            return Err(too_large());
        }
        content.extend_from_slice(&chunk);
    }
    Ok(content)
}

/// A descriptor's target as stored (`None`: not in the repository): it must be there, and
/// its size must be the declared one.
fn check_referenced(d: &manifest::Descriptor, stored: Option<u64>) -> Result<()> {
    match stored {
        None => Err(Error::manifest_blob_unknown(&d.digest)),
        Some(size) if size != d.size => Err(Error::manifest_invalid(format!(
            "{} has size {size}, the manifest says {}",
            d.digest, d.size
        ))),
        Some(_) => Ok(()),
    }
}

pub(crate) async fn put(
    state: &AppState,
    call: &Call,
    body: Body,
    repo: &RepoName,
    reference: &Reference,
    mut tags: Vec<Tag>,
) -> Result<Response> {
    let content_type = call
        .header(&header::CONTENT_TYPE)
        .map(bare_media_type)
        .unwrap_or("")
        .to_owned();
    let content = read_manifest_body(body).await?;

    let digest = match reference {
        Reference::Digest(expected) => {
            let actual = Digest::of(expected.algorithm(), &content);
            if &actual != expected {
                return Err(Error::digest_mismatch(expected, &actual)
                    .message("the manifest's digest is not the one in its reference"));
            }
            actual
        }
        Reference::Tag(_) => Digest::of(Algorithm::Sha256, &content),
    };
    let parsed = manifest::parse(&content_type, &content)?;

    // Everything the manifest points at must already be in this repository, at the size the
    // manifest declares.
    for d in parsed.blobs.iter().filter(|d| !d.foreign) {
        let stored = state
            .content
            .visible_blob(repo, &d.digest)
            .await?
            .map(|b| b.size);
        check_referenced(d, stored)?;
    }
    for child in &parsed.manifests {
        let stored = state
            .content
            .meta
            .manifest_size(repo, &child.digest)
            .await?;
        check_referenced(child, stored)?;
    }

    // A push by tag points that one tag; a push by digest, those of its `?tag=`s.
    let multi_tag = !tags.is_empty();
    if let Reference::Tag(t) = reference {
        tags = vec![t.clone()];
    }
    let record = NewManifest {
        digest: digest.clone(),
        media_type: parsed.media_type.clone(),
        content,
        subject: parsed.subject.clone(),
        artifact_type: parsed.artifact_type.clone(),
        annotations: parsed.annotations.clone(),
        blobs: parsed
            .blobs
            .iter()
            .filter(|d| !d.foreign)
            .map(|d| d.digest.clone())
            .collect(),
        manifests: parsed.manifests.iter().map(|d| d.digest.clone()).collect(),
    };
    let building = call.identity.pushing_build();
    let owner = building.map(assemble::owner);
    state
        .content
        .put_manifest(repo, &record, &tags, owner.as_ref())
        .await?;
    // A build's images arrive in its project's repository; what it pushes to the project's
    // build cache is only owned by it.
    if let Some(build) = building.filter(|b| repo.as_str() == b.project) {
        let pushed = assemble::Pushed {
            repo,
            tags: &tags,
            digest: &digest,
            size: record.content.len() as u64,
            parsed: &parsed,
        };
        assemble::on_push(&state.content, build, pushed).await?;
    }

    let mut response = (
        StatusCode::CREATED,
        [
            (header::LOCATION, format!("/v2/{repo}/manifests/{digest}")),
            (DOCKER_CONTENT_DIGEST, digest.to_string()),
            (header::CONTENT_LENGTH, "0".to_owned()),
        ],
    )
        .into_response();
    if multi_tag {
        // Every tag was taken (or none, and the push failed): one field line listing them all,
        // so a client reading only the first `OCI-Tag` line still sees every tag.
        let list: Vec<&str> = tags.iter().map(Tag::as_str).collect();
        response
            .headers_mut()
            .insert(OCI_TAG, list.join(", ").parse().map_err(Error::internal)?);
    }
    if let Some(subject) = &parsed.subject {
        response.headers_mut().insert(
            OCI_SUBJECT,
            subject.as_str().parse().map_err(Error::internal)?,
        );
    }
    Ok(response)
}

pub(crate) async fn delete(
    state: &AppState,
    repo: &RepoName,
    reference: &Reference,
) -> Result<Response> {
    let deleted = match reference {
        Reference::Tag(tag) => state.content.delete_tag(repo, tag).await?,
        Reference::Digest(digest) => state.content.delete_manifest(repo, digest).await?,
    };
    if !deleted {
        return Err(Error::manifest_unknown(reference));
    }
    Ok((StatusCode::ACCEPTED, [(header::CONTENT_LENGTH, "0")]).into_response())
}
