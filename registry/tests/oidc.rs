//! Keyless CI against the real binary and a real (local) OIDC issuer: trust policies through
//! the API, the exchange of each provider's ID token, `/token` with the ID token as password,
//! key rotation, and every refusal the issue names, each with the spec's error.

use base64::Engine;
use depot_testkit::oci::{image_manifest, push_blob, put_manifest};
use depot_testkit::oidc::{Issuer, Key};
use depot_testkit::{ApiClient, Server};
use reqwest::blocking::Client;
use reqwest::Method;
use serde_json::{json, Value};

const AUD: &str = "https://registry.depot.test";

struct World {
    issuer: Issuer,
    server: Server,
    admin: ApiClient,
    project: String,
    /// The project's own token: manages its policies.
    owner: ApiClient,
    _dir: tempfile::TempDir,
}

impl World {
    fn new() -> World {
        let issuer = Issuer::start();
        let dir = tempfile::tempdir().unwrap();
        let mut flags: Vec<String> = issuer.registry_flags();
        flags.extend(["--oidc-audience".into(), AUD.into(), "--test-clock".into()]);
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        let server = Server::start_with(dir.path(), &flags);
        let admin = ApiClient::new(&server.url(), &server.admin_token());
        let project = admin.create_project("app").id;
        let secret = admin.create_token(&project, "owner").token.unwrap();
        let owner = ApiClient::new(&server.url(), &secret);
        World {
            issuer,
            server,
            admin,
            project,
            owner,
            _dir: dir,
        }
    }

    fn policies(&self) -> String {
        format!("/projects/{}/trust-policies", self.project)
    }

    /// Creates a policy (as the project token); its id.
    fn trust(&self, body: Value) -> String {
        let (status, v) = self.owner.call(Method::POST, &self.policies(), Some(&body));
        assert_eq!(status, 201, "{v}");
        v["id"].as_str().unwrap().to_owned()
    }

    /// `POST /oidc/token`: status and answer.
    fn exchange(&self, token: &str) -> (u16, Value) {
        self.exchange_for(&self.project, token)
    }

    fn exchange_for(&self, project: &str, token: &str) -> (u16, Value) {
        let anonymous = ApiClient::new(&self.server.url(), "unused");
        let resp = anonymous
            .http
            .post(format!("{}/api/v1/oidc/token", self.server.url()))
            .json(&json!({"project": project, "token": token}))
            .send()
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().unwrap_or(Value::Null))
    }

    /// An exchange that must succeed: the credential's secret and access.
    fn credential(&self, token: &str) -> (String, String) {
        let (status, v) = self.exchange(token);
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["username"], "x-token");
        (
            v["token"].as_str().unwrap().to_owned(),
            v["access"].as_str().unwrap().to_owned(),
        )
    }

    /// An exchange refused with `status` and error `code`; the message.
    fn refused(&self, token: &str, status: u16, code: &str) -> String {
        let (got, v) = self.exchange(token);
        assert_eq!(
            (got, v["errors"][0]["code"].as_str()),
            (status, Some(code)),
            "{v}"
        );
        v["errors"][0]["message"].as_str().unwrap().to_owned()
    }

    /// `/token` with `secret` as the Basic password: status and body.
    fn registry_token(&self, secret: &str, scopes: &[&str]) -> (u16, Value) {
        let mut query = vec![("service", "depot-registry")];
        query.extend(scopes.iter().map(|s| ("scope", *s)));
        let resp = Client::new()
            .get(format!("{}/token", self.server.url()))
            .query(&query)
            .basic_auth("x-token", Some(secret))
            .send()
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().unwrap_or(Value::Null))
    }

    /// The actions the registry grants `secret` on the project's repository.
    fn granted(&self, secret: &str, actions: &str) -> Vec<String> {
        let scope = format!("repository:{}:{actions}", self.project);
        let (status, v) = self.registry_token(secret, &[&scope]);
        assert_eq!(status, 200, "{v}");
        let claims = depot_testkit::oidc::claims_of(v["token"].as_str().unwrap());
        claims["access"]
            .as_array()
            .and_then(|a| a.first())
            .and_then(|r| r["actions"].as_array())
            .map(|a| a.iter().map(|x| x.as_str().unwrap().to_owned()).collect())
            .unwrap_or_default()
    }

    fn github_policy(&self, access: &str, refs: &[&str]) -> String {
        self.trust(
            json!({"provider": "github", "owner": "acme", "repository": "app",
            "refs": refs, "environments": [], "workflows": [], "access": access}),
        )
    }
}

/// Pushes a small image to `tag` with a build's push token.
fn push_image(server: &Server, project: &str, tag: &str, push_token: &str) -> u16 {
    let http = Client::new();
    let scope = format!("repository:{project}:pull,push");
    let access = depot_testkit::api::access_token(&http, &server.url(), push_token, &scope);
    let layer = depot_testkit::random_bytes(1024);
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    push_blob(&http, &server.url(), project, Some(&access), &layer);
    push_blob(&http, &server.url(), project, Some(&access), config);
    let manifest = image_manifest(config, &[&layer]);
    put_manifest(&http, &server.url(), project, tag, Some(&access), &manifest)
        .status()
        .as_u16()
}

#[test]
fn a_github_job_saves_and_pulls_a_build_without_any_stored_secret() {
    let w = World::new();
    let policy = w.github_policy("build", &["refs/heads/main", "refs/tags/v*"]);
    let (status, list) = w.owner.call(Method::GET, &w.policies(), None::<&()>);
    assert_eq!(status, 200);
    assert_eq!(list["policies"][0]["id"], policy.as_str());
    assert_eq!(
        list["policies"][0]["refs"],
        json!(["refs/heads/main", "refs/tags/v*"])
    );

    let (secret, access) = w.credential(&w.issuer.github(AUD, json!({})));
    assert_eq!(access, "build");
    let job = ApiClient::new(&w.server.url(), &secret);
    let build: Value = job.ok(
        Method::POST,
        &format!("/projects/{}/builds", w.project),
        Some(&json!({"save_tags": ["main"]})),
    );
    let id = build["id"].as_str().unwrap();
    let push_token = build["push_token"].as_str().unwrap();
    assert_eq!(push_image(&w.server, &w.project, id, push_token), 201);
    let _: Value = job.ok(
        Method::POST,
        &format!("/builds/{id}/finalize"),
        Some(&json!({})),
    );
    // It pulls with the same credential, and mints a build pull token for a daemon.
    assert_eq!(w.granted(&secret, "pull,push"), ["pull"]);
    let pull: Value = job.ok(
        Method::POST,
        &format!("/builds/{id}/pull-token"),
        Some(&json!({})),
    );
    assert!(pull["token"].is_string());
    // What it may not do: extend or delete builds, or change who is trusted.
    let (status, _) = job.call(
        Method::POST,
        &format!("/builds/{id}/extend"),
        Some(&json!({"add_secs": 60})),
    );
    assert_eq!(status, 403);
    let (status, _) = job.call(Method::DELETE, &format!("/builds/{id}"), None::<&()>);
    assert_eq!(status, 403);
    let (status, v) = job.call(
        Method::POST,
        &w.policies(),
        Some(&json!({"provider": "github", "owner": "mallory", "repository": "x", "access": "build"})),
    );
    assert_eq!(
        (status, v["errors"][0]["code"].as_str()),
        (403, Some("DENIED")),
        "{v}"
    );
    // A tag job is admitted by the pattern; a job of another repository, or of a ref the
    // policy does not name, is not.
    w.credential(
        &w.issuer
            .github(AUD, json!({"ref": "refs/tags/v1.2.0", "ref_type": "tag"})),
    );
    let message = w.refused(
        &w.issuer.github(
            AUD,
            json!({"repository": "acme/other", "sub": "repo:acme/other:ref:refs/heads/main"}),
        ),
        403,
        "DENIED",
    );
    assert!(message.contains("no trust policy"), "{message}");
    // The caller learns nothing of the policy's contents.
    assert!(!message.contains("refs/tags"), "{message}");
    w.refused(
        &w.issuer.github(AUD, json!({"ref": "refs/heads/dev"})),
        403,
        "DENIED",
    );
    // A policy narrowed to an environment and a workflow admits only jobs in both.
    w.trust(
        json!({"provider": "github", "owner": "acme", "repository": "deploy",
        "environments": ["production"], "workflows": [".github/workflows/release.yml"],
        "access": "build"}),
    );
    let deploy = |over: Value| {
        let mut claims = json!({"repository": "acme/deploy", "sub": "repo:acme/deploy:environment:production",
            "workflow": "Release",
            "workflow_ref": "acme/deploy/.github/workflows/release.yml@refs/heads/main"});
        for (k, v) in over.as_object().unwrap() {
            claims[k] = v.clone();
        }
        w.issuer.github(AUD, claims)
    };
    w.refused(&deploy(json!({})), 403, "DENIED");
    w.refused(&deploy(json!({"environment": "staging"})), 403, "DENIED");
    w.refused(
        &deploy(json!({"environment": "production",
            "workflow_ref": "acme/deploy/.github/workflows/ci.yml@refs/heads/main"})),
        403,
        "DENIED",
    );
    assert_eq!(
        w.credential(&deploy(json!({"environment": "production"})))
            .1,
        "build"
    );
    // Another project trusts nobody.
    let other = w.admin.create_project("other").id;
    let (status, _) = w.exchange_for(&other, &w.issuer.github(AUD, json!({})));
    assert_eq!(status, 403);
}

#[test]
fn pull_requests_never_build_and_pull_only_credentials_never_push() {
    let w = World::new();
    w.github_policy("build", &[]);
    let fork_pr = json!({"event_name": "pull_request", "ref": "refs/pull/7/merge",
        "head_ref": "feature", "base_ref": "main", "sub": "repo:acme/app:pull_request"});
    w.refused(&w.issuer.github(AUD, fork_pr.clone()), 403, "DENIED");
    // pull_request_target runs with the base branch's ref, and may still run a fork's code.
    w.refused(
        &w.issuer
            .github(AUD, json!({"event_name": "pull_request_target"})),
        403,
        "DENIED",
    );
    // A pull policy lets pull-request jobs pull.
    w.github_policy("pull", &[]);
    let (secret, access) = w.credential(&w.issuer.github(AUD, fork_pr));
    assert_eq!(access, "pull");
    assert_eq!(w.granted(&secret, "pull,push"), ["pull"]);
    let job = ApiClient::new(&w.server.url(), &secret);
    let (status, v) = job.call(
        Method::POST,
        &format!("/projects/{}/builds", w.project),
        Some(&json!({})),
    );
    assert_eq!(
        (status, v["errors"][0]["code"].as_str()),
        (403, Some("DENIED")),
        "{v}"
    );
    // Pushing with its access token: the token does not grant push (401, insufficient_scope).
    let scope = format!("repository:{}:pull,push", w.project);
    let access = depot_testkit::api::access_token(&Client::new(), &w.server.url(), &secret, &scope);
    let resp = depot_testkit::oci::post_blob(
        &Client::new(),
        &w.server.url(),
        &w.project,
        Some(&access),
        b"x",
    );
    assert_eq!(resp.status(), 401);
    let challenge = resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(challenge.contains("insufficient_scope"), "{challenge}");
    // And a push job of main still builds (the build policy is the better one).
    assert_eq!(w.credential(&w.issuer.github(AUD, json!({}))).1, "build");
}

#[test]
fn tokens_that_are_not_what_they_claim_are_refused() {
    let w = World::new();
    w.github_policy("build", &[]);
    let gh = |over: Value| w.issuer.github(AUD, over);
    let m = w.refused(
        &w.issuer.github("https://someone-else.test", json!({})),
        401,
        "UNAUTHORIZED",
    );
    assert!(m.contains("audience"), "{m}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let m = w.refused(
        &gh(json!({"exp": now - 120, "iat": now - 500, "nbf": now - 500})),
        401,
        "UNAUTHORIZED",
    );
    assert!(m.contains("expired"), "{m}");
    let m = w.refused(&gh(json!({"nbf": now + 600})), 401, "UNAUTHORIZED");
    assert!(m.contains("not valid yet"), "{m}");
    let m = w.refused(&gh(json!({"iat": now + 600})), 401, "UNAUTHORIZED");
    assert!(m.contains("not valid yet"), "{m}");
    let m = w.refused(&gh(json!({"exp": null})), 401, "UNAUTHORIZED");
    assert!(m.contains("exp"), "{m}");
    // An issuer the registry was not told to trust, even one serving valid keys.
    let stranger = format!("{}/elsewhere", w.issuer.base);
    let m = w.refused(&gh(json!({"iss": stranger})), 401, "UNAUTHORIZED");
    assert!(m.contains("not one this registry trusts"), "{m}");
    // A key the issuer does not publish.
    let rogue = Key::generate("key-1");
    let claims = depot_testkit::oidc::claims_of(&gh(json!({})));
    let m = w.refused(
        &rogue.sign(&Value::Object(claims.clone())),
        401,
        "UNAUTHORIZED",
    );
    assert!(m.contains("signature"), "{m}");
    let unknown = Key::generate("key-unknown");
    let m = w.refused(
        &unknown.sign(&Value::Object(claims.clone())),
        401,
        "UNAUTHORIZED",
    );
    assert!(m.contains("no key"), "{m}");
    // alg none, and HS256 with the public key's bytes as the secret (the classic confusion).
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let payload = b64.encode(serde_json::to_vec(&claims).unwrap());
    let none = format!(
        "{}.{payload}.",
        b64.encode(br#"{"alg":"none","typ":"JWT","kid":"key-1"}"#)
    );
    let m = w.refused(&none, 401, "UNAUTHORIZED");
    assert!(m.contains("alg none"), "{m}");
    let hs = jsonwebtoken::encode(
        &jsonwebtoken::Header {
            kid: Some("key-1".into()),
            ..jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256)
        },
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(b"key-1"),
    )
    .unwrap();
    let m = w.refused(&hs, 401, "UNAUTHORIZED");
    assert!(m.contains("HS256"), "{m}");
    w.refused("not-a-jwt", 401, "UNAUTHORIZED");
    // The ID token itself is no credential for the API.
    let (status, _) =
        ApiClient::new(&w.server.url(), &gh(json!({}))).call(Method::GET, "/projects", None::<&()>);
    assert_eq!(status, 401);
}

#[test]
fn deleting_a_policy_ends_what_it_issued() {
    let w = World::new();
    let policy = w.github_policy("build", &[]);
    let id_token = w.issuer.github(AUD, json!({}));
    let (secret, _) = w.credential(&id_token);
    let job = ApiClient::new(&w.server.url(), &secret);
    let build: Value = job.ok(
        Method::POST,
        &format!("/projects/{}/builds", w.project),
        Some(&json!({})),
    );
    let push_token = build["push_token"].as_str().unwrap();
    // A credential of another project's token cannot delete it; the owner can, once.
    let other = w.admin.create_project("other").id;
    let stranger = ApiClient::new(
        &w.server.url(),
        &w.admin.create_token(&other, "t").token.unwrap(),
    );
    let path = format!("{}/{policy}", w.policies());
    assert_eq!(stranger.call(Method::DELETE, &path, None::<&()>).0, 404);
    assert_eq!(w.owner.call(Method::DELETE, &path, None::<&()>).0, 204);
    assert_eq!(w.owner.call(Method::DELETE, &path, None::<&()>).0, 404);
    // No new exchange, and nothing it gave works any more: the credential, its push token.
    w.refused(&id_token, 403, "DENIED");
    let (status, v) = w.registry_token(&secret, &[]);
    assert_eq!(status, 401, "{v}");
    let (status, _) = w.registry_token(push_token, &[]);
    assert_eq!(status, 401);
    let (status, _) = job.call(Method::GET, "/projects", None::<&()>);
    assert_eq!(status, 401);
}

#[test]
fn the_id_token_works_as_a_password_at_the_token_endpoint() {
    let w = World::new();
    w.github_policy("pull", &[]);
    let id_token = w.issuer.github(AUD, json!({}));
    // `docker login` asks with no scope.
    let (status, v) = w.registry_token(&id_token, &[]);
    assert_eq!(status, 200, "{v}");
    assert_eq!(w.granted(&id_token, "pull,push"), ["pull"]);
    // Another project's scope grants nothing of it (and does not fail the request).
    let other = w.admin.create_project("other").id;
    let (status, _) = w.registry_token(&id_token, &[&format!("repository:{other}:pull")]);
    assert_eq!(status, 403);
    let (status, _) = w.registry_token(&w.issuer.github("https://x.test", json!({})), &[]);
    assert_eq!(status, 401);
    // A real client logged in with the job's token reads an image of the project.
    let build = w.admin.create_build(&w.project, &Default::default());
    let push_token = build.push_token.unwrap();
    assert_eq!(
        push_image(&w.server, &w.project, &build.id, &push_token),
        201
    );
    let creds = format!("x-token:{id_token}");
    let image = format!("docker://{}/{}:{}", w.server.host(), w.project, build.id);
    let raw = depot_testkit::tools::skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        "--creds",
        &creds,
        &image,
    ]);
    assert!(raw.contains("schemaVersion"), "{raw}");
}

#[test]
fn keys_are_fetched_again_when_the_issuer_rotates_and_not_for_every_unknown_kid() {
    let w = World::new();
    w.github_policy("build", &[]);
    w.credential(&w.issuer.github(AUD, json!({})));
    w.credential(&w.issuer.github(AUD, json!({})));
    assert_eq!(w.issuer.jwks_fetches(), 1, "keys are cached");
    // Rotated at once (no overlap): a token of the new key right after the first fetch is
    // refused until the refetch interval passed, then the keys are fetched again.
    std::thread::sleep(std::time::Duration::from_millis(5200));
    w.issuer.rotate(false);
    w.credential(&w.issuer.github(AUD, json!({})));
    assert_eq!(w.issuer.jwks_fetches(), 2);
    // Tokens naming made-up keys do not make the registry ask the issuer each time.
    let claims = Value::Object(depot_testkit::oidc::claims_of(
        &w.issuer.github(AUD, json!({})),
    ));
    for i in 0..5 {
        let made_up = Key::generate(&format!("made-up-{i}"));
        w.refused(&made_up.sign(&claims), 401, "UNAUTHORIZED");
    }
    assert_eq!(w.issuer.jwks_fetches(), 2);
}

#[test]
fn gitlab_circleci_and_buildkite_jobs_are_admitted_by_their_policies() {
    let w = World::new();
    w.trust(
        json!({"provider": "gitlab", "namespace": "acme", "project": "app",
        "refs": ["refs/heads/main"], "protected_only": true, "access": "build"}),
    );
    assert_eq!(w.credential(&w.issuer.gitlab(AUD, json!({}))).1, "build");
    w.refused(
        &w.issuer.gitlab(AUD, json!({"ref_protected": "false"})),
        403,
        "DENIED",
    );
    w.refused(
        &w.issuer.gitlab(AUD, json!({"project_path": "acme/other"})),
        403,
        "DENIED",
    );
    w.refused(
        &w.issuer
            .gitlab(AUD, json!({"pipeline_source": "merge_request_event"})),
        403,
        "DENIED",
    );

    w.trust(
        json!({"provider": "circleci", "organization_id": "org-5d1c",
        "project_id": "proj-7f3e", "access": "build"}),
    );
    assert_eq!(
        w.credential(&w.issuer.circleci("org-5d1c", AUD, json!({})))
            .1,
        "build"
    );
    w.refused(
        &w.issuer.circleci("org-0000", AUD, json!({})),
        403,
        "DENIED",
    );
    w.refused(
        &w.issuer.circleci(
            "org-5d1c",
            AUD,
            json!({"oidc.circleci.com/project-id": "proj-other"}),
        ),
        403,
        "DENIED",
    );

    w.trust(
        json!({"provider": "buildkite", "organization": "acme", "pipeline": "app",
        "branches": ["main", "release/*"], "access": "build"}),
    );
    assert_eq!(w.credential(&w.issuer.buildkite(AUD, json!({}))).1, "build");
    w.credential(
        &w.issuer
            .buildkite(AUD, json!({"build_branch": "release/1.2"})),
    );
    w.refused(
        &w.issuer.buildkite(AUD, json!({"build_branch": "dev"})),
        403,
        "DENIED",
    );
    w.refused(
        &w.issuer.buildkite(AUD, json!({"pipeline_slug": "other"})),
        403,
        "DENIED",
    );
}

#[test]
fn policies_are_checked_and_kept_to_their_project() {
    let w = World::new();
    for (body, fragment) in [
        (
            json!({"provider": "github", "owner": "acme", "repository": "app"}),
            "access is required",
        ),
        (
            json!({"provider": "github", "owner": "acme", "access": "build"}),
            "repository is required",
        ),
        (
            json!({"provider": "jenkins", "access": "build"}),
            "invalid JSON",
        ),
        (
            json!({"provider": "gitlab", "namespace": "acme", "project": "app",
            "branches": ["main"], "access": "build"}),
            "branches is not a field of gitlab",
        ),
        (
            json!({"provider": "github", "owner": "acme", "repository": "app",
            "access": "admin"}),
            "invalid JSON",
        ),
        (
            json!({"provider": "github", "owner": "acme", "repository": "app",
            "access": "build", "ownr": "x"}),
            "invalid JSON",
        ),
    ] {
        let (status, v) = w.owner.call(Method::POST, &w.policies(), Some(&body));
        assert_eq!(
            (status, v["errors"][0]["code"].as_str()),
            (400, Some("INVALID_REQUEST")),
            "{body}: {v}"
        );
        let message = v["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains(fragment), "{body}: {message}");
    }
    // Another project's token sees nothing of this project's policies.
    let other = w.admin.create_project("other").id;
    let stranger = ApiClient::new(
        &w.server.url(),
        &w.admin.create_token(&other, "t").token.unwrap(),
    );
    assert_eq!(
        stranger.call(Method::GET, &w.policies(), None::<&()>).0,
        404
    );
    let id = w.github_policy("pull", &[]);
    let (status, v) = w.admin.call(Method::GET, &w.policies(), None::<&()>);
    assert_eq!(
        (status, v["policies"][0]["id"].as_str()),
        (200, Some(id.as_str()))
    );
    // The settings a job needs before asking its provider for a token.
    let (status, v) = w.owner.call(Method::GET, "/oidc", None::<&()>);
    assert_eq!((status, v["audience"].as_str()), (200, Some(AUD)), "{v}");
    assert_eq!(v["issuers"][0]["issuer"], w.issuer.issuer("github"));
}

#[test]
fn the_audience_defaults_to_the_public_url_and_is_never_a_host_header() {
    let issuer = Issuer::start();
    let dir = tempfile::tempdir().unwrap();
    let mut flags = issuer.registry_flags();
    flags.extend(["--public-url".into(), "https://depot.example.test/".into()]);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let server = Server::start_with(dir.path(), &flags);
    let api = ApiClient::new(&server.url(), &server.admin_token());
    let (_, v) = api.call(Method::GET, "/oidc", None::<&()>);
    assert_eq!(v["audience"], "https://depot.example.test");
    // Without --public-url or --oidc-audience the exchange is off, with the reason.
    let dir = tempfile::tempdir().unwrap();
    let flags = issuer.registry_flags();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let server = Server::start_with(dir.path(), &flags);
    let resp = Client::new()
        .post(format!("{}/api/v1/oidc/token", server.url()))
        .json(&json!({"project": "p", "token": issuer.github(&server.url(), json!({}))}))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert!(resp
        .text()
        .unwrap()
        .contains("--public-url or --oidc-audience"));
}

#[test]
fn an_issuer_that_does_not_answer_is_a_503_to_retry_and_is_not_asked_by_every_request() {
    let issuer = Issuer::start();
    // The "GitLab" this registry trusts serves no discovery document (404 for everything).
    let empty = tempfile::tempdir().unwrap();
    let down = depot_testkit::files::FileServer::start(empty.path().to_owned());
    let dead = format!("{}/gitlab", down.base);
    let dir = tempfile::tempdir().unwrap();
    let gitlab = format!("gitlab={dead}");
    let server = Server::start_with(
        dir.path(),
        &["--oidc-issuer", &gitlab, "--oidc-audience", AUD],
    );
    let token = issuer.gitlab(AUD, json!({"iss": dead}));
    for _ in 0..3 {
        let started = std::time::Instant::now();
        let resp = Client::new()
            .post(format!("{}/api/v1/oidc/token", server.url()))
            .json(&json!({"project": "p", "token": token}))
            .send()
            .unwrap();
        assert_eq!(resp.status(), 503);
        assert!(resp.headers().contains_key("retry-after"));
        let body = resp.text().unwrap();
        assert!(body.contains("cannot be fetched"), "{body}");
        assert!(started.elapsed() < std::time::Duration::from_secs(6));
    }
    assert_eq!(
        down.requests(),
        1,
        "one try per refetch interval, not one per request"
    );
}

#[test]
fn the_first_requests_for_an_issuer_wait_for_its_keys_together() {
    // Sixteen exchanges at once on a registry that has never fetched the issuer's keys: one
    // fetch, and every one of them admitted (found by measuring: a request arriving while the
    // first fetch ran was told the issuer did not answer).
    let w = World::new();
    w.github_policy("build", &[]);
    let tokens: Vec<String> = (0..16).map(|_| w.issuer.github(AUD, json!({}))).collect();
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = tokens.iter().map(|t| s.spawn(|| w.exchange(t).0)).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(w.issuer.jwks_fetches(), 1);
}
