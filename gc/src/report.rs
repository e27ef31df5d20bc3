//! What a collection did ([`Report`], kept in the database for `depot-gc status`) and the
//! running totals a registry exposes as Prometheus metrics ([`Metrics`], through the `metrics`
//! crate's recorder).

use std::fmt::Write as _;

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
    /// Saved builds whose expiry a project's count policy brought forward.
    #[serde(default)]
    pub builds_beyond_policy: u64,
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
            "{} builds expired, {} manifests, {} upload sessions, {} blobs deleted; {} builds beyond their project's count policy; {verb} {} bytes in {} ms",
            self.builds_expired,
            self.manifests_deleted,
            self.uploads_deleted,
            self.blobs_deleted,
            self.builds_beyond_policy,
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

/// The names of the collection metrics ([`Metrics`] records them), with their help texts.
pub const METRICS: &[(&str, &str)] = &[
    (
        "depot_gc_runs_total",
        "Garbage collections this process ran.",
    ),
    (
        "depot_gc_skipped_total",
        "Collections skipped because another replica was collecting.",
    ),
    (
        "depot_gc_builds_beyond_policy_total",
        "Saved builds expired early by their project's count policy.",
    ),
    ("depot_gc_builds_expired_total", "Expired builds reaped."),
    (
        "depot_gc_manifests_deleted_total",
        "Expired manifests deleted.",
    ),
    (
        "depot_gc_uploads_deleted_total",
        "Abandoned upload sessions deleted.",
    ),
    (
        "depot_gc_blobs_deleted_total",
        "Unreferenced blobs deleted.",
    ),
    ("depot_gc_bytes_freed_total", "Bytes of blobs deleted."),
    ("depot_gc_errors_total", "Errors during collections."),
    (
        "depot_gc_last_duration_seconds",
        "How long the last collection took.",
    ),
    (
        "depot_gc_last_run_timestamp_seconds",
        "When the last collection finished (Unix time).",
    ),
];

/// Records this process's collections in the process's `metrics` recorder (the registry's
/// `/metrics`); without a recorder installed, recording costs nothing.
#[derive(Debug, Default)]
pub struct Metrics;

impl Metrics {
    /// Registers the help texts (once, when the recorder is installed), and shows the
    /// counters at 0 before the first collection.
    pub fn describe() {
        for (name, help) in METRICS {
            if name.ends_with("_total") {
                metrics::describe_counter!(*name, *help);
                metrics::counter!(*name).increment(0);
            } else {
                metrics::describe_gauge!(*name, *help);
            }
        }
    }

    pub fn record(&self, r: &Report) {
        metrics::counter!("depot_gc_runs_total").increment(1);
        metrics::counter!("depot_gc_builds_beyond_policy_total").increment(r.builds_beyond_policy);
        metrics::counter!("depot_gc_builds_expired_total").increment(r.builds_expired);
        metrics::counter!("depot_gc_manifests_deleted_total").increment(r.manifests_deleted);
        metrics::counter!("depot_gc_uploads_deleted_total").increment(r.uploads_deleted);
        metrics::counter!("depot_gc_blobs_deleted_total").increment(r.blobs_deleted);
        metrics::counter!("depot_gc_bytes_freed_total").increment(r.bytes_freed);
        metrics::counter!("depot_gc_errors_total").increment(r.errors);
        metrics::gauge!("depot_gc_last_duration_seconds").set(r.duration_ms() as f64 / 1000.0);
        metrics::gauge!("depot_gc_last_run_timestamp_seconds").set(r.finished_at as f64 / 1000.0);
    }

    /// A collection skipped because another replica held the lock.
    pub fn skipped(&self) {
        metrics::counter!("depot_gc_skipped_total").increment(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_add_up_runs() {
        let m = Metrics;
        let r = Report {
            started_at: 1000,
            finished_at: 1500,
            blobs_deleted: 3,
            bytes_freed: 300,
            ..Default::default()
        };
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            m.record(&r);
            m.record(&r);
        });
        let text = handle.render();
        assert!(text.contains("depot_gc_runs_total 2\n"), "{text}");
        assert!(text.contains("depot_gc_bytes_freed_total 600\n"));
        assert!(text.contains("depot_gc_last_duration_seconds 0.5\n"));
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
