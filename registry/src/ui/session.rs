//! Signing in to the dashboard: a project or admin token, posted once through a form, opens a
//! server-side session; the browser holds only a random id in a cookie (`HttpOnly`,
//! `SameSite=Strict`, `Secure` when the registry is reached over TLS, ending with the session).
//! Every state-changing form carries the session's CSRF token; the sign-in form, before there
//! is a session, a token that must match a short-lived cookie of its own (double submit).
//!
//! A session is as strong as the token it was opened with and no stronger: on every request
//! the token's project token must still be live (revoking it signs the browser out) and an
//! admin session's admin token must still be the current one.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue};
use depot_store::metadata::UiSession;
use sha2::Digest;

use crate::auth::{new_secret, secret_hash, Credential};
use crate::control::Caller;
use crate::error::{Error, Result};
use crate::state::AppState;

/// The session cookie, and the sign-in form's CSRF cookie.
pub const SESSION_COOKIE: &str = "depot_session";
pub const LOGIN_CSRF_COOKIE: &str = "depot_login_csrf";
/// How long a session lasts (it does not grow with use).
pub const SESSION_SECS: i64 = 8 * 3600;
/// How long a sign-in form may sit before it is posted.
const LOGIN_FORM_SECS: i64 = 3600;

/// The signed-in caller of a dashboard request.
pub struct Session {
    pub caller: Caller,
    /// What the header says the caller is (`admin`, `project web`).
    pub who: String,
    /// The token this session's forms carry.
    pub csrf: String,
    /// The cookie's hash (what signing out deletes); `None` without authentication.
    id_hash: Option<String>,
}

/// A request without a live session: the page answers with the sign-in form.
pub struct SignInFirst;

impl Session {
    /// Refuses a form whose CSRF token is not this session's.
    pub fn check_csrf(&self, presented: &str) -> Result<()> {
        if constant_time_eq(presented.as_bytes(), self.csrf.as_bytes()) {
            Ok(())
        } else {
            Err(Error::denied(
                "this form is out of date (its CSRF token does not match the session): reload the page and try again",
            ))
        }
    }

    pub fn id_hash(&self) -> Option<&str> {
        self.id_hash.as_deref()
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    // Comparing hashes keeps the time independent of where the inputs differ.
    sha2::Sha256::digest(a) == sha2::Sha256::digest(b)
}

/// The value of cookie `name` in `headers`.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Whether the client reached the registry over TLS (directly, or as a trusted proxy says).
fn over_tls(state: &AppState, headers: &HeaderMap) -> bool {
    state.base_url.of(headers).starts_with("https://")
}

/// A `Set-Cookie` for `name` (`max_age` 0: remove it), scoped to the dashboard.
pub fn set_cookie(
    state: &AppState,
    headers: &HeaderMap,
    name: &str,
    value: &str,
    max_age: i64,
) -> HeaderValue {
    let secure = if over_tls(state, headers) {
        "; Secure"
    } else {
        ""
    };
    let cookie =
        format!("{name}={value}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}");
    HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// A new sign-in form's CSRF token, with the cookie that must come back with it.
pub fn login_form_csrf(state: &AppState, headers: &HeaderMap) -> (String, HeaderValue) {
    let token = new_secret("");
    let cookie = set_cookie(state, headers, LOGIN_CSRF_COOKIE, &token, LOGIN_FORM_SECS);
    (token, cookie)
}

/// Checks a posted sign-in form's CSRF token against its cookie.
pub fn check_login_csrf(headers: &HeaderMap, presented: &str) -> Result<()> {
    match cookie(headers, LOGIN_CSRF_COOKIE) {
        Some(expected) if constant_time_eq(expected.as_bytes(), presented.as_bytes()) => Ok(()),
        _ => Err(Error::denied(
            "the sign-in form is out of date: reload the page and sign in again",
        )),
    }
}

/// Opens a session for `secret` (a project or admin token); the cookie to set. A wrong,
/// revoked or expired token, or any other kind of credential, is refused with the reason.
pub async fn open(state: &AppState, headers: &HeaderMap, secret: &str) -> Result<HeaderValue> {
    let Some(auth) = state.access.auth() else {
        return Err(Error::not_found(
            "authentication is off (--no-auth): there is nothing to sign in to",
        ));
    };
    let secret = secret.trim();
    let credential = auth.credential(secret).await?;
    let (kind, project, token_id) = match credential {
        Credential::Admin => ("admin", None, secret_hash(secret)),
        Credential::Project { project, token_id } => ("project", Some(project), token_id),
        _ => {
            return Err(Error::unauthorized(
                "sign in with a project token or the admin token (pull, push and CI tokens are for clients)",
            ))
        }
    };
    let id = new_secret("");
    let now = state.content.now_ms();
    let session = UiSession {
        id_hash: secret_hash(&id),
        kind: kind.to_owned(),
        project: project.clone(),
        token_id,
        csrf: new_secret(""),
        created_at: now,
        expires_at: now + SESSION_SECS * 1000,
    };
    state.content.meta.create_ui_session(&session, now).await?;
    tracing::info!(kind, project = ?project, "dashboard session opened");
    Ok(set_cookie(
        state,
        headers,
        SESSION_COOKIE,
        &id,
        SESSION_SECS,
    ))
}

/// Ends the session (server side: the cookie is worthless from now on); the cookie removal.
pub async fn close(
    state: &AppState,
    headers: &HeaderMap,
    session: &Session,
) -> Result<HeaderValue> {
    if let Some(hash) = session.id_hash() {
        state.content.meta.delete_ui_session(hash).await?;
    }
    Ok(set_cookie(state, headers, SESSION_COOKIE, "", 0))
}

/// The session a request's cookie names, with the credential it stands for, or `None`.
async fn resolve(state: &AppState, headers: &HeaderMap) -> Result<Option<Session>> {
    let Some(auth) = state.access.auth() else {
        // Without authentication everyone may do everything: the dashboard too. The forms
        // still carry a token, one per process, so that another site cannot post them.
        return Ok(Some(Session {
            caller: Caller(Credential::Admin),
            who: "everyone (authentication is off)".into(),
            csrf: open_csrf().to_owned(),
            id_hash: None,
        }));
    };
    let Some(id) = cookie(headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    let hash = secret_hash(id);
    let now = state.content.now_ms();
    let Some(s) = state.content.meta.ui_session(&hash, now).await? else {
        return Ok(None);
    };
    let credential = match (s.kind.as_str(), s.project) {
        ("admin", _) if auth.is_admin_hash(&s.token_id) => Credential::Admin,
        ("project", Some(project)) if auth.project_token_live(&s.token_id).await? => {
            Credential::Project {
                project,
                token_id: s.token_id,
            }
        }
        // The token it was opened with is gone: so is the session.
        _ => {
            state.content.meta.delete_ui_session(&hash).await?;
            return Ok(None);
        }
    };
    let who = match &credential {
        Credential::Admin => "admin".to_owned(),
        Credential::Project { project, .. } => match state.content.meta.project(project).await? {
            Some(p) => format!("project {}", p.name),
            None => return Ok(None),
        },
        _ => String::new(),
    };
    Ok(Some(Session {
        caller: Caller(credential),
        who,
        csrf: s.csrf,
        id_hash: Some(hash),
    }))
}

/// The per-process form token used when authentication is off.
fn open_csrf() -> &'static str {
    static TOKEN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TOKEN.get_or_init(|| new_secret(""))
}

impl FromRequestParts<AppState> for Session {
    type Rejection = SignInFirst;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> std::result::Result<Self, SignInFirst> {
        match resolve(state, &parts.headers).await {
            Ok(Some(s)) => Ok(s),
            Ok(None) => Err(SignInFirst),
            Err(e) => {
                tracing::warn!(cause = %e, "resolving a dashboard session");
                Err(SignInFirst)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_among_others() {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, "a=1; depot_session=abc".parse().unwrap());
        h.append(header::COOKIE, "b=2".parse().unwrap());
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "b"), Some("2"));
        assert_eq!(cookie(&h, "depot"), None);
    }

    #[test]
    fn login_csrf_must_match_its_cookie() {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, "depot_login_csrf=tok".parse().unwrap());
        assert!(check_login_csrf(&h, "tok").is_ok());
        assert!(check_login_csrf(&h, "other").is_err());
        assert!(check_login_csrf(&HeaderMap::new(), "tok").is_err());
    }
}
