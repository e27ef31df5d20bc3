//! The metrics the store records, named in one place: cache lookups, object-store calls and
//! the write pool's wait (recorded where they happen), and the gauges the registry sets from
//! the metadata's counts at a scrape. They go to the process's `metrics` recorder; without
//! one installed (the library in a test, `depot-gc`), recording costs nothing.

use std::sync::{PoisonError, RwLock};
use std::time::Duration;

/// What a metric is, for its `# TYPE` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

pub const CACHE_REQUESTS: &str = "depot_cache_requests_total";
pub const S3_REQUESTS: &str = "depot_s3_requests_total";
pub const S3_DURATION: &str = "depot_s3_request_duration_seconds";
pub const DB_ACQUIRE: &str = "depot_db_acquire_duration_seconds";
pub const DB_CONNECTIONS: &str = "depot_db_connections";
pub const DB_CONNECTIONS_MAX: &str = "depot_db_connections_max";
pub const BUILDS: &str = "depot_builds";
pub const UPLOADS_IN_PROGRESS: &str = "depot_uploads_in_progress";
pub const STORAGE_BYTES: &str = "depot_storage_bytes";
pub const STORAGE_BLOBS: &str = "depot_storage_blobs";

/// Every metric the store records: name, kind, labels, help.
pub const METRICS: &[(&str, Kind, &str, &str)] = &[
    (
        CACHE_REQUESTS,
        Kind::Counter,
        "cache, result",
        "Lookups in the in-process caches (manifests, repo_blobs, stored, chunks) by result (hit, miss).",
    ),
    (
        S3_REQUESTS,
        Kind::Counter,
        "operation, outcome",
        "Object-store requests by S3 operation and outcome (ok, error, timeout).",
    ),
    (
        S3_DURATION,
        Kind::Histogram,
        "operation",
        "Object-store request latency by S3 operation.",
    ),
    (
        DB_ACQUIRE,
        Kind::Histogram,
        "pool",
        "Time to get a database connection and open a write transaction.",
    ),
    (
        DB_CONNECTIONS,
        Kind::Gauge,
        "pool, state",
        "Database connections of this process by pool (read, write) and state (in_use, idle).",
    ),
    (
        DB_CONNECTIONS_MAX,
        Kind::Gauge,
        "pool",
        "The most connections each pool opens.",
    ),
    (
        BUILDS,
        Kind::Gauge,
        "state",
        "Builds not yet reaped, by state (building, saved, failed, expired: past expiry, awaiting collection).",
    ),
    (
        UPLOADS_IN_PROGRESS,
        Kind::Gauge,
        "",
        "Upload sessions that have received data and are not finished (all replicas: read from the database).",
    ),
    (
        STORAGE_BYTES,
        Kind::Gauge,
        "repository",
        "Bytes of the blobs linked into each repository (a project's builds live in the repository named by its id; a blob shared by two counts in both).",
    ),
    (
        STORAGE_BLOBS,
        Kind::Gauge,
        "repository",
        "Blobs linked into each repository.",
    ),
];

/// Registers the help texts with the installed recorder.
pub fn describe() {
    describe_all(METRICS);
}

/// Registers the help texts of `metrics` (name, kind, labels, help).
pub fn describe_all(metrics: &[(&'static str, Kind, &'static str, &'static str)]) {
    for &(name, kind, _, help) in metrics {
        match kind {
            Kind::Counter => metrics::describe_counter!(name, help),
            Kind::Gauge => metrics::describe_gauge!(name, help),
            Kind::Histogram => metrics::describe_histogram!(name, metrics::Unit::Seconds, help),
        }
    }
}

/// Counters for a small, closed set of label values, each registered with the recorder the
/// first time its key is seen and kept: building a labelled key and finding it in the
/// recorder's map for every event cost more than the events it counted on hot paths. A process
/// installs its recorder before it serves (the registry's `server::open`), so the kept handles
/// are the recorder's.
#[derive(Debug, Default)]
pub struct KeptCounters<K>(RwLock<Vec<(K, metrics::Counter)>>);

impl<K: PartialEq + Copy> KeptCounters<K> {
    pub const fn new() -> Self {
        KeptCounters(RwLock::new(Vec::new()))
    }

    /// Adds one to `key`'s counter, registering it with `register` the first time.
    pub fn increment(&self, key: K, register: impl FnOnce() -> metrics::Counter) {
        if let Some((_, counter)) = self
            .0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .find(|(k, _)| *k == key)
        {
            counter.increment(1);
            return;
        }
        let mut kept = self.0.write().unwrap_or_else(PoisonError::into_inner);
        // Another thread may have registered it between the two locks.
        if !kept.iter().any(|(k, _)| *k == key) {
            kept.push((key, register()));
        }
        let (_, counter) = kept
            .iter()
            .find(|(k, _)| *k == key)
            .expect("kept just above");
        counter.increment(1);
    }
}

/// A lookup in the cache named `cache` (every request makes one or two).
pub fn cache_lookup(cache: &'static str, hit: bool) {
    static KEPT: KeptCounters<(&str, bool)> = KeptCounters::new();
    KEPT.increment((cache, hit), || {
        let result = if hit { "hit" } else { "miss" };
        metrics::counter!(CACHE_REQUESTS, "cache" => cache, "result" => result)
    });
}

/// One object-store request and how it ended.
pub fn s3_request(operation: &'static str, outcome: &'static str, took: Duration) {
    metrics::counter!(S3_REQUESTS, "operation" => operation, "outcome" => outcome).increment(1);
    metrics::histogram!(S3_DURATION, "operation" => operation).record(took.as_secs_f64());
}

/// The wait for a write transaction.
pub fn write_acquired(took: Duration) {
    metrics::histogram!(DB_ACQUIRE, "pool" => "write").record(took.as_secs_f64());
}
