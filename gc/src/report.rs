//! What a collection did ([`Report`], kept in the database for `depot-gc status`) and the
//! running totals a registry exposes as Prometheus metrics ([`Metrics`]).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// One collection.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub id: String,
    /// Who ran it (`<host>/<pid>` of the registry replica or `depot-gc`).
    pub holder: String,
    pub started_at: i64,
    pub finished_at: i64,
    pub dry_run: bool,
    pub builds_expired: u64,
    pub manifests_deleted: u64,
    pub uploads_deleted: u64,
    pub blobs_deleted: u64,
    pub bytes_freed: u64,
    pub errors: u64,
    /// The first error, if any.
    pub error: Option<String>,
}

impl Report {
    pub fn duration_ms(&self) -> i64 {
        self.finished_at - self.started_at
    }

    /// One line for the log and the terminal.
    pub fn summary(&self) -> String {
        let verb = if self.dry_run { "would free" } else { "freed" };
        let mut s = format!(
            "{} builds expired, {} manifests, {} upload sessions, {} blobs deleted; {verb} {} bytes in {} ms",
            self.builds_expired,
            self.manifests_deleted,
            self.uploads_deleted,
            self.blobs_deleted,
            self.bytes_freed,
            self.duration_ms()
        );
        if self.errors > 0 {
            let _ = write!(
                s,
                "; {} errors (first: {})",
                self.errors,
                self.error.as_deref().unwrap_or("?")
            );
        }
        s
    }

    /// Counts an error, keeping the first message.
    pub fn error(&mut self, what: &str, e: &anyhow::Error) {
        self.errors += 1;
        if self.error.is_none() {
            self.error = Some(format!("{what}: {e:#}"));
        }
    }
}

/// Totals over this process's collections, for `/metrics`.
#[derive(Debug, Default)]
pub struct Metrics {
    runs: AtomicU64,
    skipped: AtomicU64,
    builds_expired: AtomicU64,
    manifests_deleted: AtomicU64,
    uploads_deleted: AtomicU64,
    blobs_deleted: AtomicU64,
    bytes_freed: AtomicU64,
    errors: AtomicU64,
    last_duration_ms: AtomicI64,
    last_finished_ms: AtomicI64,
}

impl Metrics {
    pub fn record(&self, r: &Report) {
        let add = |c: &AtomicU64, n: u64| c.fetch_add(n, Ordering::Relaxed);
        add(&self.runs, 1);
        add(&self.builds_expired, r.builds_expired);
        add(&self.manifests_deleted, r.manifests_deleted);
        add(&self.uploads_deleted, r.uploads_deleted);
        add(&self.blobs_deleted, r.blobs_deleted);
        add(&self.bytes_freed, r.bytes_freed);
        add(&self.errors, r.errors);
        self.last_duration_ms
            .store(r.duration_ms(), Ordering::Relaxed);
        self.last_finished_ms
            .store(r.finished_at, Ordering::Relaxed);
    }

    /// A collection skipped because another replica held the lock.
    pub fn skipped(&self) {
        self.skipped.fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition of these totals.
    pub fn prometheus(&self) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, v: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        };
        counter(
            "depot_gc_runs_total",
            "Garbage collections this process ran.",
            get(&self.runs),
        );
        counter(
            "depot_gc_skipped_total",
            "Collections skipped because another replica was collecting.",
            get(&self.skipped),
        );
        counter(
            "depot_gc_builds_expired_total",
            "Expired builds reaped.",
            get(&self.builds_expired),
        );
        counter(
            "depot_gc_manifests_deleted_total",
            "Expired manifests deleted.",
            get(&self.manifests_deleted),
        );
        counter(
            "depot_gc_uploads_deleted_total",
            "Abandoned upload sessions deleted.",
            get(&self.uploads_deleted),
        );
        counter(
            "depot_gc_blobs_deleted_total",
            "Unreferenced blobs deleted.",
            get(&self.blobs_deleted),
        );
        counter(
            "depot_gc_bytes_freed_total",
            "Bytes of blobs deleted.",
            get(&self.bytes_freed),
        );
        counter(
            "depot_gc_errors_total",
            "Errors during collections.",
            get(&self.errors),
        );
        let _ = writeln!(
            out,
            "# HELP depot_gc_last_duration_seconds How long the last collection took.\n# TYPE depot_gc_last_duration_seconds gauge\ndepot_gc_last_duration_seconds {:.3}",
            self.last_duration_ms.load(Ordering::Relaxed) as f64 / 1000.0
        );
        let _ = writeln!(
            out,
            "# HELP depot_gc_last_run_timestamp_seconds When the last collection finished.\n# TYPE depot_gc_last_run_timestamp_seconds gauge\ndepot_gc_last_run_timestamp_seconds {:.3}",
            self.last_finished_ms.load(Ordering::Relaxed) as f64 / 1000.0
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_add_up_runs() {
        let m = Metrics::default();
        let r = Report {
            started_at: 1000,
            finished_at: 1500,
            blobs_deleted: 3,
            bytes_freed: 300,
            ..Default::default()
        };
        m.record(&r);
        m.record(&r);
        let text = m.prometheus();
        assert!(text.contains("depot_gc_runs_total 2\n"), "{text}");
        assert!(text.contains("depot_gc_bytes_freed_total 600\n"));
        assert!(text.contains("depot_gc_last_duration_seconds 0.500\n"));
    }

    #[test]
    fn the_summary_names_the_first_error() {
        let mut r = Report::default();
        r.error("sweeping", &anyhow::anyhow!("disk on fire"));
        r.error("sweeping", &anyhow::anyhow!("second"));
        assert!(r
            .summary()
            .contains("2 errors (first: sweeping: disk on fire)"));
    }
}
