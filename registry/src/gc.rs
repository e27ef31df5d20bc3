//! The registry's side of garbage collection: the `depot-gc` backend traits over this
//! registry's database and blob store, and the collections the server runs on an interval.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use depot_gc::{
    Candidate, Catalog, Listed, ManifestKey, ManifestOutcome, Objects, Pending, Reaped, Report,
    StaleUpload, Swept, Trashed,
};

use crate::cache::Caches;
use crate::clock::Clock;
use crate::config::GcConfig;
use crate::error::Error;
use crate::metadata::{Metadata, RunRow};
use crate::storage::BlobStore;

/// The database, the blob store and (inside a server) its caches, as the collector sees them.
#[derive(Clone)]
pub struct Backend {
    pub meta: Metadata,
    pub store: Arc<dyn BlobStore>,
    /// This process's caches, dropped directly when collection changes what they hold (other
    /// replicas hear it through PostgreSQL).
    pub caches: Option<Caches>,
}

fn err(e: Error) -> anyhow::Error {
    anyhow::anyhow!(
        "{}{}",
        e.message,
        e.internal.map(|c| format!(": {c}")).unwrap_or_default()
    )
}

impl depot_gc::Clock for Clock {
    fn now_ms(&self) -> i64 {
        Clock::now_ms(self)
    }
}

/// Who collects: this host and process, for the lock and the record.
pub fn holder(role: &str) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".into());
    format!("{role}@{host}/{}", std::process::id())
}

/// The collector's settings from the registry's flags.
pub fn collector_config(gc: &GcConfig, dry_run: bool) -> depot_gc::Config {
    depot_gc::Config {
        grace: Duration::from_secs(gc.grace_secs),
        upload_timeout: Duration::from_secs(gc.upload_timeout_secs),
        dry_run,
        ..depot_gc::Config::default()
    }
}

/// Runs a collection every `interval` in the background, logging each and counting it in
/// `metrics`; with several replicas, those that find the lock taken skip their turn.
pub fn spawn(
    backend: Backend,
    clock: Clock,
    config: depot_gc::Config,
    interval: Duration,
    metrics: Arc<depot_gc::Metrics>,
) {
    let holder = holder("depot-registry");
    tokio::spawn(depot_gc::schedule::every(interval, move || {
        let backend = backend.clone();
        let clock = clock.clone();
        let config = config.clone();
        let metrics = metrics.clone();
        let holder = holder.clone();
        async move {
            let collector = depot_gc::Collector {
                catalog: &backend,
                objects: &backend,
                clock: &clock,
                config,
                holder,
                on_item: None,
            };
            match collector.run().await {
                Ok(Some(report)) => {
                    metrics.record(&report);
                    if report.errors > 0 {
                        tracing::warn!(summary = %report.summary(), "garbage collection finished with errors");
                    } else {
                        tracing::info!(summary = %report.summary(), "garbage collection");
                    }
                }
                Ok(None) => {
                    metrics.skipped();
                    tracing::debug!("garbage collection skipped: another replica is collecting");
                }
                Err(e) => {
                    metrics.record(&Report {
                        errors: 1,
                        ..Report::default()
                    });
                    tracing::warn!(cause = %e, "garbage collection could not start");
                }
            }
        }
    }));
}

fn run_row(r: &Report) -> RunRow {
    RunRow {
        id: r.id.clone(),
        holder: r.holder.clone(),
        started_at: r.started_at,
        finished_at: r.finished_at,
        dry_run: r.dry_run,
        counts: [
            r.builds_expired as i64,
            r.manifests_deleted as i64,
            r.uploads_deleted as i64,
            r.blobs_deleted as i64,
            r.bytes_freed as i64,
            r.errors as i64,
        ],
        error: r.error.clone(),
    }
}

fn report(r: RunRow) -> Report {
    let n = |i: usize| r.counts[i].max(0) as u64;
    Report {
        builds_expired: n(0),
        manifests_deleted: n(1),
        uploads_deleted: n(2),
        blobs_deleted: n(3),
        bytes_freed: n(4),
        errors: n(5),
        id: r.id,
        holder: r.holder,
        started_at: r.started_at,
        finished_at: r.finished_at,
        dry_run: r.dry_run,
        error: r.error,
    }
}

#[async_trait]
impl Catalog for Backend {
    async fn try_lock(&self, holder: &str, ttl: Duration) -> anyhow::Result<bool> {
        let now = crate::metadata::now_ms();
        self.meta
            .gc_try_lock(holder, now, ttl.as_millis() as i64)
            .await
            .map_err(err)
    }

    async fn unlock(&self, holder: &str) -> anyhow::Result<()> {
        self.meta.gc_unlock(holder).await.map_err(err)
    }

    async fn expired_builds(&self, now: i64, limit: usize) -> anyhow::Result<Vec<String>> {
        self.meta.gc_expired_builds(now, limit).await.map_err(err)
    }

    async fn reap_build(&self, id: &str, now: i64, dry_run: bool) -> anyhow::Result<Reaped> {
        let r = self
            .meta
            .gc_reap_build(id, now, dry_run)
            .await
            .map_err(err)?;
        Ok(Reaped {
            reaped: r.reaped,
            repos: r.repos,
            tags: r.tags,
        })
    }

    async fn expired_manifests(&self, now: i64, limit: usize) -> anyhow::Result<Vec<ManifestKey>> {
        let rows = self
            .meta
            .gc_expired_manifests(now, limit)
            .await
            .map_err(err)?;
        Ok(rows
            .into_iter()
            .map(|(repo, digest)| ManifestKey { repo, digest })
            .collect())
    }

    async fn delete_expired_manifests(
        &self,
        keys: &[ManifestKey],
        now: i64,
        dry_run: bool,
    ) -> anyhow::Result<Vec<ManifestOutcome>> {
        let pairs: Vec<(String, String)> = keys
            .iter()
            .map(|k| (k.repo.clone(), k.digest.clone()))
            .collect();
        let deleted = self
            .meta
            .gc_delete_manifests(&pairs, now, dry_run)
            .await
            .map_err(err)?;
        Ok(deleted
            .into_iter()
            .map(|d| match d {
                Some(blobs) => ManifestOutcome::Deleted { blobs },
                None => ManifestOutcome::Kept,
            })
            .collect())
    }

    async fn stale_uploads(&self, before: i64, limit: usize) -> anyhow::Result<Vec<StaleUpload>> {
        let rows = self
            .meta
            .gc_stale_uploads(before, limit)
            .await
            .map_err(err)?;
        Ok(rows
            .into_iter()
            .map(|(id, open, store_state)| StaleUpload {
                id,
                store_state,
                open,
            })
            .collect())
    }

    async fn forget_upload(&self, id: &str, before: i64) -> anyhow::Result<bool> {
        self.meta.gc_forget_upload(id, before).await.map_err(err)
    }

    async fn blob_candidates(&self, cutoff: i64, limit: usize) -> anyhow::Result<Vec<Candidate>> {
        let rows = self
            .meta
            .gc_blob_candidates(cutoff, limit)
            .await
            .map_err(err)?;
        Ok(rows
            .into_iter()
            .map(|(digest, since, size)| Candidate {
                digest,
                since,
                size,
            })
            .collect())
    }

    async fn sweep_blobs(
        &self,
        candidates: &[Candidate],
        cutoff: i64,
        dry_run: bool,
    ) -> anyhow::Result<Swept> {
        let pairs: Vec<(String, i64)> = candidates
            .iter()
            .map(|c| (c.digest.clone(), c.since))
            .collect();
        let sweep = self
            .meta
            .gc_sweep_blobs(&pairs, cutoff, dry_run)
            .await
            .map_err(err)?;
        Ok(Swept {
            digests: sweep.deleted.iter().map(|b| b.digest.clone()).collect(),
            trashed: sweep
                .deleted
                .into_iter()
                .map(|b| Trashed {
                    location: b.location,
                    size: b.size,
                })
                .collect(),
            repos: sweep.repos,
            referenced: sweep.referenced,
        })
    }

    async fn trash(&self, limit: usize) -> anyhow::Result<Vec<Trashed>> {
        let rows = self.meta.gc_trash(limit).await.map_err(err)?;
        Ok(rows
            .into_iter()
            .map(|(location, size)| Trashed { location, size })
            .collect())
    }

    async fn empty_trash(&self, locations: &[String]) -> anyhow::Result<()> {
        self.meta.gc_empty_trash(locations).await.map_err(err)
    }

    async fn announce(&self, repos: &[String], digests: &[String]) -> anyhow::Result<()> {
        if let Some(caches) = &self.caches {
            for r in repos {
                caches.forget_repo(r);
            }
            for d in digests {
                caches.forget_blob(d).await;
            }
        }
        for r in repos {
            if let Ok(repo) = r.parse() {
                self.meta.notify_changed(&repo).await.map_err(err)?;
            }
        }
        self.meta.notify_blobs_gone(digests).await.map_err(err)
    }

    async fn record_run(&self, report: &Report) -> anyhow::Result<()> {
        self.meta.gc_record_run(&run_row(report)).await.map_err(err)
    }

    async fn recent_runs(&self, limit: usize) -> anyhow::Result<Vec<Report>> {
        let rows = self.meta.gc_recent_runs(limit).await.map_err(err)?;
        Ok(rows.into_iter().map(report).collect())
    }

    async fn pending(&self, now: i64, cutoff: i64, uploads_before: i64) -> anyhow::Result<Pending> {
        let [expired_builds, expired_manifests, candidate_blobs, collectable_blobs, collectable_bytes, stale_uploads, trash] =
            self.meta
                .gc_pending(now, cutoff, uploads_before)
                .await
                .map_err(err)?;
        Ok(Pending {
            expired_builds,
            expired_manifests,
            candidate_blobs,
            collectable_blobs,
            collectable_bytes,
            stale_uploads,
            trash,
        })
    }

    async fn known_locations(&self, locations: &[String]) -> anyhow::Result<Vec<String>> {
        self.meta.gc_known_locations(locations).await.map_err(err)
    }

    async fn open_uploads(&self, ids: &[String]) -> anyhow::Result<Vec<String>> {
        self.meta.gc_open_uploads(ids).await.map_err(err)
    }
}

#[async_trait]
impl Objects for Backend {
    async fn delete_many(&self, locations: &[String]) -> anyhow::Result<()> {
        self.store.delete_many(locations).await.map_err(err)
    }

    async fn discard_upload(&self, id: &str, store_state: &[u8]) -> anyhow::Result<()> {
        self.store.discard(id, store_state).await.map_err(err)
    }

    async fn list(&self, cursor: Option<String>) -> anyhow::Result<(Vec<Listed>, Option<String>)> {
        self.store.list(cursor).await.map_err(err)
    }
}
