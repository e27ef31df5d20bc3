//! Blob reads (`GET`/`HEAD` with `Range`) and deletes.

use axum::body::Body;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{AppState, Call, DOCKER_CONTENT_DIGEST};
use crate::digest::Digest;
use crate::error::{Code, Error, Result};
use crate::metadata::StoredBlob;
use crate::names::RepoName;

/// The blob `digest` as seen from `repo`, through the cache. A candidate for garbage collection
/// is not cached: looking at it keeps it for another grace period (a client that sees it here
/// may push a manifest referencing it next).
pub(crate) async fn visible_blob(
    state: &AppState,
    repo: &RepoName,
    digest: &Digest,
) -> Result<Option<StoredBlob>> {
    let key = (repo.clone(), digest.clone());
    if let Some(blob) = state.caches.repo_blobs.get(&key).await {
        return Ok(Some(blob));
    }
    let Some(blob) = state.meta.repo_blob(repo, digest).await? else {
        return Ok(None);
    };
    if blob.candidate {
        let kept = state.meta.touch_blob(digest, state.clock.now_ms()).await?;
        return Ok(kept.then_some(blob));
    }
    state.caches.repo_blobs.insert(key, blob.clone()).await;
    Ok(Some(blob))
}

/// Where `digest` is stored, if anywhere (any repository), through the cache; a candidate for
/// collection is kept for another grace period, as in [`visible_blob`].
pub(crate) async fn stored_blob(state: &AppState, digest: &Digest) -> Result<Option<StoredBlob>> {
    if let Some(blob) = state.caches.stored.get(digest).await {
        return Ok(Some(blob));
    }
    let Some(blob) = state.meta.blob(digest).await? else {
        return Ok(None);
    };
    if blob.candidate {
        let kept = state.meta.touch_blob(digest, state.clock.now_ms()).await?;
        return Ok(kept.then_some(blob));
    }
    state
        .caches
        .stored
        .insert(digest.clone(), blob.clone())
        .await;
    Ok(Some(blob))
}

pub(crate) async fn get(
    state: &AppState,
    call: &Call,
    repo: &RepoName,
    digest: &Digest,
    head: bool,
) -> Result<Response> {
    let blob = visible_blob(state, repo, digest)
        .await?
        .ok_or_else(|| Error::blob_unknown(digest))?;
    let size = blob.size;
    let range = match call.header(&header::RANGE) {
        Some(value) => parse_range(value, size)?,
        None => None,
    };
    let (status, span) = match range {
        Some(r) => (StatusCode::PARTIAL_CONTENT, r),
        None => (StatusCode::OK, 0..size),
    };
    if !head {
        if let Some(url) = state.store.direct_url(&blob.location).await? {
            // The client fetches the bytes (and its Range) from the object store directly.
            return Ok((
                StatusCode::TEMPORARY_REDIRECT,
                [
                    (header::LOCATION, url),
                    (DOCKER_CONTENT_DIGEST, digest.to_string()),
                    (header::CONTENT_LENGTH, "0".to_owned()),
                ],
            )
                .into_response());
        }
    }
    let body = if head {
        Ok(Body::empty())
    } else if let Some(reads) = &state.reads {
        reads
            .read(state.store.clone(), &blob.location, size, span.clone())
            .await
    } else {
        state.store.read(&blob.location, span.clone()).await
    };
    let body = match body {
        Ok(body) => body,
        Err(e) => return Err(missing_reported(state, digest, &blob.location, e).await),
    };
    let mut response = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CONTENT_LENGTH, span.end - span.start)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::ETAG, format!("\"{digest}\""))
        .header(header::CACHE_CONTROL, "max-age=31536000")
        .header(DOCKER_CONTENT_DIGEST, digest.as_str());
    if status == StatusCode::PARTIAL_CONTENT {
        response = response.header(
            header::CONTENT_RANGE,
            format!("bytes {}-{}/{size}", span.start, span.end - 1),
        );
    }
    response.body(body).map_err(Error::internal)
}

/// A blob whose bytes are gone from the store is an incident (data lost outside the
/// registry, or a bug): logged at error level once per digest, then answered `500` on each
/// request without filling the log.
async fn missing_reported(
    state: &AppState,
    digest: &Digest,
    location: &str,
    mut e: Error,
) -> Error {
    if !e.is_data_missing() {
        return e;
    }
    let entry = state
        .caches
        .missing_reported
        .entry(digest.clone())
        .or_insert(())
        .await;
    if entry.is_fresh() {
        tracing::error!(%digest, %location, "a stored blob's bytes are missing from the blob store: its data is lost; pulls of it fail with 500");
    }
    e.internal = None;
    e
}

/// Parses a single `bytes=` range against a blob of `size` bytes. Multiple ranges and other units
/// are ignored (the whole blob is served, as RFC 9110 allows); unsatisfiable ones get 416.
fn parse_range(value: &str, size: u64) -> Result<Option<std::ops::Range<u64>>> {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let unsatisfiable = || {
        Error::new(StatusCode::RANGE_NOT_SATISFIABLE, Code::Unsupported)
            .message("requested range not satisfiable")
            .header(header::CONTENT_RANGE, format!("bytes */{size}"))
    };
    let (first, last) = spec.split_once('-').ok_or_else(unsatisfiable)?;
    let (first, last) = (first.trim(), last.trim());
    let range = if first.is_empty() {
        // Suffix range: the last N bytes.
        let n: u64 = last.parse().map_err(|_| unsatisfiable())?;
        if n == 0 || size == 0 {
            return Err(unsatisfiable());
        }
        size.saturating_sub(n)..size
    } else {
        let start: u64 = first.parse().map_err(|_| unsatisfiable())?;
        let end = if last.is_empty() {
            size.saturating_sub(1)
        } else {
            last.parse::<u64>()
                .map_err(|_| unsatisfiable())?
                .min(size.saturating_sub(1))
        };
        if start >= size || end < start {
            return Err(unsatisfiable());
        }
        start..end + 1
    };
    Ok(Some(range))
}

pub(crate) async fn delete(state: &AppState, repo: &RepoName, digest: &Digest) -> Result<Response> {
    if !state
        .meta
        .unlink_blob(repo, digest, state.clock.now_ms())
        .await?
    {
        return Err(Error::blob_unknown(digest));
    }
    state
        .caches
        .repo_blobs
        .invalidate(&(repo.clone(), digest.clone()))
        .await;
    state.announce(repo).await;
    Ok((StatusCode::ACCEPTED, [(header::CONTENT_LENGTH, "0")]).into_response())
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100).unwrap(), Some(0..10));
        assert_eq!(parse_range("bytes=90-", 100).unwrap(), Some(90..100));
        assert_eq!(parse_range("bytes=-10", 100).unwrap(), Some(90..100));
        assert_eq!(parse_range("bytes=-1000", 100).unwrap(), Some(0..100));
        assert_eq!(parse_range("bytes=50-1000", 100).unwrap(), Some(50..100));
        assert_eq!(parse_range("bytes=0-1,5-6", 100).unwrap(), None);
        assert_eq!(parse_range("items=0-1", 100).unwrap(), None);
        assert!(parse_range("bytes=100-", 100).is_err());
        assert!(parse_range("bytes=5-2", 100).is_err());
        assert!(parse_range("bytes=x-2", 100).is_err());
        assert!(parse_range("bytes=-0", 100).is_err());
    }
}
