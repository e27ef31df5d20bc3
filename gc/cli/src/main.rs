//! `depot-gc`: the depot registry's garbage collection from the command line, with the same
//! database and storage options as `depot-registry serve`. Servers collect on their own
//! (`--gc-interval`); this is for running it elsewhere (a cron job, with `--gc-interval 0` on the
//! servers), looking at what it did, and reconciling the store after crashes.

use std::io::IsTerminal;
use std::time::Duration;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use depot_gc::reconcile::reconcile;
use depot_gc::{Catalog, Collector};
use depot_store::backend::{open_backend, BackendConfig, GcConfig};
use depot_store::gc::{holder, Backend};
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(
    name = "depot-gc",
    version,
    about = "Expire builds and collect garbage in a depot registry, while it serves",
    after_help = "Examples:
  depot-gc run --once                                  # one collection, embedded registry in ./depot-data
  depot-gc run --once --dry-run                        # what would go, nothing deleted
  DATABASE_URL=postgres://... DEPOT_STORAGE=s3://bucket depot-gc run --interval 300
  depot-gc status
  depot-gc reconcile --dry-run                         # objects no metadata refers to"
)]
struct Cli {
    #[command(flatten)]
    backend: BackendConfig,
    #[command(flatten)]
    gc: GcConfig,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Collect: expire builds and manifests, drop abandoned uploads, delete unreferenced blobs
    Run {
        /// One collection, then exit (default: one every --interval seconds)
        #[arg(long)]
        once: bool,
        /// Say what would go; delete nothing
        #[arg(long)]
        dry_run: bool,
        /// Seconds between collections without --once
        #[arg(long, default_value_t = 300)]
        interval: u64,
        /// Print every build, manifest, upload and blob collected
        #[arg(short, long)]
        verbose: bool,
    },
    /// Recent collections and what is waiting to be collected
    Status {
        /// As JSON
        #[arg(long)]
        json: bool,
        /// How many recent collections
        #[arg(long, default_value_t = 10)]
        runs: usize,
    },
    /// List the whole store and remove objects no metadata refers to (left by crashes), older
    /// than the grace period
    Reconcile {
        #[arg(long)]
        dry_run: bool,
    },
}

/// The command line, with every database, storage and collection option accepted after the
/// subcommand as well as before it (`depot-gc run --once --gc-grace 0`): they are marked global,
/// which clap allows because none of them is positional or required.
fn command() -> clap::Command {
    Cli::command().mut_args(|a| a.global(true))
}

fn parse() -> Cli {
    Cli::from_arg_matches(&command().get_matches()).unwrap_or_else(|e| e.exit())
}

fn print_item(line: &str) {
    println!("  {line}");
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let (meta, store) = open_backend(&cli.backend, false).await?;
    let clock = meta.clock().clone();
    let backend = Backend {
        meta,
        store,
        caches: None,
    };
    match cli.command {
        Command::Run {
            once,
            dry_run,
            interval,
            verbose,
        } => {
            let collector = Collector {
                catalog: &backend,
                objects: &backend,
                clock: &clock,
                config: cli.gc.collector(dry_run),
                holder: holder("depot-gc"),
                on_item: (verbose || dry_run).then_some(&print_item as &(dyn Fn(&str) + Sync)),
            };
            loop {
                match collector.run().await? {
                    Some(report) => {
                        let what = if dry_run { "dry run" } else { "collection" };
                        println!("{what}: {}", report.summary());
                        if once && report.errors > 0 {
                            anyhow::bail!("the collection had {} errors", report.errors);
                        }
                    }
                    None => println!("another collector holds the lock; nothing done"),
                }
                if once {
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_secs(interval)).await;
            }
        }
        Command::Status { json, runs } => {
            let now = clock.now_ms();
            let cutoff = now - (cli.gc.grace_secs as i64) * 1000;
            let uploads_before = clock.wall_ms() - (cli.gc.upload_timeout_secs as i64) * 1000;
            let pending = backend.pending(now, cutoff, uploads_before).await?;
            let recent = backend.recent_runs(runs).await?;
            if json {
                let out = serde_json::json!({ "pending": pending, "runs": recent });
                println!("{}", serde_json::to_string_pretty(&out)?);
                return Ok(());
            }
            println!("Waiting to be collected:");
            println!(
                "  expired builds not yet reaped  {}",
                pending.expired_builds
            );
            println!(
                "  expired manifests              {}",
                pending.expired_manifests
            );
            println!(
                "  candidate blobs                {} ({} past the grace period, {} bytes)",
                pending.candidate_blobs, pending.collectable_blobs, pending.collectable_bytes
            );
            println!("  idle upload sessions           {}", pending.stale_uploads);
            println!("  trash (metadata gone)          {}", pending.trash);
            println!("Recent collections (newest first):");
            if recent.is_empty() {
                println!("  none");
            }
            for r in recent {
                println!(
                    "  {} {} by {}: {}",
                    // A time, not an epoch count.
                    depot_store::model::rfc3339(r.started_at),
                    if r.dry_run { "dry run" } else { "run" },
                    r.holder,
                    r.summary()
                );
            }
            Ok(())
        }
        Command::Reconcile { dry_run } => {
            let grace = Duration::from_secs(cli.gc.grace_secs);
            let out = reconcile(&backend, &backend, &clock, grace, dry_run, &print_item).await?;
            let verb = if dry_run { "would remove" } else { "removed" };
            println!(
                "reconcile: {} objects listed; {verb} {} orphans ({} bytes); {} unreferenced but younger than the grace period; {} listed but already gone",
                out.listed, out.orphans, out.bytes, out.young, out.gone
            );
            Ok(())
        }
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let filter = EnvFilter::try_from_env("DEPOT_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, never into a log file or a pipe.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match run(parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
        super::command().debug_assert();
    }

    #[test]
    fn options_are_accepted_after_the_subcommand() {
        use clap::FromArgMatches;
        let matches = super::command()
            .try_get_matches_from([
                "depot-gc",
                "run",
                "--once",
                "--gc-grace",
                "7",
                "--data-dir",
                "/x",
            ])
            .unwrap();
        let cli = super::Cli::from_arg_matches(&matches).unwrap();
        assert_eq!(cli.gc.grace_secs, 7);
        assert_eq!(cli.backend.data_dir, std::path::Path::new("/x"));
        assert!(matches!(
            cli.command,
            super::Command::Run { once: true, .. }
        ));
    }

    #[test]
    fn status_prints_times() {
        assert_eq!(
            depot_store::model::rfc3339(1_795_392_485_000),
            "2026-11-23T00:08:05Z"
        );
    }
}
