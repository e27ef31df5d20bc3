//! Hostile and malformed input against the real binary: every answer is the spec's code in the
//! JSON envelope (hyper's own answers included), nothing a client sends reaches the log
//! unescaped, index and manifest bytes are checked as strictly as layers, the API refuses what a
//! browser could be tricked into sending, the token realm follows forwarded headers only when
//! told to, a full disk is a `507`, and whether another project holds a digest does not show.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use depot_testkit::{sha256, ApiClient, Server};
use reqwest::blocking::Client;
use serde_json::{json, Value};

/// Sends raw bytes on a fresh connection; the answer's status and body.
fn raw(server: &Server, request: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).unwrap();
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer).to_string();
    let status = text
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer: {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    (status, body)
}

fn envelope(body: &str) -> Value {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {body:?}"));
    assert!(v["errors"][0]["code"].is_string(), "{v}");
    v
}

#[test]
fn hypers_own_answers_and_405s_are_json() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    // A request line hyper cannot parse.
    let (status, body) = raw(&server, b"GET /v2/ HTTP/1.1\r\nHo st: x\r\n\r\n");
    assert_eq!(status, 400);
    envelope(&body);
    // Headers larger than the head limit (hyper's read buffer, about 400 KiB).
    let mut big = b"GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 600 * 1024));
    big.extend_from_slice(b"\r\n\r\n");
    let (status, body) = raw(&server, &big);
    assert_eq!(status, 431);
    envelope(&body);
    // A method /metrics does not have.
    let (status, body) = raw(
        &server,
        b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 405);
    envelope(&body);
}

#[test]
fn what_a_client_sends_is_checked_and_logged_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let http = Client::new();
    let base = format!("{}/v2/team/app", server.url());
    let push = |blob: &[u8]| {
        let resp = http
            .post(format!("{base}/blobs/uploads/?digest={}", sha256(blob)))
            .body(blob.to_vec())
            .send()
            .unwrap();
        assert_eq!(resp.status(), 201);
    };
    let put = |reference: &str, media: &str, body: &str| {
        let resp = http
            .put(format!("{base}/manifests/{reference}"))
            .header("content-type", media)
            .body(body.to_owned())
            .send()
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.text().unwrap())
    };
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let layer = b"a layer";
    push(config);
    push(layer);
    let image = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(config), "size": config.len() },
        "layers": [{ "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha256(layer), "size": layer.len() }],
    })
    .to_string();
    let (status, _) = put("v1", "application/vnd.oci.image.manifest.v1+json", &image);
    assert_eq!(status, 201);

    // An index whose child descriptor declares the wrong size.
    let index = |size: usize| {
        json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [{ "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sha256(image.as_bytes()), "size": size }],
        })
        .to_string()
    };
    let media = "application/vnd.oci.image.index.v1+json";
    let (status, body) = put("bad", media, &index(image.len() + 1));
    assert_eq!(status, 400, "{body}");
    assert_eq!(envelope(&body)["errors"][0]["code"], "MANIFEST_INVALID");
    let (status, _) = put("good", media, &index(image.len()));
    assert_eq!(status, 201);

    // The same key twice: readers would disagree on which layer list is the manifest's.
    let twice = image.replacen("\"layers\":", "\"layers\":[],\"layers\":", 1);
    assert!(twice.matches("\"layers\"").count() == 2, "{twice}");
    let (status, body) = put(
        "twice",
        "application/vnd.oci.image.manifest.v1+json",
        &twice,
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("duplicate key"), "{body}");

    // A Content-Range whose end would wrap the length to zero.
    let start = http.post(format!("{base}/blobs/uploads/")).send().unwrap();
    let location = start.headers()["location"].to_str().unwrap().to_owned();
    let resp = http
        .patch(format!("{}{location}", server.url()))
        .header("content-type", "application/octet-stream")
        .header("content-range", "0-18446744073709551615")
        .body(vec![1u8; 10])
        .send()
        .unwrap();
    assert_eq!(resp.status(), 416);
    envelope(&resp.text().unwrap());

    // A build failure reason with a newline and terminal escapes stays one escaped log line.
    let project = http
        .post(format!("{}/api/v1/projects", server.url()))
        .json(&json!({ "name": "p" }))
        .send()
        .unwrap()
        .json::<Value>()
        .unwrap();
    let pid = project["id"].as_str().unwrap();
    let build: Value = http
        .post(format!("{}/api/v1/projects/{pid}/builds", server.url()))
        .json(&json!({}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let id = build["id"].as_str().unwrap();
    let reason = "oops\n2026-12-01T00:00:00Z  INFO forged: admin token printed \u{1b}[31mred\u{1b}[0m ✓ multi-byte at the cut";
    let resp = http
        .post(format!("{}/api/v1/builds/{id}/fail", server.url()))
        .json(&json!({ "reason": reason, "platform": "linux/amd64\r\nINFO forged" }))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    std::thread::sleep(Duration::from_millis(300));
    let logs = server.logs();
    assert!(!logs.contains('\u{1b}'), "a raw escape reached the log");
    assert!(
        !logs.lines().any(|l| l.starts_with("2026-12-01T00:00:00Z")),
        "a forged line reached the log: {logs}"
    );
    assert!(logs.contains("build failed"), "{logs}");
}

#[test]
fn the_api_refuses_what_a_browser_could_be_made_to_send() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_authed(dir.path());
    let admin = server.admin_token();
    let http = Client::new();
    let url = format!("{}/api/v1/projects", server.url());
    let basic = |req: reqwest::blocking::RequestBuilder| req.basic_auth("x-token", Some(&admin));
    // A form post, as a cross-site <form> sends it.
    let resp = basic(http.post(&url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("name=evil")
        .send()
        .unwrap();
    assert_eq!(resp.status(), 415);
    envelope(&resp.text().unwrap());
    let resp = basic(http.post(&url))
        .header("content-type", "text/plain")
        .body(r#"{"name":"evil"}"#)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 415);
    // What a browser marks as another site's request, even with a JSON body.
    for (name, value) in [
        ("sec-fetch-site", "cross-site"),
        ("origin", "http://attacker.example"),
        ("origin", "null"),
    ] {
        let resp = basic(http.post(&url))
            .header(name, value)
            .json(&json!({ "name": "evil" }))
            .send()
            .unwrap();
        assert_eq!(resp.status(), 403, "{name}: {value}");
        assert_eq!(
            envelope(&resp.text().unwrap())["errors"][0]["code"],
            "DENIED"
        );
    }
    let listed: Value = basic(http.get(&url)).send().unwrap().json().unwrap();
    assert!(
        listed["projects"].as_array().unwrap().is_empty(),
        "{listed}"
    );
    // The registry's own origin, and scripts (no Origin), are fine.
    let resp = basic(http.post(&url))
        .header("origin", server.url())
        .header("sec-fetch-site", "same-origin")
        .json(&json!({ "name": "mine" }))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 201);
}

/// The token realm a `/v2/` challenge names when the request carries forwarded headers.
fn realm(server: &Server) -> String {
    let resp = Client::new()
        .get(format!("{}/v2/", server.url()))
        .header("x-forwarded-host", "evil.example")
        .header("x-forwarded-proto", "https")
        .send()
        .unwrap();
    assert_eq!(resp.status(), 401);
    resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned()
}

#[test]
fn forwarded_headers_count_only_behind_a_trusted_proxy() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_authed(&dir.path().join("a"));
    let challenge = realm(&server);
    assert!(
        challenge.contains(&format!("realm=\"{}/token\"", server.url())),
        "{challenge}"
    );
    drop(server);
    let server = Server::start_with(&dir.path().join("b"), &["--trust-proxy"]);
    let challenge = realm(&server);
    assert!(
        challenge.contains("realm=\"https://evil.example/token\""),
        "{challenge}"
    );
}

/// A small tmpfs at `dir` (root only); `false` when this is not root.
fn tmpfs(dir: &Path, size: &str) -> bool {
    let uid = Command::new("id").arg("-u").output().unwrap();
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        eprintln!("not root: the full-disk test needs to mount a tmpfs (.ci/run runs as root)");
        return false;
    }
    std::fs::create_dir_all(dir).unwrap();
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir)
        .status()
        .unwrap();
    assert!(ok.success(), "mounting a tmpfs failed");
    true
}

struct Unmount<'a>(&'a Path);

impl Drop for Unmount<'_> {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0).status();
    }
}

#[test]
fn a_full_disk_is_507_and_other_projects_blobs_do_not_show() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = dir.path().join("blobs");
    if !tmpfs(&blobs, "4m") {
        return;
    }
    let _unmount = Unmount(&blobs);
    let storage = format!("file:{}", blobs.display());
    let server = Server::start_with(&dir.path().join("data"), &["--storage", &storage]);
    let admin = server.admin_token();
    let http = Client::new();
    let api = |method: reqwest::Method, path: &str, body: Value| -> Value {
        ApiClient::new(&server.url(), &admin).ok(method, path, Some(&body))
    };
    let a = api(reqwest::Method::POST, "/projects", json!({ "name": "a" }));
    let b = api(reqwest::Method::POST, "/projects", json!({ "name": "b" }));
    let (a, b) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());
    let token = |project: &str| {
        depot_testkit::api::access_token(
            &http,
            &server.url(),
            &admin,
            &format!("repository:{project}:pull,push"),
        )
    };
    let (ta, tb) = (token(a), token(b));
    let monolithic = |project: &str, bearer: &str, digest: &str, body: Vec<u8>| {
        let resp = http
            .post(format!(
                "{}/v2/{project}/blobs/uploads/?digest={digest}",
                server.url()
            ))
            .bearer_auth(bearer)
            .header("content-type", "application/octet-stream")
            .body(body)
            .send()
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.text().unwrap())
    };
    let secret = b"project a's private layer".to_vec();
    assert_eq!(monolithic(a, &ta, &sha256(&secret), secret.clone()).0, 201);

    // Fill the disk.
    let filler = blobs.join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    while f.write_all(&chunk).is_ok() {}
    drop(f);

    // Project b guesses a's digest with a wrong body, and a digest nobody holds: the same
    // answer for both, since both are written (and fail) the same way.
    let stranger = sha256(b"nobody has this");
    let guessed = monolithic(b, &tb, &sha256(&secret), vec![7u8; 256 * 1024]);
    let unknown = monolithic(b, &tb, &stranger, vec![7u8; 256 * 1024]);
    assert_eq!(guessed.0, unknown.0, "{guessed:?} vs {unknown:?}");
    assert_eq!(guessed.0, 507, "{guessed:?}");
    let v = envelope(&guessed.1);
    assert!(v["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("insufficient storage"));
    // A chunked upload refused for want of space keeps its session where it stood.
    let start = http
        .post(format!("{}/v2/{b}/blobs/uploads/", server.url()))
        .bearer_auth(&tb)
        .send()
        .unwrap();
    let location = start.headers()["location"].to_str().unwrap().to_owned();
    let data = vec![9u8; 512 * 1024];
    let patch = || {
        http.patch(format!("{}{location}", server.url()))
            .bearer_auth(&tb)
            .header("content-type", "application/octet-stream")
            .header("content-range", format!("0-{}", data.len() - 1))
            .body(data.clone())
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(patch(), 507);
    std::fs::remove_file(&filler).unwrap();
    assert_eq!(patch(), 202);
    let resp = http
        .put(format!(
            "{}{location}?digest={}",
            server.url(),
            sha256(&data)
        ))
        .bearer_auth(&tb)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 201);
    // a's blob is intact, and b still cannot read it.
    let got = http
        .get(format!("{}/v2/{a}/blobs/{}", server.url(), sha256(&secret)))
        .bearer_auth(&ta)
        .send()
        .unwrap();
    assert_eq!(got.bytes().unwrap().to_vec(), secret);
    let got = http
        .get(format!("{}/v2/{b}/blobs/{}", server.url(), sha256(&secret)))
        .bearer_auth(&tb)
        .send()
        .unwrap();
    assert_eq!(got.status(), 404);
}
