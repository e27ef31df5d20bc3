//! `GET /livez` and `GET /readyz`, for load balancers and Kubernetes probes.
//!
//! `/livez` says the process answers (nothing is looked at: a slow database must not get a
//! live process restarted). `/readyz` says this replica should get traffic: the database
//! answers and holds every migration this build knows, and the blob store answers, each checked
//! within [`CHECK_TIMEOUT`]; and the process is not shutting down: from SIGTERM on it answers
//! `503` at once while the requests in flight finish ([`crate::state::Lifecycle::drain`]).

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::state::AppState;

/// How long each readiness check may take before it counts as failed.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .with_state(state)
}

async fn livez() -> Response {
    Json(json!({ "status": "ok" })).into_response()
}

/// `Ok` or what failed, within the timeout.
async fn check<F>(what: F) -> Result<(), String>
where
    F: std::future::Future<Output = depot_store::Result<()>>,
{
    match tokio::time::timeout(CHECK_TIMEOUT, what).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {} s", CHECK_TIMEOUT.as_secs())),
    }
}

async fn readyz(State(state): State<AppState>) -> Response {
    if state.lifecycle.draining() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "draining" })),
        )
            .into_response();
    }
    let (database, storage) = tokio::join!(
        check(state.content.meta.readiness()),
        check(state.content.store.probe())
    );
    let ready = database.is_ok() && storage.is_ok();
    let show = |r: &Result<(), String>| match r {
        Ok(()) => "ok".to_owned(),
        Err(e) => e.clone(),
    };
    if !ready {
        tracing::warn!(database = %show(&database), storage = %show(&storage), "not ready");
    }
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if ready { "ready" } else { "unavailable" },
        "checks": { "database": show(&database), "storage": show(&storage) },
    });
    (status, Json(body)).into_response()
}
