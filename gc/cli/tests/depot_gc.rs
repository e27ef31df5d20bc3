//! `depot-gc` against a running registry (the embedded default, sharing its data directory):
//! a dry run changes nothing, `run --once` expires a build and then deletes the blobs only it
//! used (not the ones a live build shares), abandoned upload sessions go, `status` reports it,
//! and `reconcile` removes an object no metadata refers to.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use depot_testkit::{sha256, ApiClient, Server};
use reqwest::blocking::Client;
use serde_json::{json, Value};

struct Registry {
    server: Server,
    http: Client,
    admin: String,
    project: String,
    token: String,
}

impl Registry {
    fn api(&self, method: reqwest::Method, path: &str, secret: &str, body: Value) -> Value {
        ApiClient::new(&self.server.url(), secret).ok(method, path, Some(&body))
    }

    fn bearer(&self, secret: &str, actions: &str) -> String {
        let scope = format!("repository:{}:{actions}", self.project);
        depot_testkit::api::access_token(&self.http, &self.server.url(), secret, &scope)
    }

    /// A build (kept `retention` seconds) whose image has `layers`; returns its id.
    fn build(&self, retention: i64, layers: &[&[u8]]) -> String {
        let b = self.api(
            reqwest::Method::POST,
            &format!("/projects/{}/builds", self.project),
            &self.token,
            json!({ "retention_secs": retention }),
        );
        let id = b["id"].as_str().unwrap().to_owned();
        let bearer = self.bearer(b["push_token"].as_str().unwrap(), "push,pull");
        let config = format!(r#"{{"architecture":"amd64","os":"linux","build":"{id}"}}"#);
        let base = format!("{}/v2/{}", self.server.url(), self.project);
        for blob in layers.iter().copied().chain([config.as_bytes()]) {
            let resp = self
                .http
                .post(format!("{base}/blobs/uploads/?digest={}", sha256(blob)))
                .bearer_auth(&bearer)
                .body(blob.to_vec())
                .send()
                .unwrap();
            assert_eq!(resp.status(), 201);
        }
        let layers: Vec<Value> = layers
            .iter()
            .map(|l| json!({ "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha256(l), "size": l.len() }))
            .collect();
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(config.as_bytes()), "size": config.len() },
            "layers": layers,
        });
        let resp = self
            .http
            .put(format!("{base}/manifests/{id}"))
            .bearer_auth(&bearer)
            .header("content-type", "application/vnd.oci.image.manifest.v1+json")
            .body(manifest.to_string())
            .send()
            .unwrap();
        assert_eq!(resp.status(), 201, "{}", resp.text().unwrap());
        id
    }

    /// The status of `GET` of a blob, as the admin.
    fn blob_status(&self, digest: &str) -> u16 {
        let bearer = self.bearer(&self.admin, "pull");
        self.http
            .get(format!(
                "{}/v2/{}/blobs/{digest}",
                self.server.url(),
                self.project
            ))
            .bearer_auth(bearer)
            .send()
            .unwrap()
            .status()
            .as_u16()
    }
}

/// `depot-gc` on the registry's data directory, with a one-second grace and upload timeout,
/// given after the subcommand (as users write them: `depot-gc run --once --gc-grace 0`), and
/// logging (sqlx's queries) into a pipe, which must get no colour codes.
fn depot_gc(data: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_depot-gc"))
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .args(["--gc-grace", "1", "--upload-timeout", "1"])
        .env("DEPOT_LOG", "sqlx=debug")
        .output()
        .unwrap();
    let (text, log) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "depot-gc {args:?}: {text}{log}");
    assert!(log.contains("sqlx::query"), "{log}");
    assert!(
        !log.contains('\x1b'),
        "no colour codes off a terminal: {log:?}"
    );
    text
}

fn blob_files(data: &Path) -> usize {
    let mut n = 0;
    for alg in std::fs::read_dir(data.join("blobs")).unwrap() {
        for prefix in std::fs::read_dir(alg.unwrap().path()).unwrap() {
            n += std::fs::read_dir(prefix.unwrap().path()).unwrap().count();
        }
    }
    n
}

#[test]
fn collects_what_expired_while_the_registry_serves() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start_with(&data, &["--gc-interval", "0"]);
    let admin = server.admin_token();
    let mut r = Registry {
        server,
        http: Client::new(),
        admin: admin.clone(),
        project: String::new(),
        token: String::new(),
    };
    let p = r.api(
        reqwest::Method::POST,
        "/projects",
        &admin,
        json!({ "name": "gc" }),
    );
    r.project = p["id"].as_str().unwrap().to_owned();
    let t = r.api(
        reqwest::Method::POST,
        &format!("/projects/{}/tokens", r.project),
        &admin,
        json!({ "name": "ci" }),
    );
    r.token = t["token"].as_str().unwrap().to_owned();

    let (shared, only_short, only_long) = (
        b"shared layer".as_slice(),
        b"short-lived layer".as_slice(),
        b"long-lived layer".as_slice(),
    );
    let short = r.build(2, &[shared, only_short]);
    let long = r.build(3600, &[shared, only_long]);
    // An upload session that received a chunk and was abandoned.
    let bearer = r.bearer(&admin, "push,pull");
    let resp = r
        .http
        .post(format!(
            "{}/v2/{}/blobs/uploads/",
            r.server.url(),
            r.project
        ))
        .bearer_auth(&bearer)
        .send()
        .unwrap();
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    let resp = r
        .http
        .patch(format!("{}{location}", r.server.url()))
        .bearer_auth(&bearer)
        .header("content-type", "application/octet-stream")
        .body(vec![7u8; 1000])
        .send()
        .unwrap();
    assert_eq!(resp.status(), 202);
    assert_eq!(std::fs::read_dir(data.join("uploads")).unwrap().count(), 1);
    std::thread::sleep(Duration::from_millis(2500));

    // A dry run says what would go and changes nothing.
    let files = blob_files(&data);
    let out = depot_gc(&data, &["run", "--once", "--dry-run"]);
    assert!(out.contains(&format!("build {short}")), "{out}");
    assert!(out.contains("upload session"), "{out}");
    assert!(
        out.contains("dry run: 1 builds expired, 1 manifests, 1 upload sessions"),
        "{out}"
    );
    assert!(!out.contains(&format!("build {long}")), "{out}");
    let status = depot_gc(&data, &["status"]);
    assert!(
        status.contains("expired builds not yet reaped  1"),
        "{status}"
    );
    assert_eq!(blob_files(&data), files);

    // The build and its manifest go, with the abandoned session; the blobs only it used
    // become candidates and go once the grace period has passed.
    let out = depot_gc(&data, &["run", "--once"]);
    assert!(
        out.contains("collection: 1 builds expired, 1 manifests, 1 upload sessions"),
        "{out}"
    );
    assert_eq!(std::fs::read_dir(data.join("uploads")).unwrap().count(), 0);
    std::thread::sleep(Duration::from_millis(1200));
    let out = depot_gc(&data, &["run", "--once", "--verbose"]);
    assert!(
        out.contains(&format!("blob {}", sha256(only_short))),
        "{out}"
    );
    assert!(
        !out.contains(&sha256(shared)),
        "a live build's layer is kept: {out}"
    );
    assert_eq!(
        blob_files(&data),
        files - 2,
        "the layer and config of the expired build"
    );
    assert_eq!(r.blob_status(&sha256(only_short)), 404);
    assert_eq!(r.blob_status(&sha256(shared)), 200);
    assert_eq!(r.blob_status(&sha256(only_long)), 200);
    let shown = r.api(
        reqwest::Method::GET,
        &format!("/builds/{long}"),
        &r.token,
        Value::Null,
    );
    assert_eq!(shown["state"], "saved");
    // Collections are listed with their times, not epoch milliseconds.
    let status = depot_gc(&data, &["status"]);
    let this_year = format!(
        "  {}-",
        &humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()[..4]
    );
    assert!(
        status
            .lines()
            .any(|l| l.starts_with(&this_year) && l.contains("Z run by depot-gc@")),
        "{status}"
    );
    let status = depot_gc(&data, &["status", "--json"]);
    let status: Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["pending"]["expired_builds"], 0);
    let runs = status["runs"].as_array().unwrap();
    assert!(runs.len() >= 3 && runs[0]["holder"].as_str().unwrap().starts_with("depot-gc@"));

    // An object no metadata refers to (a crash between the store and the database), older
    // than the grace period: reconcile finds it, and removes it unless it is a dry run.
    let orphan = data.join("blobs/sha256/ab").join("ab".repeat(32));
    std::fs::create_dir_all(orphan.parent().unwrap()).unwrap();
    std::fs::write(&orphan, b"orphan").unwrap();
    let aged = Command::new("touch")
        .args(["-d", "2 hours ago"])
        .arg(&orphan)
        .status()
        .unwrap();
    assert!(aged.success());
    let out = depot_gc(&data, &["reconcile", "--dry-run"]);
    assert!(out.contains("would remove 1 orphans (6 bytes)"), "{out}");
    assert!(orphan.exists());
    let out = depot_gc(&data, &["reconcile"]);
    assert!(out.contains("removed 1 orphans"), "{out}");
    assert!(!orphan.exists());
    assert_eq!(r.blob_status(&sha256(only_long)), 200);
}
