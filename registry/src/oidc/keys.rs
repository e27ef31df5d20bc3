//! The signing keys of OIDC issuers: found through each issuer's discovery document
//! (`<issuer>/.well-known/openid-configuration` → `jwks_uri`), cached, fetched again when a
//! token names a key the cache does not hold (an issuer rotating its keys), at most once per
//! [`MIN_REFETCH`] per issuer, so tokens with made-up `kid`s cannot make the registry hammer
//! an issuer; one fetch at a time per issuer, the others wait for it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{Jwk, JwkSet};
use serde::Deserialize;

/// How long fetched keys are used without asking the issuer again.
const FRESH_FOR: Duration = Duration::from_secs(15 * 60);
/// The shortest time between two fetches of one issuer's keys.
pub const MIN_REFETCH: Duration = Duration::from_secs(5);
/// Each request to an issuer, and the largest document accepted from it.
const TIMEOUT: Duration = Duration::from_secs(5);
const MAX_DOCUMENT: usize = 256 * 1024;

/// Why no key was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("the issuer has no key {0:?}")]
    UnknownKey(String),
    #[error("the issuer's keys cannot be fetched: {0}")]
    Unavailable(String),
}

#[derive(Default)]
struct Entry {
    state: Mutex<Fetched>,
    /// Held while fetching, so concurrent misses fetch once.
    fetching: tokio::sync::Mutex<()>,
}

#[derive(Default, Clone)]
struct Fetched {
    /// The keys last fetched, and when.
    keys: Option<(Arc<JwkSet>, Instant)>,
    /// When a fetch was last tried, successful or not: the rate limit counts from it, so an
    /// issuer that is down is asked once per [`MIN_REFETCH`], not by every request.
    tried: Option<Instant>,
}

impl Fetched {
    fn find(&self, kid: &str) -> Option<Jwk> {
        self.keys
            .as_ref()
            .and_then(|(set, _)| set.find(kid).cloned())
    }

    fn fresh(&self) -> bool {
        self.keys
            .as_ref()
            .is_some_and(|(_, at)| at.elapsed() < FRESH_FOR)
    }

    fn may_fetch(&self) -> bool {
        self.tried.is_none_or(|t| t.elapsed() >= MIN_REFETCH)
    }
}

/// Issuers' keys, by issuer URL.
pub struct KeyCache {
    http: reqwest::Client,
    issuers: Mutex<HashMap<String, Arc<Entry>>>,
}

impl std::fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyCache").finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

impl KeyCache {
    pub fn new() -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("depot-registry/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(TIMEOUT)
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::limited(3))
            .build()?;
        Ok(KeyCache {
            http,
            issuers: Mutex::new(HashMap::new()),
        })
    }

    fn entry(&self, issuer: &str) -> Arc<Entry> {
        let mut issuers = self.issuers.lock().expect("not poisoned");
        issuers.entry(issuer.to_owned()).or_default().clone()
    }

    /// The key `kid` of `issuer`.
    pub async fn key(&self, issuer: &str, kid: &str) -> Result<Jwk, KeyError> {
        let entry = self.entry(issuer);
        let now = |entry: &Entry| entry.state.lock().expect("not poisoned").clone();
        // Without a fetch allowed now: the key as last fetched, or why there is none.
        let settled = |seen: &Fetched| match (seen.find(kid), &seen.keys) {
            (Some(key), _) => Ok(key),
            (None, Some(_)) => Err(KeyError::UnknownKey(kid.to_owned())),
            (None, None) => Err(KeyError::Unavailable(format!(
                "{issuer} did not answer; asked again at most every {} s",
                MIN_REFETCH.as_secs()
            ))),
        };
        let unknown = || KeyError::UnknownKey(kid.to_owned());
        let seen = now(&entry);
        if seen.find(kid).is_some() && (seen.fresh() || !seen.may_fetch()) {
            return settled(&seen);
        }
        // Anything else waits for a fetch in progress (the first requests for an issuer arrive
        // together) before judging: `tried` is set when a fetch starts, not when it ends.
        let _fetching = entry.fetching.lock().await;
        // Someone else may have fetched while this waited.
        let seen = now(&entry);
        if !seen.may_fetch() {
            return settled(&seen);
        }
        entry.state.lock().expect("not poisoned").tried = Some(Instant::now());
        match self.fetch(issuer).await {
            Ok(set) => {
                let set = Arc::new(set);
                entry.state.lock().expect("not poisoned").keys =
                    Some((set.clone(), Instant::now()));
                set.find(kid).cloned().ok_or_else(unknown)
            }
            Err(e) => {
                tracing::warn!(issuer, error = %e, "fetching an OIDC issuer's keys failed");
                // Keys fetched earlier still verify what they signed while the issuer is away.
                seen.find(kid).ok_or(KeyError::Unavailable(e))
            }
        }
    }

    async fn fetch(&self, issuer: &str) -> Result<JwkSet, String> {
        let url = format!("{issuer}/.well-known/openid-configuration");
        let discovery: Discovery = self.get_json(&url).await?;
        if discovery.issuer.trim_end_matches('/') != issuer {
            return Err(format!(
                "{url} names issuer {:?}, not {issuer:?}",
                discovery.issuer
            ));
        }
        // Keys come over TLS unless the issuer itself was configured over plain HTTP.
        let plain_ok = issuer.starts_with("http://") && discovery.jwks_uri.starts_with("http://");
        if !(discovery.jwks_uri.starts_with("https://") || plain_ok) {
            return Err(format!("jwks_uri {:?} is not https", discovery.jwks_uri));
        }
        let set: JwkSet = self.get_json(&discovery.jwks_uri).await?;
        tracing::info!(
            issuer,
            keys = set.keys.len(),
            "fetched an OIDC issuer's keys"
        );
        Ok(set)
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, String> {
        let mut response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("GET {url}: {}", response.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?
        {
            if body.len() + chunk.len() > MAX_DOCUMENT {
                return Err(format!("GET {url}: larger than {MAX_DOCUMENT} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&body).map_err(|e| format!("GET {url}: not the expected JSON: {e}"))
    }
}
