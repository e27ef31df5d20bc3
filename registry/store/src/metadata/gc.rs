//! The SQL of garbage collection (the algorithm is in the `depot-gc` crate).
//!
//! Every deleting statement carries the whole condition that makes its row garbage, so it is
//! re-checked at the instant of deletion; pushes touch what they reuse in the statement that
//! checks it exists (see `put_manifest`, `touch`, `commit_links`). On SQLite the single writer
//! orders the two; on PostgreSQL the row lock taken by whichever updates first does, and the
//! other re-evaluates its condition against the committed row.

use sqlx::Row;

use depot_gc::{
    Candidate, ManifestKey, ManifestOutcome, Pending, Reaped, Report, StaleUpload, Swept, Trashed,
};

use super::manifests::referenced_blobs;
use super::Metadata;
use crate::error::Result;

/// The collection lock's advisory-lock key on PostgreSQL ("depot-gc" in ASCII).
const ADVISORY_KEY: i64 = 0x6465_706f_742d_6763;

/// A live tag points at manifest ($1, $2) at time $3.
const LIVE_TAG: &str = "SELECT 1 FROM tags t WHERE t.repo = $1 AND t.digest = $2 \
     AND (t.expires_at IS NULL OR t.expires_at > $3)";
/// A live index in the same repository references manifest ($1, $2) at time $3.
const LIVE_PARENT: &str = "SELECT 1 FROM manifest_refs r JOIN manifests p ON p.repo = r.repo AND p.digest = r.manifest \
     WHERE r.repo = $1 AND r.child = $2 AND r.kind = 'manifest' AND (p.expires_at IS NULL OR p.expires_at > $3)";

fn placeholders(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Metadata {
    // ---- the lock ---------------------------------------------------------------------------

    /// Takes or renews the collection lock. PostgreSQL: a session advisory lock on a connection
    /// kept for the purpose (released if the process dies); SQLite: a lease row.
    pub async fn gc_try_lock(&self, holder: &str, now: i64, ttl_ms: i64) -> Result<bool> {
        if let Some(advisory) = self.dialect.advisory_lock() {
            let mut held = self.gc_lock.lock().await;
            if let Some(conn) = held.as_mut() {
                // Renewal: the lock lives as long as this connection does.
                if sqlx::query("SELECT 1").execute(&mut **conn).await.is_ok() {
                    return Ok(true);
                }
                *held = None;
            }
            let mut conn = self.write.acquire().await?;
            let row = sqlx::query(advisory.take)
                .bind(ADVISORY_KEY)
                .fetch_one(&mut *conn)
                .await?;
            let locked: bool = row.try_get("locked")?;
            if locked {
                *held = Some(conn);
            }
            return Ok(locked);
        }
        let done = sqlx::query(
            "INSERT INTO gc_lease (name, holder, expires_at) VALUES ('gc', $1, $2) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
             WHERE gc_lease.holder = excluded.holder OR gc_lease.expires_at < $3",
        )
        .bind(holder)
        .bind(now + ttl_ms)
        .bind(now)
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn gc_unlock(&self, holder: &str) -> Result<()> {
        if let Some(advisory) = self.dialect.advisory_lock() {
            if let Some(mut conn) = self.gc_lock.lock().await.take() {
                let unlocked = sqlx::query(advisory.release)
                    .bind(ADVISORY_KEY)
                    .execute(&mut *conn)
                    .await;
                if let Err(e) = unlocked {
                    // Closing the session releases its lock; back in the pool, the connection
                    // would hold it and no collection could run again.
                    let _ = conn.close().await;
                    return Err(e.into());
                }
            }
            return Ok(());
        }
        sqlx::query("DELETE FROM gc_lease WHERE name = 'gc' AND holder = $1")
            .bind(holder)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    // ---- builds -----------------------------------------------------------------------------

    pub async fn gc_expired_builds(&self, now: i64, limit: usize) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT id FROM builds WHERE reaped_at IS NULL AND expires_at <= $1 ORDER BY expires_at LIMIT $2",
        )
        .bind(now)
        .bind(limit as i64)
        .fetch_all(&self.read)
        .await?;
        Ok(rows
            .iter()
            .map(|r| r.try_get("id"))
            .collect::<Result<_, _>>()?)
    }

    /// Removes an expired build's tags and manifest bookkeeping and marks it reaped; its
    /// manifests go in the next step, by their own expiry.
    pub async fn gc_reap_build(&self, id: &str, now: i64, dry_run: bool) -> Result<Reaped> {
        let mut tx = self.begin_write().await?;
        let due = if dry_run {
            sqlx::query(
                "SELECT 1 FROM builds WHERE id = $1 AND reaped_at IS NULL AND expires_at <= $2",
            )
            .bind(id)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?
            .is_some()
        } else {
            sqlx::query(
                "UPDATE builds SET reaped_at = $2 WHERE id = $1 AND reaped_at IS NULL AND expires_at <= $2",
            )
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1
        };
        if !due {
            return Ok(Reaped::default());
        }
        let repos = sqlx::query("SELECT DISTINCT repo FROM tags WHERE build_id = $1")
            .bind(id)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r| r.try_get("repo"))
            .collect::<Result<Vec<String>, _>>()?;
        let tags = if dry_run {
            let row = sqlx::query(
                "SELECT COUNT(*) AS n FROM tags WHERE build_id = $1 AND expires_at <= $2",
            )
            .bind(id)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
            row.try_get::<i64, _>("n")? as u64
        } else {
            let tags = sqlx::query(
                "DELETE FROM tags WHERE build_id = $1 AND expires_at IS NOT NULL AND expires_at <= $2",
            )
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            sqlx::query("DELETE FROM build_manifests WHERE build_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            tags
        };
        Ok(Reaped {
            reaped: true,
            repos,
            tags,
        })
    }

    // ---- manifests --------------------------------------------------------------------------

    pub async fn gc_expired_manifests(&self, now: i64, limit: usize) -> Result<Vec<ManifestKey>> {
        let rows = sqlx::query(
            "SELECT repo, digest FROM manifests WHERE expires_at IS NOT NULL AND expires_at <= $1 \
             ORDER BY expires_at LIMIT $2",
        )
        .bind(now)
        .bind(limit as i64)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ManifestKey {
                    repo: r.try_get("repo")?,
                    digest: r.try_get("digest")?,
                })
            })
            .collect()
    }

    /// Deletes expired manifests that no live tag or live index references, in one
    /// transaction; for each, how many blob references went (`None`: kept). A kept manifest's
    /// expiry moves to that of what keeps it, so it is not looked at again until then.
    pub async fn gc_delete_manifests(
        &self,
        keys: &[ManifestKey],
        now: i64,
        dry_run: bool,
    ) -> Result<Vec<ManifestOutcome>> {
        let mut tx = self.begin_write().await?;
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            out.push(
                match delete_manifest_in(&mut tx, &k.repo, &k.digest, now, dry_run).await? {
                    Some(blobs) => ManifestOutcome::Deleted { blobs },
                    None => ManifestOutcome::Kept,
                },
            );
        }
        if !dry_run {
            tx.commit().await?;
        }
        Ok(out)
    }

    /// [`Metadata::gc_delete_manifests`] for one manifest.
    pub async fn gc_delete_manifest(
        &self,
        repo: &str,
        digest: &str,
        now: i64,
        dry_run: bool,
    ) -> Result<Option<u64>> {
        let keys = [ManifestKey {
            repo: repo.to_owned(),
            digest: digest.to_owned(),
        }];
        Ok(
            match self.gc_delete_manifests(&keys, now, dry_run).await?.pop() {
                Some(ManifestOutcome::Deleted { blobs }) => Some(blobs),
                _ => None,
            },
        )
    }

    // ---- upload sessions --------------------------------------------------------------------

    /// Sessions (and tombstones) untouched since `before`.
    pub async fn gc_stale_uploads(&self, before: i64, limit: usize) -> Result<Vec<StaleUpload>> {
        let rows = sqlx::query(
            "SELECT id, size, store_state FROM uploads WHERE updated_at < $1 ORDER BY updated_at LIMIT $2",
        )
        .bind(before)
        .bind(limit as i64)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(StaleUpload {
                    id: r.try_get("id")?,
                    open: r.try_get::<i64, _>("size")? >= 0,
                    store_state: r.try_get("store_state")?,
                })
            })
            .collect()
    }

    pub async fn gc_forget_upload(&self, id: &str, before: i64) -> Result<bool> {
        let done = sqlx::query("DELETE FROM uploads WHERE id = $1 AND updated_at < $2")
            .bind(id)
            .bind(before)
            .execute(&self.write)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    // ---- blobs ------------------------------------------------------------------------------

    /// Candidates unreferenced (or unused) since before `cutoff`.
    pub async fn gc_blob_candidates(&self, cutoff: i64, limit: usize) -> Result<Vec<Candidate>> {
        let rows = sqlx::query(
            "SELECT digest, unreferenced_at, size FROM blobs WHERE unreferenced_at IS NOT NULL AND unreferenced_at <= $1 \
             ORDER BY unreferenced_at LIMIT $2",
        )
        .bind(cutoff)
        .bind(limit as i64)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Candidate {
                    digest: r.try_get("digest")?,
                    since: r.try_get("unreferenced_at")?,
                    size: r.try_get::<i64, _>("size")?.max(0) as u64,
                })
            })
            .collect()
    }

    /// Deletes the candidates that are still unreferenced and unused since before `cutoff`,
    /// with their repository links, moving their locations to the trash list in the same
    /// transaction. A candidate found referenced stops being one. Set-based: a few statements
    /// per batch, whatever its size.
    pub async fn gc_sweep_blobs(
        &self,
        candidates: &[Candidate],
        cutoff: i64,
        dry_run: bool,
    ) -> Result<Swept> {
        let mut out = Swept::default();
        if candidates.is_empty() {
            return Ok(out);
        }
        let digests: Vec<&str> = candidates.iter().map(|c| c.digest.as_str()).collect();
        let list = placeholders(2, digests.len());
        let garbage = format!(
            "digest IN ({list}) AND unreferenced_at IS NOT NULL AND unreferenced_at <= $1 \
             AND NOT EXISTS (SELECT 1 FROM manifest_refs r WHERE r.child = blobs.digest)"
        );
        fn bind_all<'q>(
            sql: &'q str,
            cutoff: i64,
            digests: &[&'q str],
        ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
            let mut q = sqlx::query(sql).bind(cutoff);
            for d in digests {
                q = q.bind(*d);
            }
            q
        }
        let select = format!("SELECT digest, location, size FROM blobs WHERE {garbage}");
        let delete = format!("DELETE FROM blobs WHERE {garbage} RETURNING digest, location, size");
        let mut tx = self.begin_write().await?;
        let rows = bind_all(if dry_run { &select } else { &delete }, cutoff, &digests)
            .fetch_all(&mut *tx)
            .await?;
        for r in &rows {
            out.digests.push(r.try_get("digest")?);
            out.trashed.push(Trashed {
                location: r.try_get("location")?,
                size: r.try_get::<i64, _>("size")?.max(0) as u64,
            });
        }
        if dry_run {
            return Ok(out);
        }
        // Still referenced after all: no longer candidates (unless used since, or made
        // candidates again by a newer deletion, both of which moved the mark past the cutoff).
        let clear = format!(
            "UPDATE blobs SET unreferenced_at = NULL WHERE digest IN ({list}) AND unreferenced_at <= $1 \
             AND EXISTS (SELECT 1 FROM manifest_refs r WHERE r.child = blobs.digest)"
        );
        out.referenced = bind_all(&clear, cutoff, &digests)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if !out.digests.is_empty() {
            let unlink = format!(
                "DELETE FROM repo_blobs WHERE digest IN ({}) RETURNING repo, digest",
                placeholders(1, out.digests.len())
            );
            let mut q = sqlx::query(&unlink);
            for d in &out.digests {
                q = q.bind(d);
            }
            // What each repository no longer holds, subtracted in this transaction.
            let sizes: std::collections::HashMap<&str, u64> = out
                .digests
                .iter()
                .map(String::as_str)
                .zip(out.trashed.iter().map(|t| t.size))
                .collect();
            let mut released: std::collections::BTreeMap<String, (i64, i64)> = Default::default();
            for r in q.fetch_all(&mut *tx).await? {
                let repo: String = r.try_get("repo")?;
                let digest: String = r.try_get("digest")?;
                let entry = released.entry(repo.clone()).or_default();
                entry.0 += sizes.get(digest.as_str()).copied().unwrap_or(0) as i64;
                entry.1 += 1;
                out.repos.push(repo);
            }
            for (repo, (bytes, blobs)) in &released {
                super::blobs::add_usage(&mut tx, repo, -bytes, -blobs).await?;
            }
            let values = (0..out.trashed.len())
                .map(|i| format!("(${}, ${}, $1)", 2 * i + 2, 2 * i + 3))
                .collect::<Vec<_>>()
                .join(", ");
            let trash = format!(
                "INSERT INTO gc_trash (location, size, deleted_at) VALUES {values} ON CONFLICT DO NOTHING"
            );
            let mut q = sqlx::query(&trash).bind(cutoff);
            for t in &out.trashed {
                q = q.bind(&t.location).bind(t.size as i64);
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        out.repos.sort();
        out.repos.dedup();
        Ok(out)
    }

    pub async fn gc_trash(&self, limit: usize) -> Result<Vec<Trashed>> {
        let rows = sqlx::query("SELECT location, size FROM gc_trash ORDER BY deleted_at LIMIT $1")
            .bind(limit as i64)
            .fetch_all(&self.read)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(Trashed {
                    location: r.try_get("location")?,
                    size: r.try_get::<i64, _>("size")?.max(0) as u64,
                })
            })
            .collect()
    }

    pub async fn gc_empty_trash(&self, locations: &[String]) -> Result<()> {
        for chunk in locations.chunks(1000) {
            let sql = format!(
                "DELETE FROM gc_trash WHERE location IN ({})",
                placeholders(1, chunk.len())
            );
            let mut q = sqlx::query(&sql);
            for l in chunk {
                q = q.bind(l);
            }
            q.execute(&self.write).await?;
        }
        Ok(())
    }

    /// Tells the other replicas these blobs are gone (their cached lookups must go).
    pub async fn notify_blobs_gone(&self, digests: &[String]) -> Result<()> {
        let Some(notify) = self.dialect.notify() else {
            return Ok(());
        };
        for d in digests {
            sqlx::query(notify)
                .bind(super::CACHE_CHANNEL)
                .bind(format!("{}{d}", super::BLOB_GONE_PREFIX))
                .execute(&self.write)
                .await?;
        }
        Ok(())
    }

    // ---- reporting --------------------------------------------------------------------------

    pub async fn gc_record_run(&self, run: &Report) -> Result<()> {
        // Counts are far below i64::MAX; saturate rather than wrap should one ever not be.
        let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        sqlx::query(
            "INSERT INTO gc_runs (id, holder, started_at, finished_at, dry_run, builds_expired, manifests_deleted, \
             uploads_deleted, blobs_deleted, bytes_freed, errors, error, builds_beyond_policy) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(&run.id)
        .bind(&run.holder)
        .bind(run.started_at)
        .bind(run.finished_at)
        .bind(i64::from(run.dry_run))
        .bind(n(run.builds_expired))
        .bind(n(run.manifests_deleted))
        .bind(n(run.uploads_deleted))
        .bind(n(run.blobs_deleted))
        .bind(n(run.bytes_freed))
        .bind(n(run.errors))
        .bind(run.error.clone())
        .bind(n(run.builds_beyond_policy))
        .execute(&self.write)
        .await?;
        Ok(())
    }

    pub async fn gc_recent_runs(&self, limit: usize) -> Result<Vec<Report>> {
        let rows = sqlx::query(
            "SELECT id, holder, started_at, finished_at, dry_run, builds_expired, manifests_deleted, uploads_deleted, \
             blobs_deleted, bytes_freed, errors, error, builds_beyond_policy FROM gc_runs ORDER BY started_at DESC LIMIT $1",
        )
        .bind(limit as i64)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                let n = |c: &str| r.try_get::<i64, _>(c);
                let count = |c: &str| n(c).map(|v| v.max(0) as u64);
                Ok(Report {
                    id: r.try_get("id")?,
                    holder: r.try_get("holder")?,
                    started_at: n("started_at")?,
                    finished_at: n("finished_at")?,
                    dry_run: n("dry_run")? != 0,
                    builds_beyond_policy: count("builds_beyond_policy")?,
                    builds_expired: count("builds_expired")?,
                    manifests_deleted: count("manifests_deleted")?,
                    uploads_deleted: count("uploads_deleted")?,
                    blobs_deleted: count("blobs_deleted")?,
                    bytes_freed: count("bytes_freed")?,
                    errors: count("errors")?,
                    error: r.try_get("error")?,
                })
            })
            .collect()
    }

    /// What waits for collection: expired builds, expired manifests, candidate blobs (and
    /// those past the grace period, with their bytes), idle sessions, trash.
    pub async fn gc_pending(&self, now: i64, cutoff: i64, uploads_before: i64) -> Result<Pending> {
        let count = |sql: &'static str, a: i64| async move {
            let row = sqlx::query(sql).bind(a).fetch_one(&self.read).await?;
            Ok::<u64, crate::error::Error>(row.try_get::<i64, _>(0)?.max(0) as u64)
        };
        let builds = count(
            "SELECT COUNT(*) FROM builds WHERE reaped_at IS NULL AND expires_at <= $1",
            now,
        )
        .await?;
        let manifests = count(
            "SELECT COUNT(*) FROM manifests WHERE expires_at IS NOT NULL AND expires_at <= $1",
            now,
        )
        .await?;
        let candidates = count(
            "SELECT COUNT(*) FROM blobs WHERE unreferenced_at IS NOT NULL AND unreferenced_at <= $1",
            i64::MAX,
        )
        .await?;
        let row = sqlx::query(
            "SELECT COUNT(*), CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM blobs b WHERE unreferenced_at IS NOT NULL AND unreferenced_at <= $1 \
             AND NOT EXISTS (SELECT 1 FROM manifest_refs r WHERE r.child = b.digest)",
        )
        .bind(cutoff)
        .fetch_one(&self.read)
        .await?;
        let collectable = row.try_get::<i64, _>(0)?.max(0) as u64;
        let bytes = row.try_get::<i64, _>(1)?.max(0) as u64;
        let uploads = count(
            "SELECT COUNT(*) FROM uploads WHERE updated_at < $1",
            uploads_before,
        )
        .await?;
        let trash = count(
            "SELECT COUNT(*) FROM gc_trash WHERE deleted_at <= $1",
            i64::MAX,
        )
        .await?;
        Ok(Pending {
            expired_builds: builds,
            expired_manifests: manifests,
            candidate_blobs: candidates,
            collectable_blobs: collectable,
            collectable_bytes: bytes,
            stale_uploads: uploads,
            trash,
        })
    }

    // ---- reconcile --------------------------------------------------------------------------

    /// Of `locations`, those a blob or a trash entry refers to.
    pub async fn gc_known_locations(&self, locations: &[String]) -> Result<Vec<String>> {
        let mut known = self.referenced_locations(locations).await?;
        known.extend(self.locations_in("gc_trash", locations).await?);
        Ok(known.into_iter().collect())
    }

    /// Of `locations`, those a stored blob's bytes are at: the one test every deletion of
    /// bytes passes through (`storage::deletable`).
    pub async fn referenced_locations(
        &self,
        locations: &[String],
    ) -> Result<std::collections::HashSet<String>> {
        self.locations_in("blobs", locations).await
    }

    /// Of `locations`, those in the `location` column of `table` (both tables index it).
    async fn locations_in(
        &self,
        table: &'static str,
        locations: &[String],
    ) -> Result<std::collections::HashSet<String>> {
        let mut known = std::collections::HashSet::new();
        for chunk in locations.chunks(500) {
            let sql = format!(
                "SELECT location FROM {table} WHERE location IN ({})",
                placeholders(1, chunk.len())
            );
            let mut q = sqlx::query(&sql);
            for l in chunk {
                q = q.bind(l);
            }
            for r in q.fetch_all(&self.read).await? {
                known.insert(r.try_get("location")?);
            }
        }
        Ok(known)
    }

    /// Of `ids`, the open upload sessions.
    pub async fn gc_open_uploads(&self, ids: &[String]) -> Result<Vec<String>> {
        let mut open = Vec::new();
        for chunk in ids.chunks(500) {
            let sql = format!(
                "SELECT id FROM uploads WHERE size >= 0 AND id IN ({})",
                placeholders(1, chunk.len())
            );
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(id);
            }
            for r in q.fetch_all(&self.read).await? {
                open.push(r.try_get("id")?);
            }
        }
        Ok(open)
    }
}

/// One manifest of [`Metadata::gc_delete_manifests`], in its transaction.
async fn delete_manifest_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    repo: &str,
    digest: &str,
    now: i64,
    dry_run: bool,
) -> Result<Option<u64>> {
    let garbage = format!(
        "repo = $1 AND digest = $2 AND expires_at IS NOT NULL AND expires_at <= $3 \
         AND NOT EXISTS ({LIVE_TAG}) AND NOT EXISTS ({LIVE_PARENT})"
    );
    let blobs = referenced_blobs(tx, repo, digest).await?;
    let deleted = if dry_run {
        sqlx::query(&format!("SELECT 1 FROM manifests WHERE {garbage}"))
            .bind(repo)
            .bind(digest)
            .bind(now)
            .fetch_optional(&mut **tx)
            .await?
            .is_some()
    } else {
        sqlx::query(&format!("DELETE FROM manifests WHERE {garbage}"))
            .bind(repo)
            .bind(digest)
            .bind(now)
            .execute(&mut **tx)
            .await?
            .rows_affected()
            == 1
    };
    if dry_run {
        return Ok(deleted.then_some(blobs.len() as u64));
    }
    if !deleted {
        // Kept by a live tag or index (or no longer expired, or gone): live as long as they.
        let keepers = sqlx::query(
            "SELECT t.expires_at FROM tags t WHERE t.repo = $1 AND t.digest = $2 AND (t.expires_at IS NULL OR t.expires_at > $3) \
             UNION ALL SELECT p.expires_at FROM manifest_refs r JOIN manifests p ON p.repo = r.repo AND p.digest = r.manifest \
             WHERE r.repo = $1 AND r.child = $2 AND r.kind = 'manifest' AND (p.expires_at IS NULL OR p.expires_at > $3)"
        )
        .bind(repo)
        .bind(digest)
        .bind(now)
        .fetch_all(&mut **tx)
        .await?
        .iter()
        .map(|r| r.try_get::<Option<i64>, _>(0))
        .collect::<Result<Vec<_>, _>>()?;
        if !keepers.is_empty() {
            let until = if keepers.iter().any(Option::is_none) {
                None
            } else {
                keepers.iter().flatten().max().copied()
            };
            sqlx::query(
                "UPDATE manifests SET expires_at = $3 WHERE repo = $1 AND digest = $2 AND expires_at <= $4",
            )
            .bind(repo)
            .bind(digest)
            .bind(until)
            .bind(now)
            .execute(&mut **tx)
            .await?;
        }
        return Ok(None);
    }
    // The blobs it referenced become candidates: one statement, before the references go.
    sqlx::query(
        "UPDATE blobs SET unreferenced_at = $3 WHERE digest IN \
         (SELECT child FROM manifest_refs WHERE repo = $1 AND manifest = $2 AND kind = 'blob')",
    )
    .bind(repo)
    .bind(digest)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    for table in [
        "DELETE FROM manifest_refs WHERE repo = $1 AND manifest = $2",
        "DELETE FROM tags WHERE repo = $1 AND digest = $2",
        "DELETE FROM build_manifests WHERE repo = $1 AND digest = $2",
    ] {
        sqlx::query(table)
            .bind(repo)
            .bind(digest)
            .execute(&mut **tx)
            .await?;
    }
    Ok(Some(blobs.len() as u64))
}

#[cfg(test)]
pub(crate) mod suite {
    //! Garbage collection's SQL, in the shared metadata suite (SQLite and PostgreSQL). The
    //! database may hold other tests' rows, so every check names its own rows.
    use super::*;
    use crate::digest::{Algorithm, Digest};
    use crate::metadata::{Link, NewManifest, Owner, StoredBlob};
    use crate::model::{Build, BuildSpec, BuildState, Project};
    use crate::names::RepoName;

    fn manifest(content: &str, blobs: &[&Digest], children: &[&Digest]) -> NewManifest {
        NewManifest {
            digest: Digest::of(Algorithm::Sha256, content.as_bytes()),
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            content: content.as_bytes().to_vec(),
            subject: None,
            artifact_type: None,
            annotations: None,
            blobs: blobs.iter().map(|d| (*d).clone()).collect(),
            manifests: children.iter().map(|d| (*d).clone()).collect(),
        }
    }

    pub async fn run(db: &Metadata) {
        let u = &uuid::Uuid::new_v4().simple().to_string()[..10];
        let project = format!("gc{u}");
        let repo: RepoName = project.parse().unwrap();
        let r = repo.as_str();
        db.create_project(&Project {
            id: project.clone(),
            // Names are unique, and this may run on a database shared with earlier runs.
            name: project.clone(),
            retention_secs: 60,
            created_at: 1,
            keep: None,
        })
        .await
        .unwrap();
        let t0 = 1_000_000;
        let build = Build {
            id: format!("b{u}"),
            project: project.clone(),
            state: BuildState::Saved,
            spec: BuildSpec::default(),
            failure: None,
            created_at: t0,
            updated_at: t0,
            lease_expires_at: t0,
            expires_at: t0 + 10_000,
        };
        db.create_build(&build).await.unwrap();
        let owner = Owner {
            build_id: build.id.clone(),
            expires_at: build.expires_at,
        };
        let blob = |name: &str| Digest::of(Algorithm::Sha256, format!("{u}{name}").as_bytes());
        let (x, y, z) = (blob("x"), blob("y"), blob("z"));
        for d in [&x, &y, &z] {
            let new = Link::New(StoredBlob::new(10, format!("loc-{d}")));
            db.link_blob(&repo, d, new, t0).await.unwrap().unwrap();
        }
        // m1 (the build's) uses x and z; m2 (nobody's, permanent) uses z; the index (the
        // build's) holds m3; y is referenced by nothing.
        let m1 = manifest(&format!("{u}m1"), &[&x, &z], &[]);
        let m2 = manifest(&format!("{u}m2"), &[&z], &[]);
        let m3 = manifest(&format!("{u}m3"), &[], &[]);
        let index = manifest(&format!("{u}index"), &[], &[&m3.digest]);
        let tag = |t: &str| t.parse::<crate::names::Tag>().unwrap();
        db.put_manifest(&repo, &m1, &[tag(&build.id)], Some(&owner))
            .await
            .unwrap();
        db.put_manifest(&repo, &m2, &[tag("stable")], None)
            .await
            .unwrap();
        db.put_manifest(&repo, &m3, &[], Some(&owner))
            .await
            .unwrap();
        db.put_manifest(&repo, &index, &[], Some(&owner))
            .await
            .unwrap();
        let key = |m: &NewManifest| ManifestKey {
            repo: r.to_owned(),
            digest: m.digest.to_string(),
        };

        // Before the expiry nothing of the build is due.
        let before = build.expires_at - 1;
        assert!(!db
            .gc_expired_builds(before, 10_000)
            .await
            .unwrap()
            .contains(&build.id));
        assert!(!db
            .gc_expired_manifests(before, 10_000)
            .await
            .unwrap()
            .contains(&key(&m1)));
        assert_eq!(
            db.gc_delete_manifest(r, m1.digest.as_str(), before, false)
                .await
                .unwrap(),
            None
        );

        // After it: the build is reaped once (a dry run changes nothing), its tag goes.
        let now = build.expires_at + 1;
        assert!(db
            .gc_expired_builds(now, 10_000)
            .await
            .unwrap()
            .contains(&build.id));
        let dry = db.gc_reap_build(&build.id, now, true).await.unwrap();
        assert!(dry.reaped && dry.tags == 1);
        let reaped = db.gc_reap_build(&build.id, now, false).await.unwrap();
        assert_eq!(reaped.tags, 1);
        assert_eq!(reaped.repos, vec![r.to_owned()]);
        assert!(
            !db.gc_reap_build(&build.id, now, false)
                .await
                .unwrap()
                .reaped
        );
        assert!(!db
            .gc_expired_builds(now, 10_000)
            .await
            .unwrap()
            .contains(&build.id));

        // Expired manifests: m3 is kept while the live... index is expired too, so both go;
        // m2 never expires.
        let expired = db.gc_expired_manifests(now, 10_000).await.unwrap();
        for m in [&m1, &m3, &index] {
            assert!(expired.contains(&key(m)), "{m:?}");
        }
        assert!(!expired.contains(&key(&m2)));
        assert_eq!(
            db.gc_delete_manifest(r, m1.digest.as_str(), now, true)
                .await
                .unwrap(),
            Some(2)
        );
        assert_eq!(
            db.gc_delete_manifest(r, m1.digest.as_str(), now, false)
                .await
                .unwrap(),
            Some(2)
        );
        assert_eq!(
            db.gc_delete_manifest(r, m3.digest.as_str(), now, false)
                .await
                .unwrap(),
            Some(0)
        );
        assert_eq!(
            db.gc_delete_manifest(r, index.digest.as_str(), now, false)
                .await
                .unwrap(),
            Some(0)
        );
        assert!(db
            .manifest_by_digest(&repo, &m2.digest, now)
            .await
            .unwrap()
            .is_some());

        // A manifest kept by a live index gets the index's lifetime.
        let child = manifest(&format!("{u}child"), &[], &[]);
        let parent = manifest(&format!("{u}parent"), &[], &[&child.digest]);
        let short = Owner {
            build_id: build.id.clone(),
            expires_at: now - 5,
        };
        db.put_manifest(&repo, &child, &[], Some(&short))
            .await
            .unwrap();
        db.put_manifest(&repo, &parent, &[tag("keep")], None)
            .await
            .unwrap();
        assert_eq!(
            db.gc_delete_manifest(r, child.digest.as_str(), now, false)
                .await
                .unwrap(),
            None
        );
        assert!(!db
            .gc_expired_manifests(now, 10_000)
            .await
            .unwrap()
            .contains(&key(&child)));

        // Blobs: x and y are garbage past the cutoff; z is referenced by m2 and stops being a
        // candidate. Dry runs change nothing.
        let candidates = db.gc_blob_candidates(now, 100_000).await.unwrap();
        let mine: Vec<Candidate> = candidates
            .iter()
            .filter(|c| [&x, &y, &z].iter().any(|m| m.as_str() == c.digest))
            .cloned()
            .collect();
        assert_eq!(mine.len(), 3, "{candidates:?}");
        let dry = db.gc_sweep_blobs(&mine, now, true).await.unwrap();
        assert_eq!(dry.digests.len(), 2);
        let swept = db.gc_sweep_blobs(&mine, now, false).await.unwrap();
        let mut gone: Vec<&str> = swept.digests.iter().map(String::as_str).collect();
        gone.sort();
        let mut expect = vec![x.as_str(), y.as_str()];
        expect.sort();
        assert_eq!(gone, expect);
        assert_eq!(swept.referenced, 1);
        assert_eq!(swept.repos, vec![r.to_owned()]);
        assert!(db.blob(&x).await.unwrap().is_none());
        assert!(db.repo_blob(&repo, &y).await.unwrap().is_none());
        assert!(!db.blob(&z).await.unwrap().unwrap().candidate);
        let trash = db.gc_trash(100_000).await.unwrap();
        let trashed: Vec<String> = swept.trashed.iter().map(|t| t.location.clone()).collect();
        for l in &trashed {
            assert!(trash.iter().any(|t| &t.location == l));
        }
        assert_eq!(db.gc_known_locations(&trashed).await.unwrap().len(), 2);
        db.gc_empty_trash(&trashed).await.unwrap();
        assert!(db.gc_known_locations(&trashed).await.unwrap().is_empty());

        // Once swept, a blob is unknown to links and manifests alike (a push that reused it
        // must upload it again); a touched candidate is kept past an older cutoff.
        assert_eq!(
            db.link_blob(&repo, &x, Link::Existing, now).await.unwrap(),
            None
        );
        let reuse = manifest(&format!("{u}reuse"), &[&x], &[]);
        let e = db.put_manifest(&repo, &reuse, &[], None).await.unwrap_err();
        assert!(matches!(e, crate::Error::BlobUnknown { .. }), "{e:?}");
        let w = blob("w");
        db.link_blob(
            &repo,
            &w,
            Link::New(StoredBlob::new(1, "loc-w".into())),
            now,
        )
        .await
        .unwrap();
        assert!(db.touch_blob(&w, now + 60_000).await.unwrap());
        let swept = db
            .gc_sweep_blobs(
                &[Candidate {
                    digest: w.to_string(),
                    since: now,
                    size: 1,
                }],
                now + 30_000,
                false,
            )
            .await
            .unwrap();
        assert!(swept.digests.is_empty());
        assert!(db.blob(&w).await.unwrap().is_some());

        // Upload sessions idle past the cutoff.
        let id = format!("up{u}");
        db.advance_upload(&id, &repo, 0, 5, b"h", b"s")
            .await
            .unwrap();
        let later = db.clock().wall_ms() + 1;
        let stale = db.gc_stale_uploads(later, 100_000).await.unwrap();
        assert!(stale
            .iter()
            .any(|u| u.id == id && u.open && u.store_state == b"s"));
        assert_eq!(
            db.gc_open_uploads(std::slice::from_ref(&id)).await.unwrap(),
            vec![id.clone()]
        );
        assert!(!db.gc_forget_upload(&id, later - 60_000).await.unwrap());
        assert!(db.gc_forget_upload(&id, later).await.unwrap());
        assert!(db
            .gc_open_uploads(std::slice::from_ref(&id))
            .await
            .unwrap()
            .is_empty());

        // The lock: one holder at a time; renewable by its holder.
        let (a, b) = (format!("a{u}"), format!("b{u}"));
        let wall = db.clock().now_ms();
        if db.shared_url().is_none() {
            assert!(db.gc_try_lock(&a, wall, 60_000).await.unwrap());
            assert!(!db.gc_try_lock(&b, wall, 60_000).await.unwrap());
            assert!(db.gc_try_lock(&a, wall, 60_000).await.unwrap());
            db.gc_unlock(&a).await.unwrap();
            assert!(db.gc_try_lock(&b, wall, 60_000).await.unwrap());
            // A lease that ran out is taken over.
            assert!(db.gc_try_lock(&a, wall + 120_000, 60_000).await.unwrap());
            db.gc_unlock(&a).await.unwrap();
        } else {
            // The advisory lock is per connection: a second Metadata is another session.
            let other = Metadata::connect(db.shared_url().unwrap()).await.unwrap();
            assert!(db.gc_try_lock(&a, wall, 60_000).await.unwrap());
            assert!(db.gc_try_lock(&a, wall, 60_000).await.unwrap());
            assert!(!other.gc_try_lock(&b, wall, 60_000).await.unwrap());
            db.gc_unlock(&a).await.unwrap();
            assert!(other.gc_try_lock(&b, wall, 60_000).await.unwrap());
            other.gc_unlock(&b).await.unwrap();
        }

        // Runs are recorded; pending counts what waits.
        let run = Report {
            id: format!("run{u}"),
            holder: "test".into(),
            started_at: i64::MAX / 2,
            finished_at: i64::MAX / 2 + 5,
            dry_run: true,
            builds_beyond_policy: 6,
            builds_expired: 1,
            manifests_deleted: 2,
            uploads_deleted: 3,
            blobs_deleted: 4,
            bytes_freed: 5,
            errors: 0,
            error: None,
        };
        db.gc_record_run(&run).await.unwrap();
        assert_eq!(db.gc_recent_runs(1).await.unwrap(), vec![run]);
        let pending = db.gc_pending(now, now, later).await.unwrap();
        assert!(
            pending.candidate_blobs >= 1,
            "w is a candidate: {pending:?}"
        );
    }
}
