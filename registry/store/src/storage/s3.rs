//! Blob bytes in S3 or any S3-compatible object store (aws-sdk-s3).
//!
//! An upload streams into an S3 multipart upload as it arrives: bytes are gathered into parts of
//! [`S3Store::part_size`] and each full part is uploaded while the next one fills (the only
//! buffers: at most two parts per upload in flight), hashed on the way by the caller. What is left after the last full
//! part when a request ends (the *tail*) is staged as a small object of its own, so the next
//! request, on this replica or another, continues from it. All of that is the upload's *state*
//! (multipart upload id, part ETags, staged tail), which the caller saves with the session's size
//! in one compare-and-set: a request that loses a race cannot change what the session holds,
//! because its parts carry other ETags and its tail another key.
//!
//! Committing never copies or re-reads the blob: the multipart upload is completed where it is
//! (`data/<upload-id>`), or, for a blob smaller than a part, the single object already written is
//! the blob. The object's key is the blob's location, which SQL maps from the digest. Tiny blobs
//! cost one `PutObject`.

use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_s3::primitives::ByteStream as S3Body;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier};
use aws_sdk_s3::Client;
use bytes::{Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use super::{deletable, BlobSink, BlobStore, ByteStream, Listed, Referenced, Written};
use crate::digest::Digest;
use crate::error::{Error, Result};

/// How to reach an S3-compatible store; credentials come from the standard AWS chain
/// (environment, profile, instance role).
#[derive(Debug, Clone, Default)]
pub struct S3Options {
    /// Endpoint URL for S3-compatible servers (Garage, MinIO, s3s); AWS when unset.
    pub endpoint: Option<String>,
    /// Region; from the AWS chain when unset, else `us-east-1`.
    pub region: Option<String>,
    /// Address buckets as `endpoint/bucket` rather than `bucket.endpoint`.
    pub force_path_style: bool,
}

/// An S3 client for `options`, with bounded timeouts: a store that stops answering turns into
/// a `503` for the client, never a hung request.
pub async fn s3_client(options: &S3Options) -> aws_sdk_s3::Client {
    use aws_config::timeout::TimeoutConfig;
    use std::time::Duration;
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(region) = &options.region {
        loader = loader.region(aws_config::Region::new(region.clone()));
    }
    let shared = loader.load().await;
    let mut builder = aws_sdk_s3::config::Builder::from(&shared)
        .force_path_style(options.force_path_style)
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .read_timeout(Duration::from_secs(60))
                .build(),
        );
    if shared.region().is_none() {
        builder = builder.region(aws_config::Region::new("us-east-1"));
    }
    if let Some(endpoint) = &options.endpoint {
        builder = builder.endpoint_url(endpoint);
    }
    aws_sdk_s3::Client::from_conf(builder.build())
}

/// Default part size: S3 wants at least 5 MiB for every part but the last, and allows 10,000
/// parts, so 16 MiB parts carry blobs up to 160 GB.
pub const DEFAULT_PART_SIZE: usize = 16 * 1024 * 1024;

/// How long a presigned blob URL stays valid: long enough to start a large download.
const PRESIGNED_FOR: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// Tries after a failed removal of staged objects (0.5 s doubling to 16 s: about a minute).
const DELETE_RETRIES: u32 = 7;

/// Where blobs live in a bucket.
#[derive(Clone)]
pub struct S3Store {
    client: Client,
    bucket: String,
    /// Key prefix, empty or ending in `/`.
    prefix: String,
    part_size: usize,
    /// Send clients to presigned URLs for blob GETs instead of streaming through the registry.
    redirect: bool,
    /// Asked before any object is deleted.
    referenced: Arc<dyn Referenced>,
}

impl std::fmt::Debug for S3Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Store")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("part_size", &self.part_size)
            .finish()
    }
}

/// An upload's state between requests.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct UploadState {
    /// The multipart upload, once a first full part was written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mpu: Option<String>,
    /// ETags of parts 1..=n, each exactly one part size long.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    parts: Vec<String>,
    /// The staged bytes after the last full part: an object key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tail: Option<String>,
    /// The whole blob already written as one object (a last request with no multipart upload).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    single: Option<String>,
    /// Earlier tails, no longer needed; removed when the upload ends.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    stale: Vec<String>,
}

impl UploadState {
    fn parse(bytes: &[u8]) -> Result<Self> {
        if bytes.is_empty() {
            return Ok(UploadState::default());
        }
        serde_json::from_slice(bytes).map_err(|e| Error::corrupt(format!("S3 upload state: {e}")))
    }

    fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("upload state always serializes")
    }
}

/// Every object-store failure is a `503`: the client's retry is safe, the session is unchanged.
fn unavailable(what: &str, e: impl std::fmt::Display) -> Error {
    Error::unavailable(format!("object store: {what}: {e}"))
}

/// How long an object-store call may take before the request gets a `503`, beyond the time its
/// body takes at [`SLOWEST_TRANSFER`]. A store that stops answering (a stalled node, a network
/// partition) then costs a client seconds, not the SDK's 60-second read timeout.
pub const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// The slowest transfer rate to the store still considered alive, bytes per second.
const SLOWEST_TRANSFER: u64 = 4 * 1024 * 1024;

/// Bounds an object-store call (S3 operation `what`, sending or receiving `bytes`) in time,
/// and records it in the metrics by operation and outcome.
trait Within<T, E>: std::future::Future<Output = std::result::Result<T, E>> + Sized {
    async fn within(self, what: &'static str, bytes: u64) -> Result<Self::Output> {
        let limit = CALL_TIMEOUT + std::time::Duration::from_secs(bytes / SLOWEST_TRANSFER);
        let started = std::time::Instant::now();
        let answer = tokio::time::timeout(limit, self).await;
        let outcome = match &answer {
            Ok(Ok(_)) => "ok",
            Ok(Err(_)) => "error",
            Err(_) => "timeout",
        };
        crate::metrics::s3_request(what, outcome, started.elapsed());
        answer.map_err(|_| unavailable(what, format!("no answer within {} s", limit.as_secs())))
    }
}

impl<F, T, E> Within<T, E> for F where F: std::future::Future<Output = std::result::Result<T, E>> {}

/// Parses `s3://bucket/prefix` into the bucket and a prefix that is empty or ends in `/`.
pub fn parse_url(url: &str) -> Option<(String, String)> {
    let rest = url.strip_prefix("s3://")?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return None;
    }
    let prefix = prefix.trim_matches('/');
    let prefix = if prefix.is_empty() {
        String::new()
    } else {
        format!("{prefix}/")
    };
    Some((bucket.to_owned(), prefix))
}

impl S3Store {
    /// A store in `bucket` under `prefix`; `referenced` says which objects are live blobs.
    pub fn new(
        client: Client,
        bucket: String,
        prefix: String,
        referenced: Arc<dyn Referenced>,
    ) -> Self {
        S3Store {
            client,
            bucket,
            prefix,
            part_size: DEFAULT_PART_SIZE,
            redirect: false,
            referenced,
        }
    }

    /// Answers blob GETs with a redirect to a presigned URL (clients must reach the endpoint).
    pub fn with_redirects(mut self, on: bool) -> Self {
        self.redirect = on;
        self
    }

    /// Uses parts of `bytes` (at least 5 MiB on real S3; tests go lower where the server allows).
    pub fn with_part_size(mut self, bytes: usize) -> Self {
        self.part_size = bytes.max(1);
        self
    }

    pub fn part_size(&self) -> usize {
        self.part_size
    }

    /// The object an upload's multipart upload (or single object) becomes.
    fn blob_key(&self, upload: &str) -> String {
        format!("{}data/{upload}", self.prefix)
    }

    /// A fresh key for a staged tail (unique, so racing requests never share one).
    fn tail_key(&self, upload: &str) -> String {
        format!(
            "{}data/{upload}.tail-{}",
            self.prefix,
            uuid::Uuid::new_v4().simple()
        )
    }

    async fn put(&self, key: &str, bytes: Bytes) -> Result<()> {
        let len = bytes.len() as u64;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(S3Body::from(bytes))
            .send()
            .within("PutObject", len)
            .await?
            .map_err(|e| unavailable("PutObject", e.into_service_error()))?;
        Ok(())
    }

    /// The first `len` bytes of `key` (a staged tail, at most one part).
    async fn get_prefix(&self, key: &str, len: u64) -> Result<Bytes> {
        if len == 0 {
            return Ok(Bytes::new());
        }
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .range(format!("bytes=0-{}", len - 1))
            .send()
            .within("GetObject", 0)
            .await?
            .map_err(|e| match e.into_service_error() {
                e if e.is_no_such_key() => Error::data_missing(key),
                e => unavailable("GetObject (staged tail)", e),
            })?;
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|e| unavailable("reading a staged tail", e))?
            .into_bytes();
        if (bytes.len() as u64) < len {
            return Err(Error::internal(format!(
                "staged tail {key} holds {} bytes, the session says {len}",
                bytes.len()
            )));
        }
        Ok(bytes.slice(..len as usize))
    }

    /// [`BlobStore::delete_many`], best effort and retried: a distributed store that cannot
    /// reach its quorum for a moment (a node restarting) answers `DeleteObjects` with per-key
    /// errors, which the SDK does not retry. A failed removal is tried again in the background
    /// for about a minute (each try asks again which keys are blobs, so none that became one is
    /// touched); what a crash or a longer outage leaves, `depot-gc reconcile` finds.
    async fn delete_keys(&self, keys: &[String]) {
        if keys.is_empty() || self.delete_many(keys).await.is_ok() {
            return;
        }
        let (store, keys) = (self.clone(), keys.to_vec());
        tokio::spawn(async move {
            let mut wait = std::time::Duration::from_millis(500);
            for attempt in 1..=DELETE_RETRIES {
                tokio::time::sleep(wait).await;
                match store.delete_many(&keys).await {
                    Ok(()) => return,
                    Err(e) if attempt == DELETE_RETRIES => tracing::warn!(
                        cause = %e,
                        "removing staged upload objects failed; depot-gc reconcile removes them"
                    ),
                    Err(_) => wait = (wait * 2).min(std::time::Duration::from_secs(16)),
                }
            }
        });
    }

    async fn upload_part(&self, upload: &str, state: &mut UploadState, bytes: Bytes) -> Result<()> {
        let mpu = self.multipart(upload, state).await?;
        let number = state.parts.len() as i32 + 1;
        let etag = self.put_part(upload, &mpu, number, bytes).await?;
        state.parts.push(etag);
        Ok(())
    }

    /// The upload's multipart upload, created on its first full part.
    async fn multipart(&self, upload: &str, state: &mut UploadState) -> Result<String> {
        if let Some(id) = &state.mpu {
            return Ok(id.clone());
        }
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(self.blob_key(upload))
            .send()
            .within("CreateMultipartUpload", 0)
            .await?
            .map_err(|e| unavailable("CreateMultipartUpload", e.into_service_error()))?;
        let id = created
            .upload_id
            .ok_or_else(|| Error::internal("CreateMultipartUpload returned no upload id"))?;
        state.mpu = Some(id.clone());
        Ok(id)
    }

    /// Uploads part `number` of multipart upload `mpu`; returns its ETag.
    async fn put_part(&self, upload: &str, mpu: &str, number: i32, bytes: Bytes) -> Result<String> {
        let len = bytes.len() as u64;
        let part = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(self.blob_key(upload))
            .upload_id(mpu)
            .part_number(number)
            .body(S3Body::from(bytes))
            .send()
            .within("UploadPart", len)
            .await?;
        let part = match part {
            Ok(part) => part,
            Err(e) => {
                let e = e.into_service_error();
                let code = e.meta().code().map(str::to_owned);
                let failed = unavailable("UploadPart", e);
                return Err(self.committed_or(upload, code.as_deref(), failed).await);
            }
        };
        part.e_tag
            .ok_or_else(|| Error::internal("UploadPart returned no ETag"))
    }

    /// `failed` (an `UploadPart` answered with error `code`), unless the upload cannot go on:
    /// its whole object is there (a commit whose answer was lost, the process killed before
    /// the session was closed), or its multipart upload is gone (completed or aborted by such a
    /// request, or a completion the store abandoned halfway when that request's connection
    /// dropped). Asked only after a failure, so a healthy upload pays nothing for it.
    async fn committed_or(&self, upload: &str, code: Option<&str>, failed: Error) -> Error {
        if let Ok(Some(_)) = self.stat(&self.blob_key(upload)).await {
            return Error::upload_lost(upload, "committed by an earlier request");
        }
        // `NoSuchUpload` is the API's answer for an unknown upload id; s3s-fs answers
        // `AccessDenied` instead, which with the credentials that created the upload (the
        // bucket still answers them) means the same.
        let gone = match code {
            Some("NoSuchUpload") => true,
            Some("AccessDenied") => self.probe().await.is_ok(),
            _ => false,
        };
        if gone {
            Error::upload_lost(upload, "its multipart upload is gone")
        } else {
            failed
        }
    }

    async fn abort(&self, upload: &str, mpu: &str) {
        match self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(self.blob_key(upload))
            .upload_id(mpu)
            .send()
            .within("AbortMultipartUpload", 0)
            .await
        {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::warn!(cause = %e.into_service_error(), "aborting a multipart upload failed")
            }
            Err(e) => tracing::warn!(cause = %e, "aborting a multipart upload failed"),
        }
    }

    /// Completes the upload's multipart upload `mpu` (its staged tail, if any, sent as the
    /// last part first).
    async fn complete(
        &self,
        upload: &str,
        state: &mut UploadState,
        mpu: &str,
        size: u64,
    ) -> Result<()> {
        let full = state.parts.len() as u64 * self.part_size as u64;
        if let Some(tail) = state.tail.take() {
            // The last request staged its tail (an empty closing PUT followed): it becomes the
            // final part. At most one part is read back; the blob itself never is.
            let bytes = self.get_prefix(&tail, size - full).await?;
            self.upload_part(upload, state, bytes).await?;
            state.stale.push(tail);
        }
        let parts: Vec<CompletedPart> = state
            .parts
            .iter()
            .enumerate()
            .map(|(i, etag)| {
                CompletedPart::builder()
                    .part_number(i as i32 + 1)
                    .e_tag(etag)
                    .build()
            })
            .collect();
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(self.blob_key(upload))
            .upload_id(mpu)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .within("CompleteMultipartUpload", 0)
            .await?
            .map_err(|e| unavailable("CompleteMultipartUpload", e.into_service_error()))?;
        Ok(())
    }

    /// Removes the upload's object and every staged tail under its key but `keep`: those its
    /// state names (`named`), and those a listing of the upload's own prefix finds, since a
    /// request whose acknowledgement was lost (its replica killed after the tail was written,
    /// or the database gone before the session row moved) staged a tail no state names. Both,
    /// because neither is enough alone: a store that just got a node back may list without the
    /// objects written while it was away (seen with Garage), and the state never names those
    /// unacknowledged tails. The upload's own object is always asked for by name too: a
    /// closing request whose acknowledgement was lost may have written it as the whole blob,
    /// and a listing that misses it then left it behind (seen once in the scale-out fault test:
    /// a 2 MiB orphan at `data/<upload>`). A committed blob there is never deleted: SQL refers to
    /// it, and [`deletable`] keeps what SQL refers to.
    async fn remove_leftovers(
        &self,
        upload: &str,
        keep: Option<&str>,
        named: &[String],
    ) -> Result<()> {
        let key = self.blob_key(upload);
        let tails = format!("{key}.tail-");
        let listed = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(&key)
            .send()
            .within("ListObjectsV2", 0)
            .await?
            .map_err(|e| unavailable("ListObjectsV2", e.into_service_error()))?;
        let mut keys: Vec<String> = listed
            .contents()
            .iter()
            .filter_map(|o| o.key())
            .filter(|k| *k == key || k.starts_with(&tails))
            .map(str::to_owned)
            .collect();
        for k in named.iter().chain(std::iter::once(&key)) {
            if !keys.contains(k) {
                keys.push(k.clone());
            }
        }
        keys.retain(|k| Some(k.as_str()) != keep);
        self.delete_keys(&keys).await;
        Ok(())
    }

    /// Everything an upload whose state is unknown may have left: its object, its staged tails
    /// (another upload's id may start with this one's: only these exact names are its own) and
    /// multipart uploads on it. Whichever of them a committed blob is stays.
    async fn sweep(&self, upload: &str) -> Result<()> {
        self.remove_leftovers(upload, None, &[]).await?;
        let key = self.blob_key(upload);
        // Some S3-compatible servers do not list multipart uploads; what cannot be listed here
        // is left to the bucket's abort-incomplete-multipart-upload lifecycle rule.
        let uploads = match self
            .client
            .list_multipart_uploads()
            .bucket(&self.bucket)
            .prefix(&key)
            .send()
            .within("ListMultipartUploads", 0)
            .await?
        {
            Ok(listed) => listed,
            Err(e) => {
                tracing::warn!(cause = %e.into_service_error(), "cannot list multipart uploads to abort");
                return Ok(());
            }
        };
        for u in uploads.uploads() {
            if let (Some(k), Some(id)) = (u.key(), u.upload_id()) {
                if k == key {
                    self.abort(upload, id).await;
                }
            }
        }
        Ok(())
    }
}

#[async_trait]
impl BlobStore for S3Store {
    async fn append(&self, upload: &str, offset: u64, state: &[u8]) -> Result<Box<dyn BlobSink>> {
        let state = UploadState::parse(state)?;
        if state.single.is_some() {
            return Err(Error::internal(format!(
                "upload {upload} was already finished"
            )));
        }
        let full = state.parts.len() as u64 * self.part_size as u64;
        if offset < full || offset - full >= self.part_size as u64 {
            return Err(Error::internal(format!(
                "upload {upload}: offset {offset} does not match its {} stored parts",
                state.parts.len()
            )));
        }
        let tail_len = offset - full;
        let mut buffer = BytesMut::with_capacity(self.part_size);
        if tail_len > 0 {
            let key = state
                .tail
                .as_deref()
                .ok_or_else(|| Error::internal(format!("upload {upload} lost its staged tail")))?;
            match self.get_prefix(key, tail_len).await {
                Ok(bytes) => buffer.extend_from_slice(&bytes),
                // A commit removes the staged tails: one whose answer was lost, or a removal
                // from outside. Either way the acknowledged bytes are gone.
                Err(e) if e.is_data_missing() => {
                    return Err(Error::upload_lost(
                        upload,
                        format!("staged tail {key} is gone"),
                    ))
                }
                Err(e) => return Err(e),
            }
        }
        Ok(Box::new(S3Sink {
            store: self.clone(),
            upload: upload.to_owned(),
            state,
            buffer,
            in_flight: None,
        }))
    }

    async fn commit(
        &self,
        upload: &str,
        state: &[u8],
        _digest: &Digest,
        size: u64,
    ) -> Result<String> {
        let mut state = UploadState::parse(state)?;
        let location = if let Some(single) = state.single.take() {
            single
        } else if let Some(mpu) = state.mpu.clone() {
            match self.complete(upload, &mut state, &mpu, size).await {
                Ok(()) => self.blob_key(upload),
                // An earlier try completed it and its answer was lost (the registry's database
                // went away before the session was closed, say): the multipart upload is gone
                // and the whole object is there. The key is this upload's own, so an object of
                // the right size there is exactly what it completed.
                Err(e) => match self.stat(&self.blob_key(upload)).await {
                    Ok(Some(n)) if n == size => self.blob_key(upload),
                    _ => return Err(e),
                },
            }
        } else if let Some(tail) = state.tail.take() {
            // Smaller than a part and staged by an earlier request: that object is the blob.
            tail
        } else {
            // Nothing was ever written: the empty blob.
            let key = self.blob_key(upload);
            self.put(&key, Bytes::new()).await?;
            key
        };
        if state.stale.is_empty() && state.mpu.is_none() {
            // One request wrote it all (a single object, or one staged tail): nothing else.
            return Ok(location);
        }
        // Best effort: the blob is whole either way, and `reconcile` finds what stays behind.
        if let Err(e) = self
            .remove_leftovers(upload, Some(&location), &state.stale)
            .await
        {
            tracing::warn!(cause = %e, "removing an upload's staged tails failed");
            self.delete_keys(&state.stale).await;
        }
        Ok(location)
    }

    async fn discard(&self, upload: &str, state: &[u8]) -> Result<()> {
        let state = UploadState::parse(state)?;
        if state.mpu.is_none() && state.tail.is_none() && state.single.is_none() {
            // State unknown (a request failed before saving any): look for what it left.
            return self.sweep(upload).await;
        }
        if let Some(mpu) = &state.mpu {
            self.abort(upload, mpu).await;
        }
        // What the state names, and what requests whose acknowledgement was lost staged.
        let mut named = state.stale.clone();
        named.extend(state.tail.clone());
        named.extend(state.single.clone());
        if let Err(e) = self.remove_leftovers(upload, None, &named).await {
            self.delete_keys(&named).await;
            return Err(e);
        }
        Ok(())
    }

    async fn read(&self, location: &str, range: Range<u64>) -> Result<ByteStream> {
        if range.is_empty() {
            return Ok(ByteStream::empty());
        }
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(location)
            .range(format!("bytes={}-{}", range.start, range.end - 1))
            .send()
            .within("GetObject", 0)
            .await?
            .map_err(|e| match e.into_service_error() {
                e if e.is_no_such_key() => Error::data_missing(location),
                e => unavailable("GetObject", e),
            })?;
        let stream = futures::stream::unfold(out.body, |mut body| async move {
            body.next()
                .await
                .map(|chunk| (chunk.map_err(std::io::Error::other), body))
        });
        Ok(ByteStream::from_stream(stream))
    }

    async fn stat(&self, location: &str) -> Result<Option<u64>> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(location)
            .send()
            .within("HeadObject", 0)
            .await?
        {
            Ok(out) => Ok(Some(out.content_length.unwrap_or(0).max(0) as u64)),
            Err(e) => {
                let e = e.into_service_error();
                if e.is_not_found() {
                    Ok(None)
                } else {
                    Err(unavailable("HeadObject", e))
                }
            }
        }
    }

    async fn probe(&self) -> Result<()> {
        self.client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .within("HeadBucket", 0)
            .await?
            .map(|_| ())
            .map_err(|e| unavailable("HeadBucket", e.into_service_error()))
    }

    async fn direct_url(&self, location: &str) -> Result<Option<String>> {
        if !self.redirect {
            return Ok(None);
        }
        let config = aws_sdk_s3::presigning::PresigningConfig::expires_in(PRESIGNED_FOR)
            .map_err(|e| Error::internal(format!("presigning: {e}")))?;
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(location)
            .presigned(config)
            .await
            .map_err(|e| unavailable("presigning GetObject", e.into_service_error()))?;
        Ok(Some(request.uri().to_owned()))
    }

    /// `DeleteObjects`, a thousand keys per request (the API's limit), of the keys no blob
    /// refers to.
    async fn delete_many(&self, locations: &[String]) -> Result<()> {
        let keys = deletable(self.referenced.as_ref(), locations).await?;
        for chunk in keys.chunks(1000) {
            let objects: Vec<ObjectIdentifier> = chunk
                .iter()
                .map(|k| ObjectIdentifier::builder().key(k).build())
                .collect::<std::result::Result<_, _>>()
                .map_err(|e| Error::internal(format!("object key: {e}")))?;
            let delete = Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build()
                .map_err(|e| Error::internal(format!("DeleteObjects request: {e}")))?;
            let out = self
                .client
                .delete_objects()
                .bucket(&self.bucket)
                .delete(delete)
                .send()
                .within("DeleteObjects", 0)
                .await?
                .map_err(|e| unavailable("DeleteObjects", e.into_service_error()))?;
            if let Some(e) = out.errors().first() {
                return Err(unavailable(
                    "DeleteObjects",
                    format!(
                        "{}: {}",
                        e.key().unwrap_or("?"),
                        e.message().unwrap_or("failed")
                    ),
                ));
            }
        }
        Ok(())
    }

    /// `ListObjectsV2` under `data/`, a page (up to 1000 keys) per call. A key
    /// `data/<upload>.tail-...` is an upload session's staged tail; any other is a blob (or an
    /// upload's object never committed).
    async fn list(&self, cursor: Option<String>) -> Result<(Vec<Listed>, Option<String>)> {
        let prefix = format!("{}data/", self.prefix);
        let out = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(&prefix)
            .set_continuation_token(cursor)
            .send()
            .within("ListObjectsV2", 0)
            .await?
            .map_err(|e| unavailable("ListObjectsV2", e.into_service_error()))?;
        let listed = out
            .contents()
            .iter()
            .filter_map(|o| {
                let key = o.key()?.to_owned();
                let name = key.strip_prefix(&prefix)?;
                let upload = name.split_once(".tail-").map(|(u, _)| u.to_owned());
                Some(Listed {
                    upload,
                    size: o.size().unwrap_or(0).max(0) as u64,
                    modified_ms: o
                        .last_modified()
                        .and_then(|t| t.to_millis().ok())
                        .unwrap_or(0),
                    location: key,
                })
            })
            .collect();
        let next = if out.is_truncated() == Some(true) {
            out.next_continuation_token().map(str::to_owned)
        } else {
            None
        };
        Ok((listed, next))
    }
}

/// One request's writer: full parts go up as soon as they fill; the rest waits in `buffer`.
/// A part uploads while the next one fills from the socket (one in flight: the client is not
/// kept waiting for each part's round trip, and an upload holds at most two parts in memory).
struct S3Sink {
    store: S3Store,
    upload: String,
    state: UploadState,
    buffer: BytesMut,
    /// The part uploading now; its ETag joins `state.parts` once it lands, before the next
    /// part starts (parts are recorded in order, and only those S3 acknowledged).
    in_flight: Option<tokio::task::JoinHandle<Result<String>>>,
}

impl S3Sink {
    /// Waits for the part in flight and records it.
    async fn land(&mut self) -> Result<()> {
        if let Some(part) = self.in_flight.take() {
            let etag = part
                .await
                .map_err(|e| Error::internal(format!("part upload task: {e}")))??;
            self.state.parts.push(etag);
        }
        Ok(())
    }
}

impl Drop for S3Sink {
    /// A request that ends without `finish` (a failure, a client gone) stops its part upload:
    /// nothing will record it, and the multipart upload's abort or the session's next request
    /// (which uploads that part number again) supersedes whatever of it landed.
    fn drop(&mut self) {
        if let Some(part) = self.in_flight.take() {
            part.abort();
        }
    }
}

#[async_trait]
impl BlobSink for S3Sink {
    async fn write(&mut self, chunk: Bytes) -> Result<()> {
        self.buffer.extend_from_slice(&chunk);
        while self.buffer.len() >= self.store.part_size {
            let part = self.buffer.split_to(self.store.part_size).freeze();
            self.land().await?;
            let mpu = self.store.multipart(&self.upload, &mut self.state).await?;
            let number = self.state.parts.len() as i32 + 1;
            let (store, upload) = (self.store.clone(), self.upload.clone());
            self.in_flight = Some(tokio::spawn(async move {
                store.put_part(&upload, &mpu, number, part).await
            }));
        }
        Ok(())
    }

    async fn finish(mut self: Box<Self>, last: bool) -> Result<Written> {
        self.land().await?;
        let store = self.store.clone();
        let upload = std::mem::take(&mut self.upload);
        let mut state = std::mem::take(&mut self.state);
        let buffer = std::mem::take(&mut self.buffer);
        let size = state.parts.len() as u64 * store.part_size as u64 + buffer.len() as u64;
        state.stale.extend(state.tail.take());
        if last && state.mpu.is_some() {
            if !buffer.is_empty() {
                store
                    .upload_part(&upload, &mut state, buffer.freeze())
                    .await?;
            }
        } else if last {
            let key = store.blob_key(&upload);
            store.put(&key, buffer.freeze()).await?;
            state.single = Some(key);
        } else if !buffer.is_empty() {
            let key = store.tail_key(&upload);
            store.put(&key, buffer.freeze()).await?;
            state.tail = Some(key);
        }
        Ok(Written {
            size,
            state: state.to_bytes(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Algorithm;

    #[test]
    fn urls() {
        assert_eq!(parse_url("s3://b"), Some(("b".into(), String::new())));
        assert_eq!(parse_url("s3://b/"), Some(("b".into(), String::new())));
        assert_eq!(parse_url("s3://b/x/y/"), Some(("b".into(), "x/y/".into())));
        assert_eq!(parse_url("s3:///x"), None);
        assert_eq!(parse_url("file:/x"), None);
    }

    /// A store on the S3 server named by `DEPOT_TEST_S3_ENDPOINT` (`.ci/run` starts s3s-fs),
    /// in a fresh bucket.
    async fn test_store() -> Option<(S3Store, Arc<crate::storage::KnownLocations>)> {
        let Ok(endpoint) = std::env::var("DEPOT_TEST_S3_ENDPOINT") else {
            eprintln!("DEPOT_TEST_S3_ENDPOINT not set; the S3 store is covered by .ci/run");
            return None;
        };
        let client = crate::storage::s3_client(&endpoint_config(&endpoint)).await;
        let bucket = format!("test-{}", uuid::Uuid::new_v4().simple());
        client.create_bucket().bucket(&bucket).send().await.unwrap();
        let known = crate::storage::KnownLocations::new();
        Some((
            S3Store::new(client, bucket, "registry/".into(), known.clone()),
            known,
        ))
    }

    fn endpoint_config(endpoint: &str) -> crate::storage::S3Options {
        crate::storage::S3Options {
            endpoint: Some(endpoint.to_owned()),
            region: Some("us-east-1".into()),
            force_path_style: true,
        }
    }

    #[tokio::test]
    async fn shared_suite() {
        let Some((store, known)) = test_store().await else {
            return;
        };
        crate::storage::suite::run(&store, &known).await;
    }

    /// Uploads that cross part boundaries in uneven requests, closed with and without a final
    /// chunk, come back intact.
    #[tokio::test]
    async fn parts_and_staged_tails() {
        let Some((store, _)) = test_store().await else {
            return;
        };
        let store = store.with_part_size(5 * 1024 * 1024);
        let data: Vec<u8> = (0..(13 * 1024 * 1024 + 12_345) as u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let digest = Digest::of(Algorithm::Sha256, &data);
        let mib = 1024 * 1024;
        for (id, cuts, last_has_bytes) in [
            ("a", vec![3 * mib, 9 * mib, data.len()], true),
            ("b", vec![6 * mib, 10 * mib + 7, data.len()], false),
            ("c", vec![data.len()], true),
        ] {
            let mut state = Vec::new();
            let mut offset = 0;
            for (i, &end) in cuts.iter().enumerate() {
                let last = i + 1 == cuts.len() && last_has_bytes;
                let mut sink = store.append(id, offset as u64, &state).await.unwrap();
                for frame in data[offset..end].chunks(300_001) {
                    sink.write(Bytes::copy_from_slice(frame)).await.unwrap();
                }
                let written = sink.finish(last).await.unwrap();
                assert_eq!(written.size, end as u64);
                state = written.state;
                offset = end;
            }
            let location = store
                .commit(id, &state, &digest, data.len() as u64)
                .await
                .unwrap();
            assert_eq!(location, store.blob_key(id));
            let body = store.read(&location, 0..data.len() as u64).await.unwrap();
            let back = body.collect().await.unwrap();
            assert!(back == data, "upload {id} came back different");
            let middle = store
                .read(&location, 5 * mib as u64..6 * mib as u64 + 3)
                .await
                .unwrap();
            assert_eq!(middle.collect().await.unwrap(), &data[5 * mib..6 * mib + 3]);
            // Only the blob is left under the upload's key: staged tails are gone.
            let listed = store
                .client
                .list_objects_v2()
                .bucket(&store.bucket)
                .prefix(store.blob_key(id))
                .send()
                .await
                .unwrap();
            assert_eq!(listed.contents().len(), 1, "leftovers for upload {id}");
        }
    }

    /// A part uploads while the next one fills. A request that ends without `finish` (the
    /// client gone with a part in flight, others landed but unrecorded) changes nothing the
    /// session holds: the next request, from the acknowledged offset and state, uploads those
    /// part numbers again and the blob comes back intact.
    #[tokio::test]
    async fn a_request_dropped_with_a_part_in_flight_resumes_intact() {
        let Some((store, _)) = test_store().await else {
            return;
        };
        let store = store.with_part_size(5 * 1024 * 1024);
        let mib = 1024 * 1024;
        let data: Vec<u8> = (0..(17 * mib + 999) as u32)
            .map(|i| (i.wrapping_mul(2_246_822_519) >> 11) as u8)
            .collect();
        let digest = Digest::of(Algorithm::Sha256, &data);
        // First request: one part, acknowledged.
        let mut sink = store.append("p", 0, &[]).await.unwrap();
        sink.write(Bytes::copy_from_slice(&data[..5 * mib]))
            .await
            .unwrap();
        let first = sink.finish(false).await.unwrap();
        assert_eq!(first.size, 5 * mib as u64);
        // Second request: two more parts' worth of bytes (one landed, one in flight), then
        // the request is gone. Different bytes, as a confused client might send.
        let mut sink = store.append("p", first.size, &first.state).await.unwrap();
        for frame in vec![7u8; 11 * mib].chunks(300_001) {
            sink.write(Bytes::copy_from_slice(frame)).await.unwrap();
        }
        drop(sink);
        // Third request: the rest, from the acknowledged offset.
        let mut sink = store.append("p", first.size, &first.state).await.unwrap();
        for frame in data[5 * mib..].chunks(300_001) {
            sink.write(Bytes::copy_from_slice(frame)).await.unwrap();
        }
        let done = sink.finish(true).await.unwrap();
        assert_eq!(done.size, data.len() as u64);
        let location = store
            .commit("p", &done.state, &digest, data.len() as u64)
            .await
            .unwrap();
        let back = store
            .read(&location, 0..data.len() as u64)
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        assert!(back == data, "the resumed upload came back different");
    }

    /// A request that staged its tail but was never acknowledged (its replica killed before
    /// the session row moved, or the database gone at that moment) leaves a tail the session
    /// does not name; the client sends those bytes again. Closing the session (or discarding
    /// it) removes every tail of the upload, named or not: nothing is left for `reconcile`.
    #[tokio::test]
    async fn tails_of_unacknowledged_requests_go_with_the_session() {
        let Some((store, _)) = test_store().await else {
            return;
        };
        let store = store.with_part_size(5 * 1024 * 1024);
        let data: Vec<u8> = (0..(7 * 1024 * 1024 + 999) as u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
            .collect();
        let digest = Digest::of(Algorithm::Sha256, &data);
        let cut = 6 * 1024 * 1024 + 17;
        let under = |id: &str| {
            let (store, key) = (&store, store.blob_key(id));
            async move {
                let listed = store
                    .client
                    .list_objects_v2()
                    .bucket(&store.bucket)
                    .prefix(key)
                    .send()
                    .await
                    .unwrap();
                listed.contents().len()
            }
        };
        for (id, close) in [("commit", true), ("discard", false)] {
            // The first request: its state is lost, as if never acknowledged.
            let mut sink = store.append(id, 0, &[]).await.unwrap();
            sink.write(Bytes::copy_from_slice(&data[..cut]))
                .await
                .unwrap();
            sink.finish(false).await.unwrap();
            // The client's retry of the same bytes, acknowledged this time.
            let mut sink = store.append(id, 0, &[]).await.unwrap();
            sink.write(Bytes::copy_from_slice(&data[..cut]))
                .await
                .unwrap();
            let state = sink.finish(false).await.unwrap().state;
            if close {
                let mut sink = store.append(id, cut as u64, &state).await.unwrap();
                sink.write(Bytes::copy_from_slice(&data[cut..]))
                    .await
                    .unwrap();
                let state = sink.finish(true).await.unwrap().state;
                let location = store
                    .commit(id, &state, &digest, data.len() as u64)
                    .await
                    .unwrap();
                let back = store.read(&location, 0..data.len() as u64).await.unwrap();
                assert!(back.collect().await.unwrap() == data);
                assert_eq!(under(id).await, 1, "only the blob is left of {id}");
            } else {
                store.discard(id, &state).await.unwrap();
                assert_eq!(under(id).await, 0, "nothing is left of {id}");
            }
        }
    }

    /// A commit whose answer was lost (the object store completed the multipart upload, then
    /// the registry's database went away before the session closed) is tried again by the
    /// client's retry: it finds the blob it made instead of failing on the finished upload.
    #[tokio::test]
    async fn a_commit_tried_again_finds_the_blob_it_completed() {
        let Some((store, _)) = test_store().await else {
            return;
        };
        let store = store.with_part_size(5 * 1024 * 1024);
        let data: Vec<u8> = (0..(6 * 1024 * 1024 + 77) as u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 9) as u8)
            .collect();
        let digest = Digest::of(Algorithm::Sha256, &data);
        let mut sink = store.append("again", 0, &[]).await.unwrap();
        sink.write(Bytes::copy_from_slice(&data)).await.unwrap();
        let state = sink.finish(false).await.unwrap().state;
        let size = data.len() as u64;
        let first = store.commit("again", &state, &digest, size).await.unwrap();
        let second = store.commit("again", &state, &digest, size).await.unwrap();
        assert_eq!(first, second);
        let back = store.read(&second, 0..size).await.unwrap();
        assert!(back.collect().await.unwrap() == data);
    }
}
