//! `depot-conformance`: runs the OCI distribution-spec conformance checks against a registry URL
//! and prints one line per check and a summary.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use depot_conformance::{failures, format_outcome, run, Options};

#[derive(Debug, Parser)]
#[command(
    name = "depot-conformance",
    version,
    about = "OCI distribution-spec conformance checks (v1.1.1 and the spec's main branch) for any registry"
)]
struct Cli {
    /// Registry base URL, e.g. http://127.0.0.1:5000
    #[arg(long, env = "DEPOT_CONFORMANCE_URL")]
    url: String,

    /// User name for Basic auth or the token endpoint.
    #[arg(long, env = "DEPOT_CONFORMANCE_USERNAME")]
    username: Option<String>,

    /// Password or token (prefer the environment variable to keep it out of `ps`).
    #[arg(long, env = "DEPOT_CONFORMANCE_PASSWORD", hide_env_values = true)]
    password: Option<String>,

    /// Repository namespace to work under (default: a fresh `conformance/run<random>`).
    #[arg(long)]
    namespace: Option<String>,

    /// Only run checks whose id contains this text.
    #[arg(long)]
    filter: Option<String>,

    /// Repeat each early-answer check (a request with a body the registry may answer before
    /// reading it) on this many fresh connections, so a reset race shows up.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    fresh_connections: u64,

    /// A file listing (one id per line, `#` comments) the checks this registry is known to fail:
    /// the run succeeds only if exactly those fail.
    #[arg(long)]
    expect_failures: Option<PathBuf>,
}

fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    let credentials = match (cli.username, cli.password) {
        (Some(u), Some(p)) => Some((u, p)),
        (None, None) => None,
        _ => anyhow::bail!("give both --username and --password, or neither"),
    };
    let options = Options {
        url: cli.url,
        credentials,
        namespace: cli.namespace,
        filter: cli.filter,
        fresh_connections: cli.fresh_connections as usize,
    };
    let outcomes = run(&options, |o| println!("{}", format_outcome(o)))?;
    let failed: BTreeSet<&str> = failures(&outcomes).into_iter().collect();
    let passed = outcomes.len() - failed.len();
    println!("conformance: {passed} passed, {} failed", failed.len());

    let Some(path) = cli.expect_failures else {
        return Ok(if failed.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    };
    let text = std::fs::read_to_string(&path)?;
    let expected: BTreeSet<&str> = text
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .collect();
    let unexpected: Vec<_> = failed.difference(&expected).collect();
    let fixed: Vec<_> = expected.difference(&failed).collect();
    if unexpected.is_empty() && fixed.is_empty() {
        println!("failures match {}", path.display());
        return Ok(ExitCode::SUCCESS);
    }
    if !unexpected.is_empty() {
        println!(
            "failed but not listed in {}: {unexpected:?}",
            path.display()
        );
    }
    if !fixed.is_empty() {
        println!("listed in {} but passed: {fixed:?}", path.display());
    }
    Ok(ExitCode::FAILURE)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn verify_cli() {
        super::Cli::command().debug_assert();
    }
}
