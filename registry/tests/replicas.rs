//! Two registry processes sharing one PostgreSQL database and one S3 bucket behave as one
//! registry: what is pushed through one is pulled through the other at once, a chunked upload
//! moves between them mid-way (across an S3 part boundary), concurrent pushes of one blob store
//! it once, a build created on one is saved through the other, and a tag deleted through one
//! stops being served by the other's cache at once.
//!
//! Needs `DEPOT_TEST_POSTGRES_URL` and `DEPOT_TEST_S3_ENDPOINT` (with AWS credentials in the
//! environment), which `.ci/run` provides with a throwaway PostgreSQL cluster and s3s-fs.

use depot_testkit::backends::Backends;

use std::time::{Duration, Instant};

use depot_testkit::{random_bytes, sha256, Server};
use reqwest::blocking::{Client, Response};
use reqwest::Method;
use serde_json::{json, Value};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn replica(b: &Backends, dir: &std::path::Path) -> Server {
    let mut flags = b.flags();
    // Long enough that only the cross-replica notification can explain a fresh answer.
    flags.extend(["--cache-ttl-secs".to_owned(), "600".to_owned()]);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    Server::start_with(dir, &flags)
}

/// An access token for `scope` from `server`'s `/token`, presenting `secret`.
fn token(server: &Server, secret: &str, scope: &str) -> String {
    depot_testkit::api::access_token(&Client::new(), &server.url(), secret, scope)
}

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap()
}

fn v2(
    server: &Server,
    method: Method,
    path: &str,
    token: &str,
) -> reqwest::blocking::RequestBuilder {
    client()
        .request(method, format!("{}{path}", server.url()))
        .bearer_auth(token)
}

fn push_blob(server: &Server, repo: &str, token: &str, data: &[u8]) -> Response {
    depot_testkit::oci::post_blob(&client(), &server.url(), repo, Some(token), data)
}

fn get_blob(server: &Server, repo: &str, token: &str, digest: &str) -> Vec<u8> {
    let resp = v2(
        server,
        Method::GET,
        &format!("/v2/{repo}/blobs/{digest}"),
        token,
    )
    .send()
    .unwrap();
    assert_eq!(resp.status().as_u16(), 200, "GET {digest}");
    resp.bytes().unwrap().to_vec()
}

/// An image manifest over one config and one layer, both pushed first; returns its bytes.
fn image(server: &Server, repo: &str, token: &str, arch: &str) -> Vec<u8> {
    let layer = random_bytes(4000);
    let config = serde_json::to_vec(&json!({ "architecture": arch, "os": "linux" })).unwrap();
    for blob in [&layer, &config] {
        assert_eq!(push_blob(server, repo, token, blob).status().as_u16(), 201);
    }
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(&config), "size": config.len() },
        "layers": [{ "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha256(&layer), "size": layer.len() }],
    }))
    .unwrap()
}

fn put_manifest(server: &Server, repo: &str, reference: &str, token: &str, body: &[u8]) -> u16 {
    v2(
        server,
        Method::PUT,
        &format!("/v2/{repo}/manifests/{reference}"),
        token,
    )
    .header("content-type", "application/vnd.oci.image.manifest.v1+json")
    .body(body.to_vec())
    .send()
    .unwrap()
    .status()
    .as_u16()
}

fn manifest_status(server: &Server, repo: &str, reference: &str, token: &str) -> (u16, String) {
    let resp = v2(
        server,
        Method::GET,
        &format!("/v2/{repo}/manifests/{reference}"),
        token,
    )
    .header("accept", "application/vnd.oci.image.manifest.v1+json")
    .send()
    .unwrap();
    let status = resp.status().as_u16();
    let digest = resp
        .headers()
        .get("docker-content-digest")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, digest)
}

#[test]
fn two_replicas_behave_as_one() {
    let Some(b) = depot_testkit::backends::fresh("replicas") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let one = replica(&b, &dir.path().join("one"));
    let two = replica(&b, &dir.path().join("two"));
    let repo = "team/app";
    let scope = format!("repository:{repo}:pull,push,delete");
    // Tokens are signed with the key both replicas share: one replica's token works on the other.
    let t = token(&one, &b.admin, &scope);
    let t_other = token(&two, &b.admin, "repository:team/other:pull,push");

    // Pushed through one, pulled through the other at once.
    let small = random_bytes(100_000);
    assert_eq!(push_blob(&one, repo, &t, &small).status().as_u16(), 201);
    assert_eq!(get_blob(&two, repo, &t, &sha256(&small)), small);

    // A chunked upload that starts on one, continues on the other across the 16 MiB part
    // boundary, and closes on the first.
    let big = random_bytes(20 * 1024 * 1024);
    let start = v2(
        &one,
        Method::POST,
        &format!("/v2/{repo}/blobs/uploads/"),
        &t,
    )
    .send()
    .unwrap();
    assert_eq!(start.status().as_u16(), 202);
    let location = start.headers()["location"].to_str().unwrap().to_owned();
    let half = 10 * 1024 * 1024;
    for (server, range) in [(&one, 0..half), (&two, half..big.len())] {
        let resp = v2(server, Method::PATCH, &location, &t)
            .header("content-type", "application/octet-stream")
            .header(
                "content-range",
                format!("{}-{}", range.start, range.end - 1),
            )
            .body(big[range.clone()].to_vec())
            .send()
            .unwrap();
        assert_eq!(resp.status().as_u16(), 202, "PATCH {range:?}");
    }
    let sep = if location.contains('?') { '&' } else { '?' };
    let close = v2(
        &one,
        Method::PUT,
        &format!("{location}{sep}digest={}", sha256(&big)),
        &t,
    )
    .send()
    .unwrap();
    assert_eq!(close.status().as_u16(), 201);
    assert!(
        get_blob(&two, repo, &t, &sha256(&big)) == big,
        "chunked blob came back different"
    );

    // The same blob pushed through both at once is stored once.
    let shared = random_bytes(3 * 1024 * 1024 + 17);
    std::thread::scope(|s| {
        for server in [&one, &two] {
            let (t, shared) = (&t_other, &shared);
            s.spawn(move || {
                assert_eq!(
                    push_blob(server, "team/other", t, shared).status().as_u16(),
                    201
                )
            });
        }
    });
    let objects = runtime().block_on(async {
        let options = depot_store::storage::S3Options {
            endpoint: Some(b.endpoint.clone()),
            region: Some("us-east-1".into()),
            force_path_style: true,
        };
        let client = depot_store::storage::s3_client(&options).await;
        let listed = client
            .list_objects_v2()
            .bucket(&b.bucket)
            .send()
            .await
            .unwrap();
        listed
            .contents()
            .iter()
            .filter(|o| o.size() == Some(shared.len() as i64))
            .count()
    });
    assert_eq!(
        objects, 1,
        "the blob pushed through both replicas is stored {objects} times"
    );
    assert_eq!(
        get_blob(&one, "team/other", &t_other, &sha256(&shared)),
        shared
    );

    // A tag both replicas have served, deleted through one: the other stops at once (its cache
    // would keep it for 10 minutes; the PostgreSQL notification ends that).
    let manifest = image(&one, repo, &t, "amd64");
    assert_eq!(put_manifest(&one, repo, "v1", &t, &manifest), 201);
    assert_eq!(
        manifest_status(&two, repo, "v1", &t),
        (200, sha256(&manifest))
    );
    assert_eq!(manifest_status(&one, repo, "v1", &t).0, 200);
    let deleted = v2(
        &two,
        Method::DELETE,
        &format!("/v2/{repo}/manifests/v1"),
        &t,
    )
    .send()
    .unwrap();
    assert_eq!(deleted.status().as_u16(), 202);
    let deadline = Instant::now() + Duration::from_secs(2);
    while manifest_status(&one, repo, "v1", &t).0 != 404 {
        assert!(
            Instant::now() < deadline,
            "the other replica still serves a deleted tag"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // A multi-tag push through one replica moves tags the other has cached, at once.
    let old = image(&one, repo, &t, "arm64");
    assert_eq!(put_manifest(&one, repo, "stable", &t, &old), 201);
    assert_eq!(
        manifest_status(&two, repo, "stable", &t),
        (200, sha256(&old))
    );
    let new = image(&one, repo, &t, "riscv64");
    let reference = format!("{}?tag=stable&tag=v2", sha256(&new));
    assert_eq!(put_manifest(&one, repo, &reference, &t, &new), 201);
    let deadline = Instant::now() + Duration::from_secs(2);
    while manifest_status(&two, repo, "stable", &t) != (200, sha256(&new)) {
        assert!(
            Instant::now() < deadline,
            "the other replica still serves a tag a multi-tag push moved"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(manifest_status(&two, repo, "v2", &t), (200, sha256(&new)));
}

#[test]
fn a_build_created_on_one_replica_is_saved_through_the_other() {
    let Some(b) = depot_testkit::backends::fresh("replicas") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let one = replica(&b, &dir.path().join("one"));
    let two = replica(&b, &dir.path().join("two"));
    let api = |server: &Server, method: Method, path: &str, body: Value| -> Value {
        let resp = Client::new()
            .request(method, format!("{}{path}", server.url()))
            .bearer_auth(&b.admin)
            .json(&body)
            .send()
            .unwrap();
        assert!(resp.status().is_success(), "{path}: {}", resp.status());
        resp.json().unwrap()
    };
    let project = api(
        &one,
        Method::POST,
        "/api/v1/projects",
        json!({ "name": "app" }),
    );
    let pid = project["id"].as_str().unwrap().to_owned();
    let build = api(
        &one,
        Method::POST,
        &format!("/api/v1/projects/{pid}/builds"),
        json!({}),
    );
    let id = build["id"].as_str().unwrap().to_owned();
    let push = token(
        &two,
        build["push_token"].as_str().unwrap(),
        &format!("repository:{pid}:pull,push"),
    );
    let manifest = image(&two, &pid, &push, "arm64");
    assert_eq!(put_manifest(&two, &pid, &id, &push, &manifest), 201);
    let shown = api(
        &one,
        Method::GET,
        &format!("/api/v1/builds/{id}"),
        Value::Null,
    );
    assert_eq!(shown["state"], "saved");
    assert_eq!(shown["images"][0]["digest"], json!(sha256(&manifest)));
    let pull = token(&one, &b.admin, &format!("repository:{pid}:pull"));
    assert_eq!(
        manifest_status(&one, &pid, &id, &pull),
        (200, sha256(&manifest))
    );
}
