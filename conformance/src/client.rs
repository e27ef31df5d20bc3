//! A tiny blocking HTTP client for the checks: whole bodies in memory (the checks use small
//! blobs), relative paths resolved against the registry URL, and the registry token flow
//! (`WWW-Authenticate: Bearer realm=...`) or Basic auth answered automatically when credentials
//! are given.

use std::collections::HashMap;
use std::time::Duration;

use reqwest::blocking::Client as Http;
use reqwest::header::{HeaderMap, AUTHORIZATION, WWW_AUTHENTICATE};
use reqwest::Method;

/// A response with its body read.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// The registry redirected (e.g. a blob GET to object storage): the headers are the final
    /// server's.
    pub redirected: bool,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Every value of `name`, over all its field lines, split at commas (RFC 9110 section 5.3).
    pub fn header_values(&self, name: &str) -> Vec<String> {
        self.headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .collect()
    }

    pub fn json(&self) -> Result<serde_json::Value, String> {
        serde_json::from_slice(&self.body)
            .map_err(|e| format!("body is not JSON ({e}): {}", self.text()))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body[..self.body.len().min(500)]).into_owned()
    }
}

pub struct Client {
    base: String,
    http: Http,
    credentials: Option<(String, String)>,
    /// Bearer tokens by the scope they were issued for.
    tokens: HashMap<String, String>,
    /// The Bearer challenge's parameters (realm, service), once one has been seen.
    bearer: Option<HashMap<String, String>>,
    /// The registry challenged for Basic credentials.
    basic: bool,
}

impl Client {
    pub fn new(base: &str, credentials: Option<(String, String)>) -> anyhow::Result<Self> {
        let http = Http::builder()
            .timeout(Duration::from_secs(120))
            .redirect(reqwest::redirect::Policy::limited(5))
            .build()?;
        Ok(Client {
            base: base.trim_end_matches('/').to_owned(),
            http,
            credentials,
            tokens: HashMap::new(),
            bearer: None,
            basic: false,
        })
    }

    fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_owned()
        } else {
            format!("{}{}", self.base, path)
        }
    }

    /// Whether the registry has asked this client for credentials (and got them).
    pub fn authenticates(&self) -> bool {
        self.credentials.is_some() && (self.basic || self.bearer.is_some())
    }

    /// The registry's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The `Authorization` value this client would send for `method` on `path`, for requests
    /// sent by other means (the raw-socket checks): `None` without credentials or before the
    /// registry has challenged this client (any earlier request through [`Client::send`] that
    /// needed credentials has).
    pub fn authorization_for(
        &mut self,
        method: &Method,
        path: &str,
    ) -> Result<Option<String>, String> {
        let Some((user, pass)) = self.credentials.clone() else {
            return Ok(None);
        };
        if self.basic {
            return Ok(Some(basic(&user, &pass)));
        }
        match (self.bearer.clone(), scope_of(method, &self.url(path))) {
            (Some(mut params), Some(scope)) => {
                params.insert("scope".into(), scope);
                self.bearer_token(&params).map(Some)
            }
            _ => Ok(None),
        }
    }

    /// Sends a request, answering one authentication challenge if credentials were given.
    pub fn send(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Result<Resp, String> {
        let url = self.url(path);
        // Like docker and containerd, ask for the operation's scope up front once the registry
        // is known to use tokens: a large body sent without one would be cut off by the 401.
        let early = match (&self.bearer, scope_of(&method, &url)) {
            (Some(params), Some(scope)) if self.credentials.is_some() => {
                let mut params = params.clone();
                params.insert("scope".into(), scope);
                Some(self.bearer_token(&params)?)
            }
            _ => None,
        };
        let mut resp = self.send_once(&method, &url, headers, body.clone(), early)?;
        if resp.status == 401 && self.credentials.is_some() {
            if let Some(challenge) = resp.header(WWW_AUTHENTICATE.as_str()).map(str::to_owned) {
                let auth = self.authorization(&challenge)?;
                resp = self.send_once(&method, &url, headers, body, Some(auth))?;
            }
        }
        Ok(resp)
    }

    fn send_once(
        &self,
        method: &Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
        auth: Option<String>,
    ) -> Result<Resp, String> {
        let mut req = self.http.request(method.clone(), url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(a) = auth {
            req = req.header(AUTHORIZATION, a);
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        let resp = req.send().map_err(|e| format!("{method} {url}: {e}"))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let redirected = resp.url().as_str() != url;
        let body = resp
            .bytes()
            .map_err(|e| format!("{method} {url}: reading body: {e}"))?
            .to_vec();
        Ok(Resp {
            status,
            headers,
            body,
            redirected,
        })
    }

    fn authorization(&mut self, challenge: &str) -> Result<String, String> {
        let (user, pass) = self.credentials.clone().expect("checked by caller");
        let (scheme, params) = challenge.split_once(' ').unwrap_or((challenge, ""));
        if scheme.eq_ignore_ascii_case("basic") {
            self.basic = true;
            return Ok(basic(&user, &pass));
        }
        let params = parse_params(params);
        let mut known = params.clone();
        known.remove("scope");
        known.remove("error");
        self.bearer = Some(known);
        self.bearer_token(&params)
    }

    /// A token for the challenge parameters' scope, from the cache or the realm.
    fn bearer_token(&mut self, params: &HashMap<String, String>) -> Result<String, String> {
        let (user, pass) = self.credentials.clone().expect("checked by caller");
        let realm = params
            .get("realm")
            .ok_or("Bearer challenge without realm")?;
        let scope = params.get("scope").cloned().unwrap_or_default();
        if let Some(token) = self.tokens.get(&scope) {
            return Ok(format!("Bearer {token}"));
        }
        let mut query: Vec<(&str, &str)> = Vec::new();
        if let Some(service) = params.get("service") {
            query.push(("service", service));
        }
        for s in scope.split(' ').filter(|s| !s.is_empty()) {
            query.push(("scope", s));
        }
        let resp = self
            .http
            .get(realm)
            .query(&query)
            .header(AUTHORIZATION, basic(&user, &pass))
            .send()
            .map_err(|e| format!("token request: {e}"))?;
        let status = resp.status();
        let json: serde_json::Value = resp.json().map_err(|e| format!("token response: {e}"))?;
        let token = json
            .get("token")
            .or_else(|| json.get("access_token"))
            .and_then(|t| t.as_str())
            .ok_or_else(|| format!("token endpoint answered {status} without a token"))?
            .to_owned();
        self.tokens.insert(scope, token.clone());
        Ok(format!("Bearer {token}"))
    }
}

/// The token scope an operation on `url` needs: `pull` to read, `pull,push` to write, `delete`
/// to delete, plus `pull` on the source repository of a cross-repository mount.
fn scope_of(method: &Method, url: &str) -> Option<String> {
    let (_, path) = url.split_once("/v2/")?;
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    let name = ["/blobs/", "/manifests/", "/tags/", "/referrers/"]
        .iter()
        .filter_map(|m| path.rfind(m).map(|i| &path[..i]))
        .max_by_key(|n| n.len())?;
    let actions = match *method {
        Method::GET | Method::HEAD => "pull",
        Method::DELETE if !path.contains("/blobs/uploads/") => "delete",
        _ => "pull,push",
    };
    let mut scope = format!("repository:{name}:{actions}");
    if let Some(from) = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("from="))
        .filter(|_| query.contains("mount="))
    {
        scope.push_str(&format!(" repository:{from}:pull"));
    }
    Some(scope)
}

fn basic(user: &str, pass: &str) -> String {
    format!("Basic {}", base64(format!("{user}:{pass}").as_bytes()))
}

/// Parses `k="v",k2="v2"` challenge parameters (keys lowercased; unparsable input gives none).
fn parse_params(s: &str) -> HashMap<String, String> {
    http_auth::parse_challenges(&format!("Bearer {s}"))
        .ok()
        .and_then(|c| c.into_iter().next())
        .map(|c| {
            c.params
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.to_unescaped()))
                .collect()
        })
        .unwrap_or_default()
}

fn base64(input: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(input)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_params() {
        let p = parse_params(
            r#"realm="http://x/token",service="reg",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(p["realm"], "http://x/token");
        assert_eq!(p["scope"], "repository:a/b:pull,push");
        assert_eq!(p["service"], "reg");
    }

    #[test]
    fn base64_encodes() {
        assert_eq!(base64(b"x-token:abc"), "eC10b2tlbjphYmM=");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"abc"), "YWJj");
    }
}
