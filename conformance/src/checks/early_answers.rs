//! Answers a registry may give before it has read a request's body, sent by the least forgiving
//! client ([`crate::raw`]: the whole body first, then the answer), each on `fresh_connections`
//! new connections: every answer must arrive (a server that closes with the body unread loses
//! some to connection resets; RFC 9112 section 9.6 asks for a staged close), and a connection
//! the server keeps open must serve the next request.

use reqwest::Method;

use super::helpers::*;
use crate::raw::{Answer, Connection};
use crate::Ctx;

/// The body each early-answer request carries: 1 MiB, more than the registry needs to read to
/// answer, and more than a socket buffer takes when the server stops reading.
const BODY: usize = 1024 * 1024;

/// Whether the raw requests carry the client's credentials.
#[derive(Clone, Copy, PartialEq)]
enum Credentials {
    Sent,
    Left,
}

/// Sends `method path` with `body` on `ctx.fresh_connections` new connections; each answer must
/// satisfy `expect`, and where the connection stays open, a `GET /v2/` on it must be answered
/// too.
fn on_fresh_connections(
    ctx: &mut Ctx,
    (method, path): (&Method, &str),
    headers: &[(&str, &str)],
    body: &[u8],
    credentials: Credentials,
    expect: impl Fn(&Answer) -> R,
) -> R {
    let (auth, base_auth) = match credentials {
        Credentials::Sent => (
            ctx.client.authorization_for(method, path)?,
            ctx.client.authorization_for(&Method::GET, "/v2/")?,
        ),
        Credentials::Left => (None, None),
    };
    let mut all: Vec<(&str, &str)> = headers.to_vec();
    if let Some(a) = &auth {
        all.push(("Authorization", a));
    }
    let mut next: Vec<(&str, &str)> = Vec::new();
    if let Some(a) = &base_auth {
        next.push(("Authorization", a));
    }
    let n = ctx.fresh_connections;
    let mut lost = Vec::new();
    for i in 0..n {
        let mut conn = Connection::open(ctx.client.base())?;
        let answer = match conn.exchange(method.as_str(), path, &all, body) {
            Ok(a) => a,
            Err(e) => {
                lost.push(format!("try {}: {e}", i + 1));
                continue;
            }
        };
        expect(&answer).map_err(|e| format!("try {}: {e}", i + 1))?;
        if !answer.closes() {
            // Kept alive: the next request on the same connection must be answered.
            if let Err(e) = conn.exchange("GET", "/v2/", &next, b"") {
                lost.push(format!(
                    "try {}, next request on the connection: {e}",
                    i + 1
                ));
            }
        }
    }
    ensure(lost.is_empty(), || lost_message(&lost, n))
}

fn lost_message(lost: &[String], n: usize) -> String {
    format!(
        "{} transport errors over {n} fresh connections (an answer, or the next request on a \
         connection kept open, was lost); first: {}",
        lost.len(),
        lost[0]
    )
}

fn expect(status: u16, code: Option<&'static str>) -> impl Fn(&Answer) -> R {
    move |a: &Answer| {
        ensure(a.status == status, || {
            format!(
                "expected {status}, got {} {}",
                a.status,
                String::from_utf8_lossy(&a.body)
            )
        })?;
        match code {
            Some(code) => ensure(a.code().as_deref() == Some(code), || {
                format!("expected error code {code}, got {:?}", a.code())
            }),
            None => Ok(()),
        }
    }
}

fn range(start: usize, len: usize) -> String {
    format!("{start}-{}", start + len - 1)
}

/// The headers of a chunk with `Content-Range: <range>`.
fn chunk(range: &str) -> [(&str, &str); 2] {
    [
        ("Content-Type", "application/octet-stream"),
        ("Content-Range", range),
    ]
}

pub(super) fn early_out_of_order_patch(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("earlypatch");
    let loc = start_upload(ctx, &repo)?;
    let body = random_bytes(BODY);
    let r = range(5, BODY);
    on_fresh_connections(
        ctx,
        (&Method::PATCH, &loc),
        &chunk(&r),
        &body,
        Credentials::Sent,
        expect(416, None),
    )
}

pub(super) fn early_out_of_order_final_put(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("earlyput");
    let loc = start_upload(ctx, &repo)?;
    let body = random_bytes(BODY);
    let r = range(5, BODY);
    let path = with_query(&loc, "digest", &sha256(&body));
    on_fresh_connections(
        ctx,
        (&Method::PUT, &path),
        &chunk(&r),
        &body,
        Credentials::Sent,
        expect(416, None),
    )
}

pub(super) fn early_unknown_session(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("earlyunknown");
    // A request that needs credentials first, so the raw requests can carry them.
    start_upload(ctx, &repo)?;
    let body = random_bytes(BODY);
    let r = range(0, BODY);
    let path = format!("/v2/{repo}/blobs/uploads/00000000-0000-4000-8000-000000000000");
    on_fresh_connections(
        ctx,
        (&Method::PATCH, &path),
        &chunk(&r),
        &body,
        Credentials::Sent,
        expect(404, Some("BLOB_UPLOAD_UNKNOWN")),
    )
}

pub(super) fn early_manifest_too_large(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("earlylarge");
    start_upload(ctx, &repo)?;
    // Valid JSON, far over any registry's manifest limit (at least 4 MiB by the spec).
    let mut body = b"{\"schemaVersion\":2,\"annotations\":{\"pad\":\"".to_vec();
    body.extend(std::iter::repeat_n(b'p', 6 * 1024 * 1024));
    body.extend(b"\"}}");
    let headers = [("Content-Type", OCI_MANIFEST)];
    let path = format!("/v2/{repo}/manifests/huge");
    on_fresh_connections(
        ctx,
        (&Method::PUT, &path),
        &headers,
        &body,
        Credentials::Sent,
        expect(413, None),
    )
}

pub(super) fn early_without_credentials(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("earlyauth");
    start_upload(ctx, &repo)?;
    let challenged = ctx.client.authenticates();
    let body = random_bytes(BODY);
    // A single-POST upload with a wrong digest, sent without credentials: a registry with
    // authentication answers 401 before the body, one without reads it and refuses the digest.
    let path = format!(
        "/v2/{repo}/blobs/uploads/?digest={}",
        sha256(b"not the body")
    );
    let headers = [("Content-Type", "application/octet-stream")];
    let check = |a: &Answer| -> R {
        if challenged {
            expect(401, None)(a)?;
            ensure(a.header("www-authenticate").is_some(), || {
                "401 without WWW-Authenticate".to_owned()
            })
        } else {
            ensure(a.status == 400 || a.status == 202, || {
                format!("expected 400 (or a 202 session), got {}", a.status)
            })
        }
    };
    on_fresh_connections(
        ctx,
        (&Method::POST, &path),
        &headers,
        &body,
        Credentials::Left,
        check,
    )
}
