//! Registry authentication: credentials, `WWW-Authenticate` challenges, and the token flow
//! (`GET realm?service&scope` with Basic credentials, or the OAuth2 refresh-token grant for an
//! identity token), as in the Docker/OCI token-auth spec.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine;
use serde::Deserialize;

use super::{status_error, Error, Result};

/// What we present to a registry.
#[derive(Clone, Default)]
pub enum Credentials {
    #[default]
    Anonymous,
    Basic {
        username: String,
        password: String,
    },
    /// An OAuth2 refresh token (Docker config `identitytoken`).
    IdentityToken(String),
}

impl std::fmt::Debug for Credentials {
    // Never print secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Anonymous => f.write_str("Anonymous"),
            Credentials::Basic { username, .. } => write!(f, "Basic({username}, ***)"),
            Credentials::IdentityToken(_) => f.write_str("IdentityToken(***)"),
        }
    }
}

impl Credentials {
    fn basic_header(&self) -> Option<String> {
        match self {
            Credentials::Basic { username, password } => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
            )),
            _ => None,
        }
    }
}

/// The scheme a registry asked for in its `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

impl Challenge {
    /// The challenge to answer in a `WWW-Authenticate` value (which may offer several):
    /// Bearer with a realm if offered, else Basic.
    pub fn parse(header: &str) -> Option<Challenge> {
        let offered = http_auth::parse_challenges(header).ok()?;
        let param = |c: &http_auth::ChallengeRef<'_>, name: &str| {
            c.params
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.to_unescaped())
        };
        let bearer = offered.iter().find_map(|c| {
            if !c.scheme.eq_ignore_ascii_case("bearer") {
                return None;
            }
            Some(Challenge::Bearer {
                realm: param(c, "realm")?,
                service: param(c, "service"),
                scope: param(c, "scope"),
            })
        });
        bearer.or_else(|| {
            offered
                .iter()
                .any(|c| c.scheme.eq_ignore_ascii_case("basic"))
                .then_some(Challenge::Basic)
        })
    }
}

/// Tokens and the learned scheme of one registry.
#[derive(Default)]
pub(crate) struct AuthState {
    pub challenge: Option<Challenge>,
    /// By scope set (sorted, space-joined): the bearer token and when to stop using it.
    tokens: HashMap<String, (String, Instant)>,
}

pub(crate) fn scope_key(scopes: &[String]) -> String {
    let mut s: Vec<&str> = scopes.iter().map(String::as_str).collect();
    s.sort_unstable();
    s.dedup();
    s.join(" ")
}

impl AuthState {
    /// The `Authorization` value for a request needing `scopes`, if one is known.
    pub fn header(&self, creds: &Credentials, scopes: &[String]) -> Option<String> {
        match self.challenge.as_ref()? {
            Challenge::Basic => creds.basic_header(),
            Challenge::Bearer { .. } => {
                let (token, until) = self.tokens.get(&scope_key(scopes))?;
                (Instant::now() < *until).then(|| format!("Bearer {token}"))
            }
        }
    }

    pub fn store(&mut self, scopes: &[String], token: String, lifetime: Duration) {
        // Stop using a token a little before it expires, so it never lapses in flight.
        let margin = Duration::from_secs(10).min(lifetime / 2);
        self.tokens.insert(
            scope_key(scopes),
            (token, Instant::now() + lifetime - margin),
        );
    }
}

#[derive(Deserialize)]
struct TokenAnswer {
    token: Option<String>,
    access_token: Option<String>,
    expires_in: Option<u64>,
}

/// Asks the token server of a Bearer challenge for a token covering `scopes`.
pub(crate) async fn fetch_token(
    http: &reqwest::Client,
    creds: &Credentials,
    realm: &str,
    service: Option<&str>,
    scopes: &[String],
) -> Result<(String, Duration)> {
    let resp = match creds {
        Credentials::IdentityToken(refresh) => {
            let mut form = vec![
                ("grant_type", "refresh_token".to_owned()),
                ("refresh_token", refresh.clone()),
                ("client_id", "depot".to_owned()),
                ("scope", scopes.join(" ")),
            ];
            if let Some(s) = service {
                form.push(("service", s.to_owned()));
            }
            http.post(realm).form(&form).send().await?
        }
        _ => {
            let mut query: Vec<(&str, &str)> = Vec::new();
            if let Some(s) = service {
                query.push(("service", s));
            }
            for scope in scopes {
                query.push(("scope", scope));
            }
            let mut req = http.get(realm).query(&query);
            if let Some(basic) = creds.basic_header() {
                req = req.header(reqwest::header::AUTHORIZATION, basic);
            }
            req.send().await?
        }
    };
    if !resp.status().is_success() {
        return Err(status_error("GET", resp).await);
    }
    let answer: TokenAnswer = resp.json().await?;
    let token = answer
        .token
        .or(answer.access_token)
        .ok_or_else(|| Error::other(format!("token server {realm} answered without a token")))?;
    // The spec's default lifetime is 60 seconds.
    Ok((
        token,
        Duration::from_secs(answer.expires_in.unwrap_or(60).max(1)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_challenges() {
        let c = Challenge::parse(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("registry.example".into()),
                scope: Some("repository:a/b:pull,push".into()),
            })
        );
        assert_eq!(
            Challenge::parse(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(Challenge::parse("Negotiate"), None);
        assert_eq!(Challenge::parse("Bearer service=x"), None);
    }

    #[test]
    fn scope_keys_ignore_order_and_duplicates() {
        let a = vec![
            "repository:x:pull".to_owned(),
            "repository:a:pull".to_owned(),
        ];
        let b = vec![
            "repository:a:pull".to_owned(),
            "repository:x:pull".to_owned(),
            "repository:a:pull".to_owned(),
        ];
        assert_eq!(scope_key(&a), scope_key(&b));
    }

    #[test]
    fn credentials_never_print_secrets() {
        let c = Credentials::Basic {
            username: "u".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
