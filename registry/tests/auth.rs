//! Every credential checked, against the real binary: missing, malformed, expired, forged,
//! `alg: none`, unknown `kid`, another project's, a push token on another build's tag, a pull
//! token pushing, a token without the scope, a revoked project token, and the rule that one
//! project learns nothing about another's blobs.

use base64::Engine;
use depot_testkit::{sha256, ApiClient, Server};
use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::Method;
use serde_json::{json, Value};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

struct Fixture {
    server: Server,
    http: Client,
    admin: String,
}

impl Fixture {
    /// `path` is the whole `/api/v1/...` path, as these tests spell it.
    fn api(&self, method: Method, path: &str, token: &str, body: Value) -> (u16, Value) {
        let path = path.strip_prefix("/api/v1").expect("an /api/v1 path");
        ApiClient::new(&self.server.url(), token).call(method, path, Some(&body))
    }

    fn ok(&self, method: Method, path: &str, token: &str, body: Value) -> Value {
        let (status, v) = self.api(method, path, token, body);
        assert!((200..300).contains(&status), "{path}: {status} {v}");
        v
    }

    /// `/token` for `scopes` with `secret` as the Basic password: the status and the token.
    fn token(&self, secret: &str, scopes: &[&str]) -> (u16, Option<String>) {
        let mut query = vec![("service", "depot-registry")];
        query.extend(scopes.iter().map(|s| ("scope", *s)));
        let resp = self
            .http
            .get(format!("{}/token", self.server.url()))
            .query(&query)
            .basic_auth("x-token", Some(secret))
            .send()
            .unwrap();
        let status = resp.status().as_u16();
        let body: Value = resp.json().unwrap_or(Value::Null);
        (status, body["token"].as_str().map(str::to_owned))
    }

    fn access(&self, secret: &str, scopes: &[&str]) -> String {
        let (status, token) = self.token(secret, scopes);
        assert_eq!(status, 200);
        token.unwrap()
    }

    fn v2(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}/v2/{path}", self.server.url()))
    }
}

/// Asserts a registry denial: the status, the envelope's code, and for 401 the challenge.
fn denied(resp: Response, status: u16, code: &str) -> Value {
    assert_eq!(resp.status().as_u16(), status, "{:?}", resp.headers());
    if status == 401 {
        let challenge = resp.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        let token_endpoint = resp.url().path() == "/token";
        if token_endpoint {
            assert!(challenge.starts_with("Basic realm="), "{challenge}");
        } else {
            assert!(
                challenge.starts_with("Bearer realm=\"http://"),
                "{challenge}"
            );
            assert!(
                challenge.contains("service=\"depot-registry\""),
                "{challenge}"
            );
        }
    }
    let body: Value = resp.json().unwrap();
    assert_eq!(body["errors"][0]["code"], code, "{body}");
    body
}

/// Pushes a one-layer image (monolithic blob uploads, then the manifest) with `token`; returns
/// the first refused response, or the manifest push's.
fn push_image(f: &Fixture, repo: &str, reference: &str, token: &str) -> Response {
    let layer = depot_testkit::random_bytes(2000);
    let config = serde_json::to_vec(&json!({ "architecture": "amd64", "os": "linux", "rootfs": { "type": "layers", "diff_ids": [] } })).unwrap();
    for blob in [&layer, &config] {
        let resp = f
            .v2(
                Method::POST,
                &format!("{repo}/blobs/uploads/?digest={}", sha256(blob)),
            )
            .bearer_auth(token)
            .body(blob.clone())
            .send()
            .unwrap();
        if resp.status().as_u16() != 201 {
            return resp;
        }
    }
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(&config), "size": config.len() },
        "layers": [{ "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha256(&layer), "size": layer.len() }],
    });
    f.v2(Method::PUT, &format!("{repo}/manifests/{reference}"))
        .bearer_auth(token)
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(serde_json::to_vec(&manifest).unwrap())
        .send()
        .unwrap()
}

#[test]
fn every_credential_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_authed(&dir.path().join("data"));
    let f = Fixture {
        admin: server.admin_token(),
        server,
        http: Client::new(),
    };
    let project = |name: &str| {
        let p = f.ok(
            Method::POST,
            "/api/v1/projects",
            &f.admin,
            json!({ "name": name }),
        );
        let id = p["id"].as_str().unwrap().to_owned();
        let t = f.ok(
            Method::POST,
            &format!("/api/v1/projects/{id}/tokens"),
            &f.admin,
            json!({ "name": "ci" }),
        );
        (
            id,
            t["token"].as_str().unwrap().to_owned(),
            t["id"].as_str().unwrap().to_owned(),
        )
    };
    let (a, a_token, a_token_id) = project("a");
    let (b, b_token, _) = project("b");
    let build = |token: &str, project: &str| {
        let v = f.ok(
            Method::POST,
            &format!("/api/v1/projects/{project}/builds"),
            token,
            json!({}),
        );
        (
            v["id"].as_str().unwrap().to_owned(),
            v["push_token"].as_str().unwrap().to_owned(),
        )
    };
    let (a1, a1_push) = build(&a_token, &a);
    let (a2, _) = build(&a_token, &a);
    let (_, b1_push) = build(&b_token, &b);

    // The build's push token pushes its own tag.
    let a1_access = f.access(&a1_push, &[&format!("repository:{a}:pull,push")]);
    let resp = push_image(&f, &a, &a1, &a1_access);
    assert_eq!(resp.status().as_u16(), 201);
    let a1_digest = resp.headers()["docker-content-digest"]
        .to_str()
        .unwrap()
        .to_owned();
    let a_read = f.access(&a_token, &[&format!("repository:{a}:pull")]);
    let a_manifest: Value = f
        .v2(Method::GET, &format!("{a}/manifests/{a1}"))
        .bearer_auth(&a_read)
        .send()
        .unwrap()
        .json()
        .unwrap();
    let a_layer = a_manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_owned();

    // No credentials, and malformed ones.
    let body = denied(f.v2(Method::GET, "").send().unwrap(), 401, "UNAUTHORIZED");
    assert!(body["errors"][0]["message"].is_string());
    let resp = f
        .v2(Method::GET, &format!("{a}/manifests/{a1}"))
        .send()
        .unwrap();
    assert!(resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains(&format!("scope=\"repository:{a}:pull\"")));
    denied(resp, 401, "UNAUTHORIZED");
    for header in [
        "Bearer",
        "Bearer ",
        "Basic !!!",
        "Bearer not.a.jwt",
        "Digest x",
        "Bearer a.b.c.d",
    ] {
        let resp = f
            .v2(Method::GET, &format!("{a}/manifests/{a1}"))
            .header("authorization", header)
            .send()
            .unwrap();
        denied(resp, 401, "UNAUTHORIZED");
    }
    for bad in ["Basic !!!", "Bearer", "Basic eC10b2tlbg=="] {
        let resp = f
            .http
            .get(format!("{}/token", f.server.url()))
            .header("authorization", bad)
            .send()
            .unwrap();
        denied(resp, 401, "UNAUTHORIZED");
    }
    assert_eq!(f.token("depot_pt_wrong", &[]).0, 401);
    assert_eq!(f.token("depot_admin_wrong", &[]).0, 401);
    assert_eq!(f.token("eyJhbGciOiJFZERTQSJ9.e30.AAAA", &[]).0, 401);

    // Forged tokens: tampered claims, alg none, unknown kid; and credentials used as access tokens.
    let parts: Vec<&str> = a_read.split('.').collect();
    let mut claims: Value = serde_json::from_slice(&B64.decode(parts[1]).unwrap()).unwrap();
    claims["access"] =
        json!([{ "type": "repository", "name": b, "actions": ["pull", "push", "delete"] }]);
    let forged_claims = B64.encode(serde_json::to_vec(&claims).unwrap());
    let mut header: Value = serde_json::from_slice(&B64.decode(parts[0]).unwrap()).unwrap();
    let tampered = format!("{}.{forged_claims}.{}", parts[0], parts[2]);
    let none = format!(
        "{}.{forged_claims}.",
        B64.encode(br#"{"alg":"none","typ":"JWT"}"#)
    );
    header["kid"] = json!("0000000000000000");
    let unknown_kid = format!(
        "{}.{}.{}",
        B64.encode(serde_json::to_vec(&header).unwrap()),
        parts[1],
        parts[2]
    );
    header["alg"] = json!("HS256");
    let hs256 = format!(
        "{}.{}.{}",
        B64.encode(serde_json::to_vec(&header).unwrap()),
        parts[1],
        parts[2]
    );
    for token in [&tampered, &none, &unknown_kid, &hs256, &a1_push] {
        let resp = f
            .v2(Method::GET, &format!("{b}/tags/list"))
            .bearer_auth(token)
            .send()
            .unwrap();
        let challenge = resp.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
        denied(resp, 401, "UNAUTHORIZED");
        if token != &a1_push {
            assert_eq!(
                f.token(token, &[]).0,
                401,
                "forged credential accepted at /token"
            );
        }
    }

    // Another project's token: granted nothing on A, learns nothing of A's blobs, cannot mount them.
    let b_on_a = f.access(
        &b_token,
        &[
            &format!("repository:{a}:pull"),
            &format!("repository:{b}:pull"),
        ],
    );
    let claims: Value =
        serde_json::from_slice(&B64.decode(b_on_a.split('.').nth(1).unwrap()).unwrap()).unwrap();
    assert_eq!(
        claims["access"],
        json!([{ "type": "repository", "name": b, "actions": ["pull"] }])
    );
    for path in [
        format!("{a}/manifests/{a1}"),
        format!("{a}/blobs/{a_layer}"),
        format!("{a}/blobs/sha256:{}", "0".repeat(64)),
        format!("{a}/tags/list"),
    ] {
        for method in [Method::GET, Method::HEAD] {
            if method == Method::HEAD && path.ends_with("tags/list") {
                continue;
            }
            let resp = f
                .v2(method.clone(), &path)
                .bearer_auth(&b_on_a)
                .send()
                .unwrap();
            assert_eq!(resp.status().as_u16(), 401, "{method} {path}");
        }
    }
    let b_push = f.access(
        &b1_push,
        &[
            &format!("repository:{b}:pull,push"),
            &format!("repository:{a}:pull"),
        ],
    );
    let resp = f
        .v2(
            Method::POST,
            &format!("{b}/blobs/uploads/?mount={a_layer}&from={a}"),
        )
        .bearer_auth(&b_push)
        .send()
        .unwrap();
    assert_eq!(
        resp.status().as_u16(),
        202,
        "mounted another project's blob"
    );
    let resp = f
        .v2(Method::POST, &format!("{b}/blobs/uploads/?mount={a_layer}"))
        .bearer_auth(&b_push)
        .send()
        .unwrap();
    assert_eq!(
        resp.status().as_u16(),
        202,
        "auto-mounted another project's blob"
    );
    let resp = f
        .v2(Method::HEAD, &format!("{b}/blobs/{a_layer}"))
        .bearer_auth(&b_push)
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    let resp = push_image(&f, &a, "b-was-here", &b_push);
    assert_eq!(resp.status().as_u16(), 401, "pushed into another project");

    // A push token cannot write another build's tag, an undeclared tag, or delete.
    let resp = push_image(&f, &a, &a2, &a1_access);
    denied(resp, 403, "DENIED");
    let resp = push_image(&f, &a, "latest", &a1_access);
    denied(resp, 403, "DENIED");
    // Declaring another build's id as a save tag is refused: that tag stays that build's.
    let (status, refused) = f.api(
        Method::POST,
        &format!("/api/v1/projects/{a}/builds"),
        &a_token,
        json!({ "save_tags": [a1] }),
    );
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["errors"][0]["code"], "INVALID_REQUEST");
    let resp = f
        .v2(Method::DELETE, &format!("{a}/manifests/{a1_digest}"))
        .bearer_auth(&a1_access)
        .send()
        .unwrap();
    denied(resp, 401, "UNAUTHORIZED");

    // A pull token cannot push; a project token cannot push either.
    let pull = f.ok(
        Method::POST,
        &format!("/api/v1/projects/{a}/pull-token"),
        &a_token,
        json!({}),
    );
    let pull = pull["token"].as_str().unwrap();
    for secret in [pull, a_token.as_str()] {
        let access = f.access(secret, &[&format!("repository:{a}:pull,push")]);
        let resp = f
            .v2(Method::POST, &format!("{a}/blobs/uploads/"))
            .bearer_auth(&access)
            .send()
            .unwrap();
        let challenge = resp.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(challenge.contains("insufficient_scope"), "{challenge}");
        denied(resp, 401, "UNAUTHORIZED");
        let resp = f
            .v2(Method::GET, &format!("{a}/manifests/{a1}"))
            .bearer_auth(&access)
            .send()
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
    }

    // A token asked for no scope grants nothing; the catalog is the admin's.
    let bare = f.access(&a_token, &[]);
    assert_eq!(
        f.v2(Method::GET, "")
            .bearer_auth(&bare)
            .send()
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    denied(
        f.v2(Method::GET, &format!("{a}/manifests/{a1}"))
            .bearer_auth(&bare)
            .send()
            .unwrap(),
        401,
        "UNAUTHORIZED",
    );
    let catalog = f.access(&a_token, &["registry:catalog:*"]);
    denied(
        f.v2(Method::GET, "_catalog")
            .bearer_auth(&catalog)
            .send()
            .unwrap(),
        401,
        "UNAUTHORIZED",
    );
    let catalog = f.access(&f.admin, &["registry:catalog:*"]);
    assert_eq!(
        f.v2(Method::GET, "_catalog")
            .bearer_auth(&catalog)
            .send()
            .unwrap()
            .status()
            .as_u16(),
        200
    );

    // The API: project tokens manage their own project only, and never projects or tokens.
    assert_eq!(
        f.api(
            Method::POST,
            "/api/v1/projects",
            &a_token,
            json!({ "name": "x" })
        )
        .0,
        403
    );
    assert_eq!(
        f.api(
            Method::GET,
            &format!("/api/v1/projects/{b}"),
            &a_token,
            json!(null)
        )
        .0,
        404
    );
    assert_eq!(
        f.api(
            Method::POST,
            &format!("/api/v1/projects/{b}/builds"),
            &a_token,
            json!({})
        )
        .0,
        404
    );
    assert_eq!(
        f.api(
            Method::POST,
            &format!("/api/v1/projects/{a}/tokens"),
            &a_token,
            json!({ "name": "y" })
        )
        .0,
        403
    );
    assert_eq!(
        f.api(Method::GET, "/api/v1/projects", "nonsense", json!(null))
            .0,
        401
    );
    let (status, body) = f.api(
        Method::POST,
        &format!("/api/v1/projects/{a}/builds"),
        &a_token,
        json!({ "platforms": ["Linux/AMD64"] }),
    );
    assert_eq!(
        (status, body["errors"][0]["code"].as_str()),
        (400, Some("INVALID_REQUEST"))
    );
    let (status, _) = f.api(
        Method::POST,
        &format!("/api/v1/projects/{a}/builds"),
        &a_token,
        json!({ "nonsense": 1 }),
    );
    assert_eq!(status, 400);

    // Expired tokens (the 300 s access token, then the build's lease) are refused.
    let fresh = f.access(&a1_push, &[&format!("repository:{a}:pull")]);
    f.ok(
        Method::POST,
        "/api/v1/admin/clock",
        &f.admin,
        json!({ "advance_secs": 301 }),
    );
    let resp = f
        .v2(Method::GET, &format!("{a}/manifests/{a1}"))
        .bearer_auth(&fresh)
        .send()
        .unwrap();
    assert!(resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("invalid_token"));
    denied(resp, 401, "UNAUTHORIZED");
    assert_eq!(
        f.token(&a1_push, &[]).0,
        200,
        "push token of a saved build within its grace"
    );
    f.ok(
        Method::POST,
        "/api/v1/admin/clock",
        &f.admin,
        json!({ "advance_secs": 4 * 3600 }),
    );
    assert_eq!(
        f.token(&a1_push, &[]).0,
        401,
        "push token of a saved build past its grace"
    );
    assert_eq!(f.token(&b1_push, &[]).0, 401, "push token past its lease");

    // Revoked project tokens stop at once, and so does what they minted.
    let late = f.ok(
        Method::POST,
        &format!("/api/v1/projects/{a}/builds"),
        &a_token,
        json!({}),
    );
    let late_push = late["push_token"].as_str().unwrap();
    assert_eq!(f.token(late_push, &[]).0, 200);
    let (status, _) = f.api(
        Method::DELETE,
        &format!("/api/v1/projects/{a}/tokens/{a_token_id}"),
        &f.admin,
        json!(null),
    );
    assert_eq!(status, 204);
    assert_eq!(f.token(&a_token, &[]).0, 401);
    assert_eq!(f.token(late_push, &[]).0, 401);
}

#[test]
fn no_auth_is_loopback_only() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_depot-registry"))
        .args(["serve", "--no-auth", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("loopback"), "{stderr}");
}

#[test]
fn admin_subcommand_bootstraps_a_project_offline() {
    let dir = tempfile::tempdir().unwrap();
    let admin = |args: &[&str]| -> Value {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_depot-registry"))
            .arg("admin")
            .arg("--data-dir")
            .arg(dir.path())
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("admin prints only JSON on stdout")
    };
    let project = admin(&[
        "create-project",
        "--name",
        "boot",
        "--retention-secs",
        "3600",
    ]);
    let id = project["id"].as_str().unwrap().to_owned();
    assert_eq!(project["retention_secs"], 3600);
    let token = admin(&["create-token", "--project", &id, "--name", "ci"]);
    let token = token["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("depot_pt_"));
    assert_eq!(admin(&["list-projects"])["projects"][0]["id"], json!(id));

    // The server started on that data accepts the token.
    let server = Server::start_authed(dir.path());
    let f = Fixture {
        admin: server.admin_token(),
        server,
        http: Client::new(),
    };
    let build = f.ok(
        Method::POST,
        &format!("/api/v1/projects/{id}/builds"),
        &token,
        json!({}),
    );
    assert_eq!(build["repository"], json!(id));
    let shown = f.ok(
        Method::GET,
        &format!("/api/v1/builds/{}", build["id"].as_str().unwrap()),
        &token,
        json!(null),
    );
    assert_eq!(shown["state"], "building");

    // Offline, while the server runs: the token is listed (without its secret) and revoked,
    // and the server refuses it from then on, saying why.
    let listed = admin(&["list-tokens", "--project", &id]);
    let token_id = listed["tokens"][0]["id"].as_str().unwrap().to_owned();
    assert!(listed["tokens"][0]["token"].is_null(), "{listed}");
    let revoked = admin(&["revoke-token", "--project", &id, "--id", &token_id]);
    assert_eq!(revoked["revoked"], json!(token_id));
    let (status, body) = f.api(
        Method::GET,
        &format!("/api/v1/projects/{id}"),
        &token,
        json!(null),
    );
    assert_eq!(status, 401, "{body}");
    assert!(body.to_string().contains("revoked"), "{body}");
    let again = std::process::Command::new(env!("CARGO_BIN_EXE_depot-registry"))
        .args(["admin", "--data-dir"])
        .arg(dir.path())
        .args(["revoke-token", "--project", &id, "--id", &token_id])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already revoked"));
    // A second project may not take a name in use.
    let dup = std::process::Command::new(env!("CARGO_BIN_EXE_depot-registry"))
        .args(["admin", "--data-dir"])
        .arg(dir.path())
        .args(["create-project", "--name", "boot"])
        .output()
        .unwrap();
    assert!(!dup.status.success());
    assert!(String::from_utf8_lossy(&dup.stderr).contains("exists already"));

    // Deleted offline: its build expires at once, it is gone for the server, its name is free.
    let deleted = admin(&["delete-project", "--project", &id]);
    assert_eq!(deleted["builds_expired"], 1, "{deleted}");
    assert_eq!(deleted["id"], json!(id));
    let (status, _) = f.api(
        Method::GET,
        &format!("/api/v1/projects/{id}"),
        &f.admin,
        json!(null),
    );
    assert_eq!(status, 404);
    let build_id = build["id"].as_str().unwrap();
    let shown = f.ok(
        Method::GET,
        &format!("/api/v1/builds/{build_id}"),
        &f.admin,
        json!(null),
    );
    assert_eq!(shown["expired"], true, "{shown}");
    let reborn = admin(&["create-project", "--name", "boot", "--keep-builds", "3"]);
    assert_ne!(reborn["id"], json!(id));
    assert_eq!(reborn["keep_builds"], 3);
    let gone = std::process::Command::new(env!("CARGO_BIN_EXE_depot-registry"))
        .args(["admin", "--data-dir"])
        .arg(dir.path())
        .args(["delete-project", "--project", &id])
        .output()
        .unwrap();
    assert!(!gone.status.success());
    assert!(String::from_utf8_lossy(&gone.stderr).contains(&format!("no project {id}")));
}

/// The OpenAPI document and the routes agree: every documented operation exists and asks for
/// credentials (401, not 404 or 405), except the two of keyless CI that take none (documented
/// with an empty security requirement), which answer without one.
#[test]
fn openapi_document_matches_the_routes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_authed(dir.path());
    let http = Client::new();
    let doc: Value = http
        .get(format!("{}/api/v1/openapi.json", server.url()))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        let concrete = path
            .replace("{project}", "p")
            .replace("{build}", "b")
            .replace("{token}", "t")
            .replace("{policy}", "tp")
            .replace("{tag}", "latest");
        for method in ["get", "post", "patch", "delete"] {
            let Some(op) = item.get(method) else {
                continue;
            };
            operations += 1;
            let status = http
                .request(
                    method.to_uppercase().parse().unwrap(),
                    format!("{}/api/v1{concrete}", server.url()),
                )
                .send()
                .unwrap()
                .status()
                .as_u16();
            if op["security"] == json!([{}]) {
                assert!(
                    ["oidc_exchange", "oidc_config"].contains(&op["operationId"].as_str().unwrap()),
                    "{op}"
                );
                // No audience configured: the exchange is off and says so; without a body it
                // is a bad request first. Never a 401: it asks for no credential.
                assert!([400, 404].contains(&status), "{method} {path}: {status}");
            } else {
                assert_eq!(status, 401, "{method} {path}");
            }
        }
    }
    assert_eq!(operations, 24);
    let resp = http
        .put(format!("{}/api/v1/projects", server.url()))
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 405);
    denied(resp, 405, "UNSUPPORTED");
}
