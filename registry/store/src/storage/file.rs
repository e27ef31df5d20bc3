//! The filesystem blob store of the embedded default.
//!
//! Layout under the root: `uploads/<id>` holds an upload in progress, `blobs/<alg>/<xx>/<hex>` a
//! committed blob. Writes happen in short jobs on the blocking pool while the socket keeps being
//! read; no thread waits for a client's next bytes. A blob becomes visible only through an atomic rename of
//! a fully written, fsynced file, followed by an fsync of the directory so the rename itself
//! survives a crash; a crash at any earlier point leaves only an upload file that nothing refers to.
//! Each writer holds an exclusive `flock` on its upload file, which the kernel drops if the
//! process dies, so two requests (or two processes) can never interleave bytes of one upload.

use std::fs::{self, File, OpenOptions};
use std::io::{Seek, SeekFrom};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

use super::checkpoint::{boot_id, Checkpoint, Synced};
use super::{deletable, BlobSink, BlobStore, ByteStream, Listed, Referenced, Written};
use crate::digest::Digest;
use crate::error::{Error, Result};

/// Bytes written between write-behind flushes.
const WRITE_BEHIND_BYTES: u64 = 8 * 1024 * 1024;

/// How long an append waits for the previous writer of the same upload to let go.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

pub struct FileStore {
    root: PathBuf,
    /// Asked before any blob file is unlinked.
    referenced: Arc<dyn Referenced>,
    /// This machine's boot id: with one, chunks are acknowledged from the page cache and
    /// fsynced in the background (`checkpoint`); without, each is fsynced first.
    boot: Option<Arc<str>>,
    /// What this process's background fsyncs covered.
    synced: Synced,
}

impl FileStore {
    /// Opens (creating if needed) a store under `root`; `referenced` says which blobs are live.
    pub fn open(
        root: impl Into<PathBuf>,
        referenced: Arc<dyn Referenced>,
    ) -> std::io::Result<Self> {
        let root = root.into();
        fs::create_dir_all(root.join("uploads"))?;
        fs::create_dir_all(root.join("blobs"))?;
        Ok(FileStore {
            root,
            referenced,
            boot: boot_id().map(Arc::from),
            synced: Synced::default(),
        })
    }

    /// Acknowledges each chunk only once it is fsynced: for a directory that processes on
    /// other machines may share, whose boot ids say nothing about this one's page cache.
    pub fn fsync_every_chunk(self) -> Self {
        FileStore { boot: None, ..self }
    }

    fn upload_path(&self, upload: &str) -> PathBuf {
        self.root.join("uploads").join(upload)
    }

    /// The path of the blob at `location`: `<digest>.<copy>` (or, as stored before garbage
    /// collection existed, the bare digest).
    fn location_path(&self, location: &str) -> Result<PathBuf> {
        let (digest, copy) = match location.split_once('.') {
            Some((d, c)) if !c.is_empty() && c.bytes().all(|b| b.is_ascii_hexdigit()) => {
                (d, Some(c))
            }
            _ => (location, None),
        };
        let digest: Digest = digest
            .parse()
            .map_err(|_| Error::internal(format!("not a file-store location: {location:?}")))?;
        let path = self.blob_path(&digest);
        Ok(match copy {
            Some(c) => path.with_file_name(format!("{}.{c}", digest.hex())),
            None => path,
        })
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

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::internal(format!("storage task: {e}")))?
        .map_err(Error::from)
}

/// Opens upload `id`'s file at `path` for writing, creating it only if `create`: a missing
/// file is the upload's bytes gone (`Error::UploadLost`), any other failure an I/O error.
fn open_upload(path: &Path, create: bool, id: &str) -> std::io::Result<Result<File>> {
    match OpenOptions::new()
        .create(create)
        .truncate(false)
        .write(true)
        .open(path)
    {
        Ok(file) => Ok(Ok(file)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Ok(Err(Error::upload_lost(id, "no upload file")))
        }
        Err(e) => Err(e),
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

#[async_trait]
impl BlobStore for FileStore {
    async fn append(&self, upload: &str, offset: u64, state: &[u8]) -> Result<Box<dyn BlobSink>> {
        let checkpoint = Checkpoint::parse(state)?;
        // What the session row vouches for: its checkpoint if written in this boot; all of it
        // if it has none (nothing written yet, or every chunk fsynced by an older version).
        let prior = match (&checkpoint, &self.boot) {
            (None, _) => offset,
            (Some(c), Some(boot)) if *c.boot == **boot => c.durable.min(offset),
            (Some(c), _) if c.durable >= offset => offset,
            (Some(_), _) => {
                return Err(Error::internal(format!(
                    "upload {upload} was written before the machine restarted and must be \
                     recovered first"
                )))
            }
        };
        let path = self.upload_path(upload);
        let id = upload.to_owned();
        let synced = self.synced.clone();
        let opened = blocking(move || {
            // Only a session's first bytes create its file. Past offset 0 a missing file means
            // its bytes are gone: a commit renamed them into a blob and its answer was lost (the
            // process killed before the session closed). Creating it again would resume on a
            // hole of zeros, hashed as if it were the acknowledged bytes.
            let mut file = match open_upload(&path, offset == 0, &id)? {
                Ok(file) => file,
                Err(lost) => return Ok(Err(lost)),
            };
            // A writer whose request just ended may still be closing the file: give it a moment
            // before telling the client that someone else is writing.
            let deadline = std::time::Instant::now() + LOCK_WAIT;
            loop {
                match file.try_lock() {
                    Ok(()) => break,
                    Err(fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                        std::thread::sleep(std::time::Duration::from_millis(5));
                    }
                    Err(fs::TryLockError::WouldBlock) => return Ok(Err(Error::UploadBusy)),
                    Err(fs::TryLockError::Error(e)) => return Err(e),
                }
            }
            let len = file.metadata()?.len();
            if len < offset {
                return Ok(Err(Error::upload_lost(
                    &id,
                    format!("the upload file holds {len} bytes, the session {offset}"),
                )));
            }
            let epoch = synced.begin(&id, offset, len);
            // Drop whatever an interrupted request wrote past the acknowledged offset.
            file.set_len(offset)?;
            file.seek(SeekFrom::Start(offset))?;
            Ok(Ok((file, epoch)))
        })
        .await??;
        let (file, epoch) = opened;
        let background = self.boot.as_ref().map(|boot| Background {
            boot: boot.clone(),
            path: self.upload_path(upload),
            upload: upload.to_owned(),
            synced: self.synced.clone(),
            epoch,
            prior,
        });
        Ok(Box::new(FileSink::start(file, offset, background)))
    }

    async fn commit(
        &self,
        upload: &str,
        _state: &[u8],
        digest: &Digest,
        size: u64,
    ) -> Result<String> {
        let from = self.upload_path(upload);
        // Every committed copy gets a name of its own, never reused: garbage collection deletes
        // a location only after its metadata is gone, and a later upload of the same content
        // must not land on the path being deleted. Duplicates are dropped by the caller, which
        // knows which copy the database kept.
        let copy = &uuid::Uuid::new_v4().simple().to_string()[..16];
        let location = format!("{digest}.{copy}");
        let to = self.location_path(&location)?;
        let id = upload.to_owned();
        self.synced.forget(upload);
        blocking(move || {
            // `create` covers an empty blob whose upload never received a byte; any other
            // upload's file missing was committed already (see `append`).
            let file = match open_upload(&from, size == 0, &id)? {
                Ok(file) => file,
                Err(lost) => return Ok(Err(lost)),
            };
            let len = file.metadata()?.len();
            if len != size {
                // A crash lost acknowledged bytes: never publish the wrong content under a digest.
                return Err(std::io::Error::other(format!(
                    "upload holds {len} bytes, expected {size}"
                )));
            }
            // Every acknowledged chunk was fsynced when its request finished; this covers the one
            // file no request wrote, the empty blob created just above (cheap when nothing is
            // dirty).
            file.sync_all()?;
            drop(file);
            let dir = to.parent().expect("blob paths have a parent");
            fs::create_dir_all(dir)?;
            fs::rename(&from, &to)?;
            sync_dir(dir)?;
            Ok(Ok(()))
        })
        .await??;
        Ok(location)
    }

    async fn discard(&self, upload: &str, _state: &[u8]) -> Result<()> {
        // Only `uploads/<id>`, which no blob's location can name (those are `<digest>.<copy>`
        // under `blobs/`): a committed upload was renamed away from here.
        self.synced.forget(upload);
        let path = self.upload_path(upload);
        blocking(move || match fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        })
        .await
    }

    /// After another boot, a session whose checkpoint is short of its size goes back to the
    /// checkpoint: bytes past it may have been lost with the page cache, or be zeros where
    /// the filesystem had allocated blocks the data never reached.
    async fn recover(&self, upload: &str, state: &[u8], size: u64) -> Result<Option<Written>> {
        let (Some(boot), Some(checkpoint)) = (&self.boot, Checkpoint::parse(state)?) else {
            return Ok(None);
        };
        if *checkpoint.boot == **boot || checkpoint.durable >= size {
            return Ok(None);
        }
        let path = self.upload_path(upload);
        let len = blocking(move || match fs::metadata(path) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        })
        .await?;
        match len {
            Some(len) if len >= checkpoint.durable => Ok(Some(Written {
                size: checkpoint.durable,
                state: Checkpoint::state(boot, checkpoint.durable),
            })),
            _ => Err(Error::upload_lost(
                upload,
                "bytes fsynced before the machine restarted are missing",
            )),
        }
    }

    /// Plain reads, not a mapping: the upload file may be cut back by a request meanwhile,
    /// which under a mapping would be a fault, not an error.
    async fn read_upload(&self, upload: &str, range: Range<u64>) -> Result<ByteStream> {
        let path = self.upload_path(upload);
        let file = blocking(move || File::open(path))
            .await
            .map_err(|e| Error::upload_lost(upload, format!("reading the upload back: {e}")))?;
        let file = Arc::new(file);
        let stream = futures::stream::try_unfold(range, move |range| {
            let file = file.clone();
            async move {
                if range.is_empty() {
                    return Ok(None);
                }
                let len = (range.end - range.start).min(WRITE_BATCH as u64) as usize;
                let start = range.start;
                let bytes = tokio::task::spawn_blocking(move || {
                    use std::os::unix::fs::FileExt;
                    let mut buf = vec![0; len];
                    file.read_exact_at(&mut buf, start)?;
                    Ok::<_, std::io::Error>(Bytes::from(buf))
                })
                .await
                .map_err(std::io::Error::other)??;
                Ok(Some((bytes, range.start + len as u64..range.end)))
            }
        });
        Ok(ByteStream::from_stream(stream))
    }

    async fn read(&self, location: &str, range: Range<u64>) -> Result<ByteStream> {
        let path = self.location_path(location)?;
        let mapped = blocking(move || {
            let file = match File::open(path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e),
            };
            if range.is_empty() {
                return Ok(Some(Bytes::new()));
            }
            map_range(&file, range).map(Some)
        })
        .await?;
        let bytes = mapped.ok_or_else(|| Error::data_missing(location))?;
        Ok(ByteStream::from_bytes(bytes))
    }

    async fn probe(&self) -> Result<()> {
        let blobs = self.root.join("blobs");
        match tokio::fs::metadata(&blobs).await {
            Ok(m) if m.is_dir() => Ok(()),
            Ok(_) => Err(Error::unavailable(format!(
                "{} is not a directory",
                blobs.display()
            ))),
            Err(e) => Err(Error::unavailable(format!("{}: {e}", blobs.display()))),
        }
    }

    async fn stat(&self, location: &str) -> Result<Option<u64>> {
        match tokio::fs::metadata(self.location_path(location)?).await {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Unlinks in parallel (spread over the 256 prefix directories, unlinks in different
    /// directories do not wait for each other).
    async fn delete_many(&self, locations: &[String]) -> Result<()> {
        let paths = deletable(self.referenced.as_ref(), locations)
            .await?
            .iter()
            .map(|l| self.location_path(l))
            .collect::<Result<Vec<_>>>()?;
        let per_task = paths.len().div_ceil(8).max(1);
        let tasks: Vec<_> = paths
            .chunks(per_task)
            .map(|chunk| {
                let chunk = chunk.to_vec();
                blocking(move || {
                    for p in chunk {
                        match fs::remove_file(&p) {
                            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                            _ => {}
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        for r in futures::future::join_all(tasks).await {
            r?;
        }
        Ok(())
    }

    /// Everything in one page: a walk of `blobs/` and `uploads/` (names only, no reads).
    async fn list(&self, _cursor: Option<String>) -> Result<(Vec<Listed>, Option<String>)> {
        let root = self.root.clone();
        let listed = blocking(move || {
            let mut out = Vec::new();
            let modified = |m: &fs::Metadata| {
                m.modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_millis() as i64)
            };
            for alg in read_dir_or_empty(&root.join("blobs"))? {
                let algorithm = alg.file_name().to_string_lossy().into_owned();
                for prefix in read_dir_or_empty(&alg.path())? {
                    for blob in read_dir_or_empty(&prefix.path())? {
                        let meta = blob.metadata()?;
                        out.push(Listed {
                            location: format!("{algorithm}:{}", blob.file_name().to_string_lossy()),
                            upload: None,
                            size: meta.len(),
                            modified_ms: modified(&meta),
                        });
                    }
                }
            }
            for upload in read_dir_or_empty(&root.join("uploads"))? {
                let meta = upload.metadata()?;
                let id = upload.file_name().to_string_lossy().into_owned();
                out.push(Listed {
                    location: format!("uploads/{id}"),
                    upload: Some(id),
                    size: meta.len(),
                    modified_ms: modified(&meta),
                });
            }
            Ok(out)
        })
        .await?;
        Ok((listed, None))
    }
}

fn read_dir_or_empty(dir: &Path) -> std::io::Result<Vec<fs::DirEntry>> {
    match fs::read_dir(dir) {
        Ok(entries) => entries.collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// Maps `range` of a committed blob read-only and hands it to the socket as one buffer: bytes go
/// from the page cache to the socket without a copy through a user-space buffer.
#[allow(unsafe_code)]
fn map_range(file: &File, range: Range<u64>) -> std::io::Result<Bytes> {
    let len = usize::try_from(range.end - range.start).map_err(std::io::Error::other)?;
    // SAFETY: mapping a file is unsafe because another process could truncate or modify it while
    // mapped. Committed blobs are never written again: they are created by an atomic rename of a
    // complete file, a second commit of the same digest renames a new inode over the path (this
    // mapping keeps the old one), and removal only unlinks. Nothing in the registry truncates or
    // writes a blob file in place, and the data directory belongs to the registry alone.
    let map = unsafe {
        memmap2::MmapOptions::new()
            .offset(range.start)
            .len(len)
            .map(file)?
    };
    // Purely advisory; failure changes nothing but read-ahead.
    let _ = map.advise(memmap2::Advice::Sequential);
    Ok(Bytes::from_owner(map))
}

/// A sink's way to acknowledge from the page cache (see `checkpoint`).
struct Background {
    boot: Arc<str>,
    path: PathBuf,
    upload: String,
    synced: Synced,
    /// The epoch this request writes in (`Synced::begin`).
    epoch: u64,
    /// What the session row vouched for when the request began.
    prior: u64,
}

impl Background {
    /// Fsyncs the first `size` bytes after the request is answered, through a descriptor of
    /// its own: the request's, which holds the upload's lock, is closed at once, so the next
    /// chunk never waits for this. The next request's checkpoint counts it once it is done.
    fn fsync(self, size: u64) {
        tokio::task::spawn_blocking(move || {
            // Gone (committed or discarded meanwhile): nothing to vouch for.
            if File::open(&self.path).and_then(|f| f.sync_data()).is_ok() {
                self.synced.record(&self.upload, self.epoch, size);
            }
        });
    }
}

/// Bytes a write job takes at most, and how far the socket may run ahead of the disk.
const WRITE_BATCH: usize = 4 * 1024 * 1024;
/// Chunks waiting for the writer before reading waits for it.
const MAX_WAITING_CHUNKS: usize = 256;

/// Writes through short jobs on the blocking pool: each writes the bytes that have arrived (at
/// most [`WRITE_BATCH`]) at their offset, one job in flight while the next bytes are read, and a
/// write-behind `fdatasync` every [`WRITE_BEHIND_BYTES`] so the final one only has the tail left.
/// No thread waits for the client: between its bytes a slow upload holds none. Dropping the
/// sink without `finish` abandons the write (the lock goes when the last job lets go of the
/// file).
struct FileSink {
    file: Arc<File>,
    /// With the machine's boot id: acknowledge from the page cache, fsync in the background.
    background: Option<Background>,
    /// Where the next batch goes.
    position: u64,
    waiting: Vec<Bytes>,
    waiting_len: usize,
    job: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    unflushed: u64,
    flush: Option<tokio::task::JoinHandle<()>>,
}

impl FileSink {
    fn start(file: File, offset: u64, background: Option<Background>) -> Self {
        FileSink {
            file: Arc::new(file),
            background,
            position: offset,
            waiting: Vec::new(),
            waiting_len: 0,
            job: None,
            unflushed: 0,
            flush: None,
        }
    }

    /// Waits for the write in flight; its error is this sink's.
    async fn settle(&mut self) -> Result<()> {
        if let Some(job) = self.job.take() {
            job.await
                .map_err(|e| Error::internal(format!("storage write job: {e}")))??;
        }
        Ok(())
    }

    /// Writes what is waiting as one job.
    fn spawn_write(&mut self) {
        let batch = std::mem::take(&mut self.waiting);
        let len = std::mem::take(&mut self.waiting_len) as u64;
        let file = self.file.clone();
        let at = self.position;
        self.position += len;
        self.job = Some(tokio::task::spawn_blocking(move || {
            use std::os::unix::fs::FileExt;
            let mut offset = at;
            for chunk in &batch {
                file.write_all_at(chunk, offset)?;
                offset += chunk.len() as u64;
            }
            Ok(())
        }));
        self.unflushed += len;
        if self.unflushed >= WRITE_BEHIND_BYTES
            && self.flush.as_ref().is_none_or(|f| f.is_finished())
        {
            // Best effort: the final, checked fsync in `finish` is what acknowledges.
            self.unflushed = 0;
            let file = self.file.clone();
            self.flush = Some(tokio::task::spawn_blocking(move || {
                let _ = file.sync_data();
            }));
        }
    }
}

#[async_trait]
impl BlobSink for FileSink {
    async fn write(&mut self, chunk: Bytes) -> Result<()> {
        self.waiting_len += chunk.len();
        self.waiting.push(chunk);
        if self.job.as_ref().is_some_and(|j| j.is_finished())
            || (self.job.is_some()
                && (self.waiting_len >= WRITE_BATCH || self.waiting.len() >= MAX_WAITING_CHUNKS))
        {
            self.settle().await?;
        }
        if self.job.is_none() {
            self.spawn_write();
        }
        Ok(())
    }

    async fn finish(mut self: Box<Self>, last: bool) -> Result<Written> {
        self.settle().await?;
        if !self.waiting.is_empty() {
            self.spawn_write();
            self.settle().await?;
        }
        if let Some(flush) = self.flush.take() {
            let _ = flush.await;
        }
        let size = self.position;
        let background = match self.background.take() {
            Some(b) if !last => b,
            // The last chunk (the blob is committed next), or no boot id to tell a restart of
            // the machine by: durable before it is acknowledged.
            background => {
                let file = self.file.clone();
                blocking(move || file.sync_data()).await?;
                let state = background.map_or_else(Vec::new, |b| Checkpoint::state(&b.boot, size));
                return Ok(Written { size, state });
            }
        };
        let durable = background
            .prior
            .max(
                background
                    .synced
                    .durable(&background.upload, background.epoch),
            )
            .min(size);
        let state = Checkpoint::state(&background.boot, durable);
        background.fsync(size);
        Ok(Written { size, state })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn shared_suite() {
        let dir = tempfile::tempdir().unwrap();
        let known = crate::storage::KnownLocations::new();
        let store = FileStore::open(dir.path(), known.clone()).unwrap();
        crate::storage::suite::run(&store, &known).await;
        // Nothing is left in uploads/ after commits and discards.
        assert_eq!(fs::read_dir(dir.path().join("uploads")).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn one_writer_per_upload() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(dir.path(), crate::storage::KnownLocations::new()).unwrap();
        let _first = store.append("u", 0, &[]).await.unwrap();
        assert!(store.append("u", 0, &[]).await.is_err());
    }

    #[tokio::test]
    async fn every_commit_is_a_copy_of_its_own_and_bare_digests_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(dir.path(), crate::storage::KnownLocations::new()).unwrap();
        let digest = Digest::of(crate::digest::Algorithm::Sha256, b"same");
        let mut locations = Vec::new();
        for id in ["a", "b"] {
            let mut sink = store.append(id, 0, &[]).await.unwrap();
            sink.write(Bytes::from_static(b"same")).await.unwrap();
            sink.finish(true).await.unwrap();
            let location = store.commit(id, &[], &digest, 4).await.unwrap();
            assert!(location.starts_with(&format!("{digest}.")), "{location}");
            locations.push(location);
        }
        assert_ne!(locations[0], locations[1]);
        assert_eq!(fs::read_dir(dir.path().join("uploads")).unwrap().count(), 0);
        store.delete_many(&locations[..1]).await.unwrap();
        assert_eq!(store.stat(&locations[1]).await.unwrap(), Some(4));
        // A blob stored under its bare digest (before copies had names) is still found.
        let bare = store.location_path(&locations[1]).unwrap();
        fs::rename(&bare, store.blob_path(&digest)).unwrap();
        assert_eq!(store.stat(&digest.to_string()).await.unwrap(), Some(4));
        assert!(store.location_path("sha256:zz.x").is_err());
    }
}
