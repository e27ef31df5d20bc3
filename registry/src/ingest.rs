//! The upload pipeline: a request body is read from the socket, hashed, and written by the blob
//! store's sink, overlapping, with bounded buffers in between so a blob of any size uses a fixed
//! amount of memory.
//!
//! No thread waits on the client. Hashing runs as short jobs on the blocking pool, each over
//! the bytes that have arrived (at most [`HASH_BATCH`]), one job in flight per upload while the
//! next bytes are read; a few bytes hash inline. An upload whose client sends a byte a second
//! therefore holds no thread at all between its bytes, and a thousand of them cost memory, not
//! the pool that blob reads and other pushes need.

use axum::body::Body;
use bytes::Bytes;
use futures::StreamExt;
use tokio::task::JoinHandle;

use crate::error::{Code, Error, Result};
use depot_store::digest::ResumableHasher;
use depot_store::storage::BlobSink;

/// Bytes a hashing job takes at most; also how far reading may run ahead of hashing.
const HASH_BATCH: usize = 4 * 1024 * 1024;
/// Below this, arrived bytes are hashed inline (microseconds) rather than by a job.
const HASH_INLINE: usize = 32 * 1024;
/// Chunks waiting for the hasher before reading waits for it (small frames from a slow client
/// would otherwise pin many buffers).
const MAX_WAITING_CHUNKS: usize = 256;

/// The hasher, either here or busy in a job over earlier bytes.
struct Hashing {
    idle: Option<ResumableHasher>,
    job: Option<JoinHandle<ResumableHasher>>,
    waiting: Vec<Bytes>,
    waiting_len: usize,
}

impl Hashing {
    fn new(hasher: ResumableHasher) -> Self {
        Hashing {
            idle: Some(hasher),
            job: None,
            waiting: Vec::new(),
            waiting_len: 0,
        }
    }

    /// The hasher back from its job (waiting for the job if it is still running).
    async fn reclaim(&mut self) -> Result<()> {
        if let Some(job) = self.job.take() {
            let hasher = job
                .await
                .map_err(|e| Error::internal(format!("hashing job: {e}")))?;
            self.idle = Some(hasher);
        }
        Ok(())
    }

    /// Queues `chunk` and hashes what is waiting if the hasher is free.
    async fn push(&mut self, chunk: Bytes) -> Result<()> {
        self.waiting_len += chunk.len();
        self.waiting.push(chunk);
        if self.job.as_ref().is_some_and(JoinHandle::is_finished) {
            self.reclaim().await?;
        }
        if self.job.is_some()
            && (self.waiting_len >= HASH_BATCH || self.waiting.len() >= MAX_WAITING_CHUNKS)
        {
            // Reading ran a batch ahead: let the hasher catch up (backpressure).
            self.reclaim().await?;
        }
        if self.idle.is_some() {
            self.start();
        }
        Ok(())
    }

    /// Hashes what is waiting: inline if it is little, else as a job.
    fn start(&mut self) {
        let Some(mut hasher) = self.idle.take() else {
            return;
        };
        let batch = std::mem::take(&mut self.waiting);
        if std::mem::take(&mut self.waiting_len) < HASH_INLINE {
            for chunk in &batch {
                hasher.update(chunk);
            }
            self.idle = Some(hasher);
            return;
        }
        self.job = Some(tokio::task::spawn_blocking(move || {
            for chunk in &batch {
                hasher.update(chunk);
            }
            hasher
        }));
    }

    /// Every byte pushed, hashed.
    async fn finish(mut self) -> Result<ResumableHasher> {
        self.reclaim().await?;
        if !self.waiting.is_empty() {
            self.start();
            self.reclaim().await?;
        }
        Ok(self.idle.take().expect("the hasher is back"))
    }
}

/// Streams `body` into `sink`, hashing it on the way. Stops with `SIZE_INVALID` once more than
/// `limit` bytes arrive. Returns the hasher advanced over every byte written and the byte count.
pub async fn ingest(
    body: Body,
    sink: &mut dyn BlobSink,
    hasher: ResumableHasher,
    limit: Option<u64>,
) -> Result<(ResumableHasher, u64)> {
    let mut hashing = Hashing::new(hasher);
    let mut stream = body.into_data_stream();
    let mut received: u64 = 0;
    let outcome: Result<()> = async {
        while let Some(frame) = stream.next().await {
            let chunk = frame.map_err(|e| {
                Error::bad_request(
                    Code::BlobUploadInvalid,
                    format!("request body ended early: {e}"),
                )
            })?;
            if chunk.is_empty() {
                continue;
            }
            received += chunk.len() as u64;
            if limit.is_some_and(|l| received > l) {
                return Err(Error::size_invalid("body is longer than its Content-Range"));
            }
            hashing.push(chunk.clone()).await?;
            // On a refusal (a full disk, a store outage) the rest of the body is left to
            // `request_body`, which drains it so the answer reaches a client still sending.
            sink.write(chunk).await?;
        }
        Ok(())
    }
    .await;
    // Even on failure the job is waited for: it holds bytes the caller's buffers own.
    let hasher = hashing.finish().await?;
    outcome?;
    Ok((hasher, received))
}

#[cfg(test)]
mod tests {
    use super::*;
    use depot_store::digest::{Algorithm, Digest};
    use depot_store::storage::Written;

    #[derive(Default)]
    struct Collect(Vec<u8>);

    #[async_trait::async_trait]
    impl BlobSink for Collect {
        async fn write(&mut self, chunk: Bytes) -> depot_store::Result<()> {
            self.0.extend_from_slice(&chunk);
            Ok(())
        }
        async fn finish(self: Box<Self>, _last: bool) -> depot_store::Result<Written> {
            Ok(Written {
                size: self.0.len() as u64,
                state: Vec::new(),
            })
        }
    }

    /// Frames of every size (tiny ones hashed inline, big ones by jobs, mixed while a job
    /// runs) hash to the digest of the whole, in order.
    #[tokio::test]
    async fn hashes_every_byte_in_order() {
        let data: Vec<u8> = (0..20_000_000u32).map(|i| (i * 7 + i / 3) as u8).collect();
        let mut sizes = [
            1usize, 7, 100, 5000, 40_000, 300_000, 2_000_000, 3, 6_000_000,
        ]
        .iter()
        .cycle();
        let mut frames = Vec::new();
        let mut at = 0;
        while at < data.len() {
            let n = (*sizes.next().unwrap()).min(data.len() - at);
            frames.push(Ok::<_, std::io::Error>(Bytes::copy_from_slice(
                &data[at..at + n],
            )));
            at += n;
        }
        let body = Body::from_stream(futures::stream::iter(frames));
        let mut sink = Collect::default();
        let (hasher, n) = ingest(
            body,
            &mut sink,
            ResumableHasher::new(Algorithm::Sha256),
            None,
        )
        .await
        .unwrap();
        assert_eq!(n, data.len() as u64);
        assert!(sink.0 == data);
        assert_eq!(hasher.finish(), Digest::of(Algorithm::Sha256, &data));
    }
}
