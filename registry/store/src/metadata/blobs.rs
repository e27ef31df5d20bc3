//! Repositories and the blobs they hold: lookups, links (group-committed: concurrent pushes of
//! layers share one transaction), mounts, unlinks, and keeping a collection candidate.

use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};
use tokio::sync::{mpsc, oneshot};

use super::Metadata;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::names::RepoName;

/// A blob link waiting for the next group commit.
pub(super) struct LinkRequest {
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
pub(super) const MAX_LINK_BATCH: usize = 256;

impl Metadata {
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
        row.as_ref().map(blob_from_row).transpose()
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
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("DELETE FROM repo_blobs WHERE repo = $1 AND digest = $2")
            .bind(repo.as_str())
            .bind(digest.as_str())
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() > 0 {
            let size: Option<i64> = sqlx::query_scalar("SELECT size FROM blobs WHERE digest = $1")
                .bind(digest.as_str())
                .fetch_optional(&mut *tx)
                .await?;
            add_usage(&mut tx, repo.as_str(), -size.unwrap_or(0), -1).await?;
        }
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
        row.as_ref().map(blob_from_row).transpose()
    }

    /// A use of a candidate blob (a `HEAD`, a `GET`, a push of it that found it stored): keeps
    /// it from garbage collection for another grace period, in the statement that checks it is
    /// still there. `false` if it is gone.
    pub async fn touch_blob(&self, digest: &Digest, now: i64) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let exists = touch(&mut tx, digest.as_str(), now).await?;
        tx.commit().await?;
        Ok(exists)
    }
}

/// Commits queued blob links, as many as are waiting at once, in one transaction each round.
pub(super) async fn group_commit_links(write: AnyPool, mut queue: mpsc::Receiver<LinkRequest>) {
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
    let started = std::time::Instant::now();
    let mut tx = write.begin().await?;
    crate::metrics::write_acquired(started.elapsed());
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
        let linked = sqlx::query("INSERT INTO repo_blobs (repo, digest, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
            .bind(link.repo.as_str())
            .bind(link.digest.as_str())
            .bind(link.now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let row =
            sqlx::query("SELECT size, location, unreferenced_at FROM blobs WHERE digest = $1")
                .bind(link.digest.as_str())
                .fetch_one(&mut *tx)
                .await?;
        let blob = blob_from_row(&row).map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
        if linked > 0 {
            add_usage(&mut tx, link.repo.as_str(), blob.size as i64, 1).await?;
        }
        out.push(Some(blob));
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

/// Makes blobs candidates again (a manifest referencing them, or a repository's link, went):
/// garbage collection looks at them after the grace period and deletes those no manifest
/// references by then.
pub(super) async fn mark_candidates(
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

fn blob_from_row(row: &AnyRow) -> Result<StoredBlob> {
    Ok(StoredBlob {
        size: row.try_get::<i64, _>("size")?.max(0) as u64,
        location: row.try_get("location")?,
        candidate: row.try_get::<Option<i64>, _>("unreferenced_at")?.is_some(),
    })
}

/// Adds `bytes` and `blobs` (negative to subtract) to what `repo` holds, in the transaction
/// that linked or unlinked them.
pub(super) async fn add_usage(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    repo: &str,
    bytes: i64,
    blobs: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO repo_usage (repo, bytes, blobs) VALUES ($1, $2, $3) \
         ON CONFLICT (repo) DO UPDATE SET bytes = repo_usage.bytes + excluded.bytes, blobs = repo_usage.blobs + excluded.blobs",
    )
    .bind(repo)
    .bind(bytes)
    .bind(blobs)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
