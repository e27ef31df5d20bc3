//! What an operator relies on, with the real binary: `/livez` and `/readyz` (ready only when the
//! database, its migrations and the blob store are there; 503 from SIGTERM on while requests
//! finish, then a clean exit), three replicas starting at once on an empty PostgreSQL database,
//! (one with its database URL in a file), one log line per request with a request id (also as
//! JSON), a taken port reported with its address before anything is written, and no
//! `./depot-data` on PostgreSQL + S3.

use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

use depot_testkit::backends::S3Server;
use depot_testkit::registry::registry_bin;
use depot_testkit::Server;
use reqwest::blocking::Client;
use serde_json::Value;

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn get(server: &Server, path: &str) -> (u16, Value) {
    let resp = client()
        .get(format!("{}{path}", server.url()))
        .send()
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().unwrap_or(Value::Null))
}

#[test]
fn ready_until_sigterm_then_503_while_draining_then_a_clean_exit() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_with(
        &dir.path().join("data"),
        &["--no-auth", "--shutdown-delay-secs", "3"],
    );
    assert_eq!(
        get(&server, "/livez"),
        (200, serde_json::json!({ "status": "ok" }))
    );
    let (status, body) = get(&server, "/readyz");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["checks"]["database"], "ok");
    assert_eq!(body["checks"]["storage"], "ok");

    server.terminate();
    let signalled = Instant::now();
    // At once: not ready, but alive and still serving.
    let mut seen = None;
    while signalled.elapsed() < Duration::from_secs(2) {
        let (status, body) = get(&server, "/readyz");
        if status == 503 {
            seen = Some(body);
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let body = seen.expect("/readyz did not turn 503 after SIGTERM");
    assert_eq!(body["status"], "draining");
    assert_eq!(get(&server, "/livez").0, 200);
    assert_eq!(
        get(&server, "/v2/").0,
        200,
        "requests are still served during the delay"
    );
    let status = server
        .wait(Duration::from_secs(20))
        .expect("the registry did not exit after SIGTERM");
    assert!(status.success(), "{status:?}");
    assert!(
        signalled.elapsed() >= Duration::from_secs(3),
        "exited before the delay"
    );
}

#[test]
fn not_ready_while_the_blob_store_is_gone_and_ready_again_after() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = "health";
    std::fs::create_dir_all(dir.path().join("s3").join(bucket)).unwrap();
    let mut s3 = S3Server::start(&dir.path().join("s3"));
    let flags = [
        "--no-auth",
        "--storage",
        &format!("s3://{bucket}/registry"),
        "--s3-endpoint",
        &s3.url(),
        "--s3-region",
        "us-east-1",
        "--s3-force-path-style",
    ];
    let server = Server::start_with(&dir.path().join("data"), &flags);
    assert_eq!(get(&server, "/readyz").0, 200);

    // A store that stops answering: 503 within the check's bound, naming the store.
    s3.freeze(true);
    let started = Instant::now();
    let (status, body) = get(&server, "/readyz");
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["checks"]["database"], "ok");
    assert_ne!(body["checks"]["storage"], "ok", "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        get(&server, "/livez").0,
        200,
        "liveness does not depend on the store"
    );
    s3.freeze(false);

    // Gone altogether, then back.
    s3.stop();
    assert_eq!(get(&server, "/readyz").0, 503);
    s3.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    while get(&server, "/readyz").0 != 200 {
        assert!(
            Instant::now() < deadline,
            "not ready again after the store came back"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn three_replicas_start_at_once_on_an_empty_database() {
    let Some(b) = depot_testkit::backends::fresh("startup") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let flags = b.flags();
    // One replica takes the database URL (it carries the password) from a file, as from a
    // mounted Secret.
    let url_file = dir.path().join("database-url");
    std::fs::write(&url_file, format!("{}\n", b.database_url)).unwrap();
    let mut from_file = flags.clone();
    let at = from_file
        .iter()
        .position(|f| f == "--database-url")
        .unwrap();
    from_file[at] = "--database-url-file".into();
    from_file[at + 1] = url_file.display().to_string();
    let servers: Vec<Server> = std::thread::scope(|scope| {
        let started: Vec<_> = (0..3)
            .map(|i| {
                let data = dir.path().join(format!("r{i}"));
                let flags = if i == 0 { &from_file } else { &flags };
                scope.spawn(move || {
                    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
                    Server::start_with(&data, &flags)
                })
            })
            .collect();
        started.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for s in &servers {
        let (status, body) = get(s, "/readyz");
        assert_eq!(status, 200, "{body}");
    }
    // Each migration ran once.
    let counts: Vec<(i64, i64)> = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&b.database_url).await.unwrap();
            sqlx::query_as("SELECT version, count(*) FROM _sqlx_migrations GROUP BY version")
                .fetch_all(&mut conn)
                .await
                .unwrap()
        });
    assert!(counts.len() >= 6, "{counts:?}");
    assert!(counts.iter().all(|(_, n)| *n == 1), "{counts:?}");
    // No replica made a data directory it does not use (PostgreSQL + S3, admin token given).
    for i in 0..3 {
        assert!(
            !dir.path().join(format!("r{i}")).exists(),
            "r{i} was created"
        );
    }
}

#[test]
fn one_log_line_per_request_with_its_id_as_text_and_as_json() {
    let dir = tempfile::tempdir().unwrap();
    for format in ["text", "json"] {
        let server = Server::start_with(
            &dir.path().join(format),
            &["--no-auth", "--log-format", format],
        );
        let resp = client()
            .get(format!("{}/v2/team/app/manifests/latest", server.url()))
            .header("x-request-id", "req-42")
            .send()
            .unwrap();
        assert_eq!(resp.status(), 404);
        assert_eq!(resp.headers()["x-request-id"], "req-42");
        // Without one, the registry makes one up and says which.
        let resp = client()
            .get(format!("{}/v2/", server.url()))
            .send()
            .unwrap();
        let made = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert!(made.len() >= 16, "{made}");
        // Health probes are not logged at info.
        get(&server, "/readyz");
        std::thread::sleep(Duration::from_millis(200));
        let logs = server.logs();
        let request_lines: Vec<&str> = logs
            .lines()
            .filter(|l| l.contains("req-42") || l.contains(&made))
            .collect();
        assert_eq!(request_lines.len(), 2, "{format}: {logs}");
        assert!(!logs.contains("/readyz"), "{format}: {logs}");
        if format == "json" {
            for line in logs.lines().filter(|l| !l.trim().is_empty()) {
                let v: Value = serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("not one JSON object per line ({e}): {line}"));
                assert!(
                    v["timestamp"].is_string() && v["level"].is_string(),
                    "{line}"
                );
                assert!(v["message"].is_string(), "{line}");
            }
            let line: Value = serde_json::from_str(request_lines[0]).unwrap();
            assert_eq!(line["span"]["id"], "req-42", "{line}");
            assert_eq!(line["class"], "manifest", "{line}");
            assert_eq!(line["status"], 404, "{line}");
            assert_eq!(line["level"], "INFO", "{line}");
        } else {
            let line = request_lines[0];
            assert!(
                line.contains("INFO") && line.contains("class=\"manifest\""),
                "{line}"
            );
            assert!(line.contains("status=404"), "{line}");
        }
    }
}

#[test]
fn a_taken_port_is_reported_with_its_address_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let data = dir.path().join("data");
    let out = Command::new(registry_bin())
        .args(["serve", "--listen", &addr.to_string(), "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&addr.to_string()) && stderr.contains("in use"),
        "{stderr}"
    );
    assert!(
        !data.exists(),
        "the data directory (and admin token) was written anyway"
    );
}
