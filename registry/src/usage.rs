//! A project's usage over time, for the dashboard's chart: manifest requests are counted in
//! memory as they are answered (one map update, no database write per pull), and every
//! `--usage-interval` each project's sample is written: the bytes its repositories hold, its
//! live saved builds, and the requests counted since the last sample (added to what other
//! replicas counted in that hour).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use depot_store::content::Content;

/// Manifest requests answered per repository since the last sample.
#[derive(Debug, Default)]
pub struct PullCounter(Mutex<HashMap<String, i64>>);

impl PullCounter {
    /// One more manifest answered from `repo`.
    pub fn count(&self, repo: &str) {
        let mut counts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match counts.get_mut(repo) {
            Some(n) => *n += 1,
            None => {
                counts.insert(repo.to_owned(), 1);
            }
        }
    }

    /// What was counted for `repo` and not yet sampled.
    pub fn pending(&self, repo: &str) -> i64 {
        let counts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        counts.get(repo).copied().unwrap_or(0)
    }

    fn take(&self) -> HashMap<String, i64> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Puts back what a failed sample could not write.
    fn restore(&self, repo: String, n: i64) {
        *self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(repo)
            .or_insert(0) += n;
    }
}

/// Writes one sample for every project.
pub async fn sample(content: &Content, pulls: &PullCounter) -> depot_store::Result<()> {
    let meta = &content.meta;
    let now = content.now_ms();
    let mut counted = pulls.take();
    let projects = match meta.list_projects().await {
        Ok(p) => p,
        Err(e) => {
            counted.into_iter().for_each(|(r, n)| pulls.restore(r, n));
            return Err(e);
        }
    };
    let mut failed = None;
    for p in projects {
        let n = counted.remove(&p.id).unwrap_or(0);
        let written = match meta.project_totals(&p.id, now).await {
            Ok(t) => {
                meta.record_usage(&p.id, now, t.storage_bytes, t.live_saved, n)
                    .await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = written {
            pulls.restore(p.id.clone(), n);
            failed.get_or_insert(e);
        }
    }
    failed.map_or(Ok(()), Err)
}

/// Samples every `interval` (the first at once), for as long as the process runs.
pub fn spawn(content: Content, pulls: Arc<PullCounter>, interval: Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = sample(&content, &pulls).await {
                tracing::warn!(cause = %e, "sampling project usage");
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_taken_once_and_restored_on_failure() {
        let c = PullCounter::default();
        c.count("p1");
        c.count("p1");
        c.count("p2");
        assert_eq!(c.pending("p1"), 2);
        let taken = c.take();
        assert_eq!(taken["p1"], 2);
        assert_eq!(c.pending("p1"), 0);
        c.restore("p1".into(), 2);
        c.count("p1");
        assert_eq!(c.pending("p1"), 3);
    }
}
