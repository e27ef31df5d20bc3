//! Blob reads (`GET`/`HEAD` with `Range`) and deletes.

use axum::body::Body;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{AppState, Call, DOCKER_CONTENT_DIGEST};
use crate::error::{Code, Error, Result};
use depot_store::digest::Digest;
use depot_store::names::RepoName;

pub(crate) async fn get(
    state: &AppState,
    call: &Call,
    repo: &RepoName,
    digest: &Digest,
    head: bool,
) -> Result<Response> {
    let blob = state
        .content
        .visible_blob(repo, digest)
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
        if let Some(url) = state.content.store.direct_url(&blob.location).await? {
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
        Body::empty()
    } else {
        match state.content.read_blob(digest, &blob, span.clone()).await {
            Ok(bytes) => match bytes.into_whole() {
                Ok(whole) => Body::from(whole),
                Err(chunks) => Body::from_stream(chunks),
            },
            // Logged once per digest already: each retry is answered without filling the log.
            Err(e) if e.is_data_missing() => {
                let mut e = Error::from(e);
                e.internal = None;
                return Err(e);
            }
            Err(e) => return Err(e.into()),
        }
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
    if !state.content.unlink_blob(repo, digest).await? {
        return Err(Error::blob_unknown(digest));
    }
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
