//! The production backends failing mid-push: the real S3 server (s3s-fs) and the real PostgreSQL
//! server are stopped during an upload and started again. The client gets a `503` with the JSON
//! envelope quickly (no hang), nothing partial becomes visible, and once the backend is back the
//! client's retry succeeds and nothing saved before is lost.
//!
//! Runs where `.ci/run` provides the servers (`DEPOT_TEST_S3_ENDPOINT` set, s3s-fs on the PATH,
//! PostgreSQL binaries installed, root to run them as `postgres`).

use std::path::Path;
use std::time::{Duration, Instant};

use depot_testkit::backends::{Postgres, S3Server};
use depot_testkit::{random_bytes, sha256, Server};
use reqwest::blocking::{Client, Response};
use serde_json::Value;

fn enabled() -> bool {
    if std::env::var("DEPOT_TEST_S3_ENDPOINT").is_err() {
        eprintln!("DEPOT_TEST_S3_ENDPOINT not set; backend faults are covered by .ci/run");
        return false;
    }
    true
}

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap()
}

/// Asserts a quick `503` with the error envelope: within `limit`.
fn unavailable(resp: Response, took: Duration, limit: Duration) {
    assert_eq!(
        resp.status().as_u16(),
        503,
        "expected 503 while the backend is down"
    );
    assert!(took < limit, "took {took:?}: a hang, not an error");
    let body: Value = resp.json().unwrap();
    assert!(body["errors"][0]["code"].is_string(), "{body}");
}

/// Pushes chunk 1, takes the backend down, sees chunk 2 refused, brings it back, retries chunk 2
/// and closes the upload; checks the new blob and one pushed before the outage.
fn push_through_an_outage(
    server: &Server,
    down: &mut dyn FnMut(),
    up: &mut dyn FnMut(),
    limit: Duration,
) {
    let c = client();
    let base = server.url();
    let earlier = random_bytes(300_000);
    let resp = c
        .post(format!(
            "{base}/v2/team/app/blobs/uploads/?digest={}",
            sha256(&earlier)
        ))
        .body(earlier.clone())
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);

    let data = random_bytes(3 * 1024 * 1024);
    let mid = 1024 * 1024;
    let start = c
        .post(format!("{base}/v2/team/app/blobs/uploads/"))
        .send()
        .unwrap();
    let location = start.headers()["location"].to_str().unwrap().to_owned();
    let patch = |range: std::ops::Range<usize>| {
        c.patch(format!("{base}{location}"))
            .header("content-type", "application/octet-stream")
            .header(
                "content-range",
                format!("{}-{}", range.start, range.end - 1),
            )
            .body(data[range].to_vec())
            .send()
            .unwrap()
    };
    assert_eq!(patch(0..mid).status().as_u16(), 202);

    down();
    let t = Instant::now();
    let refused = patch(mid..data.len());
    unavailable(refused, t.elapsed(), limit);
    // While it is down the new blob is not there, whatever else may still be answered.
    let head = c
        .head(format!("{base}/v2/team/app/blobs/{}", sha256(&data)))
        .send()
        .unwrap();
    assert_ne!(head.status().as_u16(), 200);
    up();

    // Nothing partial is visible; the client's retry of the refused chunk goes on from where the
    // session stood.
    let head = c
        .head(format!("{base}/v2/team/app/blobs/{}", sha256(&data)))
        .send()
        .unwrap();
    assert_eq!(head.status().as_u16(), 404);
    let status = c.get(format!("{base}{location}")).send().unwrap();
    assert_eq!(
        status.headers()["range"].to_str().unwrap(),
        format!("0-{}", mid - 1)
    );
    assert_eq!(patch(mid..data.len()).status().as_u16(), 202);
    let closed = c
        .put(format!("{base}{location}?digest={}", sha256(&data)))
        .send()
        .unwrap();
    assert_eq!(closed.status().as_u16(), 201);
    for (blob, name) in [(&data, "new"), (&earlier, "earlier")] {
        let got = c
            .get(format!("{base}/v2/team/app/blobs/{}", sha256(blob)))
            .send()
            .unwrap();
        assert_eq!(got.status().as_u16(), 200, "{name} blob");
        assert!(got.bytes().unwrap() == *blob, "{name} blob changed");
    }
}

#[test]
fn s3_outage_mid_push() {
    if !enabled() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (s3, server) = on_s3s_fs(dir.path());
    let s3 = std::cell::RefCell::new(s3);
    push_through_an_outage(
        &server,
        &mut || s3.borrow_mut().stop(),
        &mut || s3.borrow_mut().restart(),
        Duration::from_secs(30),
    );
}

/// An s3s-fs server of its own under `dir`, and a registry storing its blobs there.
fn on_s3s_fs(dir: &Path) -> (S3Server, Server) {
    let root = dir.join("s3");
    std::fs::create_dir_all(root.join("depot")).unwrap();
    let s3 = S3Server::start(&root);
    let server = Server::start_with(
        &dir.join("registry"),
        &[
            "--no-auth",
            "--storage",
            "s3://depot/registry",
            "--s3-endpoint",
            &s3.url(),
            "--s3-region",
            "us-east-1",
            "--s3-force-path-style",
        ],
    );
    (s3, server)
}

/// A store that stops answering (SIGSTOP: connections stay open, nothing comes back) costs the
/// client about `CALL_TIMEOUT` (10 s), not the SDK's 60-second read timeout.
#[test]
fn s3_that_stops_answering_mid_push() {
    if !enabled() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (s3, server) = on_s3s_fs(dir.path());
    push_through_an_outage(
        &server,
        &mut || s3.freeze(true),
        &mut || s3.freeze(false),
        Duration::from_secs(15),
    );
}

#[test]
fn postgres_outage_mid_push() {
    if !enabled() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pg = Postgres::start(&dir.path().join("postgres"));
    let server = Server::start_with(
        &dir.path().join("registry"),
        &["--no-auth", "--database-url", &pg.url()],
    );
    push_through_an_outage(
        &server,
        &mut || pg.pg_ctl("stop"),
        &mut || pg.pg_ctl("start"),
        Duration::from_secs(30),
    );
}
