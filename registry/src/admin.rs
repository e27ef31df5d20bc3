//! `depot-registry admin`: bootstrap and scripting against the metadata database directly, with
//! no server running (create a project, create a project token, list projects). Output is JSON.

use std::path::PathBuf;

use crate::clock::Clock;
use crate::control::projects::{new_project, new_project_token, token_view, view};
use crate::metadata::Metadata;

/// Where the metadata lives (the same options as `serve`).
#[derive(Debug, Clone, clap::Args)]
pub struct AdminDb {
    #[arg(long, env = "DEPOT_DATA_DIR", default_value = "./depot-data")]
    pub data_dir: PathBuf,
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,
}

#[derive(Debug, clap::Subcommand)]
pub enum AdminCommand {
    /// Create a project; prints it as JSON (its `id` is the repository name).
    CreateProject {
        #[arg(long)]
        name: String,
        /// How long its builds are kept (default 7 days).
        #[arg(long)]
        retention_secs: Option<i64>,
    },
    /// Create a project token; prints it as JSON, with the secret (shown only this once).
    CreateToken {
        #[arg(long)]
        project: String,
        #[arg(long)]
        name: String,
    },
    /// List projects as JSON.
    ListProjects,
}

pub async fn run(db: &AdminDb, command: AdminCommand) -> anyhow::Result<()> {
    std::fs::create_dir_all(&db.data_dir)?;
    let url = db.database_url.clone().unwrap_or_else(|| {
        format!(
            "sqlite:{}?mode=rwc",
            db.data_dir.join("metadata.db").display()
        )
    });
    let meta = Metadata::connect(&url).await?;
    let now = Clock::default().now_ms();
    let fail = |e: crate::error::Error| anyhow::anyhow!("{}", e.message);
    let out = match command {
        AdminCommand::CreateProject {
            name,
            retention_secs,
        } => view(
            &new_project(&meta, name, retention_secs, now)
                .await
                .map_err(fail)?,
        ),
        AdminCommand::CreateToken { project, name } => {
            if meta.project(&project).await.map_err(fail)?.is_none() {
                anyhow::bail!("no project {project}");
            }
            let (info, secret) = new_project_token(&meta, &project, name, now)
                .await
                .map_err(fail)?;
            let mut v = token_view(&info);
            v["token"] = serde_json::json!(secret);
            v
        }
        AdminCommand::ListProjects => {
            let projects = meta.list_projects().await.map_err(fail)?;
            serde_json::json!({ "projects": projects.iter().map(view).collect::<Vec<_>>() })
        }
    };
    meta.close().await;
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}
