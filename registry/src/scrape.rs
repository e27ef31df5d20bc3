//! `GET /metrics`: the Prometheus text of the process's recorder ([`crate::metrics`]), after
//! setting the gauges read from the database (builds by state, uploads in progress, storage
//! per repository) at most every [`STATS_EVERY`], so a fast scraper does not turn into database
//! load, and the connection pools' use (in memory) on every scrape.

use std::time::{Duration, Instant};

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Router;

use crate::metrics::handle;
use crate::state::AppState;

/// How often a scrape may ask the database for the gauges' counts.
pub const STATS_EVERY: Duration = Duration::from_secs(10);

/// `GET /metrics`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", axum::routing::get(scrape))
        .method_not_allowed_fallback(crate::error::method_not_allowed)
        .with_state(state)
}

/// The Prometheus text exposition, after bringing the gauges up to date.
async fn scrape(State(state): State<AppState>) -> Response {
    let meta = &state.content.meta;
    for pool in meta.pools() {
        use depot_store::metrics::{DB_CONNECTIONS, DB_CONNECTIONS_MAX};
        let name = pool.pool;
        metrics::gauge!(DB_CONNECTIONS, "pool" => name, "state" => "in_use")
            .set(pool.in_use as f64);
        metrics::gauge!(DB_CONNECTIONS, "pool" => name, "state" => "idle").set(pool.idle as f64);
        metrics::gauge!(DB_CONNECTIONS_MAX, "pool" => name).set(pool.max as f64);
    }
    let due = {
        let mut at = state.metrics.stats_at.lock().unwrap();
        let due = at.is_none_or(|t| t.elapsed() >= STATS_EVERY);
        if due {
            *at = Some(Instant::now());
        }
        due
    };
    if due {
        match tokio::time::timeout(Duration::from_secs(2), meta.stats()).await {
            Ok(Ok(stats)) => set_stats(&stats),
            Ok(Err(e)) => tracing::warn!(cause = %e, "reading the metrics' counts failed"),
            Err(_) => tracing::warn!("reading the metrics' counts took over 2 s"),
        }
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        handle().render(),
    )
        .into_response()
}

fn set_stats(stats: &depot_store::metadata::Stats) {
    use depot_store::metrics::{BUILDS, STORAGE_BLOBS, STORAGE_BYTES, UPLOADS_IN_PROGRESS};
    // Every state is shown, 0 when there are none, so a dashboard's series do not vanish.
    for state in ["building", "saved", "failed", "expired"] {
        let n = stats
            .builds
            .iter()
            .find(|(s, _)| s == state)
            .map_or(0, |(_, n)| *n);
        metrics::gauge!(BUILDS, "state" => state).set(n as f64);
    }
    metrics::gauge!(UPLOADS_IN_PROGRESS).set(stats.uploads as f64);
    for (repo, bytes, blobs) in &stats.usage {
        metrics::gauge!(STORAGE_BYTES, "repository" => repo.clone()).set(*bytes as f64);
        metrics::gauge!(STORAGE_BLOBS, "repository" => repo.clone()).set(*blobs as f64);
    }
}
