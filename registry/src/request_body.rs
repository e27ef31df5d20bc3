//! What becomes of the part of a request body its handler left unread, so that every early
//! answer reaches the client.
//!
//! Handlers often answer before reading the body: a `401` or `403` for an upload, a `404` for an
//! unknown session, a `416` for a chunk out of order, a `413`, a store that refused the bytes.
//! If the connection were closed then, with the client still sending, the server's kernel would
//! reset it, and the client would see `connection reset` or `broken pipe` instead of the answer
//! (and on a kept-alive connection, its next request would fail). So after every answer,
//! [`settle_unread`]:
//! - reads and drops what is left of the body, up to [`DRAIN_BYTES`] within [`DRAIN_TIME`], which
//!   keeps the connection usable for the next request;
//! - does not when the client sent `Expect: 100-continue` and the body was never read: hyper
//!   sends `100 Continue` only once a handler reads, so that client is waiting for permission and
//!   has not sent the body, and with the final answer it never will;
//! - beyond the bound (or when the declared length is beyond it) answers with `Connection: close`,
//!   and the socket's lingering close ([`crate::guarded_io`]) drops what still arrives while the
//!   answer travels instead of resetting it.
//!
//! The handler's body is a thin wrapper around the real one, shared with this middleware, so the
//! rule holds for every route (the registry API, the control API, the token endpoint) without
//! any handler having to remember it.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use axum::http::{header, HeaderValue, Version};
use axum::middleware::Next;
use axum::response::Response;
use http_body_util::BodyExt;

/// How much of an unread body is read and dropped to keep the connection open.
pub const DRAIN_BYTES: u64 = 16 * 1024 * 1024;
/// How long that may take; a slower client gets the answer and a closing connection.
pub const DRAIN_TIME: Duration = Duration::from_secs(5);

/// The body as the middleware and the handler share it.
struct Shared {
    body: Body,
    /// Whether anyone asked for a frame (after which hyper has sent `100 Continue`).
    polled: bool,
}

/// The handler's view of the shared body.
struct Tracked(Arc<Mutex<Shared>>);

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, axum::Error>>> {
        let mut shared = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        shared.polled = true;
        Pin::new(&mut shared.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .body
            .is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .body
            .size_hint()
    }
}

/// Runs the request, then settles what its handler left of the body (called by the server's
/// request layer, `server::log_requests`, around every route).
pub async fn settle_unread(request: Request, next: Next) -> Response {
    if request.body().is_end_stream() {
        // No body (every GET and HEAD): nothing can be left over.
        return next.run(request).await;
    }
    let http1 = request.version() <= Version::HTTP_11;
    let expects_continue = request
        .headers()
        .get(header::EXPECT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("100-continue"));
    let (parts, body) = request.into_parts();
    let shared = Arc::new(Mutex::new(Shared {
        body,
        polled: false,
    }));
    let request = Request::from_parts(parts, Body::new(Tracked(shared.clone())));
    let mut response = next.run(request).await;
    let (finished, polled, left) = {
        let s = shared.lock().unwrap_or_else(PoisonError::into_inner);
        (s.body.is_end_stream(), s.polled, s.body.size_hint().lower())
    };
    if finished || !http1 {
        // HTTP/2 ends an unread request stream on its own, without touching the connection.
        return response;
    }
    // A client waiting for `100 Continue` has not sent the body; one beyond the bound would
    // take too long to read: both get the answer and a closing connection.
    let waiting_for_continue = expects_continue && !polled;
    let keep_open = if waiting_for_continue || left > DRAIN_BYTES {
        false
    } else {
        drain(&shared).await
    };
    if !keep_open {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// Reads and drops the rest of the body within the bounds; `true` if it ended.
async fn drain(shared: &Arc<Mutex<Shared>>) -> bool {
    let mut body = Body::new(Tracked(shared.clone()));
    let ended = tokio::time::timeout(DRAIN_TIME, async {
        let mut dropped = 0u64;
        loop {
            match body.frame().await {
                None => return true,
                // The client went away: nothing more to protect.
                Some(Err(_)) => return false,
                Some(Ok(frame)) => {
                    dropped += frame.data_ref().map_or(0, |d| d.len() as u64);
                    if dropped > DRAIN_BYTES {
                        return false;
                    }
                }
            }
        }
    })
    .await;
    ended.unwrap_or(false)
}
