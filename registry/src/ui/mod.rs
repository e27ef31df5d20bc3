//! The web dashboard under `/ui/`, served by the registry itself: HTML rendered on the server
//! from templates compiled into the binary (`askama`, `registry/templates/ui/`), one small
//! script for copy buttons, no Node at run time. Pages: projects, a project's builds and usage,
//! a build; actions (extend, delete, mint a pull token), each asked first.
//!
//! Modules, lowest first: [`format`] (numbers and times for people), [`chart`] (SVG), [`assets`]
//! (the stylesheet and script), [`session`] (signing in: cookie, CSRF), [`pages`] (what is
//! shown), [`actions`] (what is changed).

mod actions;
mod assets;
mod chart;
mod format;
mod pages;
mod session;

use std::time::Instant;

use askama::Template;
use axum::extract::{FromRequest, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::state::AppState;
use session::{Session, SignInFirst};

/// What every page's header shows.
#[derive(Debug, Clone, Default)]
pub struct Nav {
    pub signed_in: bool,
    pub who: String,
    /// The session's form token (the sign-out form carries it).
    pub csrf: String,
    /// Whether there is a session to end (not without authentication).
    pub can_sign_out: bool,
}

impl Nav {
    fn of(session: &Session) -> Nav {
        Nav {
            signed_in: true,
            who: session.who.clone(),
            csrf: session.csrf.clone(),
            can_sign_out: session.id_hash().is_some(),
        }
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/ui", get(index))
        .route("/ui/", get(index))
        .route("/ui/login", get(login_form).post(login))
        .route("/ui/logout", post(logout))
        .route("/ui/projects", get(pages::projects))
        .route("/ui/projects/{project}", get(pages::project))
        .route("/ui/builds/{build}", get(pages::build))
        .route(
            "/ui/builds/{build}/{action}",
            get(actions::ask).post(actions::act),
        )
        .route("/ui/assets/{name}", get(assets::serve))
        .with_state(state)
}

/// Headers every page carries: nothing cached, nothing framed, scripts and styles only from
/// here, and how long the server took (`Server-Timing`, which the tests read).
fn html(status: StatusCode, body: String, started: Instant) -> Response {
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("app;dur={ms:.1}")) {
        h.insert("server-timing", v);
    }
    r
}

#[derive(Template)]
#[template(path = "ui/error.html")]
struct ErrorPage {
    nav: Nav,
    status: u16,
    heading: &'static str,
    message: String,
}

/// A page, or the error page saying what went wrong (with the API's status and message).
fn page<T: Template>(nav: &Nav, result: Result<T>, started: Instant) -> Response {
    let rendered = result.and_then(|t| t.render().map_err(Error::internal));
    match rendered {
        Ok(body) => html(StatusCode::OK, body, started),
        Err(e) => {
            if let Some(cause) = &e.internal {
                tracing::error!(%cause, "dashboard page failed");
            }
            let heading = match e.status {
                StatusCode::NOT_FOUND => "Not found",
                StatusCode::FORBIDDEN => "Not allowed",
                StatusCode::BAD_REQUEST => "Not understood",
                StatusCode::CONFLICT => "Not possible now",
                _ => "Something went wrong",
            };
            let body = ErrorPage {
                nav: nav.clone(),
                status: e.status.as_u16(),
                heading,
                message: e.message.clone(),
            }
            .render()
            .unwrap_or_else(|_| e.message.clone());
            html(e.status, body, started)
        }
    }
}

impl IntoResponse for SignInFirst {
    fn into_response(self) -> Response {
        (StatusCode::SEE_OTHER, [(header::LOCATION, "/ui/login")]).into_response()
    }
}

/// A form body (`application/x-www-form-urlencoded`, at most 16 KiB), refused with a 400.
pub struct Form<T>(pub T);

const MAX_FORM_BYTES: usize = 16 * 1024;

impl<T: DeserializeOwned> FromRequest<AppState> for Form<T> {
    type Rejection = Response;

    async fn from_request(request: Request, _: &AppState) -> Result<Self, Response> {
        crate::control::form_body(request.into_body(), MAX_FORM_BYTES)
            .await
            .map(Form)
            .map_err(|e| {
                // The messages are the registry's own words, nothing the client sent.
                html(
                    StatusCode::BAD_REQUEST,
                    format!("<!doctype html><title>Bad form</title><p>{}</p>", e.message),
                    Instant::now(),
                )
            })
    }
}

/// `/ui/`: the projects, or the sign-in form.
async fn index() -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, "/ui/projects")]).into_response()
}

#[derive(Template)]
#[template(path = "ui/login.html")]
struct LoginPage {
    nav: Nav,
    csrf: String,
    error: Option<String>,
}

/// The sign-in form (with a fresh CSRF token and its cookie), with `error` above it.
fn login_page(
    state: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    error: Option<String>,
) -> Response {
    let started = Instant::now();
    let (csrf, cookie) = session::login_form_csrf(state, headers);
    let body = LoginPage {
        nav: Nav::default(),
        csrf,
        error,
    }
    .render()
    .unwrap_or_default();
    let mut r = html(status, body, started);
    r.headers_mut().append(header::SET_COOKIE, cookie);
    r
}

/// `GET /ui/login`.
async fn login_form(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if state.access.auth().is_none() {
        return index().await;
    }
    login_page(&state, &headers, StatusCode::OK, None)
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    csrf: String,
}

/// `POST /ui/login` (form field `token`): opens a session, or shows why not.
async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let opened = async {
        session::check_login_csrf(&headers, &form.csrf)?;
        if form.token.trim().is_empty() {
            return Err(Error::unauthorized("enter a token"));
        }
        session::open(&state, &headers, &form.token).await
    }
    .await;
    match opened {
        Ok(cookie) => {
            let mut r =
                (StatusCode::SEE_OTHER, [(header::LOCATION, "/ui/projects")]).into_response();
            r.headers_mut().append(header::SET_COOKIE, cookie);
            r
        }
        Err(e) => {
            let status = if e.status.is_server_error() {
                e.status
            } else {
                StatusCode::UNAUTHORIZED
            };
            tracing::info!(reason = %e.message, "dashboard sign-in refused");
            login_page(&state, &headers, status, Some(e.message))
        }
    }
}

#[derive(Deserialize)]
struct LogoutForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /ui/logout`: ends the session on the server, then forgets the cookie.
async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    session: Session,
    Form(form): Form<LogoutForm>,
) -> Response {
    let started = Instant::now();
    let nav = Nav::of(&session);
    let closed = async {
        session.check_csrf(&form.csrf)?;
        session::close(&state, &headers, &session).await
    }
    .await;
    match closed {
        Ok(cookie) => {
            let mut r = (StatusCode::SEE_OTHER, [(header::LOCATION, "/ui/login")]).into_response();
            r.headers_mut().append(header::SET_COOKIE, cookie);
            r
        }
        Err(e) => page::<ErrorPage>(&nav, Err(e), started),
    }
}
