//! What the dashboard changes: extend a build, delete it, mint a pull token for it. Each is a
//! page that asks first (a form, so it works without script and by keyboard), then a `POST`
//! carrying the session's CSRF token, judged by the same rules as the API (a project or admin
//! sign-in manages builds; minting needs one too).

use std::time::Instant;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use depot_store::model::Build;
use serde::Deserialize;

use super::format;
use super::pages::Choice;
use super::session::Session;
use super::{page, Form, Nav};
use crate::control::builds::{self, builds_in, extend_build, manages, remove};
use crate::control::projects::mint_pull_token;
use crate::control::TOKEN_USERNAME;
use crate::error::{Error, Result};
use crate::state::AppState;

#[derive(Template)]
#[template(path = "ui/confirm.html")]
struct ConfirmPage {
    nav: Nav,
    title: String,
    question: String,
    action: String,
    button: &'static str,
    button_class: &'static str,
    choice_name: Option<&'static str>,
    choice_label: &'static str,
    choices: Vec<Choice>,
    cancel: String,
}

#[derive(Template)]
#[template(path = "ui/minted.html")]
struct MintedPage {
    nav: Nav,
    build: String,
    token: String,
    username: &'static str,
    expires_at: String,
    login: String,
}

/// What an action may do to a build.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Act {
    Extend,
    Delete,
    Mint,
}

impl Act {
    fn parse(name: &str) -> Option<Act> {
        match name {
            "extend" => Some(Act::Extend),
            "delete" => Some(Act::Delete),
            "pull-token" => Some(Act::Mint),
            _ => None,
        }
    }
}

/// The build the sign-in may act on as `act` says (404 if it may not see it, 403 if it may not
/// do that to it), by the API's own rules.
async fn build_for(state: &AppState, session: &Session, id: &str, act: Act) -> Result<Build> {
    let allowed = match act {
        Act::Extend | Act::Delete => manages,
        Act::Mint => builds_in,
    };
    builds::build_for(
        state,
        &session.caller,
        id,
        allowed,
        "this sign-in may look at the build but not change it",
    )
    .await
}

fn choices(options: &[(i64, &str)], default: i64) -> Vec<Choice> {
    options
        .iter()
        .map(|(secs, label)| Choice {
            value: secs.to_string(),
            label: (*label).to_owned(),
            selected: *secs == default,
        })
        .collect()
}

const DAY: i64 = 86_400;
const EXTEND_BY: [(i64, &str); 4] = [
    (DAY, "1 day"),
    (7 * DAY, "7 days"),
    (30 * DAY, "30 days"),
    (90 * DAY, "90 days"),
];
const PULL_TOKEN_FOR: [(i64, &str); 3] = [(3600, "1 hour"), (DAY, "1 day"), (7 * DAY, "7 days")];

/// `GET /ui/builds/{id}/{action}`: the question before the action.
pub(super) async fn ask(
    State(state): State<AppState>,
    Path((id, action)): Path<(String, String)>,
    session: Session,
) -> Response {
    let started = Instant::now();
    let nav = Nav::of(&session);
    let result = async {
        let act = Act::parse(&action).ok_or_else(|| Error::not_found("no such page"))?;
        let build = build_for(&state, &session, &id, act).await?;
        let now = state.content.now_ms();
        let mut p = ConfirmPage {
            nav: nav.clone(),
            title: String::new(),
            question: String::new(),
            action: format!("/ui/builds/{id}/{action}"),
            button: "",
            button_class: "",
            choice_name: None,
            choice_label: "",
            choices: Vec::new(),
            cancel: format!("/ui/builds/{id}"),
        };
        match act {
            Act::Extend => {
                p.title = format!("Extend build {id}");
                p.question = format!(
                    "Build {id} expires {} ({}). Keep it longer by:",
                    format::until(build.expires_at, now),
                    format::time(build.expires_at)
                );
                p.button = "Extend";
                p.choice_name = Some("add_secs");
                p.choice_label = "Keep it longer by";
                p.choices = choices(&EXTEND_BY, 7 * DAY);
            }
            Act::Delete => {
                p.title = format!("Delete build {id}");
                p.question = format!(
                    "Delete build {id} now? Its images and save tags answer 404 at once, for \
                     everyone; garbage collection then reclaims what no other build holds. This \
                     cannot be undone."
                );
                p.button = "Delete the build";
                p.button_class = "danger";
            }
            Act::Mint => {
                p.title = format!("Pull token for build {id}");
                p.question = format!(
                    "Mint a token that reads only build {id} (for `docker login`, skopeo, a \
                     deploy job)? It is shown once."
                );
                p.button = "Mint the token";
                p.choice_name = Some("ttl_secs");
                p.choice_label = "Valid for";
                p.choices = choices(&PULL_TOKEN_FOR, 3600);
            }
        }
        Ok(p)
    }
    .await;
    page(&nav, result, started)
}

#[derive(Debug, Deserialize)]
pub(super) struct ActionForm {
    csrf: String,
    add_secs: Option<i64>,
    ttl_secs: Option<i64>,
}

/// `POST /ui/builds/{id}/{action}`: does it, then shows where things stand.
pub(super) async fn act(
    State(state): State<AppState>,
    Path((id, action)): Path<(String, String)>,
    headers: HeaderMap,
    session: Session,
    Form(form): Form<ActionForm>,
) -> Response {
    let started = Instant::now();
    let nav = Nav::of(&session);
    let done = async {
        session.check_csrf(&form.csrf)?;
        let act = Act::parse(&action).ok_or_else(|| Error::not_found("no such page"))?;
        let build = build_for(&state, &session, &id, act).await?;
        match act {
            Act::Extend => {
                let add = form
                    .add_secs
                    .ok_or_else(|| Error::invalid_request("say how much longer"))?;
                extend_build(&state, &build, Some(add), None).await?;
                tracing::info!(build = %id, add_secs = add, "build extended from the dashboard");
                Ok(see_other(&format!("/ui/builds/{id}")))
            }
            Act::Delete => {
                remove(&state, &build).await?;
                Ok(see_other(&format!("/ui/projects/{}", build.project)))
            }
            Act::Mint => {
                let ttl = form.ttl_secs.unwrap_or(3600);
                if !PULL_TOKEN_FOR.iter().any(|(secs, _)| *secs == ttl) {
                    return Err(Error::invalid_request("ttl_secs: 1 hour, 1 day or 7 days"));
                }
                let (token, exp) =
                    mint_pull_token(&state, &session.caller, &build.project, Some(&id), ttl)?;
                let host = crate::control::registry_host(&state, &headers);
                let minted = MintedPage {
                    nav: nav.clone(),
                    build: id.clone(),
                    login: format!(
                        "echo '{token}' | docker login {host} -u {TOKEN_USERNAME} --password-stdin"
                    ),
                    token,
                    username: TOKEN_USERNAME,
                    expires_at: format::time(exp.saturating_mul(1000)),
                };
                Ok(page(&nav, Ok(minted), started))
            }
        }
    }
    .await;
    match done {
        Ok(response) => response,
        Err(e) => page::<ConfirmPage>(&nav, Err(e), started),
    }
}

fn see_other(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_owned())]).into_response()
}
