//! `depot image list|rm`: a project's images as Depot's CLI shows them (`Tag`, `Digest`,
//! `Size (bytes)`, `Pushed At`), mapped onto builds and save tags by the registry: removing a
//! build's own tag deletes the build, removing a save tag removes only the tag.

use anyhow::{bail, Result};
use serde_json::Value;

use crate::api::Api;
use crate::config::Context;
use crate::list::{format_or_default, print_rows, Format};

#[derive(Debug, clap::Subcommand)]
pub enum Args {
    /// The project's images, most recently pushed first (a table on a terminal, CSV otherwise)
    #[command(
        visible_alias = "ls",
        after_help = "Examples:\n  depot image list --project k3j9x2m1pq\n  depot image list --output json | jq -r '.[].tag'"
    )]
    List {
        /// table, json or csv (default: table on a terminal, csv otherwise)
        #[arg(long, short = 'o', value_enum)]
        output: Option<Format>,
        /// How many images at most
        #[arg(long, default_value_t = 1000)]
        limit: u32,
    },
    /// Remove images by tag: a build's own tag (its ID) deletes the build, a save tag only the tag
    #[command(
        visible_alias = "remove",
        after_help = "Examples:\n  depot image rm q8wm3k0z7c2f4n1x        (the whole build)\n  depot image rm latest v1.2               (just these save tags)"
    )]
    Rm {
        /// The tags
        #[arg(required = true)]
        tags: Vec<String>,
    },
}

pub async fn run(ctx: &Context, http: &reqwest::Client, args: Args) -> Result<()> {
    let api = Api::new(http.clone(), ctx);
    let project = ctx.project()?;
    match args {
        Args::List { output, limit } => {
            let mut rows: Vec<Value> = Vec::new();
            let mut cursor: Option<String> = None;
            while (rows.len() as u32) < limit {
                let want = (limit - rows.len() as u32).min(500);
                let (page, next) = api.images_page(project, want, cursor.as_deref()).await?;
                rows.extend(
                    page.into_iter()
                        .map(|i| serde_json::to_value(i).unwrap_or_default()),
                );
                match next {
                    Some(n) => cursor = Some(n),
                    None => break,
                }
            }
            let headers = ["Tag", "Digest", "Size (bytes)", "Pushed At"];
            print_rows(
                format_or_default(output),
                &["tag", "digest", "size", "pushed_at"],
                &headers,
                &headers,
                &rows,
            )
        }
        Args::Rm { tags } => {
            let mut failed = 0;
            for tag in &tags {
                match api.remove_image(project, tag).await {
                    Ok(Some(removed)) => match removed.build {
                        Some(build) if removed.kind == depot_api_types::ImageKind::Build => {
                            eprintln!("Deleted build {build} ({tag})")
                        }
                        Some(build) => eprintln!("Removed tag {tag} (build {build} stays)"),
                        None => eprintln!("Removed tag {tag}"),
                    },
                    Ok(None) => {
                        failed += 1;
                        eprintln!("error: project {project} has no image {tag}");
                    }
                    Err(e) => {
                        failed += 1;
                        eprintln!("error: {tag}: {e:#}");
                    }
                }
            }
            if failed > 0 {
                bail!("{failed} of {} images not removed", tags.len());
            }
            Ok(())
        }
    }
}
