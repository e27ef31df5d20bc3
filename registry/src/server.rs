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
use crate::config::{ServeConfig, Shutdown};
use crate::error::{Error, InternalCause};
use crate::state::{AppState, Shared};
use crate::upload_id::UploadIds;

/// Opens the metadata database and blob store named by `config`, creating them if needed.
pub async fn open(config: &ServeConfig) -> anyhow::Result<AppState> {
    config.check()?;
    // Installed before anything records.
    crate::metrics::handle();
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
    let base_url = auth::BaseUrl::new(config.auth.public_url.as_deref(), config.auth.trust_proxy)
        .with_tls(config.tls_cert_file.is_some());
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
    Ok(AppState::new(Shared {
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
        metrics: Default::default(),
        base_url,
        lifecycle: Default::default(),
        pulls: Default::default(),
    }))
}

/// Starts sampling each project's usage for the dashboard (`--usage-interval`; 0: none).
pub fn start_usage(state: &AppState, config: &ServeConfig) {
    if config.usage_interval_secs == 0 {
        return;
    }
    crate::usage::spawn(
        state.content.clone(),
        state.pulls.clone(),
        Duration::from_secs(config.usage_interval_secs),
    );
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
    let oidc = crate::oidc::Oidc::new(
        crate::oidc::Issuers::with_overrides(&a.oidc_issuers)?,
        a.oidc_audience.clone().or_else(|| a.public_url.clone()),
        clock.clone(),
    )?;
    Ok(Auth::new(
        keys,
        &admin_token,
        a.auth_service.clone(),
        base_url,
        a.token_ttl_secs,
        meta.clone(),
        oidc,
    ))
}

/// The whole HTTP application, with `/metrics` (see [`app_without_metrics`]).
pub fn app(state: AppState) -> Router {
    layered(base(state.clone()).merge(crate::scrape::router(state)))
}

/// The application without `/metrics`, for a server whose metrics are served on a listener of
/// their own (`--metrics-listen`).
pub fn app_without_metrics(state: AppState) -> Router {
    layered(base(state))
}

/// The metrics alone, on the `--metrics-listen` address.
pub fn metrics_app(state: AppState) -> Router {
    layered(crate::scrape::router(state))
}

fn base(state: AppState) -> Router {
    api::router(state.clone())
        .merge(crate::control::router(state.clone()))
        .merge(crate::ui::router(state.clone()))
        .merge(crate::health::router(state))
}

fn layered(router: Router) -> Router {
    router
        .fallback(api::fallback)
        // One layer for the log, the metrics and the body's settling (each `from_fn` layer
        // costs a boxed future and a service clone per request).
        .layer(axum::middleware::from_fn(log_requests))
        .layer(CatchPanicLayer::custom(
            |_: Box<dyn std::any::Any + Send>| Error::internal("handler panicked").into_response(),
        ))
}

/// The header a request id travels in, both ways.
const X_REQUEST_ID: axum::http::HeaderName = axum::http::HeaderName::from_static("x-request-id");

/// The request's id: the client's (or a proxy's) `X-Request-Id` when it is a sane one (1 to 128
/// visible ASCII characters), else a new one.
fn request_id(headers: &axum::http::HeaderMap) -> String {
    headers
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        // From the thread's userspace generator: `new_v4` asks the kernel for every id.
        .map_or_else(
            || {
                uuid::Builder::from_random_bytes(rand::random())
                    .into_uuid()
                    .simple()
                    .to_string()
            },
            str::to_owned,
        )
}

/// What kind of request a path is, for the log and metrics (never the repository name, which
/// is the client's).
pub fn path_class(path: &str) -> &'static str {
    if let Some(rest) = path.strip_prefix("/v2/") {
        return if rest.is_empty() {
            "base"
        } else if rest == "_catalog" {
            "catalog"
        } else if rest.contains("/blobs/uploads") {
            "upload"
        } else if rest.contains("/blobs/") {
            "blob"
        } else if rest.contains("/manifests/") {
            "manifest"
        } else if rest.ends_with("/tags/list") {
            "tags"
        } else if rest.contains("/referrers/") {
            "referrers"
        } else {
            "other"
        };
    }
    match path {
        "/token" => "token",
        "/livez" | "/readyz" => "health",
        "/metrics" => "metrics",
        p if p.starts_with("/api/") => "api",
        _ => "other",
    }
}

/// Logs one line per request at info (health probes and metrics scrapes at debug), with the
/// request's id, and every server-side failure with its cause, once. The id is returned in the
/// answer's `X-Request-Id`, and every log line written while the request runs carries it.
async fn log_requests(request: Request, next: Next) -> Response {
    use tracing::Instrument;
    let id = request_id(request.headers());
    let method = request.method().clone();
    // A clone of the URI shares its bytes (a copy of the path would allocate per request).
    let uri = request.uri().clone();
    let path = uri.path();
    let class = path_class(path);
    let bytes_in = content_length(request.headers());
    let span = tracing::info_span!("request", id = %id);
    let started = Instant::now();
    let answering =
        crate::metrics::Answering::start(class, crate::metrics::method_label(&method), started);
    let request = request.map(|body| answering.count_received(body));
    let mut response = crate::request_body::settle_unread(request, next)
        .instrument(span.clone())
        .await;
    // The id's own bytes become the header's (no copy).
    if let Ok(v) = axum::http::HeaderValue::from_maybe_shared(bytes::Bytes::from(id)) {
        response.headers_mut().insert(X_REQUEST_ID, v);
    }
    let status = response.status().as_u16();
    let duration_ms = started.elapsed().as_millis() as u64;
    let bytes_out = axum::body::HttpBody::size_hint(response.body())
        .exact()
        .unwrap_or_else(|| content_length(response.headers()));
    let _entered = span.enter();
    if let Some(InternalCause(cause)) = response.extensions().get::<InternalCause>() {
        // The cause may quote what a client sent: Debug formatting keeps it on one line.
        tracing::error!(%method, %path, class, status, duration_ms, cause = ?cause, "request failed");
    } else if matches!(class, "health" | "metrics") {
        tracing::debug!(%method, %path, class, status, duration_ms, "request");
    } else {
        tracing::info!(%method, %path, class, status, bytes_in, bytes_out, duration_ms, "request");
    }
    drop(_entered);
    response.map(|body| answering.finish(status, body))
}

/// A `Content-Length` header's value (0 when absent: a body of unknown length is counted by
/// the metrics, not here).
fn content_length(headers: &axum::http::HeaderMap) -> u64 {
    headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Serves until the shutdown signal, then drains as [`Shutdown`] says.
pub async fn serve(
    listener: TcpListener,
    metrics: Option<TcpListener>,
    state: AppState,
    limits: crate::connections::Limits,
    tls: Option<crate::tls::Tls>,
    shutdown: Shutdown<impl Future<Output = ()> + Send + 'static>,
) -> anyhow::Result<()> {
    let meta = state.content.meta.clone();
    let lifecycle = state.lifecycle.clone();
    let Shutdown {
        signal,
        delay,
        grace,
    } = shutdown;
    let stop_accepting = async move {
        signal.await;
        lifecycle.drain();
        tracing::info!(
            delay_secs = delay.as_secs(),
            "shutting down: /readyz answers 503; new connections are served for the delay"
        );
        tokio::time::sleep(delay).await;
    };
    if let Some(tls) = &tls {
        tls.spawn_reloader();
    }
    let (app, metrics) = match metrics {
        None => (app(state), None),
        Some(listener) => {
            // A scraper's port: a few connections, plain HTTP, served until the registry stops.
            let limits = crate::connections::Limits {
                max_connections: 64,
                ..limits
            };
            let serving = crate::connections::serve(
                listener,
                metrics_app(state.clone()),
                limits,
                None,
                std::future::pending(),
                Duration::ZERO,
            );
            (app_without_metrics(state), Some(tokio::spawn(serving)))
        }
    };
    let served = crate::connections::serve(listener, app, limits, tls, stop_accepting, grace).await;
    if let Some(metrics) = metrics {
        metrics.abort();
    }
    served?;
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
