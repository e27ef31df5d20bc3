//! A local OIDC issuer, standing in for the CI providers' own: a real HTTP server that serves
//! a discovery document and a JWKS per provider (GitHub Actions, GitLab, CircleCI per
//! organisation, Buildkite), rotates its keys on demand, signs ID tokens with the claims each
//! provider really sends, and answers an Actions-style ID-token request
//! (`ACTIONS_ID_TOKEN_REQUEST_URL` + `ACTIONS_ID_TOKEN_REQUEST_TOKEN`).
//!
//! Keys are RSA (RS256, what all four providers sign with), made by `openssl genpkey`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Map, Value};

/// The secret the Actions-style token request endpoint wants as Bearer.
pub const REQUEST_TOKEN: &str = "actions-request-token-for-tests";

/// An RSA signing key and its public JWK.
#[derive(Clone)]
pub struct Key {
    pub kid: String,
    encoding: EncodingKey,
    jwk: Jwk,
}

impl Key {
    /// A fresh 2048-bit RSA key.
    pub fn generate(kid: &str) -> Key {
        let out = std::process::Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
            ])
            .output()
            .expect("openssl runs (apt install openssl)");
        assert!(out.status.success(), "openssl genpkey failed");
        let encoding = EncodingKey::from_rsa_pem(&out.stdout).expect("an RSA PEM");
        let mut jwk = Jwk::from_encoding_key(&encoding, Algorithm::RS256).expect("a JWK");
        jwk.common.key_id = Some(kid.to_owned());
        jwk.common.key_algorithm = Some(KeyAlgorithm::RS256);
        Key {
            kid: kid.to_owned(),
            encoding,
            jwk,
        }
    }

    /// Signs `claims` with this key (RS256, `kid` set).
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }
}

struct State {
    /// What the JWKS serves.
    published: Vec<Key>,
    /// What tokens are signed with.
    signing: Key,
    /// The audience the Actions-style request endpoint was last asked for.
    last_audience: Option<String>,
    /// What the Actions-style endpoint's tokens say beyond a push to main (`Null`: nothing).
    actions_claims: Value,
}

/// The issuer server.
pub struct Issuer {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    state: Arc<Mutex<State>>,
    jwks_fetches: Arc<AtomicUsize>,
    generation: AtomicUsize,
    _server: crate::in_process::Background,
}

impl Issuer {
    /// Starts the issuer on a free port.
    pub fn start() -> Issuer {
        use axum::extract::{Path, Query, State as S};
        use axum::http::{HeaderMap, StatusCode};
        use axum::routing::get;
        use axum::{Json, Router};

        let key = Key::generate("key-1");
        let state = Arc::new(Mutex::new(State {
            published: vec![key.clone()],
            signing: key,
            last_audience: None,
            actions_claims: Value::Null,
        }));
        let jwks_fetches = Arc::new(AtomicUsize::new(0));

        #[derive(Clone)]
        struct App {
            base: String,
            state: Arc<Mutex<State>>,
            fetches: Arc<AtomicUsize>,
        }
        // `/{provider}/...`, and CircleCI's `/circleci/org/{org}/...`: every issuer shares
        // the keys, as one test's providers need no more.
        async fn discovery(S(app): S<App>, Path(rest): Path<String>) -> Json<Value> {
            let prefix = rest.trim_end_matches("/.well-known/openid-configuration");
            let issuer = format!("{}/{prefix}", app.base);
            Json(json!({
                "issuer": issuer,
                "jwks_uri": format!("{issuer}/jwks"),
                "response_types_supported": ["id_token"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
            }))
        }
        async fn route(S(app): S<App>, Path(rest): Path<String>) -> (StatusCode, Json<Value>) {
            if rest.ends_with("/.well-known/openid-configuration") {
                return (StatusCode::OK, discovery(S(app), Path(rest)).await);
            }
            if rest.ends_with("/jwks") {
                app.fetches.fetch_add(1, Ordering::SeqCst);
                let keys = app.state.lock().unwrap().published.clone();
                let set = JwkSet {
                    keys: keys.into_iter().map(|k| k.jwk).collect(),
                };
                return (StatusCode::OK, Json(serde_json::to_value(set).unwrap()));
            }
            (StatusCode::NOT_FOUND, Json(json!({})))
        }
        async fn actions_request(
            S(app): S<App>,
            headers: HeaderMap,
            Query(q): Query<HashMap<String, String>>,
        ) -> (StatusCode, Json<Value>) {
            let auth = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            if auth != format!("Bearer {REQUEST_TOKEN}") {
                return (
                    StatusCode::UNAUTHORIZED,
                    Json(json!({"message": "bad request token"})),
                );
            }
            let audience = q.get("audience").cloned().unwrap_or_default();
            let mut state = app.state.lock().unwrap();
            state.last_audience = Some(audience.clone());
            let claims = github_claims(
                &format!("{}/github", app.base),
                &audience,
                &state.actions_claims,
            );
            let value = state.signing.sign(&claims);
            (StatusCode::OK, Json(json!({"count": 1, "value": value})))
        }
        let server = crate::in_process::Background::start(|host| {
            let app = App {
                base: format!("http://{host}"),
                state: state.clone(),
                fetches: jwks_fetches.clone(),
            };
            Router::new()
                .route("/actions/token", get(actions_request))
                .route("/{*rest}", get(route))
                .with_state(app)
        });
        Issuer {
            base: server.base(),
            state,
            jwks_fetches,
            generation: AtomicUsize::new(1),
            _server: server,
        }
    }

    /// The issuer URL of `provider` (`github`, `gitlab`, `buildkite`; CircleCI's prefix is
    /// `circleci/org`).
    pub fn issuer(&self, provider: &str) -> String {
        match provider {
            "circleci" => format!("{}/circleci/org", self.base),
            p => format!("{}/{p}", self.base),
        }
    }

    /// The registry flags that trust this issuer for every provider.
    pub fn registry_flags(&self) -> Vec<String> {
        ["github", "gitlab", "circleci", "buildkite"]
            .iter()
            .flat_map(|p| {
                [
                    "--oidc-issuer".to_owned(),
                    format!("{p}={}", self.issuer(p)),
                ]
            })
            .collect()
    }

    /// What the job environment of a GitHub Actions runner holds to request a token here.
    pub fn actions_request_url(&self) -> String {
        // The runner's URL already carries a query (`?api-version=2.0`); clients append
        // `&audience=`.
        format!("{}/actions/token?api-version=2.0", self.base)
    }

    /// The audience the Actions-style endpoint was last asked for.
    pub fn last_requested_audience(&self) -> Option<String> {
        self.state.lock().unwrap().last_audience.clone()
    }

    /// Makes the Actions-style endpoint's tokens say `overrides` (a pull request, another ref).
    pub fn set_actions_claims(&self, overrides: Value) {
        self.state.lock().unwrap().actions_claims = overrides;
    }

    /// How often a JWKS was fetched.
    pub fn jwks_fetches(&self) -> usize {
        self.jwks_fetches.load(Ordering::SeqCst)
    }

    /// Publishes a new key and signs with it from now on; the old one stays published when
    /// `keep_old`.
    pub fn rotate(&self, keep_old: bool) -> String {
        let n = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        let key = Key::generate(&format!("key-{n}"));
        let mut state = self.state.lock().unwrap();
        if !keep_old {
            state.published.clear();
        }
        state.published.push(key.clone());
        state.signing = key.clone();
        key.kid
    }

    /// Signs `claims` with the current key.
    pub fn sign(&self, claims: &Value) -> String {
        self.state.lock().unwrap().signing.sign(claims)
    }

    /// A GitHub Actions ID token for `audience`, its claims overridden by `overrides` (an
    /// object; `null` removes a claim).
    pub fn github(&self, audience: &str, overrides: Value) -> String {
        self.sign(&github_claims(&self.issuer("github"), audience, &overrides))
    }

    pub fn gitlab(&self, audience: &str, overrides: Value) -> String {
        let now = now();
        let claims = merged(
            json!({
                "iss": self.issuer("gitlab"), "aud": audience,
                "sub": "project_path:acme/app:ref_type:branch:ref:main",
                "namespace_id": "72", "namespace_path": "acme", "project_id": "3412",
                "project_path": "acme/app", "user_id": "17", "user_login": "alice",
                "user_email": "alice@acme.test", "user_access_level": "developer",
                "pipeline_id": "9001", "pipeline_source": "push", "job_id": "4242",
                "ref": "main", "ref_type": "branch", "ref_path": "refs/heads/main",
                "ref_protected": "true", "runner_id": 5, "runner_environment": "gitlab-hosted",
                "sha": "5e3a4f0c9b1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f", "project_visibility": "private",
                "ci_config_ref_uri": "gitlab.com/acme/app//.gitlab-ci.yml@refs/heads/main",
                "jti": format!("gl-{now}"), "iat": now, "nbf": now - 5, "exp": now + 300,
            }),
            &overrides,
        );
        self.sign(&claims)
    }

    pub fn circleci(&self, org: &str, audience: &str, overrides: Value) -> String {
        let now = now();
        let claims = merged(
            json!({
                "iss": format!("{}/{org}", self.issuer("circleci")), "aud": audience,
                "sub": format!("org/{org}/project/proj-7f3e/user/user-11aa"),
                "oidc.circleci.com/project-id": "proj-7f3e",
                "oidc.circleci.com/context-ids": [],
                "oidc.circleci.com/vcs-origin": "github.com/acme/app",
                "oidc.circleci.com/vcs-ref": "refs/heads/main",
                "oidc.circleci.com/ssh-rerun": false,
                "iat": now, "exp": now + 3600,
            }),
            &overrides,
        );
        self.sign(&claims)
    }

    pub fn buildkite(&self, audience: &str, overrides: Value) -> String {
        let now = now();
        let claims = merged(
            json!({
                "iss": self.issuer("buildkite"), "aud": audience,
                "sub": "organization:acme:pipeline:app:ref:refs/heads/main:commit:5e3a4f0c:step:build",
                "organization_slug": "acme", "pipeline_slug": "app", "build_number": 42,
                "build_branch": "main", "build_tag": null, "build_commit": "5e3a4f0c",
                "build_source": "webhook", "step_key": "build",
                "job_id": "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
                "agent_id": "0190a1b2-0000-7e5f-8a9b-0c1d2e3f4a5b",
                "runner_environment": "buildkite-hosted",
                "iat": now, "nbf": now, "exp": now + 300,
            }),
            &overrides,
        );
        self.sign(&claims)
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// `base` with `overrides`' entries in place (`null` removes one).
fn merged(mut base: Value, overrides: &Value) -> Value {
    if let (Some(map), Some(over)) = (base.as_object_mut(), overrides.as_object()) {
        for (k, v) in over {
            if v.is_null() {
                map.remove(k);
            } else {
                map.insert(k.clone(), v.clone());
            }
        }
    }
    base
}

/// The claims GitHub Actions puts in a push job's token on `main` of `acme/app`.
fn github_claims(issuer: &str, audience: &str, overrides: &Value) -> Value {
    let now = now();
    merged(
        json!({
            "iss": issuer, "aud": audience,
            "sub": "repo:acme/app:ref:refs/heads/main",
            "jti": format!("gh-{now}-{}", rand::random::<u32>()),
            "ref": "refs/heads/main", "ref_type": "branch", "ref_protected": "true",
            "sha": "5e3a4f0c9b1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f",
            "repository": "acme/app", "repository_id": "123456789",
            "repository_owner": "acme", "repository_owner_id": "987654",
            "repository_visibility": "private",
            "run_id": "1111111111", "run_number": "42", "run_attempt": "1",
            "runner_environment": "github-hosted",
            "actor": "alice", "actor_id": "55555",
            "workflow": "CI", "event_name": "push",
            "head_ref": "", "base_ref": "",
            "workflow_ref": "acme/app/.github/workflows/ci.yml@refs/heads/main",
            "workflow_sha": "5e3a4f0c9b1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f",
            "job_workflow_ref": "acme/app/.github/workflows/ci.yml@refs/heads/main",
            "job_workflow_sha": "5e3a4f0c9b1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f",
            "iat": now, "nbf": now - 5, "exp": now + 300,
        }),
        overrides,
    )
}

/// Claims as a map, for tests that build tokens by hand.
pub fn claims_of(token: &str) -> Map<String, Value> {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}
