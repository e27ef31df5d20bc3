//! `depot-registry admin`: bootstrap and scripting against the metadata database directly, with
//! no server running (create, list and delete projects; create, list and revoke project tokens).
//! Output is JSON.

use std::path::PathBuf;

use crate::control::projects::{deleted_view, new_project, new_project_token, token_view, view};
use depot_store::metadata::Metadata;

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
        /// Keep only the N most recently saved builds
        #[arg(long)]
        keep_builds: Option<i64>,
        /// With --keep-builds: also keep saved builds younger than D days
        #[arg(long, requires = "keep_builds")]
        keep_days: Option<i64>,
    },
    /// Delete a project: its builds expire at once (garbage collection reclaims their storage),
    /// its tokens and trust policies stop working, its name is free again. Prints what went.
    DeleteProject {
        #[arg(long)]
        project: String,
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
    /// List a project's tokens as JSON (never their secrets).
    ListTokens {
        #[arg(long)]
        project: String,
    },
    /// Revoke a project token: it stops working at once, and so does everything minted with it.
    RevokeToken {
        #[arg(long)]
        project: String,
        /// The token's id (from `list-tokens`)
        #[arg(long)]
        id: String,
    },
}

pub async fn run(db: &AdminDb, command: AdminCommand) -> anyhow::Result<()> {
    if db.database_url.is_none() {
        std::fs::create_dir_all(&db.data_dir)?;
    }
    let url = db.database_url.clone().unwrap_or_else(|| {
        format!(
            "sqlite:{}?mode=rwc",
            db.data_dir.join("metadata.db").display()
        )
    });
    let meta = Metadata::connect(&url).await?;
    let now = meta.clock().now_ms();
    let out = match command {
        AdminCommand::CreateProject {
            name,
            retention_secs,
            keep_builds,
            keep_days,
        } => {
            let req = depot_api_types::CreateProject {
                name,
                retention_secs,
                keep_builds,
                keep_days,
            };
            let project = new_project(&meta, req, now).await?;
            serde_json::to_value(view(&project))?
        }
        AdminCommand::DeleteProject { project } => {
            let Some(done) = meta.delete_project(&project, now).await? else {
                anyhow::bail!("no project {project}");
            };
            // Replicas serving on PostgreSQL forget what they cached of its repositories.
            for name in [
                project.clone(),
                depot_store::model::cache_repository(&project),
            ] {
                if let Ok(repo) = name.parse() {
                    meta.notify_changed(&repo).await?;
                }
            }
            serde_json::to_value(deleted_view(&project, done))?
        }
        AdminCommand::CreateToken { project, name } => {
            if meta.project(&project).await?.is_none() {
                anyhow::bail!("no project {project}");
            }
            let (info, secret) = new_project_token(&meta, &project, name, now).await?;
            serde_json::to_value(token_view(&info, Some(secret)))?
        }
        AdminCommand::ListTokens { project } => {
            if meta.project(&project).await?.is_none() {
                anyhow::bail!("no project {project}");
            }
            let tokens = meta.list_project_tokens(&project).await?;
            serde_json::to_value(depot_api_types::TokenList {
                tokens: tokens.iter().map(|t| token_view(t, None)).collect(),
            })?
        }
        AdminCommand::RevokeToken { project, id } => {
            if !meta.revoke_project_token(&project, &id, now).await? {
                let known = meta.list_project_tokens(&project).await?;
                match known.iter().find(|t| t.id == id) {
                    Some(t) => anyhow::bail!(
                        "token {id} of project {project} was already revoked at {}",
                        depot_store::model::rfc3339(t.revoked_at.unwrap_or_default())
                    ),
                    None => anyhow::bail!("project {project} has no token {id}"),
                }
            }
            tracing::info!(%project, token_id = %id, "project token revoked");
            serde_json::json!({ "revoked": id, "project": project })
        }
        AdminCommand::ListProjects => {
            let projects = meta.list_projects().await?;
            serde_json::to_value(depot_api_types::ProjectList {
                projects: projects.iter().map(view).collect(),
            })?
        }
    };
    meta.close().await;
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}
