//! Builds end to end, with token authentication on: a project and its token, builds created
//! through the API, images pushed by skopeo with each build's push token (one platform; two
//! platforms pushed separately as two native builders would; a bake build with two targets),
//! pulled back with pull tokens, and a build expiring under the controlled clock.

use std::process::Command;

use depot_testkit::tools::{build_layout, skopeo};
use depot_testkit::{sha256, ApiClient, Server};
use reqwest::blocking::Client;
use reqwest::Method;
use serde_json::{json, Value};

/// Calls the control-plane API (`path` under the server, `/api/v1/...`); returns the status
/// and the JSON body (Null when empty).
fn api(
    server: &Server,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let path = path.strip_prefix("/api/v1").expect("an /api/v1 path");
    ApiClient::new(&server.url(), token).call(method, path, body.as_ref())
}

fn ok(server: &Server, method: Method, path: &str, token: &str, body: Option<Value>) -> Value {
    let (status, v) = api(server, method, path, token, body);
    assert!((200..300).contains(&status), "{path}: {status} {v}");
    v
}

fn creds(token: &str) -> String {
    format!("x-token:{token}")
}

/// The manifest at `reference` fetched with `token`'s credentials, or `None` if skopeo fails.
fn inspect(host: &str, reference: &str, token: &str) -> Option<Vec<u8>> {
    let out = Command::new("skopeo")
        .args([
            "inspect",
            "--tls-verify=false",
            "--raw",
            "--creds",
            &creds(token),
        ])
        .arg(format!("docker://{host}/{reference}"))
        .output()
        .expect("run skopeo (run .ci/setup to install it)");
    out.status.success().then_some(out.stdout)
}

fn push(layout: &str, tag: &str, host: &str, reference: &str, token: &str) {
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        &creds(token),
        &format!("oci:{layout}:{tag}"),
        &format!("docker://{host}/{reference}"),
    ]);
}

#[test]
fn builds_are_saved_pulled_and_expire() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_authed(&dir.path().join("data"));
    let host = server.host();
    let admin = server.admin_token();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("data/admin-token"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "admin-token must be private");
    }
    let digests = build_layout(dir.path());
    let layout = dir.path().join("layout");
    let l = layout.to_str().unwrap();

    let project = ok(
        &server,
        Method::POST,
        "/api/v1/projects",
        &admin,
        Some(json!({ "name": "app" })),
    );
    let pid = project["id"].as_str().unwrap().to_owned();
    let ci = ok(
        &server,
        Method::POST,
        &format!("/api/v1/projects/{pid}/tokens"),
        &admin,
        Some(json!({ "name": "ci" })),
    );
    let ci = ci["token"].as_str().unwrap().to_owned();

    // One platform: the builder pushes to <build-id>; the build is saved at once.
    let b1 = ok(
        &server,
        Method::POST,
        &format!("/api/v1/projects/{pid}/builds"),
        &ci,
        Some(json!({})),
    );
    let b1_id = b1["id"].as_str().unwrap().to_owned();
    assert_eq!(b1["state"], "building");
    assert_eq!(b1["image"], format!("{host}/{pid}:{b1_id}"));
    push(
        l,
        "amd64",
        &host,
        &format!("{pid}:{b1_id}"),
        b1["push_token"].as_str().unwrap(),
    );
    let shown = ok(
        &server,
        Method::GET,
        &format!("/api/v1/builds/{b1_id}"),
        &ci,
        None,
    );
    assert_eq!(shown["state"], "saved", "{shown}");
    assert_eq!(shown["images"][0]["digest"], digests["amd64"]);
    assert!(shown["images"][0]["size"].as_u64().unwrap() > 50_000);

    // An SBOM pushed for b1's image by b1's builder (within the grace after saving) is b1's.
    let amd64 = digests["amd64"].as_str().unwrap().to_owned();
    let subject_size = inspect(&host, &format!("{pid}:{b1_id}"), &ci)
        .unwrap()
        .len();
    let sbom = depot_testkit::oci::push_sbom(
        &server.url(),
        &pid,
        b1["push_token"].as_str().unwrap(),
        &amd64,
        subject_size,
    );
    assert!(referrers(&server, &pid, &ci, &amd64).contains(&sbom));

    // Two platforms from two native builders, pushed separately (one by tag, one by digest);
    // the registry writes the index and tags it <build-id> and the save tag.
    let b2 = ok(
        &server,
        Method::POST,
        &format!("/api/v1/projects/{pid}/builds"),
        &ci,
        Some(json!({ "platforms": ["linux/amd64", "linux/arm64"], "save_tags": ["latest"] })),
    );
    let b2_id = b2["id"].as_str().unwrap().to_owned();
    let b2_push = b2["push_token"].as_str().unwrap().to_owned();
    push(
        l,
        "amd64",
        &host,
        &format!("{pid}:{b2_id}-linux-amd64"),
        &b2_push,
    );
    let half = ok(
        &server,
        Method::GET,
        &format!("/api/v1/builds/{b2_id}"),
        &ci,
        None,
    );
    assert_eq!(half["state"], "building");
    let arm = digests["arm64"].as_str().unwrap();
    push(l, "arm64", &host, &format!("{pid}@{arm}"), &b2_push);
    let saved = ok(
        &server,
        Method::GET,
        &format!("/api/v1/builds/{b2_id}"),
        &ci,
        None,
    );
    assert_eq!(saved["state"], "saved", "{saved}");

    let pull = ok(
        &server,
        Method::POST,
        &format!("/api/v1/builds/{b2_id}/pull-token"),
        &ci,
        Some(json!({ "ttl_secs": 600 })),
    );
    let pull = pull["token"].as_str().unwrap().to_owned();
    let index: Value =
        serde_json::from_slice(&inspect(&host, &format!("{pid}:{b2_id}"), &pull).unwrap()).unwrap();
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let children: Vec<(Value, Value)> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["digest"].clone(), m["platform"]["architecture"].clone()))
        .collect();
    assert_eq!(
        children,
        vec![
            (digests["amd64"].clone(), json!("amd64")),
            (digests["arm64"].clone(), json!("arm64"))
        ]
    );
    let index_digest = sha256(&inspect(&host, &format!("{pid}:{b2_id}"), &pull).unwrap());
    assert_eq!(
        sha256(&inspect(&host, &format!("{pid}:latest"), &ci).unwrap()),
        index_digest
    );
    // The build pull token reads this build only.
    assert!(inspect(&host, &format!("{pid}:{b1_id}"), &pull).is_none());

    // Pull the whole multi-platform build with its pull token and check every digest.
    let out = dir.path().join("pulled");
    skopeo(&[
        "copy",
        "--all",
        "--src-tls-verify=false",
        "--src-creds",
        &creds(&pull),
        &format!("docker://{host}/{pid}:{b2_id}"),
        &format!("oci:{}:x", out.display()),
    ]);
    let pulled: Value =
        serde_json::from_slice(&std::fs::read(out.join("index.json")).unwrap()).unwrap();
    assert_eq!(pulled["manifests"][0]["digest"], json!(index_digest));

    // A bake build with two targets: each lands under <build-id>-<target>.
    let b3 = ok(
        &server,
        Method::POST,
        &format!("/api/v1/projects/{pid}/builds"),
        &ci,
        Some(json!({ "targets": ["web", "api"], "save_tags": ["v1"] })),
    );
    let b3_id = b3["id"].as_str().unwrap().to_owned();
    let b3_push = b3["push_token"].as_str().unwrap().to_owned();
    push(l, "amd64", &host, &format!("{pid}:{b3_id}-web"), &b3_push);
    push(l, "arm64", &host, &format!("{pid}:{b3_id}-api"), &b3_push);
    let bake = ok(
        &server,
        Method::GET,
        &format!("/api/v1/builds/{b3_id}"),
        &ci,
        None,
    );
    assert_eq!(bake["state"], "saved", "{bake}");
    assert_eq!(bake["images"].as_array().unwrap().len(), 2);
    let b3_pull = ok(
        &server,
        Method::POST,
        &format!("/api/v1/builds/{b3_id}/pull-token"),
        &ci,
        None,
    );
    let b3_pull = b3_pull["token"].as_str().unwrap();
    for (target, arch) in [("web", "amd64"), ("api", "arm64")] {
        let m = inspect(&host, &format!("{pid}:{b3_id}-{target}"), b3_pull).unwrap();
        assert_eq!(json!(sha256(&m)), digests[arch]);
        let m = inspect(&host, &format!("{pid}:v1-{target}"), &ci).unwrap();
        assert_eq!(json!(sha256(&m)), digests[arch]);
    }

    // Builds list newest first, paginated.
    let page = ok(
        &server,
        Method::GET,
        &format!("/api/v1/projects/{pid}/builds?limit=2"),
        &ci,
        None,
    );
    let ids: Vec<&str> = page["builds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![b3_id.as_str(), b2_id.as_str()]);
    let cursor = page["next_cursor"].as_str().unwrap();
    let rest = ok(
        &server,
        Method::GET,
        &format!("/api/v1/projects/{pid}/builds?limit=2&cursor={cursor}"),
        &ci,
        None,
    );
    assert_eq!(rest["builds"][0]["id"], json!(b1_id));
    assert!(rest["next_cursor"].is_null());

    // Expiry: b2 is extended, then the clock passes the 7-day retention. b1 answers 404 at
    // once (its manifest was just served, so a cache holds it), b2 still pulls.
    ok(
        &server,
        Method::POST,
        &format!("/api/v1/builds/{b2_id}/extend"),
        &ci,
        Some(json!({ "add_secs": 30 * 86400 })),
    );
    assert!(inspect(&host, &format!("{pid}:{b1_id}"), &ci).is_some());
    let b1_digest = digests["amd64"].as_str().unwrap();
    ok(
        &server,
        Method::POST,
        "/api/v1/admin/clock",
        &admin,
        Some(json!({ "advance_secs": 7 * 86400 + 1 })),
    );
    assert!(
        inspect(&host, &format!("{pid}:{b1_id}"), &ci).is_none(),
        "expired build still served by tag"
    );
    let gone = Client::new()
        .get(format!("{}/v2/{pid}/manifests/{b1_id}", server.url()))
        .bearer_auth(access_token(
            &server,
            &ci,
            &format!("repository:{pid}:pull"),
        ))
        .send()
        .unwrap();
    assert_eq!(gone.status().as_u16(), 404);
    assert_eq!(
        gone.json::<Value>().unwrap()["errors"][0]["code"],
        "MANIFEST_UNKNOWN"
    );
    assert!(
        inspect(&host, &format!("{pid}:{b3_id}-web"), &ci).is_none(),
        "expired bake build"
    );
    // The amd64 image is also a child of the extended b2, so by digest it lives on.
    assert!(inspect(&host, &format!("{pid}@{b1_digest}"), &ci).is_some());
    assert_eq!(
        sha256(&inspect(&host, &format!("{pid}:{b2_id}"), &ci).unwrap()),
        index_digest
    );
    let tags = Client::new()
        .get(format!("{}/v2/{pid}/tags/list", server.url()))
        .bearer_auth(access_token(
            &server,
            &ci,
            &format!("repository:{pid}:pull"),
        ))
        .send()
        .unwrap()
        .json::<Value>()
        .unwrap();
    let tags: Vec<&str> = tags["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(
        !tags.contains(&b1_id.as_str()) && tags.contains(&b2_id.as_str()),
        "{tags:?}"
    );
    let shown = ok(
        &server,
        Method::GET,
        &format!("/api/v1/builds/{b1_id}"),
        &ci,
        None,
    );
    assert_eq!(shown["expired"], true);

    // Deleting a build removes it at once.
    let (status, _) = api(
        &server,
        Method::DELETE,
        &format!("/api/v1/builds/{b2_id}"),
        &ci,
        None,
    );
    assert_eq!(status, 204);
    assert!(inspect(&host, &format!("{pid}:{b2_id}"), &ci).is_none());
    assert!(inspect(&host, &format!("{pid}:latest"), &ci).is_none());

    let logs = server.logs();
    for secret in [&admin, &ci, &pull, &b2_push] {
        assert!(!logs.contains(secret.as_str()), "a secret was logged");
    }
}

/// The digests the referrers API lists for `subject`.
fn referrers(server: &Server, repo: &str, secret: &str, subject: &str) -> Vec<String> {
    let index: Value = Client::new()
        .get(format!("{}/v2/{repo}/referrers/{subject}", server.url()))
        .bearer_auth(access_token(
            server,
            secret,
            &format!("repository:{repo}:pull"),
        ))
        .send()
        .unwrap()
        .json()
        .unwrap();
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["digest"].as_str().unwrap().to_owned())
        .collect()
}

/// An access token from `/token` for `scope`, presenting `secret` as Basic credentials.
pub fn access_token(server: &Server, secret: &str, scope: &str) -> String {
    let resp = Client::new()
        .get(format!("{}/token", server.url()))
        .query(&[("service", "depot-registry"), ("scope", scope)])
        .basic_auth("x-token", Some(secret))
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200, "token request failed");
    resp.json::<Value>().unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A multi-tag push (`PUT .../manifests/<digest>?tag=..&tag=..`) with a build's push token:
/// every tag must be one the build may take (else the whole push is refused and nothing is
/// pointed), each accepted tag is named in `OCI-Tag`, belongs to the build (its pull token
/// reads through it) and expires with it.
#[test]
fn a_multi_tag_push_is_held_to_its_build() {
    use depot_testkit::api::access_token;
    use depot_testkit::oci::{image_manifest, push_blob, put_manifest};

    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_authed(&dir.path().join("data"));
    let base = server.url();
    let admin = server.admin_token();
    let api = ApiClient::new(&base, &admin);
    let pid = api.create_project("multi").id;
    let ci = api.create_token(&pid, "ci").token.unwrap();
    let as_ci = ApiClient::new(&base, &ci);
    let spec = depot_api_types::CreateBuild {
        save_tags: vec!["latest".into(), "stable".into()],
        ..Default::default()
    };
    let b1 = as_ci.create_build(&pid, &spec);
    let b2 = as_ci.create_build(&pid, &depot_api_types::CreateBuild::default());
    let http = Client::new();
    let scope = format!("repository:{pid}:pull,push");
    let t1 = access_token(&http, &base, b1.push_token.as_deref().unwrap(), &scope);
    let t2 = access_token(&http, &base, b2.push_token.as_deref().unwrap(), &scope);

    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let layer = depot_testkit::random_bytes(1000);
    push_blob(&http, &base, &pid, Some(&t1), config);
    push_blob(&http, &base, &pid, Some(&t1), &layer);
    let manifest = image_manifest(config, &[&layer]);
    let digest = sha256(&manifest);
    let tags = |server: &Server| -> Vec<String> {
        let v: Value = http
            .get(format!("{}/v2/{pid}/tags/list", server.url()))
            .bearer_auth(access_token(
                &http,
                &base,
                &admin,
                &format!("repository:{pid}:pull"),
            ))
            .send()
            .unwrap()
            .json()
            .unwrap();
        serde_json::from_value(v["tags"].clone()).unwrap_or_default()
    };

    // Another build's id, or a tag that is no build's: refused whole, nothing pointed.
    for foreign in [b1.id.as_str(), "v9"] {
        let r = put_manifest(
            &http,
            &base,
            &pid,
            &format!("{digest}?tag={}&tag={foreign}", b2.id),
            Some(&t2),
            &manifest,
        );
        assert_eq!(r.status(), 403, "{foreign}: {}", r.text().unwrap());
    }
    assert!(tags(&server).is_empty(), "{:?}", tags(&server));

    // The build's own id and save tags: all taken, all named, and the build is saved.
    let r = put_manifest(
        &http,
        &base,
        &pid,
        &format!("{digest}?tag={}&tag=latest&tag=stable", b1.id),
        Some(&t1),
        &manifest,
    );
    assert_eq!(r.status(), 201);
    assert_eq!(
        r.headers()["oci-tag"].to_str().unwrap(),
        format!("{}, latest, stable", b1.id)
    );
    let mut want = vec![b1.id.clone(), "latest".into(), "stable".into()];
    want.sort();
    assert_eq!(tags(&server), want);
    let shown: Value = as_ci.ok(Method::GET, &format!("/builds/{}", b1.id), None::<&Value>);
    assert_eq!(shown["state"], "saved", "{shown}");

    // Each tag is the build's: its pull token reads through every one of them.
    let pull: Value = as_ci.ok(
        Method::POST,
        &format!("/builds/{}/pull-token", b1.id),
        Some(&json!({ "ttl_secs": 600 })),
    );
    let pull = access_token(
        &http,
        &base,
        pull["token"].as_str().unwrap(),
        &format!("repository:{pid}:pull"),
    );
    for tag in &want {
        let r = http
            .get(format!("{base}/v2/{pid}/manifests/{tag}"))
            .header("accept", "application/vnd.oci.image.manifest.v1+json")
            .bearer_auth(&pull)
            .send()
            .unwrap();
        assert_eq!(r.status(), 200, "{tag}");
        assert_eq!(r.headers()["docker-content-digest"], digest.as_str());
    }

    // And expires with it.
    let _: Value = api.ok(
        Method::POST,
        "/admin/clock",
        Some(&json!({ "advance_secs": 30 * 86400 })),
    );
    assert!(tags(&server).is_empty(), "{:?}", tags(&server));
}
