//! Registry metadata in SQL: one implementation over sqlx's `Any` driver for SQLite (embedded
//! default) and PostgreSQL, with migrations per dialect under `migrations/`.
//!
//! All SQL lives here; handlers call these methods. Queries use `$N` placeholders and only syntax
//! both dialects share (`ON CONFLICT`, `lower()`), so there is a single code path.
//!
//! SQLite allows one writer at a time; a deferred transaction that upgrades to a write while
//! another connection writes fails with `SQLITE_BUSY`. Writes therefore go through a pool of one
//! connection on SQLite (reads use many), which serializes them without busy errors.

mod builds;
mod gc;

use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};
use tokio::sync::{mpsc, oneshot};

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::names::{RepoName, Tag};

pub use builds::{BuildImage, TokenInfo};
pub use gc::{ReapedBuild, RunRow, Sweep, SweptBlob};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

/// Pooled access to the metadata database.
#[derive(Clone)]
pub struct Metadata {
    read: AnyPool,
    write: AnyPool,
    links: mpsc::Sender<LinkRequest>,
    /// The PostgreSQL URL, when the database is shared by replicas (cache invalidation is
    /// broadcast through it); `None` for SQLite.
    postgres_url: Option<String>,
    /// The connection holding the garbage-collection advisory lock (PostgreSQL), while held.
    gc_lock: std::sync::Arc<tokio::sync::Mutex<Option<sqlx::pool::PoolConnection<sqlx::Any>>>>,
}

#[async_trait::async_trait]
impl crate::storage::Referenced for Metadata {
    async fn referenced(&self, locations: &[String]) -> Result<std::collections::HashSet<String>> {
        self.referenced_locations(locations).await
    }
}

/// The PostgreSQL channel on which replicas announce repositories whose tags or manifests
/// changed, so every other replica drops its cached lookups for them.
pub const CACHE_CHANNEL: &str = "depot_cache";

/// A [`CACHE_CHANNEL`] payload announcing a blob garbage collection deleted: the prefix, then
/// the digest (other payloads are repository names, which cannot contain `:`).
pub const BLOB_GONE_PREFIX: &str = "blob-gone:";

/// Points a tag at a manifest, with its owning build and expiry (`NULL`: nobody's, never).
const UPSERT_TAG: &str = "INSERT INTO tags (repo, name, digest, updated_at, build_id, expires_at) \
     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (repo, name) DO UPDATE SET digest = excluded.digest, \
     updated_at = excluded.updated_at, build_id = excluded.build_id, expires_at = excluded.expires_at";

/// A blob link waiting for the next group commit.
struct LinkRequest {
    repo: RepoName,
    digest: Digest,
    link: Link,
    now: i64,
    /// The blob as stored once linked; `None` if an existing blob was gone.
    done: oneshot::Sender<Result<Option<StoredBlob>>>,
}

/// A stored blob: its size and where the blob store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBlob {
    pub size: u64,
    pub location: String,
    /// No manifest is known to reference it: garbage collection may delete it once it has been
    /// unused for the grace period. Such a blob is never served from a cache: every use goes
    /// to [`Metadata::touch_blob`], which keeps it for another grace period.
    pub candidate: bool,
}

impl StoredBlob {
    pub fn new(size: u64, location: String) -> Self {
        StoredBlob {
            size,
            location,
            candidate: false,
        }
    }
}

/// How a repository comes to hold a blob.
#[derive(Debug, Clone)]
pub enum Link {
    /// Bytes this request just stored (recorded unless the digest is already stored, in which
    /// case the stored blob wins).
    New(StoredBlob),
    /// A blob already stored (a mount, or a push of content the registry holds): linked only if
    /// it is still there, and kept from garbage collection for another grace period.
    Existing,
}

/// Uses of a candidate blob closer together than this write nothing: it was kept moments ago.
const TOUCH_SLACK_MS: i64 = 1000;

/// Most links one group commit carries.
const MAX_LINK_BATCH: usize = 256;

/// An upload session's row (created by its first chunk).
#[derive(Debug, Clone)]
pub struct Upload {
    pub repo: String,
    pub size: u64,
    pub hash_state: Vec<u8>,
    /// The blob store's state for the session (see [`crate::storage::Written`]).
    pub store_state: Vec<u8>,
    /// Finished or cancelled: the id no longer names a session.
    pub closed: bool,
}

/// A manifest as stored: its exact bytes and what was derived from them at push time.
#[derive(Debug, Clone)]
pub struct StoredManifest {
    pub digest: Digest,
    pub media_type: String,
    pub content: bytes::Bytes,
    /// When this lookup stops answering (the owning build's expiry); `None`: never.
    pub expires_at: Option<i64>,
}

impl StoredManifest {
    pub fn is_live(&self, now: i64) -> bool {
        self.expires_at.is_none_or(|t| t > now)
    }
}

/// The build a pushed manifest (and its tag) belongs to, and when that build expires.
#[derive(Debug, Clone)]
pub struct Owner {
    pub build_id: String,
    pub expires_at: i64,
}

/// What a manifest push writes.
#[derive(Debug, Clone)]
pub struct NewManifest {
    pub digest: Digest,
    pub media_type: String,
    pub content: Vec<u8>,
    pub subject: Option<Digest>,
    pub artifact_type: Option<String>,
    /// Annotations as a JSON object text, copied into referrers descriptors.
    pub annotations: Option<String>,
    /// Blobs (config, layers) the manifest references.
    pub blobs: Vec<Digest>,
    /// Child manifests (of an index).
    pub manifests: Vec<Digest>,
}

/// A descriptor in a referrers response.
#[derive(Debug, Clone)]
pub struct Referrer {
    pub digest: String,
    pub media_type: String,
    pub size: u64,
    pub artifact_type: Option<String>,
    pub annotations: Option<String>,
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn digest_col(row: &AnyRow, col: &str) -> Result<Digest> {
    let s: String = row.try_get(col)?;
    s.parse()
        .map_err(|_| Error::internal(format!("corrupt digest {s:?} in database")))
}

impl Metadata {
    /// Connects to `url` (`sqlite:...` or `postgres://...`) and brings the schema up to date.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        sqlx::any::install_default_drivers();
        let sqlite = url.starts_with("sqlite:");
        // A database that stops answering turns into a 503 within this bound, never a hang.
        let acquire = std::time::Duration::from_secs(5);
        // SQLite's default page cache (2 MB) is small for indexes over hundreds of thousands of
        // rows; 16 MB per connection (allocated only as pages are read).
        let pragmas = |options: AnyPoolOptions| {
            if sqlite {
                options.after_connect(|conn, _| {
                    Box::pin(async move {
                        sqlx::query("PRAGMA cache_size = -16384")
                            .execute(conn)
                            .await
                            .map(|_| ())
                    })
                })
            } else {
                options
            }
        };
        let read = pragmas(AnyPoolOptions::new())
            .max_connections(if sqlite { 8 } else { 16 })
            .acquire_timeout(acquire)
            .connect(url)
            .await?;
        let write = if sqlite {
            let write = pragmas(AnyPoolOptions::new())
                .max_connections(1)
                .acquire_timeout(acquire)
                .connect(url)
                .await?;
            // WAL lets readers proceed while the writer commits; it persists in the file.
            sqlx::query("PRAGMA journal_mode=WAL")
                .execute(&write)
                .await?;
            write
        } else {
            read.clone()
        };
        let migrator = if sqlite {
            &SQLITE_MIGRATIONS
        } else {
            &POSTGRES_MIGRATIONS
        };
        migrator.run(&write).await?;
        let (links, queue) = mpsc::channel(4 * MAX_LINK_BATCH);
        tokio::spawn(group_commit_links(write.clone(), queue));
        Ok(Metadata {
            read,
            write,
            links,
            postgres_url: (!sqlite).then(|| url.to_owned()),
            gc_lock: Default::default(),
        })
    }

    pub fn postgres_url(&self) -> Option<&str> {
        self.postgres_url.as_deref()
    }

    /// Tells the other replicas that `repo`'s tags, manifests or blob links changed (after the
    /// change committed). Nothing to do on SQLite, which one process owns.
    pub async fn notify_changed(&self, repo: &RepoName) -> Result<()> {
        if self.postgres_url.is_some() {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(CACHE_CHANNEL)
                .bind(repo.as_str())
                .execute(&self.write)
                .await?;
        }
        Ok(())
    }

    /// Folds SQLite's write-ahead log into the database file (a no-op on PostgreSQL): after a
    /// bulk load, so the next transaction does not pay for it.
    pub async fn checkpoint(&self) -> Result<()> {
        if self.postgres_url.is_none() {
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(&self.write)
                .await?;
        }
        Ok(())
    }

    pub async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
    }

    // ---- repositories ----------------------------------------------------------------------

    pub async fn repository_exists(&self, repo: &RepoName) -> Result<bool> {
        let row = sqlx::query("SELECT 1 FROM repositories WHERE name = $1")
            .bind(repo.as_str())
            .fetch_optional(&self.read)
            .await?;
        Ok(row.is_some())
    }

    /// Up to `n` repository names after `last`, in order.
    pub async fn list_repositories(&self, n: i64, last: Option<&str>) -> Result<Vec<String>> {
        let rows =
            sqlx::query("SELECT name FROM repositories WHERE name > $1 ORDER BY name LIMIT $2")
                .bind(last.unwrap_or(""))
                .bind(n)
                .fetch_all(&self.read)
                .await?;
        rows.iter()
            .map(|r| Ok(r.try_get::<String, _>("name")?))
            .collect()
    }

    // ---- blobs -----------------------------------------------------------------------------

    /// The blob `digest` if `repo` may read it.
    pub async fn repo_blob(&self, repo: &RepoName, digest: &Digest) -> Result<Option<StoredBlob>> {
        let row = sqlx::query(
            "SELECT b.size, b.location, b.unreferenced_at FROM repo_blobs r JOIN blobs b ON b.digest = r.digest WHERE r.repo = $1 AND r.digest = $2",
        )
        .bind(repo.as_str())
        .bind(digest.as_str())
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(stored_blob).transpose()
    }

    /// Repositories that hold `digest` (at most `limit`), for mounting without `from`.
    pub async fn repos_with_blob(&self, digest: &Digest, limit: i64) -> Result<Vec<String>> {
        let rows =
            sqlx::query("SELECT repo FROM repo_blobs WHERE digest = $1 ORDER BY repo LIMIT $2")
                .bind(digest.as_str())
                .bind(limit)
                .fetch_all(&self.read)
                .await?;
        rows.iter()
            .map(|r| Ok(r.try_get::<String, _>("repo")?))
            .collect()
    }

    /// Records that `repo` may read `digest` (see [`Link`]); returns the blob as stored, or
    /// `None` when an existing blob is gone (garbage collected).
    ///
    /// Links requested at about the same time share one transaction (group commit): a durable
    /// commit costs a disk flush, and concurrent pushes of small blobs would otherwise queue
    /// behind each other's flushes on the single writer.
    ///
    /// If the digest is already recorded (another upload of the same content won a race), the
    /// recorded location stays and is returned.
    pub async fn link_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
        link: Link,
        now: i64,
    ) -> Result<Option<StoredBlob>> {
        let (done, result) = oneshot::channel();
        let request = LinkRequest {
            repo: repo.clone(),
            digest: digest.clone(),
            link,
            now,
            done,
        };
        if self.links.send(request).await.is_err() {
            return Err(Error::unavailable("metadata writer stopped"));
        }
        result
            .await
            .map_err(|_| Error::unavailable("metadata writer stopped"))?
    }

    /// Mounts `digest` from `from` into `repo`; `None` if `from` does not hold it (any more).
    pub async fn mount_blob(
        &self,
        repo: &RepoName,
        from: &RepoName,
        digest: &Digest,
        now: i64,
    ) -> Result<Option<StoredBlob>> {
        if self.repo_blob(from, digest).await?.is_none() {
            return Ok(None);
        }
        self.link_blob(repo, digest, Link::Existing, now).await
    }

    /// Removes `repo`'s link to `digest`; false if there was none. The bytes stay until garbage
    /// collection finds no manifest references them.
    pub async fn unlink_blob(&self, repo: &RepoName, digest: &Digest, now: i64) -> Result<bool> {
        let mut tx = self.write.begin().await?;
        let done = sqlx::query("DELETE FROM repo_blobs WHERE repo = $1 AND digest = $2")
            .bind(repo.as_str())
            .bind(digest.as_str())
            .execute(&mut *tx)
            .await?;
        mark_candidates(&mut tx, std::slice::from_ref(&digest.to_string()), now).await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    /// The blob `digest` if it is stored at all (any repository), read through the writer so a
    /// link just committed is seen.
    pub async fn blob(&self, digest: &Digest) -> Result<Option<StoredBlob>> {
        let row =
            sqlx::query("SELECT size, location, unreferenced_at FROM blobs WHERE digest = $1")
                .bind(digest.as_str())
                .fetch_optional(&self.write)
                .await?;
        row.as_ref().map(stored_blob).transpose()
    }

    /// A use of a candidate blob (a `HEAD`, a `GET`, a push of it that found it stored): keeps
    /// it from garbage collection for another grace period, in the statement that checks it is
    /// still there. `false` if it is gone.
    pub async fn touch_blob(&self, digest: &Digest, now: i64) -> Result<bool> {
        let mut tx = self.write.begin().await?;
        let exists = touch(&mut tx, digest.as_str(), now).await?;
        tx.commit().await?;
        Ok(exists)
    }

    // ---- uploads ---------------------------------------------------------------------------

    pub async fn upload(&self, id: &str) -> Result<Option<Upload>> {
        // Read through the writer pool: a session is read right after its last write, possibly
        // by a request that raced with it, and must see the latest size.
        let row =
            sqlx::query("SELECT repo, size, hash_state, store_state FROM uploads WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.write)
                .await?;
        let Some(row) = row else { return Ok(None) };
        let size: i64 = row.try_get("size")?;
        Ok(Some(Upload {
            repo: row.try_get("repo")?,
            size: size.max(0) as u64,
            hash_state: row.try_get("hash_state")?,
            store_state: row.try_get("store_state")?,
            closed: size < 0,
        }))
    }

    /// Moves an upload from `old_size` to `new_size`, creating its row on the first chunk;
    /// false if another request moved it first.
    pub async fn advance_upload(
        &self,
        id: &str,
        repo: &RepoName,
        old_size: u64,
        new_size: u64,
        hash_state: &[u8],
        store_state: &[u8],
    ) -> Result<bool> {
        let now = now_ms();
        if old_size == 0 {
            let created = sqlx::query(
                "INSERT INTO uploads (id, repo, size, hash_state, store_state, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT DO NOTHING",
            )
            .bind(id)
            .bind(repo.as_str())
            .bind(new_size as i64)
            .bind(hash_state.to_vec())
            .bind(store_state.to_vec())
            .bind(now)
            .execute(&self.write)
            .await?;
            if created.rows_affected() == 1 {
                return Ok(true);
            }
        }
        let done = sqlx::query(
            "UPDATE uploads SET size = $1, hash_state = $2, store_state = $3, updated_at = $4 WHERE id = $5 AND size = $6",
        )
        .bind(new_size as i64)
        .bind(hash_state.to_vec())
        .bind(store_state.to_vec())
        .bind(now)
        .bind(id)
        .bind(old_size as i64)
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Marks a session finished or cancelled, so its id is unknown from now on (GC removes the
    /// row once the id has expired anyway).
    pub async fn close_upload(&self, id: &str, repo: &RepoName) -> Result<()> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO uploads (id, repo, size, hash_state, created_at, updated_at) VALUES ($1, $2, -1, $3, $4, $4) \
             ON CONFLICT (id) DO UPDATE SET size = -1, hash_state = excluded.hash_state, updated_at = excluded.updated_at",
        )
        .bind(id)
        .bind(repo.as_str())
        .bind(Vec::<u8>::new())
        .bind(now)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    pub async fn delete_upload(&self, id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM uploads WHERE id = $1")
            .bind(id)
            .execute(&self.write)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// The key that signs upload session ids, created on first use and shared by all replicas.
    pub async fn upload_key(&self) -> Result<Vec<u8>> {
        let value = self
            .shared_setting("upload_key", || hex::encode(rand::random::<[u8; 32]>()))
            .await?;
        hex::decode(value).map_err(|_| Error::internal("corrupt upload key in settings"))
    }

    /// A registry-wide setting: the stored value, or `fresh()` stored now if there is none yet
    /// (when replicas start together, the first insert wins and all read the same value).
    pub async fn shared_setting(
        &self,
        name: &str,
        fresh: impl FnOnce() -> String,
    ) -> Result<String> {
        sqlx::query("INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(name)
            .bind(fresh())
            .execute(&self.write)
            .await?;
        let row = sqlx::query("SELECT value FROM settings WHERE name = $1")
            .bind(name)
            .fetch_one(&self.write)
            .await?;
        Ok(row.try_get("value")?)
    }

    // ---- manifests -------------------------------------------------------------------------

    /// Looks a manifest up by digest in `repo`.
    pub async fn manifest_by_digest(
        &self,
        repo: &RepoName,
        digest: &Digest,
        now: i64,
    ) -> Result<Option<StoredManifest>> {
        let row = sqlx::query(
            "SELECT digest, media_type, content, expires_at FROM manifests WHERE repo = $1 AND digest = $2 \
             AND (expires_at IS NULL OR expires_at > $3)",
        )
        .bind(repo.as_str())
        .bind(digest.as_str())
        .bind(now)
        .fetch_optional(&self.read)
        .await?;
        row.map(|r| stored_manifest(&r)).transpose()
    }

    /// Looks a manifest up by tag in `repo`.
    pub async fn manifest_by_tag(
        &self,
        repo: &RepoName,
        tag: &Tag,
        now: i64,
    ) -> Result<Option<StoredManifest>> {
        // The lookup lives as long as both the tag and the manifest do.
        let row = sqlx::query(
            "SELECT m.digest, m.media_type, m.content, \
             CASE WHEN t.expires_at IS NULL THEN m.expires_at WHEN m.expires_at IS NULL THEN t.expires_at \
                  WHEN t.expires_at < m.expires_at THEN t.expires_at ELSE m.expires_at END AS expires_at \
             FROM tags t JOIN manifests m ON m.repo = t.repo AND m.digest = t.digest \
             WHERE t.repo = $1 AND t.name = $2 AND (t.expires_at IS NULL OR t.expires_at > $3) \
             AND (m.expires_at IS NULL OR m.expires_at > $3)",
        )
        .bind(repo.as_str())
        .bind(tag.as_str())
        .bind(now)
        .fetch_optional(&self.read)
        .await?;
        row.map(|r| stored_manifest(&r)).transpose()
    }

    /// The size of manifest `digest` in `repo`, if it is stored there.
    pub async fn manifest_size(&self, repo: &RepoName, digest: &Digest) -> Result<Option<u64>> {
        let row = sqlx::query("SELECT size FROM manifests WHERE repo = $1 AND digest = $2")
            .bind(repo.as_str())
            .bind(digest.as_str())
            .fetch_optional(&self.read)
            .await?;
        row.map(|r| Ok(r.try_get::<i64, _>("size")?.max(0) as u64))
            .transpose()
    }

    /// Stores a manifest (idempotent for the same bytes) and points `tag` at it. With an owner,
    /// the manifest joins that build (living at least as long as it) and the tag becomes the
    /// build's; without one, the tag is nobody's and never expires.
    pub async fn put_manifest(
        &self,
        repo: &RepoName,
        m: &NewManifest,
        tag: Option<&Tag>,
        owner: Option<&Owner>,
    ) -> Result<()> {
        // Rows are locked in one order (sorted digests), but a collection deleting the same
        // rows may still meet a push head-on on PostgreSQL; the loser is simply run again.
        let mut attempt = 0;
        loop {
            match self.put_manifest_once(repo, m, tag, owner).await {
                Err(e) if e.is_conflict() && attempt < 5 => {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(10 * attempt)).await;
                }
                other => return other,
            }
        }
    }

    async fn put_manifest_once(
        &self,
        repo: &RepoName,
        m: &NewManifest,
        tag: Option<&Tag>,
        owner: Option<&Owner>,
    ) -> Result<()> {
        let now = now_ms();
        let mut blobs: Vec<&Digest> = m.blobs.iter().collect();
        blobs.sort();
        blobs.dedup();
        let mut children: Vec<&Digest> = m.manifests.iter().collect();
        children.sort();
        children.dedup();
        let mut tx = self.write.begin().await?;
        // What the manifest references is checked again here, in the transaction that records
        // the references, and kept: a blob stops being a candidate for collection, a child
        // manifest lives at least as long as its new parent. On PostgreSQL these updates lock
        // rows a concurrent collection is deleting, so one of the two sees the other's result.
        for blob in blobs {
            sqlx::query(
                "UPDATE blobs SET unreferenced_at = NULL WHERE digest = $1 AND unreferenced_at IS NOT NULL",
            )
            .bind(blob.as_str())
            .execute(&mut *tx)
            .await?;
            let there = sqlx::query(
                "SELECT 1 FROM repo_blobs r JOIN blobs b ON b.digest = r.digest WHERE r.repo = $1 AND r.digest = $2",
            )
            .bind(repo.as_str())
            .bind(blob.as_str())
            .fetch_optional(&mut *tx)
            .await?;
            if there.is_none() {
                return Err(Error::manifest_blob_unknown(blob));
            }
        }
        for child in children {
            match owner {
                Some(o) => sqlx::query(
                    "UPDATE manifests SET expires_at = $3 WHERE repo = $1 AND digest = $2 AND expires_at < $3",
                )
                .bind(repo.as_str())
                .bind(child.as_str())
                .bind(o.expires_at),
                None => sqlx::query(
                    "UPDATE manifests SET expires_at = NULL WHERE repo = $1 AND digest = $2 AND expires_at IS NOT NULL",
                )
                .bind(repo.as_str())
                .bind(child.as_str()),
            }
            .execute(&mut *tx)
            .await?;
            let there = sqlx::query("SELECT 1 FROM manifests WHERE repo = $1 AND digest = $2")
                .bind(repo.as_str())
                .bind(child.as_str())
                .fetch_optional(&mut *tx)
                .await?;
            if there.is_none() {
                return Err(Error::manifest_blob_unknown(child));
            }
        }
        sqlx::query(
            "INSERT INTO repositories (name, created_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(repo.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let inserted = sqlx::query(
            "INSERT INTO manifests (repo, digest, media_type, content, size, subject, artifact_type, annotations, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING",
        )
        .bind(repo.as_str())
        .bind(m.digest.as_str())
        .bind(&m.media_type)
        .bind(m.content.clone())
        .bind(m.content.len() as i64)
        .bind(m.subject.as_ref().map(|d| d.to_string()))
        .bind(m.artifact_type.clone())
        .bind(m.annotations.clone())
        .bind(now)
        .bind(owner.map(|o| o.expires_at))
        .execute(&mut *tx)
        .await?;
        if let Some(owner) = owner {
            sqlx::query(
                "INSERT INTO build_manifests (build_id, repo, digest) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            )
            .bind(&owner.build_id)
            .bind(repo.as_str())
            .bind(m.digest.as_str())
            .execute(&mut *tx)
            .await?;
            // An existing (perhaps expired) copy lives on with this build.
            sqlx::query(
                "UPDATE manifests SET expires_at = $1 WHERE repo = $2 AND digest = $3 AND expires_at < $1",
            )
            .bind(owner.expires_at)
            .bind(repo.as_str())
            .bind(m.digest.as_str())
            .execute(&mut *tx)
            .await?;
        } else {
            // Pushed by nobody's build: it never expires, even if a build's copy had.
            sqlx::query(
                "UPDATE manifests SET expires_at = NULL WHERE repo = $1 AND digest = $2 AND expires_at IS NOT NULL",
            )
            .bind(repo.as_str())
            .bind(m.digest.as_str())
            .execute(&mut *tx)
            .await?;
        }
        if inserted.rows_affected() > 0 {
            let refs = m
                .blobs
                .iter()
                .map(|d| (d, "blob"))
                .chain(m.manifests.iter().map(|d| (d, "manifest")));
            for (child, kind) in refs {
                sqlx::query(
                    "INSERT INTO manifest_refs (repo, manifest, child, kind) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                )
                .bind(repo.as_str())
                .bind(m.digest.as_str())
                .bind(child.as_str())
                .bind(kind)
                .execute(&mut *tx)
                .await?;
            }
        }
        if let Some(tag) = tag {
            sqlx::query(UPSERT_TAG)
                .bind(repo.as_str())
                .bind(tag.as_str())
                .bind(m.digest.as_str())
                .bind(now)
                .bind(owner.map(|o| o.build_id.clone()))
                .bind(owner.map(|o| o.expires_at))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Deletes a manifest and every tag pointing at it; the tags removed are returned
    /// (`None` if the manifest was not there).
    pub async fn delete_manifest(
        &self,
        repo: &RepoName,
        digest: &Digest,
        now: i64,
    ) -> Result<Option<Vec<String>>> {
        let mut tx = self.write.begin().await?;
        let done = sqlx::query("DELETE FROM manifests WHERE repo = $1 AND digest = $2")
            .bind(repo.as_str())
            .bind(digest.as_str())
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        let tags = sqlx::query("SELECT name FROM tags WHERE repo = $1 AND digest = $2")
            .bind(repo.as_str())
            .bind(digest.as_str())
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r| r.try_get::<String, _>("name"))
            .collect::<Result<Vec<_>, _>>()?;
        sqlx::query("DELETE FROM tags WHERE repo = $1 AND digest = $2")
            .bind(repo.as_str())
            .bind(digest.as_str())
            .execute(&mut *tx)
            .await?;
        let blobs = referenced_blobs(&mut tx, repo.as_str(), digest.as_str()).await?;
        sqlx::query("DELETE FROM manifest_refs WHERE repo = $1 AND manifest = $2")
            .bind(repo.as_str())
            .bind(digest.as_str())
            .execute(&mut *tx)
            .await?;
        mark_candidates(&mut tx, &blobs, now).await?;
        tx.commit().await?;
        Ok(Some(tags))
    }

    /// Deletes a tag (not the manifest); false if it did not exist.
    pub async fn delete_tag(&self, repo: &RepoName, tag: &Tag) -> Result<bool> {
        let done = sqlx::query("DELETE FROM tags WHERE repo = $1 AND name = $2")
            .bind(repo.as_str())
            .bind(tag.as_str())
            .execute(&self.write)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Up to `n` tags after `last`, in case-insensitive order (ties broken by bytes).
    pub async fn list_tags(
        &self,
        repo: &RepoName,
        n: i64,
        last: Option<&str>,
        now: i64,
    ) -> Result<Vec<String>> {
        // Tags are never empty, so "after ''" is every tag: one query serves both cases.
        let rows = sqlx::query(
            "SELECT name FROM tags WHERE repo = $1 AND (lower(name) > lower($2) OR (lower(name) = lower($2) AND name > $2)) \
             AND (expires_at IS NULL OR expires_at > $4) ORDER BY lower(name), name LIMIT $3",
        )
        .bind(repo.as_str())
        .bind(last.unwrap_or(""))
        .bind(n)
        .bind(now)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| Ok(r.try_get::<String, _>("name")?))
            .collect()
    }

    /// Manifests in `repo` whose subject is `subject`, optionally of one artifact type.
    pub async fn referrers(
        &self,
        repo: &RepoName,
        subject: &Digest,
        artifact_type: Option<&str>,
        now: i64,
    ) -> Result<Vec<Referrer>> {
        let rows = sqlx::query(
            "SELECT digest, media_type, size, artifact_type, annotations FROM manifests \
             WHERE repo = $1 AND subject = $2 AND ($3 = '' OR artifact_type = $3) \
             AND (expires_at IS NULL OR expires_at > $4) ORDER BY created_at, digest",
        )
        .bind(repo.as_str())
        .bind(subject.as_str())
        .bind(artifact_type.unwrap_or(""))
        .bind(now)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Referrer {
                    digest: r.try_get("digest")?,
                    media_type: r.try_get("media_type")?,
                    size: r.try_get::<i64, _>("size")? as u64,
                    artifact_type: r.try_get("artifact_type")?,
                    annotations: r.try_get("annotations")?,
                })
            })
            .collect()
    }
}

/// Commits queued blob links, as many as are waiting at once, in one transaction each round.
async fn group_commit_links(write: AnyPool, mut queue: mpsc::Receiver<LinkRequest>) {
    let mut batch = Vec::with_capacity(MAX_LINK_BATCH);
    while queue.recv_many(&mut batch, MAX_LINK_BATCH).await > 0 {
        match commit_links(&write, &batch).await {
            Ok(linked) => {
                for (request, blob) in batch.drain(..).zip(linked) {
                    let _ = request.done.send(Ok(blob));
                }
            }
            Err(e) => {
                for request in batch.drain(..) {
                    let _ = request
                        .done
                        .send(Err(Error::unavailable(format!("linking blobs: {e}"))));
                }
            }
        }
    }
}

async fn commit_links(
    write: &AnyPool,
    batch: &[LinkRequest],
) -> Result<Vec<Option<StoredBlob>>, sqlx::Error> {
    let mut tx = write.begin().await?;
    let mut out = Vec::with_capacity(batch.len());
    for link in batch {
        if let Link::New(blob) = &link.link {
            // A new blob is a candidate until a manifest references it: an upload that is never
            // referenced is collected after the grace period.
            sqlx::query("INSERT INTO blobs (digest, size, location, created_at, unreferenced_at) VALUES ($1, $2, $3, $4, $4) ON CONFLICT DO NOTHING")
                .bind(link.digest.as_str())
                .bind(blob.size as i64)
                .bind(&blob.location)
                .bind(link.now)
                .execute(&mut *tx)
                .await?;
        }
        // An existing blob is linked only if it is still there, and kept for a grace period.
        if !touch(&mut tx, link.digest.as_str(), link.now).await? {
            out.push(None);
            continue;
        }
        sqlx::query(
            "INSERT INTO repositories (name, created_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(link.repo.as_str())
        .bind(link.now)
        .execute(&mut *tx)
        .await?;
        sqlx::query("INSERT INTO repo_blobs (repo, digest, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
            .bind(link.repo.as_str())
            .bind(link.digest.as_str())
            .bind(link.now)
            .execute(&mut *tx)
            .await?;
        let row =
            sqlx::query("SELECT size, location, unreferenced_at FROM blobs WHERE digest = $1")
                .bind(link.digest.as_str())
                .fetch_one(&mut *tx)
                .await?;
        out.push(Some(
            stored_blob(&row).map_err(|e| sqlx::Error::Protocol(e.message))?,
        ));
    }
    tx.commit().await?;
    Ok(out)
}

/// Keeps a candidate blob for another grace period (a write only if it was last kept more than
/// a moment ago); whether the blob is there. On PostgreSQL the update locks a candidate's row,
/// so a collection deleting it at the same moment either finishes first (and the blob is gone)
/// or sees it kept.
async fn touch(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    digest: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    sqlx::query(
        "UPDATE blobs SET unreferenced_at = $2 WHERE digest = $1 AND unreferenced_at IS NOT NULL AND unreferenced_at < $3",
    )
    .bind(digest)
    .bind(now)
    .bind(now - TOUCH_SLACK_MS)
    .execute(&mut **tx)
    .await?;
    let row = sqlx::query("SELECT 1 FROM blobs WHERE digest = $1")
        .bind(digest)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(row.is_some())
}

/// The blobs a manifest references.
async fn referenced_blobs(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    repo: &str,
    manifest: &str,
) -> Result<Vec<String>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT child FROM manifest_refs WHERE repo = $1 AND manifest = $2 AND kind = 'blob'",
    )
    .bind(repo)
    .bind(manifest)
    .fetch_all(&mut **tx)
    .await?;
    rows.iter()
        .map(|r| r.try_get::<String, _>("child"))
        .collect()
}

/// Makes blobs candidates again (a manifest referencing them, or a repository's link, went):
/// garbage collection looks at them after the grace period and deletes those no manifest
/// references by then.
async fn mark_candidates(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    digests: &[String],
    now: i64,
) -> Result<(), sqlx::Error> {
    // Sorted, as every transaction that updates several blob rows does: no deadlocks.
    let mut digests: Vec<&String> = digests.iter().collect();
    digests.sort();
    digests.dedup();
    for d in digests {
        sqlx::query("UPDATE blobs SET unreferenced_at = $2 WHERE digest = $1")
            .bind(d)
            .bind(now)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

fn stored_blob(row: &AnyRow) -> Result<StoredBlob> {
    Ok(StoredBlob {
        size: row.try_get::<i64, _>("size")?.max(0) as u64,
        location: row.try_get("location")?,
        candidate: row.try_get::<Option<i64>, _>("unreferenced_at")?.is_some(),
    })
}

fn stored_manifest(row: &AnyRow) -> Result<StoredManifest> {
    Ok(StoredManifest {
        digest: digest_col(row, "digest")?,
        media_type: row.try_get("media_type")?,
        content: bytes::Bytes::from(row.try_get::<Vec<u8>, _>("content")?),
        expires_at: row.try_get("expires_at")?,
    })
}

#[cfg(test)]
pub(crate) mod suite {
    //! The shared test suite every metadata backend must pass.
    use super::*;
    use crate::builds::{Build, BuildSpec, BuildState, Project};
    use crate::digest::Algorithm;

    fn repo(s: &str) -> RepoName {
        s.parse().unwrap()
    }

    pub async fn run(db: &Metadata) {
        let now = now_ms();
        let a = repo("team/a");
        let b = repo("team/b");
        let d1 = Digest::of(Algorithm::Sha256, b"one");
        let d2 = Digest::of(Algorithm::Sha256, b"two");

        // Blobs are per repository. A new blob is a candidate for collection until a manifest
        // references it.
        let mut stored = StoredBlob::new(3, "loc-1".into());
        stored.candidate = true;
        let linked = db.link_blob(&a, &d1, Link::New(stored.clone()), now);
        assert_eq!(linked.await.unwrap(), Some(stored.clone()));
        // A second link with another location (a lost race) keeps, and returns, the first.
        let loser = Link::New(StoredBlob::new(3, "loc-2".into()));
        let linked = db.link_blob(&a, &d1, loser, now).await.unwrap();
        assert_eq!(linked, Some(stored.clone()));
        assert_eq!(db.repo_blob(&a, &d1).await.unwrap(), Some(stored.clone()));
        assert_eq!(db.repo_blob(&b, &d1).await.unwrap(), None);
        assert_eq!(db.mount_blob(&b, &a, &d2, now).await.unwrap(), None);
        assert_eq!(
            db.mount_blob(&b, &a, &d1, now).await.unwrap(),
            Some(stored.clone())
        );
        // Linking an existing blob that is not stored (collected) links nothing.
        let gone = Digest::of(Algorithm::Sha256, b"gone");
        assert_eq!(
            db.link_blob(&b, &gone, Link::Existing, now).await.unwrap(),
            None
        );
        assert_eq!(db.repo_blob(&b, &gone).await.unwrap(), None);
        assert!(db.touch_blob(&d1, now).await.unwrap());
        assert!(!db.touch_blob(&gone, now).await.unwrap());
        assert_eq!(
            db.repos_with_blob(&d1, 10).await.unwrap(),
            vec!["team/a", "team/b"]
        );
        assert!(db.unlink_blob(&b, &d1, now).await.unwrap());
        assert!(!db.unlink_blob(&b, &d1, now).await.unwrap());
        assert_eq!(db.blob(&d1).await.unwrap(), Some(stored.clone()));

        // Uploads get a row with their first chunk and move forward only from where they stand.
        assert!(db.upload("u1").await.unwrap().is_none());
        assert!(db
            .advance_upload("u1", &a, 0, 10, b"s1", b"t1")
            .await
            .unwrap());
        assert!(!db
            .advance_upload("u1", &a, 0, 20, b"s2", b"t2")
            .await
            .unwrap());
        assert!(db
            .advance_upload("u1", &a, 10, 15, b"s3", b"t3")
            .await
            .unwrap());
        let up = db.upload("u1").await.unwrap().unwrap();
        assert_eq!(
            (
                up.size,
                up.hash_state.as_slice(),
                up.store_state.as_slice(),
                up.repo.as_str(),
                up.closed
            ),
            (15, &b"s3"[..], &b"t3"[..], "team/a", false)
        );
        db.close_upload("u1", &a).await.unwrap();
        assert!(db.upload("u1").await.unwrap().unwrap().closed);
        assert!(!db
            .advance_upload("u1", &a, 15, 20, b"s4", b"t4")
            .await
            .unwrap());
        db.close_upload("u2", &a).await.unwrap();
        assert!(db.upload("u2").await.unwrap().unwrap().closed);
        assert!(db.delete_upload("u1").await.unwrap());
        assert!(db.upload("u1").await.unwrap().is_none());
        let key = db.upload_key().await.unwrap();
        assert_eq!(key.len(), 32);
        assert_eq!(db.upload_key().await.unwrap(), key);

        // Manifests, tags, ordering and referrers.
        let m = NewManifest {
            digest: d2.clone(),
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            content: b"two".to_vec(),
            subject: Some(d1.clone()),
            artifact_type: Some("application/x-sbom".into()),
            annotations: Some(r#"{"k":"v"}"#.into()),
            blobs: vec![d1.clone()],
            manifests: vec![],
        };
        for t in ["b", "A", "a", "C", "_z"] {
            db.put_manifest(&a, &m, Some(&t.parse().unwrap()), None)
                .await
                .unwrap();
        }
        assert_eq!(
            db.list_tags(&a, 100, None, now).await.unwrap(),
            vec!["_z", "A", "a", "b", "C"]
        );
        assert_eq!(
            db.list_tags(&a, 2, Some("A"), now).await.unwrap(),
            vec!["a", "b"]
        );
        let got = db
            .manifest_by_tag(&a, &"b".parse().unwrap(), now)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((got.digest, &got.content[..]), (d2.clone(), &b"two"[..]));
        assert!(db.manifest_by_digest(&b, &d2, now).await.unwrap().is_none());
        let refs = db.referrers(&a, &d1, None, now).await.unwrap();
        assert_eq!(refs.len(), 1);
        assert_eq!(refs[0].size, 3);
        assert!(db
            .referrers(&a, &d1, Some("other"), now)
            .await
            .unwrap()
            .is_empty());
        assert_eq!(
            db.referrers(&a, &d1, Some("application/x-sbom"), now)
                .await
                .unwrap()
                .len(),
            1
        );

        assert!(db.delete_tag(&a, &"b".parse().unwrap()).await.unwrap());
        assert!(!db.delete_tag(&a, &"b".parse().unwrap()).await.unwrap());
        // A manifest referencing the blob takes it out of the candidates; deleting the
        // manifest puts it back.
        assert!(!db.blob(&d1).await.unwrap().unwrap().candidate);
        let mut removed = db.delete_manifest(&a, &d2, now).await.unwrap().unwrap();
        removed.sort();
        assert_eq!(removed, vec!["A", "C", "_z", "a"]);
        assert!(db.delete_manifest(&a, &d2, now).await.unwrap().is_none());
        assert!(db.blob(&d1).await.unwrap().unwrap().candidate);
        // A manifest whose blob the repository does not hold is refused in its transaction.
        let mut orphan = manifest(b"orphan");
        orphan.blobs = vec![gone.clone()];
        let err = db.put_manifest(&a, &orphan, None, None).await.unwrap_err();
        assert_eq!(err.code, crate::error::Code::ManifestBlobUnknown);
        assert!(db.list_tags(&a, 10, None, now).await.unwrap().is_empty());

        assert!(db.repository_exists(&a).await.unwrap());
        assert!(!db.repository_exists(&repo("nope")).await.unwrap());
        assert_eq!(db.list_repositories(1, None).await.unwrap(), vec!["team/a"]);
        assert_eq!(
            db.list_repositories(10, Some("team/a")).await.unwrap(),
            vec!["team/b"]
        );

        builds_and_expiry(db).await;
        super::gc::suite::run(db).await;
    }

    fn manifest(content: &[u8]) -> NewManifest {
        NewManifest {
            digest: Digest::of(Algorithm::Sha256, content),
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            content: content.to_vec(),
            subject: None,
            artifact_type: None,
            annotations: None,
            blobs: vec![],
            manifests: vec![],
        }
    }

    fn build(id: &str, project: &str, created_at: i64, expires_at: i64) -> Build {
        Build {
            id: id.into(),
            project: project.into(),
            state: BuildState::Building,
            spec: BuildSpec::default(),
            failure: None,
            created_at,
            updated_at: created_at,
            lease_expires_at: created_at + 1000,
            expires_at,
        }
    }

    /// Projects, tokens, builds, and the exact expiry of what builds own.
    async fn builds_and_expiry(db: &Metadata) {
        let p = Project {
            id: "proj1".into(),
            name: "one".into(),
            retention_secs: 60,
            created_at: 1,
        };
        db.create_project(&p).await.unwrap();
        assert_eq!(db.project("proj1").await.unwrap(), Some(p.clone()));
        assert!(db.project("nope").await.unwrap().is_none());
        assert!(db.update_project("proj1", "uno", 120).await.unwrap());
        assert_eq!(db.list_projects().await.unwrap()[0].retention_secs, 120);

        let t = TokenInfo {
            id: "t1".into(),
            project: "proj1".into(),
            name: "ci".into(),
            created_at: 1,
            revoked_at: None,
        };
        db.create_project_token(&t, "hash1").await.unwrap();
        assert_eq!(
            db.project_token_by_hash("hash1").await.unwrap().unwrap().id,
            "t1"
        );
        assert!(db.revoke_project_token("proj1", "t1", 5).await.unwrap());
        assert!(!db.revoke_project_token("proj1", "t1", 6).await.unwrap());
        assert!(db.project_token_by_hash("hash1").await.unwrap().is_none());
        assert_eq!(
            db.list_project_tokens("proj1").await.unwrap()[0].revoked_at,
            Some(5)
        );

        // Two builds share one manifest; each has its own tag.
        let r = repo("proj1");
        let (b1, b2) = (
            build("b1", "proj1", 10, 1_000),
            build("b2", "proj1", 20, 2_000),
        );
        db.create_build(&b1).await.unwrap();
        db.create_build(&b2).await.unwrap();
        let shared = manifest(b"shared");
        let only1 = manifest(b"only-in-b1");
        let o1 = Owner {
            build_id: "b1".into(),
            expires_at: 1_000,
        };
        let o2 = Owner {
            build_id: "b2".into(),
            expires_at: 2_000,
        };
        db.put_manifest(&r, &shared, Some(&"b1".parse().unwrap()), Some(&o1))
            .await
            .unwrap();
        db.put_manifest(&r, &only1, None, Some(&o1)).await.unwrap();
        db.put_manifest(&r, &shared, Some(&"b2".parse().unwrap()), Some(&o2))
            .await
            .unwrap();
        let tag = |t: &str| t.parse::<Tag>().unwrap();
        let by_tag = |t: &'static str, at: i64| async move {
            db.manifest_by_tag(&r_static(), &tag(t), at).await.unwrap()
        };
        assert_eq!(by_tag("b1", 999).await.unwrap().expires_at, Some(1_000));
        assert!(
            by_tag("b1", 1_000).await.is_none(),
            "expired exactly at expires_at"
        );
        assert!(by_tag("b2", 1_500).await.is_some());
        assert!(db
            .manifest_by_digest(&r, &shared.digest, 1_500)
            .await
            .unwrap()
            .is_some());
        assert!(db
            .manifest_by_digest(&r, &only1.digest, 1_500)
            .await
            .unwrap()
            .is_none());
        assert_eq!(db.list_tags(&r, 10, None, 1_500).await.unwrap(), vec!["b2"]);
        assert_eq!(db.tag_owner(&r, "b1").await.unwrap().as_deref(), Some("b1"));
        assert_eq!(db.image_size(&r, shared.digest.as_str()).await.unwrap(), 6);
        assert!(db
            .build_has_manifest("b1", &r, shared.digest.as_str())
            .await
            .unwrap());
        assert!(!db
            .build_has_manifest("b2", &r, only1.digest.as_str())
            .await
            .unwrap());

        // Extending brings b1 back; deleting b2 leaves the shared manifest to b1.
        assert!(db.set_build_expiry("b1", 5_000, 1_500).await.unwrap());
        assert!(by_tag("b1", 4_000).await.is_some());
        assert!(db
            .manifest_by_digest(&r, &only1.digest, 4_000)
            .await
            .unwrap()
            .is_some());
        let removed = db.delete_build("b2", 1_600).await.unwrap().unwrap();
        assert_eq!(removed, vec!["b2"]);
        assert!(db.delete_build("b2", 1_600).await.unwrap().is_none());
        assert!(by_tag("b2", 1_700).await.is_none());
        assert!(db
            .manifest_by_digest(&r, &shared.digest, 4_000)
            .await
            .unwrap()
            .is_some());
        assert!(db.delete_build("b1", 1_800).await.unwrap().is_some());
        assert!(db
            .manifest_by_digest(&r, &shared.digest, 1_900)
            .await
            .unwrap()
            .is_none());

        // A manifest pushed again by a new build lives again.
        let b3 = build("b3", "proj1", 30, 9_000);
        db.create_build(&b3).await.unwrap();
        let o3 = Owner {
            build_id: "b3".into(),
            expires_at: 9_000,
        };
        db.put_manifest(&r, &shared, None, Some(&o3)).await.unwrap();
        assert!(db
            .manifest_by_digest(&r, &shared.digest, 8_000)
            .await
            .unwrap()
            .is_some());
        db.tag_manifest(&r, &tag("latest"), &shared.digest, &o3)
            .await
            .unwrap();
        assert_eq!(
            db.tag_owner(&r, "latest").await.unwrap().as_deref(),
            Some("b3")
        );

        // State transitions happen once; images are recorded per target and platform.
        assert!(db
            .transition_build(
                "b3",
                BuildState::Building,
                BuildState::Failed,
                Some("x"),
                40
            )
            .await
            .unwrap());
        assert!(!db
            .transition_build("b3", BuildState::Building, BuildState::Saved, None, 41)
            .await
            .unwrap());
        assert_eq!(
            db.build("b3").await.unwrap().unwrap().failure.as_deref(),
            Some("x")
        );
        let img = BuildImage {
            target: String::new(),
            platform: "linux/amd64".into(),
            digest: shared.digest.to_string(),
            media_type: shared.media_type.clone(),
            size: 6,
        };
        db.record_build_image("b3", &img, 50).await.unwrap();
        db.record_build_image("b3", &img, 51).await.unwrap();
        assert_eq!(db.build_images("b3").await.unwrap(), vec![img]);

        // Newest first, paginated by (created_at, id).
        for (i, id) in ["c1", "c2", "c3"].iter().enumerate() {
            db.create_build(&build(id, "proj1", 100 + i as i64, 10_000))
                .await
                .unwrap();
        }
        let first = db.list_builds("proj1", 2, None).await.unwrap();
        let ids: Vec<_> = first.iter().map(|b| b.id.as_str()).collect();
        assert_eq!(ids, vec!["c3", "c2"]);
        let last = first.last().unwrap();
        let rest = db
            .list_builds("proj1", 10, Some((last.created_at, &last.id)))
            .await
            .unwrap();
        let ids: Vec<_> = rest.iter().map(|b| b.id.as_str()).collect();
        assert_eq!(ids, vec!["c1", "b3"]);

        fn r_static() -> RepoName {
            "proj1".parse().unwrap()
        }
    }

    #[tokio::test]
    async fn sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}?mode=rwc", dir.path().join("m.db").display());
        let db = Metadata::connect(&url).await.unwrap();
        run(&db).await;
    }

    /// Runs against PostgreSQL when `DEPOT_TEST_POSTGRES_URL` names a scratch database.
    #[tokio::test]
    async fn postgres() {
        let Ok(url) = std::env::var("DEPOT_TEST_POSTGRES_URL") else {
            eprintln!(
                "DEPOT_TEST_POSTGRES_URL not set; the PostgreSQL backend is covered by .ci/run"
            );
            return;
        };
        let db = Metadata::connect(&url).await.unwrap();
        run(&db).await;
    }
}
