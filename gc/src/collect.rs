//! One collection: expire builds and manifests, abandon idle upload sessions, sweep
//! unreferenced blobs (see the crate documentation for the order and why it is safe).

use std::collections::HashSet;
use std::time::Duration;

use crate::{Candidate, Catalog, Clock, Config, ManifestOutcome, Objects, Report};

/// How long the collection lock is held before it must be renewed (it is renewed between
/// batches, so a crashed collector's lock runs out this long after its last batch).
pub const LOCK_TTL: Duration = Duration::from_secs(300);

/// In a dry run nothing is deleted, so each step looks at one page of this many batches.
const DRY_RUN_PAGES: usize = 20;

/// Runs collections against one catalog and store.
pub struct Collector<'a> {
    pub catalog: &'a dyn Catalog,
    pub objects: &'a dyn Objects,
    pub clock: &'a dyn Clock,
    pub config: Config,
    /// Who collects, for the lock and the record.
    pub holder: String,
    /// Where a dry run (or `verbose`) says what goes, one line per item.
    pub on_item: Option<&'a (dyn Fn(&str) + Sync)>,
}

impl Collector<'_> {
    /// One collection; `None` if another collector holds the lock.
    pub async fn run(&self) -> anyhow::Result<Option<Report>> {
        if !self.catalog.try_lock(&self.holder, LOCK_TTL).await? {
            return Ok(None);
        }
        let mut report = Report {
            id: uuid::Uuid::new_v4().to_string(),
            holder: self.holder.clone(),
            started_at: self.clock.now_ms(),
            dry_run: self.config.dry_run,
            ..Default::default()
        };
        self.collect(&mut report).await;
        report.finished_at = self.clock.now_ms();
        if let Err(e) = self.catalog.unlock(&self.holder).await {
            tracing::warn!(cause = %e, "releasing the GC lock");
        }
        if let Err(e) = self.catalog.record_run(&report).await {
            report.error("recording the run", &e);
        }
        Ok(Some(report))
    }

    async fn collect(&self, r: &mut Report) {
        // Each step runs even if an earlier one failed: they are independent, and a failing
        // manifest must not keep abandoned uploads around.
        if let Err(e) = self.keep_policies(r).await {
            r.error("applying count policies", &e);
        }
        if let Err(e) = self.expire_builds(r).await {
            r.error("expiring builds", &e);
        }
        if let Err(e) = self.expire_manifests(r).await {
            r.error("deleting expired manifests", &e);
        }
        if let Err(e) = self.abandon_uploads(r).await {
            r.error("deleting abandoned uploads", &e);
        }
        if let Err(e) = self.sweep_blobs(r).await {
            r.error("deleting unreferenced blobs", &e);
        }
    }

    fn item(&self, line: impl FnOnce() -> String) {
        if let Some(f) = self.on_item {
            f(&line());
        }
    }

    fn limit(&self) -> usize {
        if self.config.dry_run {
            self.config.batch * DRY_RUN_PAGES
        } else {
            self.config.batch
        }
    }

    /// Keeps the lock between batches; an error if another collector took it over.
    async fn renew(&self) -> anyhow::Result<()> {
        if self.catalog.try_lock(&self.holder, LOCK_TTL).await? {
            Ok(())
        } else {
            anyhow::bail!("lost the collection lock to another collector")
        }
    }

    /// Builds beyond their project's count policy expire (now, or at the policy's age limit);
    /// the next step reaps those due now.
    async fn keep_policies(&self, r: &mut Report) -> anyhow::Result<()> {
        let now = self.clock.now_ms();
        let moved = self
            .catalog
            .enforce_keep_policies(now, self.config.dry_run)
            .await?;
        r.builds_beyond_policy += moved.len() as u64;
        for (repo, build) in &moved {
            self.item(|| format!("build {build} of {repo}: beyond its project's count policy"));
        }
        if !self.config.dry_run && !moved.is_empty() {
            let repos = dedup(moved.into_iter().map(|(repo, _)| repo).collect());
            self.catalog.announce(&repos, &[]).await?;
        }
        Ok(())
    }

    async fn expire_builds(&self, r: &mut Report) -> anyhow::Result<()> {
        let now = self.clock.now_ms();
        loop {
            let ids = self.catalog.expired_builds(now, self.limit()).await?;
            let mut repos = Vec::new();
            for id in &ids {
                let reaped = self
                    .catalog
                    .reap_build(id, now, self.config.dry_run)
                    .await?;
                if reaped.reaped {
                    r.builds_expired += 1;
                    self.item(|| format!("build {id}: {} tags", reaped.tags));
                    repos.extend(reaped.repos);
                }
            }
            if !self.config.dry_run {
                self.catalog.announce(&dedup(repos), &[]).await?;
            }
            if self.config.dry_run || ids.len() < self.limit() {
                return Ok(());
            }
            self.renew().await?;
        }
    }

    async fn expire_manifests(&self, r: &mut Report) -> anyhow::Result<()> {
        let now = self.clock.now_ms();
        let mut seen = HashSet::new();
        loop {
            let keys = self.catalog.expired_manifests(now, self.limit()).await?;
            let fresh: Vec<_> = keys.iter().filter(|k| seen.insert((*k).clone())).collect();
            let mut repos = Vec::new();
            let batch: Vec<_> = fresh.iter().map(|k| (*k).clone()).collect();
            let outcomes = self
                .catalog
                .delete_expired_manifests(&batch, now, self.config.dry_run)
                .await?;
            for (key, outcome) in batch.iter().zip(outcomes) {
                if let ManifestOutcome::Deleted { blobs } = outcome {
                    r.manifests_deleted += 1;
                    self.item(|| format!("manifest {}@{} ({blobs} blobs)", key.repo, key.digest));
                    repos.push(key.repo.clone());
                }
            }
            if !self.config.dry_run {
                self.catalog.announce(&dedup(repos), &[]).await?;
            }
            // A page of manifests all seen before means the rest are kept: stop.
            if self.config.dry_run || keys.len() < self.limit() || fresh.is_empty() {
                return Ok(());
            }
            self.renew().await?;
        }
    }

    async fn abandon_uploads(&self, r: &mut Report) -> anyhow::Result<()> {
        let before = self.clock.wall_ms() - self.config.upload_timeout.as_millis() as i64;
        let mut seen = HashSet::new();
        loop {
            let stale = self.catalog.stale_uploads(before, self.limit()).await?;
            let fresh: Vec<_> = stale.iter().filter(|u| seen.insert(u.id.clone())).collect();
            for up in &fresh {
                if self.config.dry_run {
                    r.uploads_deleted += 1;
                    self.item(|| format!("upload session {}", up.id));
                    continue;
                }
                // The row first: a session whose row is gone can never be continued, so its
                // bytes are nobody's; a crash in between leaves bytes `reconcile` finds.
                if self.catalog.forget_upload(&up.id, before).await? {
                    if up.open {
                        self.objects.discard_upload(&up.id, &up.store_state).await?;
                    }
                    r.uploads_deleted += 1;
                    self.item(|| format!("upload session {}", up.id));
                }
            }
            if self.config.dry_run || stale.len() < self.limit() || fresh.is_empty() {
                return Ok(());
            }
            self.renew().await?;
        }
    }

    async fn sweep_blobs(&self, r: &mut Report) -> anyhow::Result<()> {
        // What an interrupted run left: metadata gone, bytes not yet.
        if !self.config.dry_run {
            loop {
                let trash = self.catalog.trash(self.config.batch).await?;
                if trash.is_empty() {
                    break;
                }
                let locations: Vec<String> = trash.iter().map(|t| t.location.clone()).collect();
                self.objects.delete_many(&locations).await?;
                self.catalog.empty_trash(&locations).await?;
                r.bytes_freed += trash.iter().map(|t| t.size).sum::<u64>();
                if trash.len() < self.config.batch {
                    break;
                }
            }
        }
        let cutoff = self.clock.now_ms() - self.config.grace.as_millis() as i64;
        let mut seen = HashSet::new();
        loop {
            let candidates = self.catalog.blob_candidates(cutoff, self.limit()).await?;
            let fresh: Vec<Candidate> = candidates
                .iter()
                .filter(|c| seen.insert(c.digest.clone()))
                .cloned()
                .collect();
            let swept = self
                .catalog
                .sweep_blobs(&fresh, cutoff, self.config.dry_run)
                .await?;
            for d in &swept.digests {
                let size = fresh.iter().find(|c| &c.digest == d).map_or(0, |c| c.size);
                self.item(|| format!("blob {d} ({size} bytes)"));
            }
            r.blobs_deleted += swept.digests.len() as u64;
            r.bytes_freed += swept.trashed.iter().map(|t| t.size).sum::<u64>();
            if !self.config.dry_run && !swept.trashed.is_empty() {
                // Other replicas drop their cached lookups before the bytes go.
                self.catalog.announce(&swept.repos, &swept.digests).await?;
                let locations: Vec<String> =
                    swept.trashed.iter().map(|t| t.location.clone()).collect();
                self.objects.delete_many(&locations).await?;
                self.catalog.empty_trash(&locations).await?;
            }
            if self.config.dry_run || candidates.len() < self.limit() || fresh.is_empty() {
                return Ok(());
            }
            self.renew().await?;
        }
    }
}

fn dedup(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v.dedup();
    v
}
