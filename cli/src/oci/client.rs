//! One registry host: its base URL, credentials, tokens, and requests that authenticate
//! themselves and retry what is safe to retry.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, RETRY_AFTER, WWW_AUTHENTICATE};
use reqwest::{Method, Response, StatusCode};

use super::auth::{fetch_token, AuthState, Challenge, Credentials};
use super::manifest::MANIFEST_ACCEPT;
use super::{status_error, Error, Result};

/// How often and how patiently transient failures (connection errors, 5xx, 429) are retried.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub first_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        // 0.5 + 1 + 2 + 4 + 8 × 5 s: a registry that restarts within about 45 s is waited for.
        RetryPolicy {
            attempts: 10,
            first_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(8),
        }
    }
}

impl RetryPolicy {
    pub fn delay(&self, attempt: u32) -> Duration {
        self.first_delay
            .saturating_mul(1 << attempt.min(16))
            .min(self.max_delay)
    }
}

/// Whether an answer is worth asking again.
pub(crate) fn transient_status(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || matches!(status.as_u16(), 500 | 502 | 503 | 504)
}

pub(crate) fn transient_error(e: &reqwest::Error) -> bool {
    e.is_connect() || e.is_timeout() || e.is_request() || e.is_body()
}

/// `Retry-After` in seconds (the HTTP-date form is treated as "soon").
pub(crate) fn retry_after(resp: &Response) -> Option<Duration> {
    let v = resp.headers().get(RETRY_AFTER)?.to_str().ok()?;
    Some(Duration::from_secs(
        v.trim().parse::<u64>().unwrap_or(1).min(60),
    ))
}

/// A request to send: everything replayable (bodies are `Bytes`).
#[derive(Clone)]
pub(crate) struct Req {
    pub method: Method,
    pub url: String,
    pub headers: HeaderMap,
    pub body: Option<Bytes>,
    pub scopes: Vec<String>,
}

impl Req {
    pub fn new(method: Method, url: String, scopes: Vec<String>) -> Req {
        Req {
            method,
            url,
            headers: HeaderMap::new(),
            body: None,
            scopes,
        }
    }

    pub fn header(mut self, name: reqwest::header::HeaderName, value: &str) -> Req {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.insert(name, v);
        }
        self
    }

    pub fn body(mut self, body: Bytes) -> Req {
        self.body = Some(body);
        self
    }
}

/// A registry host.
pub struct Registry {
    pub(crate) http: reqwest::Client,
    /// As written in image references (`ghcr.io`, `127.0.0.1:5000`).
    pub host: String,
    /// `scheme://api-host`, where `/v2/` lives.
    pub(crate) base: String,
    creds: Credentials,
    auth: Mutex<AuthState>,
    pub retry: RetryPolicy,
    /// Told about each retry, so the user sees why a push pauses.
    on_retry: Box<dyn Fn(String) + Send + Sync>,
    /// When a request to it was last retried: a registry being retried is down, refusing or
    /// overloaded, which `depot push` takes into account.
    last_retry: Mutex<Option<Instant>>,
    /// What to do when HTTPS meets a plain-HTTP server: the flag of the command at hand.
    plain_http_hint: String,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("host", &self.host)
            .field("base", &self.base)
            .field("creds", &self.creds)
            .finish()
    }
}

/// What to do when our own registry (`--registry https://HOST`) turns out to speak plain HTTP.
pub fn own_registry_hint(host: &str) -> String {
    format!("use --registry http://{host} (or DEPOT_REGISTRY=http://{host})")
}

/// `repository:<name>:<actions>`.
pub fn scope(repo: &str, actions: &str) -> String {
    format!("repository:{repo}:{actions}")
}

impl Registry {
    /// `host` as in image references; `insecure` talks plain HTTP.
    pub fn new(http: reqwest::Client, host: &str, insecure: bool, creds: Credentials) -> Registry {
        // Docker Hub's images are named `docker.io/...`; its API lives elsewhere.
        let api_host = match host {
            "docker.io" | "index.docker.io" => "registry-1.docker.io",
            h => h,
        };
        let scheme = if insecure { "http" } else { "https" };
        Registry {
            http,
            host: host.to_owned(),
            base: format!("{scheme}://{api_host}"),
            creds,
            auth: Mutex::new(AuthState::default()),
            retry: RetryPolicy::default(),
            on_retry: Box::new(|_| {}),
            last_retry: Mutex::new(None),
            plain_http_hint: format!("use --insecure-registry {host} (or --insecure)"),
        }
    }

    /// Names the flag that makes this command talk plain HTTP to the registry, for the error
    /// a TLS failure gets.
    pub fn plain_http_hint(mut self, hint: impl Into<String>) -> Self {
        self.plain_http_hint = hint.into();
        self
    }

    /// From a base URL (`http://127.0.0.1:5000`): our own registry.
    pub fn from_url(http: reqwest::Client, url: &str, creds: Credentials) -> Result<Registry> {
        let (scheme, host) = url
            .trim_end_matches('/')
            .split_once("://")
            .ok_or_else(|| Error::other(format!("registry URL {url:?} has no scheme")))?;
        Ok(Registry::new(http, host, scheme == "http", creds)
            .plain_http_hint(own_registry_hint(host)))
    }

    pub fn on_retry(mut self, f: impl Fn(String) + Send + Sync + 'static) -> Self {
        self.on_retry = Box::new(f);
        self
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Resolves a `Location` header (absolute, or relative to the registry).
    pub(crate) fn resolve(&self, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            location.to_owned()
        } else if location.starts_with('/') {
            self.url(location)
        } else {
            self.url(&format!("/{location}"))
        }
    }

    pub(crate) fn note_retry(&self, msg: String) {
        *self.last_retry.lock().unwrap() = Some(Instant::now());
        (self.on_retry)(msg)
    }

    /// Whether a request to this registry was retried within the last `window`.
    pub fn retried_within(&self, window: Duration) -> bool {
        self.last_retry
            .lock()
            .unwrap()
            .is_some_and(|at| at.elapsed() < window)
    }

    /// Sends once, authenticating as the registry asks (one extra round trip on the first
    /// `401` of a scope). No retry on failure: for requests that are not safe to repeat blindly.
    pub(crate) async fn send_once(&self, req: &Req) -> Result<Response> {
        let mut challenged = false;
        loop {
            let mut rb = self
                .http
                .request(req.method.clone(), &req.url)
                .headers(req.headers.clone());
            if let Some(body) = &req.body {
                rb = rb.body(body.clone());
            }
            let header = self.auth.lock().unwrap().header(&self.creds, &req.scopes);
            let authorized = header.is_some();
            if let Some(h) = header {
                rb = rb.header(AUTHORIZATION, h);
            }
            let resp = rb.send().await.map_err(|e| self.transport_error(e))?;
            if resp.status() == StatusCode::UNAUTHORIZED && !challenged {
                challenged = true;
                if self
                    .answer_challenge(&resp, &req.scopes, authorized)
                    .await?
                {
                    continue;
                }
            }
            return Ok(resp);
        }
    }

    /// A transport error as the caller should see it: a TLS failure is no connection error to
    /// retry (the registry will answer the handshake the same way every time), so it becomes a
    /// final error naming the flag that helps.
    fn transport_error(&self, e: reqwest::Error) -> Error {
        match super::tls::failure(&e) {
            Some(tls) => Error::other(tls.explain(&self.host, &self.plain_http_hint)),
            None => Error::Http(e),
        }
    }

    /// Sends, retrying connection failures, 429 (after `Retry-After`) and 5xx with backoff.
    /// For idempotent requests (GET, HEAD, PUT of a manifest, POST starting an upload).
    pub(crate) async fn send(&self, req: &Req) -> Result<Response> {
        let mut attempt = 0;
        loop {
            let (wait, why) = match self.send_once(req).await {
                Ok(resp) if transient_status(resp.status()) => {
                    let wait = retry_after(&resp).unwrap_or_else(|| self.retry.delay(attempt));
                    let why = format!("{} answered {}", self.host, resp.status());
                    if attempt + 1 >= self.retry.attempts {
                        return Ok(resp);
                    }
                    (wait, why)
                }
                Ok(resp) => return Ok(resp),
                Err(Error::Http(e)) if transient_error(&e) && attempt + 1 < self.retry.attempts => {
                    (self.retry.delay(attempt), e.to_string())
                }
                Err(e) => return Err(e),
            };
            self.note_retry(format!(
                "{} {}: {why}; retrying in {:.1}s",
                req.method,
                short_url(&req.url),
                wait.as_secs_f64()
            ));
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    /// Learns from a `401` to a request sent with (`authorized`) or without credentials.
    /// Returns whether the request is worth sending again.
    async fn answer_challenge(
        &self,
        resp: &Response,
        scopes: &[String],
        authorized: bool,
    ) -> Result<bool> {
        let Some(challenge) = resp
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .and_then(Challenge::parse)
        else {
            return Ok(false);
        };
        match &challenge {
            Challenge::Basic => {
                self.auth.lock().unwrap().challenge = Some(Challenge::Basic);
                // Credentials that were sent and refused are wrong; unsent ones are worth a try
                // (parallel requests may have gone out before the first challenge was learned).
                Ok(!authorized && !matches!(self.creds, Credentials::Anonymous))
            }
            Challenge::Bearer {
                realm,
                service,
                scope,
            } => {
                let mut wanted = scopes.to_vec();
                if let Some(s) = scope {
                    wanted.extend(s.split(' ').map(str::to_owned));
                }
                let (token, lifetime) =
                    fetch_token(&self.http, &self.creds, realm, service.as_deref(), &wanted)
                        .await?;
                let mut auth = self.auth.lock().unwrap();
                auth.challenge = Some(challenge.clone());
                auth.store(scopes, token, lifetime);
                Ok(true)
            }
        }
    }

    /// Fails with the registry's message unless the answer is one of `ok`.
    pub(crate) async fn expect(
        &self,
        req: &Req,
        resp: Response,
        ok: &[StatusCode],
    ) -> Result<Response> {
        if ok.contains(&resp.status()) {
            Ok(resp)
        } else {
            Err(status_error(req.method.as_str(), resp).await)
        }
    }

    /// Whether `repo` holds blob `digest` (HEAD).
    pub async fn blob_exists(&self, repo: &str, digest: &str) -> Result<bool> {
        let req = Req::new(
            Method::HEAD,
            self.url(&format!("/v2/{repo}/blobs/{digest}")),
            vec![scope(repo, "pull")],
        );
        let resp = self.send(&req).await?;
        match resp.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(status_error("HEAD", resp).await),
        }
    }

    /// A manifest's bytes and media type, by tag or digest.
    pub async fn manifest(&self, repo: &str, reference: &str) -> Result<(Bytes, String)> {
        let req = Req::new(
            Method::GET,
            self.url(&format!("/v2/{repo}/manifests/{reference}")),
            vec![scope(repo, "pull")],
        )
        .header(reqwest::header::ACCEPT, MANIFEST_ACCEPT);
        let resp = self.send(&req).await?;
        let resp = self.expect(&req, resp, &[StatusCode::OK]).await?;
        let media_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        Ok((resp.bytes().await?, media_type))
    }

    /// Stores a manifest under `reference` (a tag or its digest); returns the digest the
    /// registry reports.
    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: Bytes,
    ) -> Result<Option<String>> {
        Ok(self
            .store_manifest(repo, reference, media_type, bytes)
            .await?
            .digest)
    }

    /// `PUT /v2/<repo>/manifests/<digest>?tag=..&tag=..` (the spec's main branch, end-7b):
    /// stores the manifest and points every tag at it in one request, where the registry
    /// supports it. One that does not stores the manifest by digest and names no tag; the
    /// caller then pushes by tag as usual.
    pub async fn put_manifest_tagged(
        &self,
        repo: &str,
        digest: &str,
        tags: &[String],
        media_type: &str,
        bytes: Bytes,
    ) -> Result<Tagged> {
        // Tags are `[A-Za-z0-9_][A-Za-z0-9._-]*`: nothing in them needs escaping.
        let query: Vec<String> = tags.iter().map(|t| format!("tag={t}")).collect();
        let reference = format!("{digest}?{}", query.join("&"));
        self.store_manifest(repo, &reference, media_type, bytes)
            .await
    }

    /// `PUT /v2/<repo>/manifests/<reference>` (which may carry a query): what the registry says
    /// it stored.
    async fn store_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: Bytes,
    ) -> Result<Tagged> {
        let req = Req::new(
            Method::PUT,
            self.url(&format!("/v2/{repo}/manifests/{reference}")),
            vec![scope(repo, "pull,push")],
        )
        .header(reqwest::header::CONTENT_TYPE, media_type)
        .body(bytes);
        let resp = self.send(&req).await?;
        let resp = self.expect(&req, resp, &[StatusCode::CREATED]).await?;
        let headers = resp.headers();
        Ok(Tagged {
            digest: headers
                .get("docker-content-digest")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            tags: headers
                .get_all("oci-tag")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty())
                .collect(),
        })
    }
}

/// What a manifest push stored.
#[derive(Debug, Default)]
pub struct Tagged {
    /// The digest the registry reports (`Docker-Content-Digest`).
    pub digest: Option<String>,
    /// The tags it says it pointed (`OCI-Tag`): none from a registry without the feature, or
    /// for a push by tag.
    pub tags: Vec<String>,
}

/// A URL without its query (upload `_state` tokens are long and say nothing to a user).
pub(crate) fn short_url(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay(0), Duration::from_millis(500));
        assert_eq!(p.delay(1), Duration::from_secs(1));
        assert_eq!(p.delay(4), Duration::from_secs(8));
        assert_eq!(p.delay(30), Duration::from_secs(8));
    }

    #[test]
    fn docker_hub_is_reached_at_its_api_host() {
        let r = Registry::new(
            reqwest::Client::new(),
            "docker.io",
            false,
            Credentials::Anonymous,
        );
        assert_eq!(r.url("/v2/"), "https://registry-1.docker.io/v2/");
        let r = Registry::from_url(
            reqwest::Client::new(),
            "http://127.0.0.1:5000/",
            Credentials::Anonymous,
        )
        .unwrap();
        assert_eq!(r.host, "127.0.0.1:5000");
        assert_eq!(
            r.resolve("/v2/a/blobs/uploads/x?_state=1"),
            "http://127.0.0.1:5000/v2/a/blobs/uploads/x?_state=1"
        );
    }
}
