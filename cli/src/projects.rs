//! `depot projects list|create|update|delete`: projects and their retention (by age, and by
//! count: keep the newest N builds, optionally everything younger than D days). Creating,
//! changing and deleting need the admin token.

use std::io::IsTerminal;

use anyhow::{bail, Result};

use crate::api::{Api, CreateProject, UpdateProject};
use crate::build::parse_retention;
use crate::config::Context;
use crate::list::{format_or_default, Format};

/// `--keep-builds`/`--keep-days`: a number, or `none` to remove it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    At(i64),
    None,
}

fn parse_limit(s: &str) -> std::result::Result<Limit, String> {
    if s == "none" {
        return Ok(Limit::None);
    }
    s.parse::<i64>()
        .map(Limit::At)
        .map_err(|_| format!("{s:?} is not a number (or `none`)"))
}

impl Limit {
    fn wire(self) -> Option<i64> {
        match self {
            Limit::At(n) => Some(n),
            Limit::None => None,
        }
    }
}

#[derive(Debug, clap::Subcommand)]
pub enum Args {
    /// The projects this token can see
    #[command(visible_alias = "ls")]
    List {
        /// table, json or csv (default: table on a terminal, csv otherwise)
        #[arg(long, short = 'o', value_enum)]
        output: Option<Format>,
    },
    /// Create a project (admin token); prints its ID
    #[command(after_help = "Examples:
  depot projects create web
  depot projects create web --retention 30d --keep-builds 20 --keep-days 3")]
    Create {
        name: String,
        /// How long its builds are kept (7d, 12h; default 7 days)
        #[arg(long, value_name = "DURATION", value_parser = parse_retention)]
        retention: Option<i64>,
        /// Keep only the N most recently saved builds (older ones expire at once)
        #[arg(long, value_name = "N")]
        keep_builds: Option<i64>,
        /// With --keep-builds: also keep saved builds younger than D days
        #[arg(long, value_name = "D", requires = "keep_builds")]
        keep_days: Option<i64>,
    },
    /// Rename a project or change its retention (admin token). A count policy applies at once
    /// to the builds saved already; a new --retention applies to builds created from then on
    #[command(after_help = "Examples:
  depot projects update --keep-builds 10                 (the project of depot.json)
  depot projects update --project k3j9x2m1pq --keep-builds 10 --keep-days 7
  depot projects update --keep-builds none               (no count limit)")]
    Update {
        /// New name
        #[arg(long)]
        name: Option<String>,
        /// How long builds created from now on are kept
        #[arg(long, value_name = "DURATION", value_parser = parse_retention)]
        retention: Option<i64>,
        /// Keep only the N most recently saved builds, or `none`
        #[arg(long, value_name = "N|none", value_parser = parse_limit)]
        keep_builds: Option<Limit>,
        /// Beside --keep-builds, keep saved builds younger than D days, or `none`
        #[arg(long, value_name = "D|none", value_parser = parse_limit)]
        keep_days: Option<Limit>,
    },
    /// Delete a project (admin token): its builds answer 404 at once, its tokens and trust
    /// policies stop working, garbage collection reclaims its storage
    #[command(after_help = "Example:\n  depot projects delete k3j9x2m1pq --yes")]
    Delete {
        /// The project's ID
        project: String,
        /// Yes, delete it and every build of it
        #[arg(long)]
        yes: bool,
    },
}

pub async fn run(ctx: &Context, http: &reqwest::Client, args: Args) -> Result<()> {
    let api = Api::new(http.clone(), ctx);
    match args {
        Args::List { output } => {
            let list = crate::list::Args {
                what: crate::list::What::Projects,
                output: Some(format_or_default(output)),
            };
            crate::list::run(ctx, http, list).await
        }
        Args::Create {
            name,
            retention,
            keep_builds,
            keep_days,
        } => {
            let project = api
                .create_project(&CreateProject {
                    name,
                    retention_secs: retention,
                    keep_builds,
                    keep_days,
                })
                .await?;
            eprintln!(
                "Created project {} ({}); `depot init --project {}` makes it this folder's",
                project.name, project.id, project.id
            );
            println!("{}", project.id);
            Ok(())
        }
        Args::Update {
            name,
            retention,
            keep_builds,
            keep_days,
        } => {
            if name.is_none() && retention.is_none() && keep_builds.is_none() && keep_days.is_none()
            {
                bail!("nothing to change: give --name, --retention, --keep-builds or --keep-days");
            }
            let project = ctx.project()?;
            let updated = api
                .update_project(
                    project,
                    &UpdateProject {
                        name,
                        retention_secs: retention,
                        keep_builds: keep_builds.map(Limit::wire),
                        keep_days: keep_days.map(Limit::wire),
                    },
                )
                .await?;
            let count = match (updated.keep_builds, updated.keep_days) {
                (Some(n), Some(d)) => {
                    format!("the newest {n} builds and every build younger than {d} days")
                }
                (Some(n), None) => format!("the newest {n} builds"),
                _ => "every build until it expires".to_owned(),
            };
            eprintln!(
                "Project {} ({}) keeps {count}; new builds expire after {}",
                updated.name,
                updated.id,
                humantime::format_duration(std::time::Duration::from_secs(
                    updated.retention_secs.max(0) as u64
                ))
            );
            Ok(())
        }
        Args::Delete { project, yes } => {
            if !yes {
                let how = if std::io::stdin().is_terminal() {
                    "run it again with --yes"
                } else {
                    "pass --yes"
                };
                bail!("deleting project {project} expires every build of it at once: {how}");
            }
            let done = api.delete_project(&project).await?;
            eprintln!(
                "Deleted project {project}: {} builds expired, {} tokens revoked, {} trust policies removed",
                done.builds_expired, done.tokens_revoked, done.trust_policies_removed
            );
            Ok(())
        }
    }
}
