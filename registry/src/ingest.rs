//! The upload pipeline: a request body is read from the socket, hashed on its own thread and
//! written by the blob store's sink, all three overlapping, with bounded buffers in between so a
//! blob of any size uses a fixed amount of memory.

use axum::body::Body;
use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::mpsc;

use crate::digest::ResumableHasher;
use crate::error::{Code, Error, Result};
use crate::storage::BlobSink;

/// Chunks in flight to the hashing thread; with hyper's frames of up to a few hundred KiB this
/// bounds the hasher's backlog to a few MiB.
const HASH_QUEUE: usize = 32;

/// Streams `body` into `sink`, hashing it on the way. Stops with `SIZE_INVALID` once more than
/// `limit` bytes arrive. Returns the hasher advanced over every byte written and the byte count.
pub async fn ingest(
    body: Body,
    sink: &mut dyn BlobSink,
    hasher: ResumableHasher,
    limit: Option<u64>,
) -> Result<(ResumableHasher, u64)> {
    let (tx, mut rx) = mpsc::channel::<Bytes>(HASH_QUEUE);
    let hashing = tokio::task::spawn_blocking(move || {
        let mut hasher = hasher;
        while let Some(chunk) = rx.blocking_recv() {
            hasher.update(&chunk);
        }
        hasher
    });

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
            // The hasher only stops if it panicked; the join below reports that.
            let _ = tx.send(chunk.clone()).await;
            sink.write(chunk).await?;
        }
        Ok(())
    }
    .await;
    drop(tx);
    let hasher = hashing
        .await
        .map_err(|e| Error::internal(format!("hashing thread: {e}")))?;
    outcome?;
    Ok((hasher, received))
}
