//! The store's side of garbage collection: the `depot-gc` backend traits over the metadata
//! database and the blob store, and the collections a server runs on an interval.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use depot_gc::{
    Candidate, Catalog, Listed, ManifestKey, ManifestOutcome, Objects, Pending, Reaped, Report,
    StaleUpload, Swept, Trashed,
};

use crate::cache::Caches;
use crate::clock::Clock;
use crate::metadata::Metadata;
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

impl depot_gc::Clock for Clock {
    fn now_ms(&self) -> i64 {
        Clock::now_ms(self)
    }

    fn wall_ms(&self) -> i64 {
        Clock::wall_ms(self)
    }
}

/// Who collects: this host and process, for the lock and the record.
pub fn holder(role: &str) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".into());
    format!("{role}@{host}/{}", std::process::id())
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

#[async_trait]
impl Catalog for Backend {
    async fn try_lock(&self, holder: &str, ttl: Duration) -> anyhow::Result<bool> {
        // A lease between processes: judged by the system time, which a test clock does not move.
        let now = self.meta.clock().wall_ms();
        let ttl = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        Ok(self.meta.gc_try_lock(holder, now, ttl).await?)
    }

    async fn unlock(&self, holder: &str) -> anyhow::Result<()> {
        Ok(self.meta.gc_unlock(holder).await?)
    }

    async fn enforce_keep_policies(
        &self,
        now: i64,
        dry_run: bool,
    ) -> anyhow::Result<Vec<(String, String)>> {
        let mut moved = Vec::new();
        for project in self.meta.projects_with_keep_policy().await? {
            for build in self
                .meta
                .enforce_keep_policy(&project, now, dry_run)
                .await?
            {
                // The project's repository is named by its id.
                moved.push((project.id.clone(), build));
            }
        }
        Ok(moved)
    }

    async fn expired_builds(&self, now: i64, limit: usize) -> anyhow::Result<Vec<String>> {
        Ok(self.meta.gc_expired_builds(now, limit).await?)
    }

    async fn reap_build(&self, id: &str, now: i64, dry_run: bool) -> anyhow::Result<Reaped> {
        Ok(self.meta.gc_reap_build(id, now, dry_run).await?)
    }

    async fn expired_manifests(&self, now: i64, limit: usize) -> anyhow::Result<Vec<ManifestKey>> {
        Ok(self.meta.gc_expired_manifests(now, limit).await?)
    }

    async fn delete_expired_manifests(
        &self,
        keys: &[ManifestKey],
        now: i64,
        dry_run: bool,
    ) -> anyhow::Result<Vec<ManifestOutcome>> {
        Ok(self.meta.gc_delete_manifests(keys, now, dry_run).await?)
    }

    async fn stale_uploads(&self, before: i64, limit: usize) -> anyhow::Result<Vec<StaleUpload>> {
        Ok(self.meta.gc_stale_uploads(before, limit).await?)
    }

    async fn forget_upload(&self, id: &str, before: i64) -> anyhow::Result<bool> {
        Ok(self.meta.gc_forget_upload(id, before).await?)
    }

    async fn blob_candidates(&self, cutoff: i64, limit: usize) -> anyhow::Result<Vec<Candidate>> {
        Ok(self.meta.gc_blob_candidates(cutoff, limit).await?)
    }

    async fn sweep_blobs(
        &self,
        candidates: &[Candidate],
        cutoff: i64,
        dry_run: bool,
    ) -> anyhow::Result<Swept> {
        Ok(self
            .meta
            .gc_sweep_blobs(candidates, cutoff, dry_run)
            .await?)
    }

    async fn trash(&self, limit: usize) -> anyhow::Result<Vec<Trashed>> {
        Ok(self.meta.gc_trash(limit).await?)
    }

    async fn empty_trash(&self, locations: &[String]) -> anyhow::Result<()> {
        Ok(self.meta.gc_empty_trash(locations).await?)
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
                self.meta.notify_changed(&repo).await?;
            }
        }
        Ok(self.meta.notify_blobs_gone(digests).await?)
    }

    async fn record_run(&self, report: &Report) -> anyhow::Result<()> {
        Ok(self.meta.gc_record_run(report).await?)
    }

    async fn recent_runs(&self, limit: usize) -> anyhow::Result<Vec<Report>> {
        Ok(self.meta.gc_recent_runs(limit).await?)
    }

    async fn pending(&self, now: i64, cutoff: i64, uploads_before: i64) -> anyhow::Result<Pending> {
        Ok(self.meta.gc_pending(now, cutoff, uploads_before).await?)
    }

    async fn known_locations(&self, locations: &[String]) -> anyhow::Result<Vec<String>> {
        Ok(self.meta.gc_known_locations(locations).await?)
    }

    async fn open_uploads(&self, ids: &[String]) -> anyhow::Result<Vec<String>> {
        Ok(self.meta.gc_open_uploads(ids).await?)
    }
}

#[async_trait]
impl Objects for Backend {
    async fn delete_many(&self, locations: &[String]) -> anyhow::Result<()> {
        Ok(self.store.delete_many(locations).await?)
    }

    async fn discard_upload(&self, id: &str, store_state: &[u8]) -> anyhow::Result<()> {
        Ok(self.store.discard(id, store_state).await?)
    }

    async fn list(&self, cursor: Option<String>) -> anyhow::Result<(Vec<Listed>, Option<String>)> {
        Ok(self.store.list(cursor).await?)
    }

    /// One `stat` (a `HEAD` on S3) per location, sixteen at a time: only reconcile's
    /// candidates are asked about, so this is bounded by the orphans, not by the store.
    async fn present(&self, locations: &[String]) -> anyhow::Result<Vec<String>> {
        use futures::{StreamExt, TryStreamExt};
        let found: Vec<Option<String>> = futures::stream::iter(locations.to_vec())
            .map(|l| {
                let store = self.store.clone();
                async move { Ok::<_, crate::Error>(store.stat(&l).await?.map(|_| l)) }
            })
            .buffer_unordered(16)
            .try_collect()
            .await?;
        Ok(found.into_iter().flatten().collect())
    }
}
