//! Blob byte storage behind one trait, so the filesystem store (embedded default) and object
//! stores share the upload pipeline, the handlers and one test suite.
//!
//! The store knows nothing of repositories or sessions' metadata: it keeps upload bytes under an
//! upload id and committed blobs under their digest. What a repository may see lives in SQL.

pub mod file;

use std::ops::Range;

use async_trait::async_trait;
use axum::body::Body;
use bytes::Bytes;

use crate::digest::Digest;
use crate::error::Result;

pub use file::FileStore;

/// Where blob bytes live.
#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Opens a writer that appends to upload `upload` at `offset`, discarding any bytes past
    /// `offset` left by an interrupted request. Fails with `BLOB_UPLOAD_INVALID` (416) when
    /// another request is writing to the same upload.
    async fn append(&self, upload: &str, offset: u64) -> Result<Box<dyn BlobSink>>;

    /// Makes the first `size` bytes of `upload` the blob `digest`, atomically and durably; the
    /// upload is gone afterwards. If the blob is already stored, the upload's bytes are dropped.
    async fn commit(&self, upload: &str, digest: &Digest, size: u64) -> Result<()>;

    /// Forgets an upload's bytes (cancelled, failed or abandoned). Unknown uploads are fine.
    async fn discard(&self, upload: &str) -> Result<()>;

    /// Streams `range` of a committed blob.
    async fn read(&self, digest: &Digest, range: Range<u64>) -> Result<Body>;

    /// The size of a committed blob, if stored.
    async fn stat(&self, digest: &Digest) -> Result<Option<u64>>;

    /// Removes a committed blob's bytes (garbage collection). Missing blobs are fine.
    async fn delete(&self, digest: &Digest) -> Result<()>;
}

/// Receives one request's worth of upload bytes.
#[async_trait]
pub trait BlobSink: Send {
    async fn write(&mut self, chunk: Bytes) -> Result<()>;

    /// Makes every byte written so far durable and returns the upload's total length.
    async fn finish(self: Box<Self>) -> Result<u64>;
}

#[cfg(test)]
pub(crate) mod suite {
    //! The shared test suite every [`BlobStore`] must pass.
    use super::*;
    use crate::digest::Algorithm;
    use http_body_util::BodyExt;

    async fn read_all(store: &dyn BlobStore, digest: &Digest, range: Range<u64>) -> Vec<u8> {
        let body = store.read(digest, range).await.unwrap();
        body.collect().await.unwrap().to_bytes().to_vec()
    }

    pub async fn run(store: &dyn BlobStore) {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
        let digest = Digest::of(Algorithm::Sha256, &data);
        assert_eq!(store.stat(&digest).await.unwrap(), None);

        // Two requests, the second after an interrupted one that left extra bytes behind.
        let mut sink = store.append("u1", 0).await.unwrap();
        sink.write(Bytes::copy_from_slice(&data[..100_000]))
            .await
            .unwrap();
        assert_eq!(sink.finish().await.unwrap(), 100_000);
        let mut sink = store.append("u1", 100_000).await.unwrap();
        sink.write(Bytes::from_static(b"garbage from a dropped request"))
            .await
            .unwrap();
        drop(sink);
        let mut sink = store.append("u1", 100_000).await.unwrap();
        // A second writer on the same upload is refused while the first holds it.
        assert!(store.append("u1", 100_000).await.is_err());
        sink.write(Bytes::copy_from_slice(&data[100_000..]))
            .await
            .unwrap();
        assert_eq!(sink.finish().await.unwrap(), data.len() as u64);
        store
            .commit("u1", &digest, data.len() as u64)
            .await
            .unwrap();

        assert_eq!(store.stat(&digest).await.unwrap(), Some(data.len() as u64));
        assert_eq!(read_all(store, &digest, 0..data.len() as u64).await, data);
        assert_eq!(read_all(store, &digest, 5..70_000).await, &data[5..70_000]);

        // Committing the same content again keeps one copy and leaves no upload behind.
        let mut sink = store.append("u2", 0).await.unwrap();
        sink.write(Bytes::copy_from_slice(&data)).await.unwrap();
        sink.finish().await.unwrap();
        store
            .commit("u2", &digest, data.len() as u64)
            .await
            .unwrap();
        assert_eq!(read_all(store, &digest, 0..data.len() as u64).await, data);

        // Discarded uploads vanish; discarding twice is fine.
        let mut sink = store.append("u3", 0).await.unwrap();
        sink.write(Bytes::from_static(b"x")).await.unwrap();
        sink.finish().await.unwrap();
        store.discard("u3").await.unwrap();
        store.discard("u3").await.unwrap();

        store.delete(&digest).await.unwrap();
        assert_eq!(store.stat(&digest).await.unwrap(), None);
        store.delete(&digest).await.unwrap();
    }
}
