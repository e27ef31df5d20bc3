//! Blob uploads: sessions (`POST`), chunks (`PATCH`), closing (`PUT`), status (`GET`),
//! cancel (`DELETE`), monolithic `POST ?digest=`, and cross-repository mounts.
//!
//! A session is a row in SQL (size and hash state) plus bytes in the blob store, so any process
//! sharing the database and store can continue it. A chunk is acknowledged only after its bytes
//! are durable and the row has moved forward; the blob becomes visible only at the closing `PUT`,
//! after the digest computed while streaming matches the one the client names.

use axum::body::{Body, HttpBody};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{AppState, Call, DOCKER_CONTENT_DIGEST, DOCKER_UPLOAD_UUID, OCI_CHUNK_MIN_LENGTH};
use crate::access::Action;
use crate::error::{upload_range, Code, Error, Result};
use crate::ingest::ingest;
use depot_store::digest::{Algorithm, Digest, ResumableHasher};
use depot_store::metadata::{Link, StoredBlob, Upload};
use depot_store::names::RepoName;
use depot_store::storage::{BlobSink, Written};

/// Advertised minimum chunk size: small chunks cost a durable write and a database update each.
pub const CHUNK_MIN_LENGTH: u64 = 1024 * 1024;

/// How many repositories holding a blob are considered for a mount without `from`.
const AUTO_MOUNT_CANDIDATES: i64 = 50;

fn upload_location(repo: &RepoName, id: &str) -> String {
    format!("/v2/{repo}/blobs/uploads/{id}")
}

fn blob_created(repo: &RepoName, digest: &Digest) -> Response {
    (
        StatusCode::CREATED,
        [
            (header::LOCATION, format!("/v2/{repo}/blobs/{digest}")),
            (DOCKER_CONTENT_DIGEST, digest.to_string()),
            (header::CONTENT_LENGTH, "0".to_owned()),
        ],
    )
        .into_response()
}

fn upload_accepted(status: StatusCode, repo: &RepoName, id: &str, size: u64) -> Response {
    (
        status,
        [
            (header::LOCATION, upload_location(repo, id)),
            (header::RANGE, upload_range(size)),
            (DOCKER_UPLOAD_UUID, id.to_owned()),
            (header::CONTENT_LENGTH, "0".to_owned()),
        ],
    )
        .into_response()
}

fn parse_digest(value: &str) -> Result<Digest> {
    value
        .parse()
        .map_err(|_| Error::digest_invalid(format!("invalid digest {value:?}")))
}

/// Whether the request carries no body bytes at all.
fn body_is_empty(body: &Body) -> bool {
    body.size_hint().exact() == Some(0)
}

pub(crate) async fn start(
    state: &AppState,
    call: &Call,
    body: Body,
    repo: &RepoName,
) -> Result<Response> {
    if let Some(mount) = call.query("mount") {
        let digest = parse_digest(mount)?;
        if let Some(response) = try_mount(state, call, repo, &digest).await? {
            return Ok(response);
        }
        // Not mountable: the spec says to fall back to opening a session.
    }
    if let Some(digest) = call.query("digest") {
        let digest = parse_digest(digest)?;
        return monolithic(state, body, repo, &digest).await;
    }
    let algorithm = match call.query("digest-algorithm") {
        None | Some("sha256") => Algorithm::Sha256,
        Some("sha512") => Algorithm::Sha512,
        Some(other) => {
            return Err(Error::digest_invalid(format!(
                "unsupported digest algorithm {other:?}"
            )))
        }
    };
    let id = state
        .upload_ids
        .mint(repo, algorithm, state.content.clock.wall_ms());
    let mut response = upload_accepted(StatusCode::ACCEPTED, repo, &id, 0);
    response
        .headers_mut()
        .insert(OCI_CHUNK_MIN_LENGTH, CHUNK_MIN_LENGTH.into());
    Ok(response)
}

/// Links an existing blob into `repo` from `from` (or, without `from`, from any repository the
/// caller may read). `None` when the blob cannot be mounted.
async fn try_mount(
    state: &AppState,
    call: &Call,
    repo: &RepoName,
    digest: &Digest,
) -> Result<Option<Response>> {
    let candidates: Vec<RepoName> = match call.query("from") {
        Some(from) => match from.parse::<RepoName>() {
            Ok(from) => vec![from],
            Err(()) => return Ok(None),
        },
        None => state
            .content
            .meta
            .repos_with_blob(digest, AUTO_MOUNT_CANDIDATES)
            .await?
            .into_iter()
            .filter_map(|r| r.parse().ok())
            .collect(),
    };
    for from in candidates {
        if !call.identity.may(&from, Action::Pull) {
            continue;
        }
        if state
            .content
            .mount_blob(repo, &from, digest)
            .await?
            .is_some()
        {
            return Ok(Some(blob_created(repo, digest)));
        }
    }
    Ok(None)
}

/// `POST ?digest=` with the whole blob as body.
async fn monolithic(
    state: &AppState,
    body: Body,
    repo: &RepoName,
    digest: &Digest,
) -> Result<Response> {
    // Checked in the database (a cached answer may be older than a collection), which also
    // keeps the blob from collection while its bytes arrive. Only this repository's own blobs
    // take the shortcut: whether another project holds the digest must not show, not even in
    // how long the answer takes, so such a push is written like any other and deduplicated
    // only once its digest is verified (`commit`).
    let known = match state.content.visible_blob(repo, digest).await? {
        Some(stored) if state.content.touch_blob(digest).await? => Some(stored),
        _ => None,
    };
    if let Some(stored) = known {
        // Already in this repository (a layer pushed again): verify the bytes as they arrive
        // but write them nowhere. No store request at all.
        let (hasher, received) = ingest(
            body,
            &mut DiscardSink::default(),
            ResumableHasher::new(digest.algorithm()),
            None,
        )
        .await?;
        let actual = hasher.finish();
        if &actual != digest || received != stored.size {
            return Err(Error::digest_mismatch(digest, &actual));
        }
        // `stored_blob` kept a candidate for a grace period, so it is still there unless the
        // body took longer than that to arrive.
        state
            .content
            .link_blob(repo, digest, Link::Existing)
            .await?
            .ok_or_else(|| {
                Error::unavailable(format!("{digest} was garbage collected during the upload"))
            })?;
        return Ok(blob_created(repo, digest));
    }
    let id = format!("mono-{}", uuid::Uuid::new_v4());
    let result = async {
        let mut sink = state.content.store.append(&id, 0, &[]).await?;
        let (hasher, _) = ingest(
            body,
            sink.as_mut(),
            ResumableHasher::new(digest.algorithm()),
            None,
        )
        .await?;
        let written = sink.finish(true).await?;
        commit(state, repo, &id, &written, &hasher, digest).await
    }
    .await;
    if result.is_err() {
        // Best effort (the store finds the upload's pieces by its id): the upload was never
        // visible, and GC reaps what a failure here leaves.
        let _ = state.content.store.discard(&id, &[]).await;
    }
    result?;
    Ok(blob_created(repo, digest))
}

/// A sink that keeps nothing: for bytes whose blob is already stored.
#[derive(Default)]
struct DiscardSink {
    received: u64,
}

#[async_trait::async_trait]
impl BlobSink for DiscardSink {
    async fn write(&mut self, chunk: bytes::Bytes) -> depot_store::Result<()> {
        self.received += chunk.len() as u64;
        Ok(())
    }

    async fn finish(self: Box<Self>, _last: bool) -> depot_store::Result<Written> {
        Ok(Written {
            size: self.received,
            state: Vec::new(),
        })
    }
}

/// Verifies the digest and publishes the upload's bytes as `digest` in `repo`. Content that is
/// already stored (same digest, any repository) is not stored twice: the new bytes are dropped
/// and the stored blob linked.
async fn commit(
    state: &AppState,
    repo: &RepoName,
    id: &str,
    written: &Written,
    hasher: &ResumableHasher,
    digest: &Digest,
) -> Result<()> {
    let actual = hasher.finish();
    if &actual != digest {
        return Err(Error::digest_mismatch(digest, &actual));
    }
    let size = written.size;
    let content = &state.content;
    if link_stored(state, repo, digest, size).await? {
        content.store.discard(id, &written.state).await?;
    } else {
        let location = content
            .store
            .commit(id, &written.state, digest, size)
            .await?;
        link_new(state, repo, digest, size, location).await?;
    }
    Ok(())
}

/// Like [`commit`], for an upload hashed as it arrived with another algorithm than `digest`'s:
/// the bytes are committed first (under a location of their own, which nothing refers to yet),
/// hashed again from the store, and published only if they are `digest`; otherwise, or if
/// anything fails on the way, that copy is dropped.
async fn commit_rehashed(
    state: &AppState,
    repo: &RepoName,
    id: &str,
    written: &Written,
    digest: &Digest,
) -> Result<()> {
    let content = &state.content;
    let size = written.size;
    let location = match content.store.commit(id, &written.state, digest, size).await {
        Ok(location) => location,
        Err(e) => {
            // Best effort: the session is closed by the caller, and GC reaps what is left.
            let _ = content.store.discard(id, &written.state).await;
            return Err(e.into());
        }
    };
    let published = async {
        let actual = content
            .digest_stored(&location, size, digest.algorithm())
            .await?;
        if &actual != digest {
            return Err(Error::digest_mismatch(digest, &actual));
        }
        if link_stored(state, repo, digest, size).await? {
            drop_copy(state, &location).await;
            Ok(())
        } else {
            link_new(state, repo, digest, size, location.clone()).await
        }
    }
    .await;
    if published.is_err() {
        drop_copy(state, &location).await;
    }
    published
}

/// Links `digest` into `repo` if its content is already stored (at `size`), which keeps it from
/// collection; `false` if it is not (or was collected meanwhile): the new copy is stored after
/// all.
async fn link_stored(
    state: &AppState,
    repo: &RepoName,
    digest: &Digest,
    size: u64,
) -> Result<bool> {
    let content = &state.content;
    Ok(match content.stored_blob(digest).await? {
        Some(stored) if stored.size == size => content
            .link_blob(repo, digest, Link::Existing)
            .await?
            .is_some(),
        _ => false,
    })
}

/// A closing `PUT` that failed (`failed`, not a digest mismatch). If the failure is the
/// store's or the server's and `repo` holds `digest` after all, the push it closes is done: an
/// earlier try of this `PUT` committed and linked the blob and only its answer was lost (the
/// process killed before the session was closed, which leaves the session's stored bytes gone
/// or moved), so the session is closed and the answer is `201`. Otherwise `failed`; a session
/// whose bytes are gone (`404 BLOB_UPLOAD_UNKNOWN`) is closed by then, and the client starts a
/// new upload. A malformed request keeps its own answer whatever the repository holds.
async fn failed_close(
    state: &AppState,
    repo: &RepoName,
    id: &str,
    digest: &Digest,
    failed: Error,
) -> Result<Response> {
    let lost = failed.code == Code::BlobUploadUnknown;
    if !lost && !failed.status.is_server_error() {
        return Err(failed);
    }
    // Only on this failure path: a healthy push pays no extra query.
    match state.content.meta.repo_blob(repo, digest).await {
        Ok(Some(_)) => {
            state.content.meta.close_upload(id, repo).await?;
            Ok(blob_created(repo, digest))
        }
        _ => {
            if lost {
                state.content.meta.close_upload(id, repo).await?;
            }
            Err(failed)
        }
    }
}

/// Records a just-committed copy as `digest`'s bytes in `repo`. Two uploads of the same content
/// committed at once: the first link recorded wins, and the other copy is nobody's.
async fn link_new(
    state: &AppState,
    repo: &RepoName,
    digest: &Digest,
    size: u64,
    location: String,
) -> Result<()> {
    let new = Link::New(StoredBlob::new(size, location.clone()));
    let winner = state
        .content
        .link_blob(repo, digest, new)
        .await?
        .ok_or_else(|| Error::internal("a blob just stored is not there"))?;
    if winner.location != location {
        drop_copy(state, &location).await;
    }
    Ok(())
}

/// Deletes a committed copy no blob refers to (the store keeps it if one does); a failure is
/// logged, and `reconcile` finds what it leaves.
async fn drop_copy(state: &AppState, location: &str) {
    let locations = [location.to_owned()];
    if let Err(e) = state.content.store.delete_many(&locations).await {
        tracing::warn!(%location, cause = %e, "dropping an unneeded copy failed; reconcile will find it");
    }
}

/// Resolves a session id for `repo`: a session that has received nothing yet has no row, and
/// starts at zero with the algorithm its id names.
/// The second value tells whether the session has a row yet.
async fn session(state: &AppState, repo: &RepoName, id: &str) -> Result<(Upload, bool)> {
    let info = state
        .upload_ids
        .check(repo, id, state.content.clock.wall_ms())
        .ok_or_else(Error::upload_unknown)?;
    match state.content.meta.upload(id).await? {
        Some(up) if up.closed || up.repo != repo.as_str() => Err(Error::upload_unknown()),
        Some(up) => Ok((recovered(state, repo, id, up).await?, true)),
        None => Ok((
            Upload {
                repo: repo.to_string(),
                size: 0,
                hash_state: ResumableHasher::new(info.algorithm).to_bytes(),
                store_state: Vec::new(),
                closed: false,
            },
            false,
        )),
    }
}

/// `up`, rolled back to its last durable checkpoint if the machine went down uncleanly since it
/// was last written (`BlobStore::recover`: the file store acknowledges chunks from the page
/// cache). Its hash state is rebuilt from the bytes that survived and its row moved back, so
/// the `Range` every answer carries tells the client where to resume.
async fn recovered(state: &AppState, repo: &RepoName, id: &str, up: Upload) -> Result<Upload> {
    let content = &state.content;
    let Some(back) = content.store.recover(id, &up.store_state, up.size).await? else {
        return Ok(up);
    };
    let algorithm = ResumableHasher::from_bytes(&up.hash_state)
        .ok_or_else(|| Error::internal("corrupt upload hash state"))?
        .algorithm();
    let mut hasher = ResumableHasher::new(algorithm);
    let mut bytes = content.store.read_upload(id, 0..back.size).await?;
    while let Some(chunk) = futures::StreamExt::next(&mut bytes).await {
        hasher.update(&chunk.map_err(depot_store::Error::from)?);
    }
    let hash_state = hasher.to_bytes();
    let moved = content
        .meta
        .advance_upload(id, repo, up.size, back.size, &hash_state, &back.state)
        .await?;
    if !moved {
        // Another request rolled it back (or on) first: take the row as it is now.
        return match content.meta.upload(id).await? {
            Some(now) if !now.closed => Ok(now),
            _ => Err(Error::upload_unknown()),
        };
    }
    tracing::warn!(
        upload = id,
        from = up.size,
        to = back.size,
        "the machine restarted uncleanly since this upload was written: \
         rolled back to its last durable checkpoint"
    );
    Ok(Upload {
        size: back.size,
        hash_state,
        store_state: back.state,
        ..up
    })
}

/// Parses `Content-Range: <start>-<end>` (inclusive; a `bytes ` or `bytes=` prefix is tolerated).
fn content_range(call: &Call, location: &str, current: u64) -> Result<Option<(u64, u64)>> {
    let Some(raw) = call.header(&header::CONTENT_RANGE) else {
        return Ok(None);
    };
    let spec = raw
        .trim()
        .trim_start_matches("bytes")
        .trim_start_matches(['=', ' ']);
    let parsed = spec
        .split_once('-')
        .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)));
    match parsed {
        // `end` = u64::MAX would make the length wrap: no upload is that long.
        Some((start, end)) if end >= start && start == current && end < u64::MAX => {
            Ok(Some((start, end)))
        }
        Some(_) => Err(Error::range_not_satisfiable(location, current)),
        None => Err(Error::bad_request(
            Code::BlobUploadInvalid,
            format!("malformed Content-Range {raw:?}"),
        )),
    }
}

/// Writes the request body to a session at its current size, durably; returns what the store
/// holds now and the advanced hasher. The session's row is not touched. `last`: the upload is
/// committed right after.
async fn write_chunk(
    state: &AppState,
    call: &Call,
    body: Body,
    (repo, id): (&RepoName, &str),
    up: &Upload,
    last: bool,
) -> Result<(Written, ResumableHasher)> {
    let location = upload_location(repo, id);
    let hasher = ResumableHasher::from_bytes(&up.hash_state)
        .ok_or_else(|| Error::internal("corrupt upload hash state"))?;
    let range = content_range(call, &location, up.size)?;
    let expected = range.map(|(start, end)| end - start + 1);
    if let (Some(expected), Some(length)) = (expected, call.header(&header::CONTENT_LENGTH)) {
        if length.trim().parse::<u64>().ok() != Some(expected) {
            return Err(Error::size_invalid(
                "Content-Length does not match Content-Range",
            ));
        }
    }
    let mut sink = match state
        .content
        .store
        .append(id, up.size, &up.store_state)
        .await
    {
        Err(lost @ depot_store::Error::UploadLost { .. }) => {
            // The session cannot go on: every later request on it says unknown, and the
            // client starts a new upload.
            tracing::warn!(upload = id, cause = %lost, "closing an upload whose bytes are gone");
            state.content.meta.close_upload(id, repo).await?;
            return Err(lost.into());
        }
        sink => sink?,
    };
    let (hasher, received) = ingest(body, sink.as_mut(), hasher, expected).await?;
    if expected.is_some_and(|e| e != received) {
        return Err(Error::size_invalid(
            "body is shorter than its Content-Range",
        ));
    }
    let written = sink.finish(last).await?;
    if written.size != up.size + received {
        return Err(Error::internal(format!(
            "upload {id} holds {} bytes, expected {}",
            written.size,
            up.size + received
        )));
    }
    Ok((written, hasher))
}

/// Writes a chunk and moves the session's row forward to acknowledge it.
async fn append(
    state: &AppState,
    call: &Call,
    body: Body,
    repo: &RepoName,
    id: &str,
    up: Upload,
) -> Result<(u64, ResumableHasher)> {
    let (written, hasher) = write_chunk(state, call, body, (repo, id), &up, false).await?;
    let new_size = written.size;
    if !state
        .content
        .meta
        .advance_upload(
            id,
            repo,
            up.size,
            new_size,
            &hasher.to_bytes(),
            &written.state,
        )
        .await?
    {
        // Another request moved the session while this one wrote (only possible if the store's
        // writer lock was lost); its bytes win, ours are truncated away by the next append.
        let current = state.content.meta.upload(id).await?.map_or(0, |u| u.size);
        return Err(Error::range_not_satisfiable(
            &upload_location(repo, id),
            current,
        ));
    }
    Ok((new_size, hasher))
}

pub(crate) async fn patch(
    state: &AppState,
    call: &Call,
    body: Body,
    repo: &RepoName,
    id: &str,
) -> Result<Response> {
    let (up, _) = session(state, repo, id).await?;
    let (size, _) = append(state, call, body, repo, id, up).await?;
    Ok(upload_accepted(StatusCode::ACCEPTED, repo, id, size))
}

pub(crate) async fn finish(
    state: &AppState,
    call: &Call,
    body: Body,
    repo: &RepoName,
    id: &str,
) -> Result<Response> {
    let digest = match call.query("digest") {
        Some(d) => parse_digest(d)?,
        None => return Err(Error::digest_invalid("the closing PUT needs ?digest=")),
    };
    let (mut up, has_row) = session(state, repo, id).await?;
    // A session that has received nothing yet can still switch to the digest's algorithm.
    if up.size == 0 && digest.algorithm() != Algorithm::Sha256 {
        up.hash_state = ResumableHasher::new(digest.algorithm()).to_bytes();
    }
    // The final chunk is written but the row is not advanced: the session ends here either way.
    let (written, hasher) = if body_is_empty(&body) && call.header(&header::CONTENT_RANGE).is_none()
    {
        let hasher = ResumableHasher::from_bytes(&up.hash_state)
            .ok_or_else(|| Error::internal("corrupt upload hash state"))?;
        let written = Written {
            size: up.size,
            state: up.store_state.clone(),
        };
        (written, hasher)
    } else {
        match write_chunk(state, call, body, (repo, id), &up, true).await {
            Err(e) => return failed_close(state, repo, id, &digest, e).await,
            Ok(written) => written,
        }
    };
    if hasher.algorithm() != digest.algorithm() {
        // Opened without `?digest-algorithm=` (a SHOULD in the spec, so clients may leave it
        // out) and closed with a digest of another algorithm: the bytes are hashed once more.
        // The session ends here whatever the outcome: its bytes have left it.
        let committed = commit_rehashed(state, repo, id, &written, &digest).await;
        if has_row {
            state.content.meta.close_upload(id, repo).await?;
        }
        return committed.map(|()| blob_created(repo, &digest));
    }
    let committed = match commit(state, repo, id, &written, &hasher, &digest).await {
        Err(e) if e.code != Code::DigestInvalid => {
            return failed_close(state, repo, id, &digest, e).await;
        }
        Err(mismatch) => {
            // The session cannot succeed any more: free its bytes now rather than at expiry.
            state.content.store.discard(id, &written.state).await?;
            Err(mismatch)
        }
        Ok(()) => Ok(()),
    };
    // A session that never had a row needs no tombstone: its next use would start afresh,
    // which is harmless, and skipping the write keeps a POST + PUT push to one commit.
    if has_row {
        state.content.meta.close_upload(id, repo).await?;
    }
    committed.map(|()| blob_created(repo, &digest))
}

pub(crate) async fn status(state: &AppState, repo: &RepoName, id: &str) -> Result<Response> {
    let (up, _) = session(state, repo, id).await?;
    Ok(upload_accepted(StatusCode::NO_CONTENT, repo, id, up.size))
}

pub(crate) async fn cancel(state: &AppState, repo: &RepoName, id: &str) -> Result<Response> {
    let (up, _) = session(state, repo, id).await?;
    state.content.meta.close_upload(id, repo).await?;
    state.content.store.discard(id, &up.store_state).await?;
    Ok((StatusCode::NO_CONTENT, [(header::CONTENT_LENGTH, "0")]).into_response())
}
