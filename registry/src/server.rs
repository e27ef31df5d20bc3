//! Builds the registry from its configuration and serves it on an already-bound listener (so
//! tests bind `127.0.0.1:0` and never race for a port), with clean shutdown.

use std::future::Future;
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;

use depot_store::backend::open_backend;
use depot_store::cache::Caches;
use depot_store::clock::Clock;
use depot_store::content::Content;
use depot_store::metadata::Metadata;
use depot_store::storage::coalesce::{self, Coalescer};

use crate::access::Access;
use crate::api;
use crate::auth::{self, Auth, Keys};
use crate::config::ServeConfig;
use crate::error::{Error, InternalCause};
use crate::state::AppState;
use crate::upload_id::UploadIds;

/// Opens the metadata database and blob store named by `config`, creating them if needed.
pub async fn open(config: &ServeConfig) -> anyhow::Result<AppState> {
    config.check()?;
    let (meta, store) = open_backend(&config.backend, s3_redirect(config)).await?;
    // Object-store reads go through the coalescing chunk cache; files are served by mmap.
    let reads = config
        .backend
        .storage
        .as_deref()
        .filter(|s| s.starts_with("s3://"))
        .map(|_| {
            Coalescer::new(
                config.s3_read_cache_mib * 1024 * 1024,
                coalesce::DEFAULT_CHUNK_SIZE,
            )
        });
    let key = meta.upload_key().await.map_err(startup_error)?;
    let upload_ids = UploadIds::new(&key);
    // The process's one clock: the database writes its timestamps by it.
    let clock = meta.clock().clone();
    let base_url = auth::BaseUrl::new(config.auth.public_url.as_deref(), config.auth.trust_proxy);
    let access = if config.auth.no_auth {
        tracing::warn!(
            "authentication is disabled (--no-auth): anyone who can connect may push and delete"
        );
        Access::open()
    } else {
        Access::with_auth(auth(config, &meta, &clock, base_url.clone()).await?)
    };
    let caches = Caches::new(Duration::from_secs(config.cache_ttl_secs));
    if let Some(url) = meta.shared_url() {
        caches.follow(url);
    }
    Ok(AppState {
        content: Content {
            meta,
            store,
            reads,
            caches,
            clock,
        },
        upload_ids,
        access,
        test_clock: config.auth.test_clock,
        gc_metrics: Default::default(),
        base_url,
    })
}

/// Starts the server's own garbage collections (`--gc-interval`; 0: none).
pub fn start_gc(state: &AppState, config: &ServeConfig) {
    if config.gc_interval_secs == 0 {
        tracing::info!("garbage collection is off in this server (--gc-interval 0)");
        return;
    }
    let backend = depot_store::gc::Backend {
        meta: state.content.meta.clone(),
        store: state.content.store.clone(),
        caches: Some(state.content.caches.clone()),
    };
    depot_store::gc::spawn(
        backend,
        state.content.clock.clone(),
        config.gc.collector(false),
        Duration::from_secs(config.gc_interval_secs),
        state.gc_metrics.clone(),
    );
}

/// `GET /metrics`: Prometheus text (garbage collection totals of this process).
async fn metrics(axum::extract::State(state): axum::extract::State<AppState>) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.gc_metrics.prometheus(),
    )
        .into_response()
}

/// Whether blob GETs redirect to presigned S3 URLs (`--s3-redirect`).
fn s3_redirect(config: &ServeConfig) -> bool {
    match config.s3_redirect.as_str() {
        "on" => true,
        "off" => false,
        _ => config.backend.s3_endpoint.is_none(),
    }
}

fn startup_error(e: depot_store::Error) -> anyhow::Error {
    anyhow::Error::new(e).context("opening the registry")
}

/// Loads (or on first start creates) the admin token and the token signing keys.
async fn auth(
    config: &ServeConfig,
    meta: &Metadata,
    clock: &Clock,
    base_url: auth::BaseUrl,
) -> anyhow::Result<Auth> {
    let a = &config.auth;
    let admin_token = match (&a.admin_token, &a.admin_token_file) {
        (Some(token), _) => token.trim().to_owned(),
        (None, Some(path)) => std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?
            .trim()
            .to_owned(),
        (None, None) => {
            let path = config.backend.data_dir.join("admin-token");
            let token = auth::load_or_create_admin_token(&path)?;
            tracing::info!(path = %path.display(), "admin token is in this file");
            token
        }
    };
    if !admin_token.starts_with(auth::ADMIN_PREFIX)
        || admin_token.len() < auth::ADMIN_PREFIX.len() + 32
    {
        anyhow::bail!(
            "the admin token must start with {} and have at least 32 more characters",
            auth::ADMIN_PREFIX
        );
    }
    let signing_pem = match &a.signing_key_file {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?,
        None => meta
            .shared_setting("jwt_signing_key", auth::keys::generate_pem)
            .await
            .map_err(startup_error)?,
    };
    let extra = a
        .verify_key_files
        .iter()
        .map(|p| {
            std::fs::read_to_string(p).map_err(|e| anyhow::anyhow!("reading {}: {e}", p.display()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let keys = Keys::new(&signing_pem, &extra)?;
    tracing::info!(kid = keys.kid(), service = %a.auth_service, "token authentication on");
    Ok(Auth::new(
        keys,
        &admin_token,
        a.auth_service.clone(),
        base_url,
        a.token_ttl_secs,
        clock.clone(),
        meta.clone(),
    ))
}

/// The whole HTTP application.
pub fn app(state: AppState) -> Router {
    let metrics = Router::new()
        .route("/metrics", axum::routing::get(metrics))
        .method_not_allowed_fallback(|| async {
            Error::new(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                crate::error::Code::Unsupported,
            )
            .message("method not allowed on this resource")
            .into_response()
        })
        .with_state(state.clone());
    api::router(state.clone())
        .merge(crate::control::router(state))
        .merge(metrics)
        .fallback(api::fallback)
        .layer(axum::middleware::from_fn(
            crate::request_body::settle_unread,
        ))
        .layer(axum::middleware::from_fn(log_requests))
        .layer(CatchPanicLayer::custom(
            |_: Box<dyn std::any::Any + Send>| Error::internal("handler panicked").into_response(),
        ))
}

/// Logs every request at debug level and every server-side failure, with its cause, once.
async fn log_requests(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status();
    let duration_ms = started.elapsed().as_millis() as u64;
    if let Some(InternalCause(cause)) = response.extensions().get::<InternalCause>() {
        // The cause may quote what a client sent: Debug formatting keeps it on one line.
        tracing::error!(%method, %path, status = status.as_u16(), duration_ms, cause = ?cause, "request failed");
    } else {
        tracing::debug!(%method, %path, status = status.as_u16(), duration_ms, "request");
    }
    response
}

/// Serves until `shutdown` completes, then lets requests in flight finish for up to `grace`.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    limits: crate::connections::Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> anyhow::Result<()> {
    let meta = state.content.meta.clone();
    crate::connections::serve(listener, app(state), limits, shutdown, grace).await?;
    meta.close().await;
    Ok(())
}

/// Raises this process's open-file limit to its hard limit, so `--max-connections` can be
/// reached; warns if the cap cannot be (each connection is a descriptor, and the stores and the
/// database need some of their own).
pub fn raise_open_files(max_connections: usize) {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) if (limit as usize) < max_connections + 256 => tracing::warn!(
            open_files = limit,
            max_connections,
            "the open-file limit is below --max-connections (plus room for storage): connections past it fail to be accepted"
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!(cause = %e, "cannot raise the open-file limit"),
    }
}

/// Completes on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
