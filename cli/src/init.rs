//! `depot init [DIR]`: writes `DIR/depot.json` (`{"id": "<project>"}`), the file every later
//! command in that folder (or below it) takes its project from, as Depot's `depot init` does.

use std::path::PathBuf;

use anyhow::{bail, Context as _, Result};

use crate::api::Api;
use crate::config::{Context, PROJECT_FILES};
use crate::picker;

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  depot init --project k3j9x2m1pq          # writes ./depot.json
  depot init services/api --project k3j9x2m1pq --force
  depot init                               # choose from the token's projects (on a terminal)

Commands run in DIR or any folder below it then use this project unless --project or
DEPOT_PROJECT_ID says otherwise. depot.yml / depot.yaml (`id: <project>`) are read too.")]
pub struct Args {
    /// Folder to write depot.json in
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// Replace a project file that is already there
    #[arg(long)]
    pub force: bool,
}

pub async fn run(ctx: &Context, http: &reqwest::Client, args: Args) -> Result<()> {
    if !args.dir.is_dir() {
        bail!("{} is not a folder", args.dir.display());
    }
    if !args.force {
        for name in PROJECT_FILES {
            let existing = args.dir.join(name);
            if existing.exists() {
                bail!(
                    "{} already exists; pass --force to replace it",
                    existing.display()
                );
            }
        }
    }
    let api = Api::new(http.clone(), ctx);
    // The project given (--project, DEPOT_PROJECT_ID) must be one the token can see, so a typo
    // is caught now rather than at the first build; without one, the token's projects are the
    // choice.
    let projects = api.projects().await?;
    let id = match ctx.explicit_project() {
        Some(p) => {
            if !projects.iter().any(|q| q.id == p) {
                let known: Vec<&str> = projects.iter().map(|q| q.id.as_str()).collect();
                bail!(
                    "project {p} not found (or not visible to this token); its projects: {}",
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                );
            }
            p.to_owned()
        }
        None => {
            let rows: Vec<Vec<String>> = projects
                .iter()
                .map(|p| vec![p.id.clone(), p.name.clone(), p.created_at.clone()])
                .collect();
            picker::pick(
                "project",
                &["id", "name", "created_at"],
                &rows,
                "pass --project <id>",
            )?
        }
    };
    // The other names go, so the folder names one project, the one just chosen.
    for name in PROJECT_FILES.iter().skip(1) {
        let _ = std::fs::remove_file(args.dir.join(name));
    }
    let path = args.dir.join(PROJECT_FILES[0]);
    let mut body = serde_json::to_string_pretty(&serde_json::json!({ "id": id }))?;
    body.push('\n');
    std::fs::write(&path, body).with_context(|| format!("writing {}", path.display()))?;
    eprintln!("Wrote {} (project {id})", path.display());
    Ok(())
}
