//! The control plane (`/api/v1`) and `/token`, from a test: typed on the wire contract
//! (`depot-api-types`), so a test reads what a client reads, plus the raw call for tests of
//! refusals and envelopes.

use depot_api_types as api;
use reqwest::blocking::Client;
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

/// One registry's control plane, as one credential.
#[derive(Clone)]
pub struct ApiClient {
    pub http: Client,
    pub base: String,
    pub secret: String,
}

impl ApiClient {
    /// `base`: the registry's URL (`http://127.0.0.1:PORT`); `secret`: a Bearer credential.
    pub fn new(base: &str, secret: &str) -> ApiClient {
        ApiClient {
            http: Client::new(),
            base: base.to_owned(),
            secret: secret.to_owned(),
        }
    }

    /// `method /api/v1{path}`: the status and the JSON body (`Null` when there is none).
    pub fn call(&self, method: Method, path: &str, body: Option<&impl Serialize>) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}/api/v1{path}", self.base))
            .bearer_auth(&self.secret);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// A call that must succeed, its answer read as `T`.
    pub fn ok<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> T {
        let (status, v) = self.call(method, path, body);
        assert!((200..300).contains(&status), "{path}: {status} {v}");
        serde_json::from_value(v.clone())
            .unwrap_or_else(|e| panic!("{path}: the answer is not the contract's: {e}: {v}"))
    }

    pub fn create_project(&self, name: &str) -> api::Project {
        let body = api::CreateProject {
            name: name.to_owned(),
            ..Default::default()
        };
        self.ok(Method::POST, "/projects", Some(&body))
    }

    /// A project token; its secret is in `token`.
    pub fn create_token(&self, project: &str, name: &str) -> api::Token {
        let body = api::CreateToken {
            name: name.to_owned(),
        };
        self.ok(
            Method::POST,
            &format!("/projects/{project}/tokens"),
            Some(&body),
        )
    }

    /// A new build; its push token is in `push_token`.
    pub fn create_build(&self, project: &str, spec: &api::CreateBuild) -> api::Build {
        self.ok(
            Method::POST,
            &format!("/projects/{project}/builds"),
            Some(spec),
        )
    }
}

/// An access token for `scope` from the registry at `base`, presenting `secret` as `x-token`.
pub fn access_token(http: &Client, base: &str, secret: &str, scope: &str) -> String {
    let v: Value = http
        .get(format!("{base}/token"))
        .query(&[("service", "depot-registry"), ("scope", scope)])
        .basic_auth("x-token", Some(secret))
        .send()
        .unwrap()
        .json()
        .unwrap();
    v["token"].as_str().unwrap().to_owned()
}
