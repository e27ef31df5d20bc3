//! What an API caller cannot do to a saved build, with the real binary and token auth on:
//! expiry arithmetic out of range is refused (never wraps into the past), a save tag cannot take
//! over another build's tag, a build spec that would derive invalid tags is refused at creation,
//! revoking a project token stops every credential it minted, and a blob whose bytes are gone
//! answers a 500 that is logged once.

use depot_testkit::{sha256, Server};
use reqwest::blocking::Client;
use reqwest::Method;
use serde_json::{json, Value};

struct Api {
    server: Server,
    http: Client,
    admin: String,
}

impl Api {
    fn start() -> (tempfile::TempDir, Api) {
        let dir = tempfile::tempdir().unwrap();
        let server = Server::start_authed(&dir.path().join("data"));
        let admin = server.admin_token();
        (
            dir,
            Api {
                server,
                http: Client::new(),
                admin,
            },
        )
    }

    fn call(&self, method: Method, path: &str, token: &str, body: Value) -> (u16, Value) {
        let resp = self
            .http
            .request(method, format!("{}/api/v1{path}", self.server.url()))
            .bearer_auth(token)
            .json(&body)
            .send()
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().unwrap_or(Value::Null))
    }

    fn ok(&self, method: Method, path: &str, token: &str, body: Value) -> Value {
        let (status, v) = self.call(method, path, token, body);
        assert!((200..300).contains(&status), "{path}: {status} {v}");
        v
    }

    /// A project and a project token of it.
    fn project(&self) -> (String, String, String) {
        let p = self.ok(
            Method::POST,
            "/projects",
            &self.admin,
            json!({ "name": "app" }),
        );
        let pid = p["id"].as_str().unwrap().to_owned();
        let t = self.ok(
            Method::POST,
            &format!("/projects/{pid}/tokens"),
            &self.admin,
            json!({ "name": "ci" }),
        );
        (
            pid,
            t["token"].as_str().unwrap().to_owned(),
            t["id"].as_str().unwrap().to_owned(),
        )
    }

    /// `GET /token` for `scope` with `secret` as the Basic password.
    fn ask_token(&self, secret: &str, scope: &str) -> reqwest::blocking::Response {
        self.http
            .get(format!("{}/token", self.server.url()))
            .query(&[("service", "depot-registry"), ("scope", scope)])
            .basic_auth("x-token", Some(secret))
            .send()
            .unwrap()
    }

    /// `/token` for `scope` with `secret`: the status, and the token on success.
    fn exchange(&self, secret: &str, scope: &str) -> (u16, Option<String>) {
        let resp = self.ask_token(secret, scope);
        let status = resp.status().as_u16();
        let v: Value = resp.json().unwrap_or(Value::Null);
        (status, v["token"].as_str().map(str::to_owned))
    }

    /// The message `/token` refuses `secret` with.
    fn refusal(&self, secret: &str, scope: &str) -> String {
        let resp = self.ask_token(secret, scope);
        assert_eq!(resp.status(), 401);
        let v: Value = resp.json().unwrap();
        v["errors"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Pushes a one-layer image to `pid:tag` with `push_token`; returns its digest.
    fn push_image(&self, pid: &str, tag: &str, push_token: &str, seed: &str) -> String {
        let (status, bearer) = self.exchange(push_token, &format!("repository:{pid}:pull,push"));
        assert_eq!(status, 200);
        let bearer = bearer.unwrap();
        let base = format!("{}/v2/{pid}", self.server.url());
        let layer = format!("layer {seed}").into_bytes();
        let config = format!(r#"{{"architecture":"amd64","os":"linux","seed":"{seed}"}}"#);
        for blob in [&layer[..], config.as_bytes()] {
            let resp = self
                .http
                .post(format!("{base}/blobs/uploads/?digest={}", sha256(blob)))
                .bearer_auth(&bearer)
                .header("content-type", "application/octet-stream")
                .body(blob.to_vec())
                .send()
                .unwrap();
            assert_eq!(resp.status(), 201);
        }
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(config.as_bytes()), "size": config.len() },
            "layers": [{ "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha256(&layer), "size": layer.len() }],
        })
        .to_string();
        let resp = self
            .http
            .put(format!("{base}/manifests/{tag}"))
            .bearer_auth(&bearer)
            .header("content-type", "application/vnd.oci.image.manifest.v1+json")
            .body(manifest.clone())
            .send()
            .unwrap();
        assert_eq!(resp.status(), 201, "{}", resp.text().unwrap());
        sha256(manifest.as_bytes())
    }

    /// The digest `pid:reference` resolves to, read with the admin token; `None` on 404.
    fn resolve(&self, pid: &str, reference: &str) -> Option<String> {
        let (_, bearer) = self.exchange(&self.admin, &format!("repository:{pid}:pull"));
        let resp = self
            .http
            .head(format!(
                "{}/v2/{pid}/manifests/{reference}",
                self.server.url()
            ))
            .bearer_auth(bearer.unwrap())
            .header("accept", "application/vnd.oci.image.manifest.v1+json")
            .send()
            .unwrap();
        (resp.status() == 200).then(|| {
            resp.headers()["docker-content-digest"]
                .to_str()
                .unwrap()
                .to_owned()
        })
    }
}

fn refused(status: u16, v: &Value, field: &str) {
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["errors"][0]["code"], "INVALID_REQUEST", "{v}");
    let message = v["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains(field), "{message}");
}

#[test]
fn expiry_arithmetic_out_of_range_is_refused() {
    let (_dir, api) = Api::start();
    let (pid, token, _) = api.project();
    let b = api.ok(
        Method::POST,
        &format!("/projects/{pid}/builds"),
        &token,
        json!({}),
    );
    let id = b["id"].as_str().unwrap();
    let expires_at = b["expires_at"].clone();
    for (body, field) in [
        (json!({ "add_secs": 9_223_372_036_854_776i64 }), "add_secs"),
        (json!({ "add_secs": i64::MAX }), "add_secs"),
        (json!({ "add_secs": 0 }), "add_secs"),
        (
            json!({ "expires_in_secs": 9_223_372_036_854_776i64 }),
            "expires_in_secs",
        ),
        (json!({ "expires_in_secs": -1 }), "expires_in_secs"),
        // Within range each time, but never past ten years from now in total.
        (json!({ "add_secs": 315_360_000 }), "ten years"),
    ] {
        let (status, v) = api.call(Method::POST, &format!("/builds/{id}/extend"), &token, body);
        refused(status, &v, field);
    }
    let shown = api.ok(Method::GET, &format!("/builds/{id}"), &token, Value::Null);
    assert_eq!(shown["expired"], false);
    assert_eq!(shown["expires_at"], expires_at);
    // The largest extension allowed gives a valid RFC 3339 date ten years out.
    let v = api.ok(
        Method::POST,
        &format!("/builds/{id}/extend"),
        &token,
        json!({ "expires_in_secs": 315_360_000 }),
    );
    let at = v["expires_at"].as_str().unwrap();
    assert!(
        at.len() == 20 && at.ends_with('Z') && at.starts_with("20"),
        "{at}"
    );

    for retention in [9_223_372_036_854_776i64, 0, -5, 315_360_001] {
        let (status, v) = api.call(
            Method::POST,
            &format!("/projects/{pid}/builds"),
            &token,
            json!({ "retention_secs": retention }),
        );
        refused(status, &v, "retention_secs");
        let (status, v) = api.call(
            Method::PATCH,
            &format!("/projects/{pid}"),
            &api.admin,
            json!({ "retention_secs": retention }),
        );
        refused(status, &v, "retention_secs");
    }
}

#[test]
fn a_save_tag_cannot_take_another_builds_tag() {
    let (_dir, api) = Api::start();
    let (pid, token, _) = api.project();
    let v = api.ok(
        Method::POST,
        &format!("/projects/{pid}/builds"),
        &token,
        json!({}),
    );
    let v_id = v["id"].as_str().unwrap().to_owned();
    let v_digest = api.push_image(&pid, &v_id, v["push_token"].as_str().unwrap(), "v");
    assert_eq!(api.resolve(&pid, &v_id).as_deref(), Some(v_digest.as_str()));

    // Creating a build whose save tag is (or begins with) another build's id is refused.
    for save in [v_id.clone(), format!("{v_id}-web")] {
        let (status, body) = api.call(
            Method::POST,
            &format!("/projects/{pid}/builds"),
            &token,
            json!({ "save_tags": [save] }),
        );
        refused(status, &body, &v_id);
    }
    // Through a bake target, too: save tag "<V-prefix>" + "-" + target would be V's.
    let (status, body) = api.call(
        Method::POST,
        &format!("/projects/{pid}/builds"),
        &token,
        json!({ "save_tags": [v_id], "targets": ["web"] }),
    );
    refused(status, &body, &v_id);

    // Another build cannot push over V's tag with its own push token.
    let x = api.ok(
        Method::POST,
        &format!("/projects/{pid}/builds"),
        &token,
        json!({ "save_tags": ["latest"] }),
    );
    let x_id = x["id"].as_str().unwrap().to_owned();
    let (_, bearer) = api.exchange(
        x["push_token"].as_str().unwrap(),
        &format!("repository:{pid}:pull,push"),
    );
    let resp = api
        .http
        .put(format!("{}/v2/{pid}/manifests/{v_id}", api.server.url()))
        .bearer_auth(bearer.unwrap())
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body("{}")
        .send()
        .unwrap();
    assert_eq!(resp.status(), 403);
    let x_digest = api.push_image(&pid, &x_id, x["push_token"].as_str().unwrap(), "x");
    assert_eq!(
        api.resolve(&pid, "latest").as_deref(),
        Some(x_digest.as_str())
    );
    assert_eq!(api.resolve(&pid, &v_id).as_deref(), Some(v_digest.as_str()));
    // Deleting X leaves V's tag alone.
    api.ok(
        Method::DELETE,
        &format!("/builds/{x_id}"),
        &token,
        Value::Null,
    );
    assert_eq!(api.resolve(&pid, &v_id).as_deref(), Some(v_digest.as_str()));
}

#[test]
fn build_specs_that_would_break_later_are_refused() {
    let (_dir, api) = Api::start();
    let (pid, token, _) = api.project();
    let path = format!("/projects/{pid}/builds");
    for (spec, what) in [
        (
            json!({ "targets": ["t".repeat(64)], "save_tags": ["s".repeat(64)] }),
            "128",
        ),
        (
            json!({ "platforms": [format!("linux/{}", "a".repeat(5000))] }),
            "invalid platform",
        ),
        (
            json!({ "platforms": ["linux/amd64", "linux/arm64", "linux/amd64"] }),
            "named twice",
        ),
        (
            json!({ "targets": [{ "name": "web", "platforms": ["linux/amd64", "linux/amd64"] }] }),
            "named twice",
        ),
        (json!({ "save_tags": ["v1", "v1"] }), "named twice"),
    ] {
        let (status, v) = api.call(Method::POST, &path, &token, spec);
        refused(status, &v, what);
    }
    // The longest spec that is accepted pushes and finalizes.
    let b = api.ok(
        Method::POST,
        &path,
        &token,
        json!({ "targets": ["t".repeat(64)], "save_tags": ["s".repeat(63)] }),
    );
    let id = b["id"].as_str().unwrap();
    let target = "t".repeat(64);
    api.push_image(
        &pid,
        &format!("{id}-{target}"),
        b["push_token"].as_str().unwrap(),
        "long",
    );
    let shown = api.ok(Method::GET, &format!("/builds/{id}"), &token, Value::Null);
    assert_eq!(shown["state"], "saved", "{shown}");
    assert!(api
        .resolve(&pid, &format!("{}-{target}", "s".repeat(63)))
        .is_some());
}

#[test]
fn revoking_a_project_token_stops_what_it_minted() {
    let (_dir, api) = Api::start();
    let (pid, token, token_id) = api.project();
    let scope = format!("repository:{pid}:pull");
    let pull = api.ok(
        Method::POST,
        &format!("/projects/{pid}/pull-token"),
        &token,
        json!({}),
    );
    let pull = pull["token"].as_str().unwrap().to_owned();
    let b = api.ok(
        Method::POST,
        &format!("/projects/{pid}/builds"),
        &token,
        json!({}),
    );
    let id = b["id"].as_str().unwrap().to_owned();
    let push = b["push_token"].as_str().unwrap().to_owned();
    api.push_image(&pid, &id, &push, "r");
    let build_pull = api.ok(
        Method::POST,
        &format!("/builds/{id}/pull-token"),
        &token,
        json!({}),
    );
    let build_pull = build_pull["token"].as_str().unwrap().to_owned();
    // What the admin minted is not tied to the project token.
    let admin_pull = api.ok(
        Method::POST,
        &format!("/projects/{pid}/pull-token"),
        &api.admin,
        json!({}),
    );
    let admin_pull = admin_pull["token"].as_str().unwrap().to_owned();
    for secret in [&pull, &push, &build_pull, &admin_pull] {
        assert_eq!(api.exchange(secret, &scope).0, 200);
    }

    api.ok(
        Method::DELETE,
        &format!("/projects/{pid}/tokens/{token_id}"),
        &api.admin,
        Value::Null,
    );
    for secret in [&token, &pull, &push, &build_pull] {
        assert_eq!(api.exchange(secret, &scope).0, 401);
    }
    // Each says why: not the same "invalid credentials" as a wrong secret.
    let why = api.refusal(&token, &scope);
    assert!(
        why.contains("project token") && why.contains("was revoked at 20"),
        "{why}"
    );
    let why = api.refusal(&pull, &scope);
    assert!(
        why.contains("project token this was minted with has been revoked"),
        "{why}"
    );
    // Longer by one character: never the real secret (a changed last character could be it).
    let wrong = format!("{token}0");
    assert_eq!(api.refusal(&wrong, &scope), "invalid credentials");
    // A token that has run out says when.
    let short = api.ok(
        Method::POST,
        &format!("/projects/{pid}/pull-token"),
        &api.admin,
        json!({ "ttl_secs": 1 }),
    );
    let short = short["token"].as_str().unwrap().to_owned();
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let why = api.refusal(&short, &scope);
    assert!(why.contains("this pull token expired at 20"), "{why}");
    let (status, _) = api.call(Method::GET, &format!("/builds/{id}"), &push, Value::Null);
    assert_eq!(status, 401);
    assert_eq!(api.exchange(&admin_pull, &scope).0, 200);
}

#[test]
fn missing_bytes_answer_500_and_are_logged_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data);
    let http = Client::new();
    let blob = b"bytes that will be lost".to_vec();
    let digest = sha256(&blob);
    let base = format!("{}/v2/team/app", server.url());
    let resp = http
        .post(format!("{base}/blobs/uploads/?digest={digest}"))
        .body(blob)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 201);
    // Lose the bytes behind the registry's back.
    let hex = digest.trim_start_matches("sha256:");
    let dir = data.join("blobs/sha256").join(&hex[..2]);
    for entry in std::fs::read_dir(&dir).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    for _ in 0..3 {
        let resp = http.get(format!("{base}/blobs/{digest}")).send().unwrap();
        assert_eq!(resp.status(), 500);
        assert!(resp.headers().get("retry-after").is_none());
        let v: Value = resp.json().unwrap();
        assert!(
            v["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("missing"),
            "{v}"
        );
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    let logs = server.logs();
    let reported = logs
        .lines()
        .filter(|l| l.contains("bytes are missing"))
        .count();
    assert_eq!(reported, 1, "{logs}");
    assert!(logs.contains(&digest), "{logs}");
}
