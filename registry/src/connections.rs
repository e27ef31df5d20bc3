//! Accepting and serving client connections, with the limits a registry on every CI job's path
//! needs: at most `max_connections` at once (beyond that a new connection gets an immediate `503`
//! and is closed, with a log line, instead of queueing unseen in the kernel while its client
//! times out), a bound on the time a client may take to send a request's head (counted from
//! the connection's start, or from the previous answer on a kept-alive connection: hyper's
//! header timer also ends idle keep-alive connections), and an idle timeout for connections on
//! which nothing moves mid-request ([`crate::guarded_io`]). hyper's read buffer keeps its default
//! bound (about 400 KiB, so longer request heads get a `431`): a smaller one also caps the
//! frames upload bodies are read in, and measured 12% slower pushes at 15% more CPU. HTTP/1.1 and HTTP/2 (prior
//! knowledge) are served on the same port, as `axum::serve` does; with [`crate::tls`], over TLS
//! (HTTP/2 by ALPN), the handshake bounded by the head timeout.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::either::Either;
use tower::ServiceExt;

use crate::guarded_io::GuardedIo;

/// The connection limits (`serve` flags; `docs/limits.md` lists them).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 4096,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// How many connections over the cap may be in the middle of being told so at once. Beyond
/// that (a flood faster than the refusals finish) the answer is written without waiting and the
/// connection closed at once, so the descriptors a flood costs stay bounded by
/// `max_connections + REFUSING`.
const REFUSING: usize = 64;

/// What a connection over the cap is told before it is closed.
const OVER_CAPACITY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: 77\r\n\r\n{\"errors\":[{\"code\":\"TOOMANYREQUESTS\",\"message\":\"too many open connections\"}]}";

/// Serves `app` on `listener` until `shutdown` completes; then stops accepting and lets the
/// connections finish their requests for up to `grace`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    tls: Option<crate::tls::Tls>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let refused = Arc::new(AtomicU64::new(0));
    let refusing = Arc::new(Semaphore::new(REFUSING));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(limits.idle_timeout / 2))
        .keep_alive_timeout(limits.header_timeout);
    let builder = Arc::new(builder);
    tokio::pin!(shutdown);
    let mut last_warning: Option<tokio::time::Instant> = None;
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors, or the peer gave up before the accept: keep
                    // serving the others.
                    tracing::warn!(cause = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            let n = refused.fetch_add(1, Ordering::Relaxed) + 1;
            metrics::counter!(crate::metrics::CONNECTIONS_REFUSED).increment(1);
            if last_warning.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
                last_warning = Some(tokio::time::Instant::now());
                tracing::warn!(
                    max_connections = limits.max_connections,
                    refused_so_far = n,
                    "connection limit reached: new connections are answered 503 and closed (--max-connections)"
                );
            }
            match refusing.clone().try_acquire_owned() {
                Ok(permit) => {
                    tokio::spawn(async move {
                        refuse(stream).await;
                        drop(permit);
                    });
                }
                // The socket's send buffer is empty on a new connection, so the answer fits.
                Err(_) => {
                    let _ = stream.try_write(OVER_CAPACITY);
                }
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(
            app.clone()
                .map_request(|req: Request<hyper::body::Incoming>| req.map(axum::body::Body::new)),
        );
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        let open = metrics::gauge!(crate::metrics::CONNECTIONS);
        open.increment(1.0);
        tokio::spawn(async move {
            // Counted closed however the task ends (a failed handshake returns early).
            scopeguard::defer!(open.decrement(1.0));
            let stream = match tls {
                None => Either::Left(stream),
                Some(tls) => {
                    // The handshake counts against the head timeout: a client that opens a
                    // connection and says nothing costs a slot that long, no longer.
                    let handshake =
                        tokio::time::timeout(limits.header_timeout, tls.acceptor().accept(stream));
                    match handshake.await {
                        Ok(Ok(stream)) => Either::Right(stream),
                        Ok(Err(e)) => {
                            tracing::debug!(cause = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!("TLS handshake timed out");
                            return;
                        }
                    }
                }
            };
            let io = TokioIo::new(GuardedIo::new(stream, limits.idle_timeout));
            let conn = builder.serve_connection_with_upgrades(io, service);
            if let Err(e) = watcher.watch(conn.into_owned()).await {
                tracing::debug!(cause = %e, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    tracing::info!(
        grace_secs = grace.as_secs(),
        "shutting down: finishing requests in flight"
    );
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("grace period over: abandoning requests still in flight");
    }
    Ok(())
}

/// Answers a connection over the cap with a `503` and closes it, within a second.
async fn refuse(mut stream: TcpStream) {
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = stream.write_all(OVER_CAPACITY).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_over_capacity_answer_is_well_formed() {
        let text = std::str::from_utf8(super::OVER_CAPACITY).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["errors"][0]["code"], "TOOMANYREQUESTS");
    }
}
