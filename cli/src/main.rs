//! `depot`: pull a build by its ID into Docker or to disk, promote it to any number of
//! registries in parallel, and manage the login, pull tokens and listings around that.

mod api;
mod build;
mod ci_identity;
mod config;
mod image;
mod init;
mod list;
mod oci;
mod picker;
mod progress;
mod project_images;
mod projects;
mod pull;
mod push;
mod source;
mod trust;

use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

use anyhow::{bail, Context as _, Result};
use clap::{Parser, Subcommand};

use config::Context;

#[derive(Debug, Parser)]
#[command(
    name = "depot",
    version = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("DEPOT_COMMIT"), ")"),
    about = "Build container images into a depot registry, pull them by build ID, promote them",
    after_help = "Examples:
  echo \"$DEPOT_TOKEN\" | depot login --registry https://registry.example.com --token-stdin
  depot build --save --platform linux/amd64,linux/arm64 .
  depot pull q8wm3k0z7c2f4n1x
  depot push -t ghcr.io/acme/app:v1 -t docker.io/acme/app:v1 q8wm3k0z7c2f4n1x
  depot list builds --project k3j9x2m1pq"
)]
struct Cli {
    /// URL of the depot registry [default: the one saved by `depot login`, else http://127.0.0.1:5000]
    #[arg(long, global = true, env = "DEPOT_REGISTRY")]
    registry: Option<String>,
    /// Project ID [default: the "id" of the nearest depot.json]
    #[arg(long, global = true, env = "DEPOT_PROJECT_ID")]
    project: Option<String>,
    /// API token [default: the one saved by `depot login`, else a CI job's OIDC identity]
    #[arg(long, global = true, env = "DEPOT_TOKEN", hide_env_values = true)]
    token: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Save a token (and the registry URL) for later commands
    #[command(after_help = "Examples:
  echo \"$TOKEN\" | depot login --registry https://registry.example.com --token-stdin
  depot login --token depot_pt_...      (prompted for when neither is given on a terminal)

The token is checked against the registry, then saved (mode 0600) in
~/.config/depot/credentials.json ($XDG_CONFIG_HOME/depot/credentials.json).")]
    Login {
        /// Read the token from standard input
        #[arg(long)]
        token_stdin: bool,
    },
    /// Write depot.json: the project of this folder and the folders below it
    Init(init::Args),
    /// Forget the saved token
    #[command(after_help = "Example:\n  depot logout")]
    Logout,
    /// Print a short-lived pull token, for `docker login -u x-token --password-stdin`
    #[command(after_help = "Examples:
  depot pull-token q8wm3k0z7c2f4n1x | docker login registry.example.com -u x-token --password-stdin
  depot pull-token --project k3j9x2m1pq --ttl 3600")]
    PullToken {
        /// Only this build (default: the whole project)
        build: Option<String>,
        /// Lifetime in seconds (default: the registry's, 1 hour)
        #[arg(long)]
        ttl: Option<u64>,
    },
    /// Exchange this CI job's OIDC identity for a short-lived depot token, and print it
    #[command(
        name = "oidc-token",
        after_help = "Examples:
  DEPOT_TOKEN=$(depot oidc-token --project k3j9x2m1pq)
  depot oidc-token | docker login registry.example.com -u x-token --password-stdin

Finds the identity the way every command does when it has no token: GitHub Actions
(ACTIONS_ID_TOKEN_REQUEST_URL, with `permissions: id-token: write`), GitLab (DEPOT_OIDC_TOKEN
from `id_tokens:`), CircleCI (the circleci CLI or CIRCLE_OIDC_TOKEN_V2), Buildkite
(buildkite-agent). A trust policy of the project must admit the job."
    )]
    OidcToken,
    /// Build an image (with --save: into the depot registry, under a new build ID)
    Build(Box<build::BuildArgs>),
    /// Build the targets of a bake or Compose file (with --save: all into one build)
    Bake(build::BakeArgs),
    /// List projects or builds
    List(list::Args),
    /// A project's images: list them, remove them by tag
    #[command(subcommand)]
    Image(project_images::Args),
    /// Projects: list, create, change retention (by age or by count), delete
    #[command(subcommand)]
    Projects(projects::Args),
    /// Pull a build into the local Docker daemon, or write it to disk
    Pull(pull::Args),
    /// Copy a build to one or more registries, all at once
    Push(push::Args),
    /// Print a shell completion script
    #[command(after_help = "Examples:
  depot completion bash > /etc/bash_completion.d/depot
  depot completion zsh > \"${fpath[1]}/_depot\"
  depot completion fish > ~/.config/fish/completions/depot.fish")]
    Completion {
        /// The shell to complete in
        shell: clap_complete::Shell,
    },
    /// Decide which CI jobs may use their OIDC identity instead of a stored token
    #[command(subcommand, name = "trust-policy")]
    TrustPolicy(trust::Args),
}

/// How project tokens begin (the registry's `depot_pt_`): such a token belongs to one project.
const PROJECT_TOKEN_PREFIX: &str = "depot_pt_";

fn http() -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .user_agent(concat!("depot-cli/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(std::time::Duration::from_secs(15))
        // No overall timeout: a large blob may take long; stalls are caught by reads that
        // make no progress for this long.
        .read_timeout(std::time::Duration::from_secs(120))
        .pool_max_idle_per_host(16)
        .build()
        .context("building the HTTP client")
}

async fn login(
    cli_token: Option<String>,
    registry: Option<String>,
    token_stdin: bool,
) -> Result<()> {
    let token = if token_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        line.trim().to_owned()
    } else if let Some(t) = cli_token {
        t
    } else if std::io::stdin().is_terminal() {
        // Typed (or pasted) at a prompt that does not echo it, like `docker login`'s password.
        rpassword::prompt_password("Token (input hidden): ")
            .context("reading the token")?
            .trim()
            .to_owned()
    } else {
        bail!("no token given: pass --token-stdin (and pipe it in) or --token");
    };
    if token.is_empty() {
        bail!("the token is empty");
    }
    let stored = config::load_stored()?;
    let ctx = Context::resolve(registry.or(stored.registry), None, Some(token.clone()))?;
    let projects = api::Api::new(http()?, &ctx)
        .projects()
        .await
        .with_context(|| format!("checking the token with {}", ctx.registry))?;
    // A project token sees its own project only: later commands default to it, so a login is
    // all a new user needs before `depot build --save` (an admin token names no project).
    let project = match projects.as_slice() {
        [p] if token.starts_with(PROJECT_TOKEN_PREFIX) => Some(p.id.clone()),
        _ => None,
    };
    let path = config::save_stored(&config::Stored {
        registry: Some(ctx.registry.clone()),
        token: Some(token),
        project: project.clone(),
    })?;
    match project {
        Some(p) => eprintln!(
            "Logged in to {} with a token of project {p} (saved in {})",
            ctx.registry,
            path.display()
        ),
        None => eprintln!(
            "Logged in to {} (token saved in {}; name the project with --project or `depot init`)",
            ctx.registry,
            path.display()
        ),
    }
    Ok(())
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Login { token_stdin } => login(cli.token, cli.registry, token_stdin).await,
        Command::Logout => {
            if config::forget_stored()? {
                eprintln!("Logged out (saved token removed)");
            } else {
                eprintln!("Not logged in");
            }
            Ok(())
        }
        Command::Completion { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "depot", &mut std::io::stdout());
            Ok(())
        }
        Command::OidcToken => {
            let ctx = Context::resolve(cli.registry, cli.project, None)?;
            let credential = ci_identity::exchange(&ctx, &http()?).await?;
            println!("{}", credential.token);
            Ok(())
        }
        command => {
            let mut ctx = Context::resolve(cli.registry, cli.project, cli.token)?;
            let http = http()?;
            // After --token, DEPOT_TOKEN and a saved login: the CI job's own identity.
            ci_identity::authenticate(&mut ctx, &http).await?;
            match command {
                Command::PullToken { build, ttl } => {
                    let api = api::Api::new(http, &ctx);
                    let project = if build.is_some() {
                        None
                    } else {
                        Some(ctx.project()?)
                    };
                    let t = api.pull_token(project, build.as_deref(), ttl).await?;
                    println!("{}", t.token);
                    eprintln!("user x-token, expires {}", t.expires_at);
                    Ok(())
                }
                Command::Init(args) => init::run(&ctx, &http, args).await,
                Command::Build(args) => build::run_build(&ctx, &http, *args).await,
                Command::Bake(args) => build::run_bake(&ctx, &http, args).await,
                Command::List(args) => list::run(&ctx, &http, args).await,
                Command::Image(args) => project_images::run(&ctx, &http, args).await,
                Command::Projects(args) => projects::run(&ctx, &http, args).await,
                Command::Pull(args) => pull::run(&ctx, &http, args).await,
                Command::Push(args) => push::run(&ctx, &http, args).await,
                Command::TrustPolicy(args) => trust::run(&ctx, &http, args).await,
                Command::Login { .. }
                | Command::Logout
                | Command::OidcToken
                | Command::Completion { .. } => {
                    unreachable!("handled above")
                }
            }
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    // Run as `docker-credential-depot-build` by buildx during `depot build --builder buildx`.
    if let Some(code) = build::credhelper::serve_if_invoked() {
        return code;
    }
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
