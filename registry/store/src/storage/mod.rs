//! Blob byte storage behind one trait, so the filesystem store (embedded default) and object
//! stores share the upload pipeline, the handlers and one test suite.
//!
//! The store knows nothing of repositories: it keeps upload bytes under an upload id and returns,
//! when an upload is committed, the *location* of the blob (an opaque string: for files the
//! digest, for an object store the object's key). SQL maps each digest to its location, so a
//! store never has to move or copy bytes to put a blob under its digest.
//!
//! A store may also keep per-upload *state* between requests (for an object store: the multipart
//! upload and its parts). The state is returned by [`BlobSink::finish`] and saved by the caller
//! in the session's row together with its size, in the same compare-and-set, so whichever
//! request wins a race also decides which bytes the session holds.
//!
//! Nothing a store deletes can be a stored blob's bytes: every store is built with a
//! [`Referenced`] (the metadata database) and asks it, through [`deletable`], for the exact keys
//! it is about to delete, whichever path deletes (a duplicate dropped, an upload discarded or
//! swept, garbage collection, `reconcile`). A stale upload state or a wrong key cannot reach a
//! live blob.

mod checkpoint;
pub mod coalesce;
pub mod file;
#[cfg(feature = "s3")]
pub mod s3;

use std::collections::HashSet;
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

use crate::digest::Digest;
use crate::error::{Error, Result};

pub use depot_gc::Listed;
pub use file::FileStore;
#[cfg(feature = "s3")]
pub use s3::{s3_client, S3Options, S3Store};

/// Decides which stored objects some blob's metadata points at. The one answer every
/// destructive path of a store asks before it deletes.
#[async_trait]
pub trait Referenced: Send + Sync + 'static {
    /// Of `locations`, those a stored blob's location is.
    async fn referenced(&self, locations: &[String]) -> Result<HashSet<String>>;
}

/// Of `keys`, those a store may delete: the ones no blob refers to. A referenced key handed to
/// a delete is a caller's mistake (or a retry of a request that had already committed it): it
/// is kept and said so in the log.
pub async fn deletable(referenced: &dyn Referenced, keys: &[String]) -> Result<Vec<String>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let live = referenced.referenced(keys).await?;
    let mut out = Vec::with_capacity(keys.len());
    for key in keys {
        if live.contains(key) {
            tracing::warn!(location = %key, "not deleting an object a stored blob refers to");
        } else if !out.contains(key) {
            out.push(key.clone());
        }
    }
    Ok(out)
}

/// A [`Referenced`] over a fixed set (tests, and tools that hold no database).
#[derive(Debug, Default)]
pub struct KnownLocations(pub std::sync::Mutex<HashSet<String>>);

impl KnownLocations {
    pub fn new() -> Arc<Self> {
        Arc::new(KnownLocations::default())
    }

    pub fn insert(&self, location: &str) {
        self.0.lock().unwrap().insert(location.to_owned());
    }
}

#[async_trait]
impl Referenced for KnownLocations {
    async fn referenced(&self, locations: &[String]) -> Result<HashSet<String>> {
        let known = self.0.lock().unwrap();
        Ok(locations
            .iter()
            .filter(|l| known.contains(*l))
            .cloned()
            .collect())
    }
}

/// Where blob bytes live.
#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Opens a writer that appends to upload `upload` at `offset`, given the `state` the previous
    /// request's [`BlobSink::finish`] returned (empty for a new upload), discarding any bytes
    /// past `offset` left by an interrupted request. May fail with `BLOB_UPLOAD_INVALID` (416)
    /// when another request is writing to the same upload.
    async fn append(&self, upload: &str, offset: u64, state: &[u8]) -> Result<Box<dyn BlobSink>>;

    /// Makes the first `size` bytes of `upload` a committed blob (digest `digest`, already
    /// verified by the caller), durably, and returns its location. The upload is gone afterwards.
    async fn commit(
        &self,
        upload: &str,
        state: &[u8],
        digest: &Digest,
        size: u64,
    ) -> Result<String>;

    /// Forgets an upload's bytes (cancelled, failed, abandoned, or a duplicate of a stored
    /// blob). Unknown uploads are fine; objects a stored blob refers to are kept.
    async fn discard(&self, upload: &str, state: &[u8]) -> Result<()>;

    /// For a store that acknowledges chunks before they are durable: if the machine went down
    /// uncleanly since `upload` (at `size`, with `state`) was last written, how much of it is
    /// sure to have survived, and the state to carry from there. `None`: all of it (the
    /// default, for stores that acknowledge only durable bytes).
    async fn recover(&self, _upload: &str, _state: &[u8], _size: u64) -> Result<Option<Written>> {
        Ok(None)
    }

    /// Streams `range` of an upload in progress: to hash its bytes again after [`Self::recover`]
    /// rolled it back. Only stores that recover need it.
    async fn read_upload(&self, upload: &str, _range: Range<u64>) -> Result<ByteStream> {
        Err(Error::internal(format!(
            "this store cannot read upload {upload} back"
        )))
    }

    /// Streams `range` of the committed blob at `location`.
    async fn read(&self, location: &str, range: Range<u64>) -> Result<ByteStream>;

    /// The size of the committed blob at `location`, if it is there.
    async fn stat(&self, location: &str) -> Result<Option<u64>>;

    /// Removes committed blobs' bytes that no blob refers to any more (garbage collection, a
    /// duplicate copy): one request per thousand on S3. Missing objects are fine; referenced
    /// ones are kept.
    async fn delete_many(&self, locations: &[String]) -> Result<()>;

    /// One page of everything the store holds (committed blobs, and what upload sessions
    /// left), after `cursor`, with the next cursor if there is more: for `depot-gc reconcile`.
    async fn list(&self, cursor: Option<String>) -> Result<(Vec<Listed>, Option<String>)>;

    /// A URL clients may fetch the blob at `location` from directly for a while (a presigned
    /// object-store URL), or `None` when the registry must serve it itself.
    async fn direct_url(&self, _location: &str) -> Result<Option<String>> {
        Ok(None)
    }

    /// Whether the store answers at all (a readiness probe): one cheap request, `Unavailable`
    /// when it does not.
    async fn probe(&self) -> Result<()>;
}

/// A blob's bytes as they come from a store: one buffer (a mapped file) or a stream of chunks
/// (an object store's response), handed to whoever sends them on without a copy.
pub struct ByteStream(ByteStreamInner);

enum ByteStreamInner {
    Whole(Option<Bytes>),
    Chunks(futures::stream::BoxStream<'static, std::io::Result<Bytes>>),
}

impl ByteStream {
    pub fn empty() -> Self {
        ByteStream(ByteStreamInner::Whole(None))
    }

    pub fn from_bytes(bytes: Bytes) -> Self {
        ByteStream(ByteStreamInner::Whole(Some(bytes)))
    }

    pub fn from_stream(
        stream: impl futures::Stream<Item = std::io::Result<Bytes>> + Send + 'static,
    ) -> Self {
        ByteStream(ByteStreamInner::Chunks(Box::pin(stream)))
    }

    /// The bytes as one buffer if that is what the store handed over (a mapped file), else the
    /// stream back: a sender hands a whole buffer to the socket in one piece, which is
    /// measurably faster for a pull than the same bytes as a one-item stream.
    pub fn into_whole(self) -> Result<Bytes, ByteStream> {
        match self.0 {
            ByteStreamInner::Whole(bytes) => Ok(bytes.unwrap_or_default()),
            chunks => Err(ByteStream(chunks)),
        }
    }

    /// Every byte, in one buffer (for small blobs: an image config, a chunk of the read cache).
    pub async fn collect(self) -> std::io::Result<Bytes> {
        use futures::StreamExt;
        match self.0 {
            ByteStreamInner::Whole(bytes) => Ok(bytes.unwrap_or_default()),
            ByteStreamInner::Chunks(mut stream) => {
                let mut out = bytes::BytesMut::new();
                while let Some(chunk) = stream.next().await {
                    out.extend_from_slice(&chunk?);
                }
                Ok(out.freeze())
            }
        }
    }
}

impl futures::Stream for ByteStream {
    type Item = std::io::Result<Bytes>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        match &mut self.0 {
            ByteStreamInner::Whole(bytes) => std::task::Poll::Ready(bytes.take().map(Ok)),
            ByteStreamInner::Chunks(stream) => stream.as_mut().poll_next(cx),
        }
    }
}

/// What a request's writer leaves behind: the upload's total length and the store's state for
/// the next request (to be saved with the session).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub size: u64,
    pub state: Vec<u8>,
}

/// Receives one request's worth of upload bytes.
#[async_trait]
pub trait BlobSink: Send {
    async fn write(&mut self, chunk: Bytes) -> Result<()>;

    /// Makes every byte written so far durable. `last` says no bytes will follow (the upload is
    /// committed next), so a store may write its final piece where it belongs instead of
    /// staging it for a later request.
    async fn finish(self: Box<Self>, last: bool) -> Result<Written>;
}

#[cfg(test)]
pub(crate) mod suite {
    //! The shared test suite every [`BlobStore`] must pass.
    use super::*;
    use crate::digest::Algorithm;

    async fn read_all(store: &dyn BlobStore, location: &str, range: Range<u64>) -> Vec<u8> {
        let body = store.read(location, range).await.unwrap();
        body.collect().await.unwrap().to_vec()
    }

    /// Writes `data` to a fresh upload in `pieces` requests, each resuming from the state the
    /// previous one left, and commits it.
    async fn upload(store: &dyn BlobStore, id: &str, data: &[u8], pieces: &[usize]) -> String {
        let digest = Digest::of(Algorithm::Sha256, data);
        let mut state = Vec::new();
        let mut offset = 0usize;
        for (i, &end) in pieces.iter().enumerate() {
            let mut sink = store.append(id, offset as u64, &state).await.unwrap();
            // Uneven frames, as a socket delivers them.
            for frame in data[offset..end].chunks(70_001) {
                sink.write(Bytes::copy_from_slice(frame)).await.unwrap();
            }
            let written = sink.finish(i + 1 == pieces.len()).await.unwrap();
            assert_eq!(written.size, end as u64);
            state = written.state;
            offset = end;
        }
        store
            .commit(id, &state, &digest, data.len() as u64)
            .await
            .unwrap()
    }

    /// `known` is the [`Referenced`] `store` was built with.
    pub async fn run(store: &dyn BlobStore, known: &KnownLocations) {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();

        // One request, then three (resuming from the saved state each time).
        let one = upload(store, "u1", &data, &[data.len()]).await;
        assert_eq!(store.stat(&one).await.unwrap(), Some(data.len() as u64));
        assert_eq!(read_all(store, &one, 0..data.len() as u64).await, data);
        assert_eq!(read_all(store, &one, 5..70_000).await, &data[5..70_000]);
        let three = upload(store, "u2", &data, &[1, 100_000, data.len()]).await;
        assert_eq!(read_all(store, &three, 0..data.len() as u64).await, data);

        // A request cut short leaves bytes past the acknowledged offset; the next request from
        // that offset (and its state) replaces them.
        let mut sink = store.append("u3", 0, &[]).await.unwrap();
        sink.write(Bytes::copy_from_slice(&data[..100_000]))
            .await
            .unwrap();
        let first = sink.finish(false).await.unwrap();
        let mut sink = store.append("u3", 100_000, &first.state).await.unwrap();
        sink.write(Bytes::from_static(b"garbage from a dropped request"))
            .await
            .unwrap();
        drop(sink);
        let mut sink = store.append("u3", 100_000, &first.state).await.unwrap();
        sink.write(Bytes::copy_from_slice(&data[100_000..]))
            .await
            .unwrap();
        let done = sink.finish(true).await.unwrap();
        let digest = Digest::of(Algorithm::Sha256, &data);
        let resumed = store
            .commit("u3", &done.state, &digest, data.len() as u64)
            .await
            .unwrap();
        assert_eq!(read_all(store, &resumed, 0..data.len() as u64).await, data);

        // The empty blob.
        let empty = upload(store, "u4", b"", &[0]).await;
        assert_eq!(store.stat(&empty).await.unwrap(), Some(0));
        assert_eq!(read_all(store, &empty, 0..0).await, b"");

        // Discarded uploads vanish; discarding twice, or an unknown upload, is fine.
        let mut sink = store.append("u5", 0, &[]).await.unwrap();
        sink.write(Bytes::from_static(b"x")).await.unwrap();
        let written = sink.finish(false).await.unwrap();
        store.discard("u5", &written.state).await.unwrap();
        store.discard("u5", &written.state).await.unwrap();
        store.discard("never", &[]).await.unwrap();

        // Listing shows every committed blob, and an upload's leftovers under its id.
        let mut sink = store.append("u6", 0, &[]).await.unwrap();
        sink.write(Bytes::from_static(b"left behind"))
            .await
            .unwrap();
        let left = sink.finish(false).await.unwrap();
        let mut listed = Vec::new();
        let mut cursor = None;
        loop {
            let (page, next) = store.list(cursor).await.unwrap();
            listed.extend(page);
            match next {
                Some(n) => cursor = Some(n),
                None => break,
            }
        }
        for location in [&one, &three, &resumed, &empty] {
            let l = listed.iter().find(|l| &l.location == location);
            let l = l.unwrap_or_else(|| panic!("{location} not listed in {listed:?}"));
            assert_eq!(l.upload, None);
            assert!(l.modified_ms > 0);
        }
        assert!(
            listed.iter().any(|l| l.upload.as_deref() == Some("u6")),
            "{listed:?}"
        );
        store.discard("u6", &left.state).await.unwrap();

        // Deleting a blob no metadata refers to removes it; a missing one is fine.
        store.delete_many(std::slice::from_ref(&one)).await.unwrap();
        assert_eq!(store.stat(&one).await.unwrap(), None);
        store.delete_many(std::slice::from_ref(&one)).await.unwrap();

        // Whatever path asks, the bytes of a blob the metadata refers to stay: a delete naming
        // it, or the discard of an upload whose (stale) state still names what became the blob
        // (a closing PUT with no body, retried after its commit succeeded).
        let mut sink = store.append("u7", 0, &[]).await.unwrap();
        sink.write(Bytes::copy_from_slice(&data[..1000]))
            .await
            .unwrap();
        let staged = sink.finish(false).await.unwrap();
        let digest = Digest::of(Algorithm::Sha256, &data[..1000]);
        let tail = store
            .commit("u7", &staged.state, &digest, 1000)
            .await
            .unwrap();
        known.insert(&tail);
        known.insert(&three);
        store.discard("u7", &staged.state).await.unwrap();
        store.discard("u7", &[]).await.unwrap();
        store
            .delete_many(&[tail.clone(), three.clone()])
            .await
            .unwrap();
        assert_eq!(read_all(store, &tail, 0..1000).await, &data[..1000]);
        assert_eq!(read_all(store, &three, 0..10).await, &data[..10]);

        // Reading a blob whose bytes are gone is a server fault, not "retry later".
        let Err(e) = store.read(&one, 0..10).await else {
            panic!("the bytes are gone, yet the read succeeded");
        };
        assert!(e.is_data_missing(), "{e:?}");

        known.0.lock().unwrap().clear();
        let rest = vec![three.clone(), resumed.clone(), empty.clone(), tail.clone()];
        store.delete_many(&rest).await.unwrap();
        for location in &rest {
            assert_eq!(store.stat(location).await.unwrap(), None);
        }
    }
}
