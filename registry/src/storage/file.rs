//! The filesystem blob store of the embedded default.
//!
//! Layout under the root: `uploads/<id>` holds an upload in progress, `blobs/<alg>/<xx>/<hex>` a
//! committed blob. Writes happen on a blocking thread fed through a bounded channel, so the socket
//! keeps being read while the disk writes. A blob becomes visible only through an atomic rename of
//! a fully written, fsynced file, followed by an fsync of the directory so the rename itself
//! survives a crash; a crash at any earlier point leaves only an upload file that nothing refers to.
//! Each writer holds an exclusive `flock` on its upload file, which the kernel drops if the
//! process dies, so two requests (or two processes) can never interleave bytes of one upload.

use std::fs::{self, File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use axum::body::Body;
use axum::http::StatusCode;
use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use super::{BlobSink, BlobStore};
use crate::digest::Digest;
use crate::error::{Code, Error, Result};

/// Read size for streaming blobs out: large enough that syscalls and thread hand-offs stay cheap.
const READ_BUFFER: usize = 512 * 1024;

/// How long an append waits for the previous writer of the same upload to let go.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

pub struct FileStore {
    root: PathBuf,
}

impl FileStore {
    /// Opens (creating if needed) a store under `root`.
    pub fn open(root: impl Into<PathBuf>) -> std::io::Result<Self> {
        let root = root.into();
        fs::create_dir_all(root.join("uploads"))?;
        fs::create_dir_all(root.join("blobs"))?;
        Ok(FileStore { root })
    }

    fn upload_path(&self, upload: &str) -> PathBuf {
        self.root.join("uploads").join(upload)
    }

    fn blob_path(&self, digest: &Digest) -> PathBuf {
        let hex = digest.hex();
        self.root
            .join("blobs")
            .join(digest.algorithm().as_str())
            .join(&hex[..2])
            .join(hex)
    }
}

/// Runs filesystem work on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::internal(format!("storage task: {e}")))?
        .map_err(Error::from)
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

#[async_trait]
impl BlobStore for FileStore {
    async fn append(&self, upload: &str, offset: u64) -> Result<Box<dyn BlobSink>> {
        let path = self.upload_path(upload);
        let file = blocking(move || {
            let mut file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)?;
            // A writer whose request just ended may still be closing the file: give it a moment
            // before telling the client that someone else is writing.
            let deadline = std::time::Instant::now() + LOCK_WAIT;
            loop {
                match file.try_lock() {
                    Ok(()) => break,
                    Err(fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                        std::thread::sleep(std::time::Duration::from_millis(5));
                    }
                    Err(fs::TryLockError::WouldBlock) => return Ok(None),
                    Err(fs::TryLockError::Error(e)) => return Err(e),
                }
            }
            // Drop whatever an interrupted request wrote past the acknowledged offset.
            file.set_len(offset)?;
            file.seek(SeekFrom::Start(offset))?;
            Ok(Some(file))
        })
        .await?
        .ok_or_else(|| {
            Error::new(StatusCode::RANGE_NOT_SATISFIABLE, Code::BlobUploadInvalid)
                .message("another request is writing to this upload")
        })?;
        Ok(Box::new(FileSink::start(file, offset)))
    }

    async fn commit(&self, upload: &str, digest: &Digest, size: u64) -> Result<()> {
        let from = self.upload_path(upload);
        let to = self.blob_path(digest);
        blocking(move || {
            if to.exists() {
                // Already stored (by another upload of the same content, or by this one before a
                // crash cut the request short): keep one copy.
                match fs::remove_file(&from) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                    _ => return Ok(()),
                }
            }
            // `create` covers an empty blob whose upload never received a byte.
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&from)?;
            let len = file.metadata()?.len();
            if len != size {
                // A crash lost acknowledged bytes: never publish the wrong content under a digest.
                return Err(std::io::Error::other(format!(
                    "upload holds {len} bytes, expected {size}"
                )));
            }
            // The data itself was fsynced when each request finished; sync again in case the
            // upload was written by a version that did not (cheap when nothing is dirty).
            file.sync_all()?;
            drop(file);
            let dir = to.parent().expect("blob paths have a parent");
            fs::create_dir_all(dir)?;
            fs::rename(&from, &to)?;
            sync_dir(dir)?;
            Ok(())
        })
        .await
    }

    async fn discard(&self, upload: &str) -> Result<()> {
        let path = self.upload_path(upload);
        blocking(move || match fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        })
        .await
    }

    async fn read(&self, digest: &Digest, range: Range<u64>) -> Result<Body> {
        let path = self.blob_path(digest);
        let opened = blocking(move || match File::open(path) {
            Ok(f) => Ok(Some(f)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        })
        .await?;
        let file = opened.ok_or_else(|| Error::blob_unknown(digest))?;
        Ok(Body::from_stream(
            tokio_stream::wrappers::ReceiverStream::new(FileReader::start(file, range)),
        ))
    }

    async fn stat(&self, digest: &Digest) -> Result<Option<u64>> {
        match tokio::fs::metadata(self.blob_path(digest)).await {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn delete(&self, digest: &Digest) -> Result<()> {
        match tokio::fs::remove_file(self.blob_path(digest)).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }
}

/// Streams a byte range of a file from a dedicated blocking thread, in large reads, a few
/// buffers ahead of the socket (bounded: at most `READ_AHEAD` buffers in flight).
struct FileReader;

/// Buffers read ahead of the socket.
const READ_AHEAD: usize = 3;

impl FileReader {
    fn start(mut file: File, range: Range<u64>) -> mpsc::Receiver<std::io::Result<Bytes>> {
        let (tx, rx) = mpsc::channel(READ_AHEAD);
        tokio::task::spawn_blocking(move || {
            use std::io::Read;
            if let Err(e) = file.seek(SeekFrom::Start(range.start)) {
                let _ = tx.blocking_send(Err(e));
                return;
            }
            let mut left = range.end - range.start;
            while left > 0 {
                let want = READ_BUFFER.min(left as usize);
                // `read_to_end` fills spare capacity without zeroing it first.
                let mut buf = Vec::with_capacity(want);
                let message = match (&mut file).take(want as u64).read_to_end(&mut buf) {
                    Ok(0) => Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "blob shorter than recorded",
                    )),
                    Ok(n) => {
                        left -= n as u64;
                        Ok(Bytes::from(buf))
                    }
                    Err(e) => Err(e),
                };
                let failed = message.is_err();
                // The receiver is gone when the client disconnected: stop reading.
                if tx.blocking_send(message).is_err() || failed {
                    return;
                }
            }
        });
        rx
    }
}

enum Message {
    Data(Bytes),
    Finish(oneshot::Sender<std::io::Result<u64>>),
}

/// Writes on a dedicated blocking thread; dropping the sink without `finish` abandons the write
/// (the lock is released when the thread closes the file).
struct FileSink {
    tx: mpsc::Sender<Message>,
}

impl FileSink {
    fn start(mut file: File, offset: u64) -> Self {
        let (tx, mut rx) = mpsc::channel::<Message>(16);
        tokio::task::spawn_blocking(move || {
            let mut position = offset;
            let mut error: Option<std::io::Error> = None;
            while let Some(message) = rx.blocking_recv() {
                match message {
                    Message::Data(chunk) => {
                        if error.is_none() {
                            match file.write_all(&chunk) {
                                Ok(()) => position += chunk.len() as u64,
                                Err(e) => error = Some(e),
                            }
                        }
                    }
                    Message::Finish(reply) => {
                        let result = match error.take() {
                            Some(e) => Err(e),
                            None => file.sync_data().map(|()| position),
                        };
                        let _ = reply.send(result);
                        return;
                    }
                }
            }
        });
        FileSink { tx }
    }

    /// The writer thread only stops early if it panicked.
    fn gone() -> Error {
        Error::internal("storage writer stopped")
    }
}

#[async_trait]
impl BlobSink for FileSink {
    async fn write(&mut self, chunk: Bytes) -> Result<()> {
        if self.tx.send(Message::Data(chunk)).await.is_err() {
            return Err(Self::gone());
        }
        Ok(())
    }

    async fn finish(self: Box<Self>) -> Result<u64> {
        let (reply, answer) = oneshot::channel();
        if self.tx.send(Message::Finish(reply)).await.is_err() {
            return Err(Self::gone());
        }
        match answer.await {
            Ok(result) => Ok(result?),
            Err(_) => Err(Self::gone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn shared_suite() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(dir.path()).unwrap();
        crate::storage::suite::run(&store).await;
        // Nothing is left in uploads/ after commits and discards.
        assert_eq!(fs::read_dir(dir.path().join("uploads")).unwrap().count(), 0);
    }
}
