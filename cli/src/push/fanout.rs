//! One blob, read once from the source, streamed to every destination that lacks it.
//!
//! The reader cuts the blob into windows of `chunk` bytes; each window is a shared `Bytes`
//! sent to every destination's uploader through a channel of depth 1. Memory is bounded by a
//! few windows whatever the blob size or the number of destinations, and the slowest
//! destination paces the read. A destination that fails drops out; the others go on.

use std::sync::atomic::AtomicU64;

use bytes::{Bytes, BytesMut};
use futures::future::{join_all, Either};
use tokio::sync::mpsc;

use super::Dest;
use crate::oci::{BlobReader, Descriptor, Error, Registry, Upload, UploadError};

/// What the reader sends an uploader.
enum Msg {
    /// A window starting at this byte of the blob.
    Data(u64, Bytes),
    /// Everything was read and verified: close the upload.
    Done,
}

/// How one destination's upload of this blob ended.
pub type Outcome = Result<(), UploadError>;

/// Copies `desc` from `source`/`repo` to each of `dests`. Returns one outcome per destination
/// (in order), or the source's error, in which case nothing was committed anywhere.
pub async fn fan_out(
    source: &Registry,
    repo: &str,
    desc: &Descriptor,
    dests: &[&Dest],
    chunk: usize,
    source_bytes: &AtomicU64,
) -> Result<Vec<Outcome>, Error> {
    let sessions = join_all(dests.iter().map(|d| d.reg.start_upload(&d.repo))).await;
    let mut senders = Vec::new();
    let mut uploads = Vec::new();
    for (dest, session) in dests.iter().zip(sessions) {
        match session {
            Ok(up) => {
                // Depth 1: with the window being read, the one queued, the one held back and the
                // one being sent, at most four windows of a blob are in memory.
                let (tx, rx) = mpsc::channel(1);
                senders.push(Some(tx));
                uploads.push(Either::Left(upload(up, rx, desc, dest)));
            }
            Err(e) => {
                senders.push(None);
                uploads.push(Either::Right(async move { Err(UploadError::Failed(e)) }));
            }
        }
    }
    let (read, outcomes) = futures::join!(
        read(source, repo, desc, senders, chunk, source_bytes),
        join_all(uploads)
    );
    read?;
    Ok(outcomes)
}

/// Reads the blob and hands each window to every live uploader.
async fn read(
    source: &Registry,
    repo: &str,
    desc: &Descriptor,
    mut senders: Vec<Option<mpsc::Sender<Msg>>>,
    chunk: usize,
    source_bytes: &AtomicU64,
) -> Result<(), Error> {
    let mut reader = BlobReader::open(source, repo, desc).await?;
    let mut buf = BytesMut::with_capacity(chunk);
    let mut start = 0u64;
    loop {
        if senders.iter().all(Option::is_none) {
            // Every destination failed: reading on would move bytes nobody takes.
            return Ok(());
        }
        let next = reader.next_chunk().await?;
        if let Some(c) = &next {
            source_bytes.fetch_add(c.len() as u64, std::sync::atomic::Ordering::Relaxed);
            buf.extend_from_slice(c);
        }
        if buf.len() >= chunk || (next.is_none() && !buf.is_empty()) {
            let window = buf.split().freeze();
            buf.reserve(chunk);
            let len = window.len() as u64;
            send(&mut senders, || Msg::Data(start, window.clone())).await;
            start += len;
        }
        if next.is_none() {
            // Only now, with size and digest verified, may uploads be committed.
            send(&mut senders, || Msg::Done).await;
            return Ok(());
        }
    }
}

async fn send(senders: &mut [Option<mpsc::Sender<Msg>>], msg: impl Fn() -> Msg) {
    for slot in senders.iter_mut() {
        if let Some(tx) = slot {
            if tx.send(msg()).await.is_err() {
                // That uploader stopped (its failure is in its outcome).
                *slot = None;
            }
        }
    }
}

/// Feeds one destination's upload session. The latest window is held back so the last one can
/// travel with the closing `PUT` (a small blob is then one `POST` and one `PUT`).
async fn upload(
    mut up: Upload<'_>,
    mut rx: mpsc::Receiver<Msg>,
    desc: &Descriptor,
    dest: &Dest,
) -> Outcome {
    let mut pending: Option<(u64, Bytes)> = None;
    loop {
        match rx.recv().await {
            Some(Msg::Data(start, bytes)) => {
                if let Some((s, b)) = pending.take() {
                    step(&mut up, dest, s, &b, None).await?;
                    dest.bar.inc(b.len() as u64);
                }
                pending = Some((start, bytes));
            }
            Some(Msg::Done) => {
                let (s, b) = pending.take().unwrap_or_default();
                step(&mut up, dest, s, &b, Some(&desc.digest)).await?;
                dest.bar.inc(b.len() as u64);
                return Ok(());
            }
            None => {
                // The source failed: nothing may be committed.
                up.cancel().await;
                return Err(UploadError::Failed(Error::other("the source read failed")));
            }
        }
    }
}

/// Appends a window (or, with `digest`, closes the upload with it). A session lost while the
/// window still starts at byte 0 is begun afresh once, as nothing before it is needed.
async fn step<'a>(
    up: &mut Upload<'a>,
    dest: &'a Dest,
    start: u64,
    bytes: &Bytes,
    digest: Option<&str>,
) -> Outcome {
    let mut restarted = false;
    loop {
        let result = match digest {
            Some(d) => up.finish(start, bytes, d).await,
            None => up.append(start, bytes).await,
        };
        match result {
            Err(UploadError::Lost(why)) if start == 0 && !restarted => {
                dest.progress
                    .note(&format!("{}: {why}; starting the upload again", dest.label));
                *up = dest.reg.start_upload(&dest.repo).await?;
                restarted = true;
            }
            other => return other,
        }
    }
}
