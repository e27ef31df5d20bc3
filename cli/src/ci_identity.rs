//! Keyless CI: when no token was given (no `--token`, no `DEPOT_TOKEN`, no saved login), a CI
//! job proves who it is with the OIDC ID token its provider issues it, asked for with the
//! registry's audience, and exchanges it for a short-lived credential on the project.
//!
//! Where each provider hands the job its token:
//! - GitHub Actions: `ACTIONS_ID_TOKEN_REQUEST_URL` + `ACTIONS_ID_TOKEN_REQUEST_TOKEN` (with
//!   `permissions: id-token: write`), asked for `&audience=<registry's>`;
//! - GitLab: `DEPOT_OIDC_TOKEN`, from an `id_tokens:` block naming the registry's audience;
//! - CircleCI: `circleci run oidc get --claims '{"aud": ...}'` when that CLI is there, else
//!   `CIRCLE_OIDC_TOKEN_V2` (whose audience is the organisation id: only a registry started
//!   with that as `--oidc-audience` accepts it);
//! - Buildkite: `buildkite-agent oidc request-token --audience <registry's>`.

use anyhow::{anyhow, bail, Context as _, Result};
use serde::Deserialize;

use crate::api::Api;
use crate::config::Context;

/// Where a job's ID token came from, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    GithubActions,
    Gitlab,
    Circleci,
    Buildkite,
}

impl Source {
    fn name(self) -> &'static str {
        match self {
            Source::GithubActions => "GitHub Actions",
            Source::Gitlab => "GitLab CI (DEPOT_OIDC_TOKEN)",
            Source::Circleci => "CircleCI",
            Source::Buildkite => "Buildkite",
        }
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The provider whose job this is, judged by what its runner puts in the environment.
pub fn detect() -> Option<Source> {
    if env("ACTIONS_ID_TOKEN_REQUEST_URL").is_some()
        && env("ACTIONS_ID_TOKEN_REQUEST_TOKEN").is_some()
    {
        Some(Source::GithubActions)
    } else if env("DEPOT_OIDC_TOKEN").is_some() {
        Some(Source::Gitlab)
    } else if env("CIRCLECI").is_some()
        && (env("CIRCLE_OIDC_TOKEN_V2").is_some() || on_path("circleci"))
    {
        Some(Source::Circleci)
    } else if env("BUILDKITE").is_some() && on_path("buildkite-agent") {
        Some(Source::Buildkite)
    } else {
        None
    }
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// Runs a provider's own CLI for a token; its trimmed standard output.
async fn command_token(program: &str, args: &[&str]) -> Result<String> {
    let out = tokio::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .with_context(|| format!("running {program}"))?;
    if !out.status.success() {
        bail!(
            "{program} {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let token = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if token.is_empty() {
        bail!("{program} printed no token");
    }
    Ok(token)
}

/// The job's ID token for `audience`, from `source`.
pub async fn id_token(http: &reqwest::Client, source: Source, audience: &str) -> Result<String> {
    match source {
        Source::GithubActions => {
            #[derive(Deserialize)]
            struct Answer {
                value: String,
            }
            let url = env("ACTIONS_ID_TOKEN_REQUEST_URL").unwrap_or_default();
            let request = env("ACTIONS_ID_TOKEN_REQUEST_TOKEN").unwrap_or_default();
            let mut url =
                reqwest::Url::parse(&url).context("ACTIONS_ID_TOKEN_REQUEST_URL is not a URL")?;
            url.query_pairs_mut().append_pair("audience", audience);
            let resp = http
                .get(url)
                .bearer_auth(request)
                .send()
                .await
                .context("asking GitHub Actions for the job's ID token")?;
            if !resp.status().is_success() {
                bail!(
                    "GitHub Actions refused the ID token request: {} (does the job have `permissions: id-token: write`?)",
                    resp.status()
                );
            }
            let answer: Answer = resp
                .json()
                .await
                .context("GitHub Actions' ID token answer is not the expected JSON")?;
            Ok(answer.value)
        }
        Source::Gitlab => Ok(env("DEPOT_OIDC_TOKEN").unwrap_or_default()),
        Source::Circleci => {
            if on_path("circleci") {
                let claims = serde_json::json!({ "aud": audience }).to_string();
                if let Ok(token) =
                    command_token("circleci", &["run", "oidc", "get", "--claims", &claims]).await
                {
                    return Ok(token);
                }
            }
            env("CIRCLE_OIDC_TOKEN_V2").ok_or_else(|| anyhow!("CIRCLE_OIDC_TOKEN_V2 is not set"))
        }
        Source::Buildkite => {
            command_token(
                "buildkite-agent",
                &["oidc", "request-token", "--audience", audience],
            )
            .await
        }
    }
}

/// Exchanges this CI job's identity for a credential on the project: for `depot oidc-token`,
/// and whenever a command has no token.
pub async fn exchange(ctx: &Context, http: &reqwest::Client) -> Result<crate::api::OidcCredential> {
    let source = detect().ok_or_else(|| {
        anyhow!(
            "this is not a CI job with an OIDC identity the CLI can find: {}",
            crate::config::NO_CREDENTIALS_HINT
        )
    })?;
    let api = Api::new(
        http.clone(),
        &Context {
            token: None,
            ..ctx.clone()
        },
    );
    let config = api.oidc_config().await?.ok_or_else(|| {
        anyhow!(
            "{} has no OIDC exchange (it needs --public-url or --oidc-audience)",
            ctx.registry
        )
    })?;
    exchange_with(ctx, http, source, &config.audience).await
}

async fn exchange_with(
    ctx: &Context,
    http: &reqwest::Client,
    source: Source,
    audience: &str,
) -> Result<crate::api::OidcCredential> {
    let project = ctx
        .project()
        .context("exchanging the job's OIDC token needs the project")?
        .to_owned();
    let token = id_token(http, source, audience)
        .await
        .with_context(|| format!("getting the {} job's OIDC token", source.name()))?;
    let api = Api::new(
        http.clone(),
        &Context {
            token: None,
            ..ctx.clone()
        },
    );
    let credential = api.oidc_exchange(&project, &token).await.with_context(|| {
        format!(
            "exchanging the {} job's OIDC token with {}",
            source.name(),
            ctx.registry
        )
    })?;
    eprintln!(
        "Authenticated by OIDC as this {} job: {} access to project {} until {} (policy {})",
        source.name(),
        credential.access.as_str(),
        credential.project,
        credential.expires_at,
        credential.policy
    );
    Ok(credential)
}

/// Sets `ctx.token` from the job's identity, when there is no token yet and this is a CI job
/// of a provider the CLI knows. Against a registry without an OIDC exchange (e.g. `--no-auth`)
/// nothing changes.
pub async fn authenticate(ctx: &mut Context, http: &reqwest::Client) -> Result<()> {
    if ctx.token.is_some() {
        return Ok(());
    }
    let Some(source) = detect() else {
        return Ok(());
    };
    let Some(config) = Api::new(http.clone(), ctx).oidc_config().await? else {
        return Ok(());
    };
    ctx.token = Some(
        exchange_with(ctx, http, source, &config.audience)
            .await?
            .token,
    );
    Ok(())
}
