//! What `<build-id|save-tag>` names in the depot registry: the saved images (one, or one per
//! bake target) with their tags and digests, read through one registry client.

use std::sync::Arc;

use anyhow::{anyhow, bail, Result};
use sha2::{Digest, Sha256};

use crate::api::Api;
use crate::config::Context;
use crate::oci::{Credentials, Registry};
use crate::progress::Progress;

/// One image of a build.
#[derive(Debug, Clone)]
pub struct SourceImage {
    /// Bake target, empty for a build without targets.
    pub target: String,
    pub tag: String,
    /// `<registry host>/<project>:<tag>`.
    pub name: String,
    pub digest: String,
    /// The `-t` names the build was created with for this image (none for a plain tag).
    pub image_names: Vec<String>,
}

/// A resolved build (or save tag) in the depot registry.
pub struct Source {
    pub reg: Arc<Registry>,
    pub project: String,
    /// The build ID, when the argument named a build (or a save tag of one).
    pub build: Option<String>,
    /// What the user typed, for messages.
    pub what: String,
    pub images: Vec<SourceImage>,
}

/// The client for our own registry, with the user's token as `x-token` password.
pub fn registry(http: &reqwest::Client, ctx: &Context, progress: &Progress) -> Result<Registry> {
    let creds = match &ctx.token {
        Some(t) => Credentials::Basic {
            username: "x-token".to_owned(),
            password: t.clone(),
        },
        None => Credentials::Anonymous,
    };
    let p = progress.clone();
    Ok(Registry::from_url(http.clone(), &ctx.registry, creds)?.on_retry(move |m| p.note(&m)))
}

fn suffixed(base: &str, target: &str) -> String {
    if target.is_empty() {
        base.to_owned()
    } else {
        format!("{base}-{target}")
    }
}

/// Finds what `arg` names: a build ID first, then a save tag of the project's newest live build
/// carrying it, then a plain tag in the project's repository.
pub async fn resolve(
    api: &Api,
    reg: Arc<Registry>,
    ctx: &Context,
    arg: &str,
    targets: &[String],
) -> Result<Source> {
    let mut source = if let Some(build) = api.build(arg).await? {
        if let Some(named) = ctx.explicit_project().filter(|p| *p != build.project) {
            // The user said which project they mean; a build of another is not what they asked
            // for, even where the token may read it.
            bail!(
                "build {arg} belongs to project {}, not {named} (--project / DEPOT_PROJECT_ID); drop the flag or name its project",
                build.project
            );
        }
        if build.expired {
            bail!("build {arg} has expired");
        }
        if build.images.is_empty() {
            match build.state {
                crate::api::BuildState::Failed => bail!(
                    "build {arg} failed: {}",
                    build.failure.as_deref().unwrap_or("no reason given")
                ),
                state => bail!("build {arg} has no saved image yet (state {state})"),
            }
        }
        Source {
            reg,
            project: build.project.clone(),
            build: Some(build.id.clone()),
            what: format!("build {arg}"),
            images: build
                .images
                .iter()
                .map(|i| SourceImage {
                    target: i.target.clone(),
                    tag: i.tag.clone(),
                    name: i.name.clone(),
                    digest: i.digest.clone(),
                    image_names: i.image_names.clone(),
                })
                .collect(),
        }
    } else {
        let project = ctx.project().map_err(|_| {
            anyhow!("no build {arg}; to use it as a save tag, name the project (--project, DEPOT_PROJECT_ID or depot.json)")
        })?;
        let (build, outputs) = match api.build_with_save_tag(project, arg).await? {
            Some(b) if !b.targets.is_empty() => (Some(b.id.clone()), b.targets.clone()),
            Some(b) => (Some(b.id.clone()), vec![String::new()]),
            None => (None, vec![String::new()]),
        };
        // The -t names the build recorded, per target, as a pull by its ID would use them.
        let recorded: Vec<(String, Vec<String>)> = match &build {
            Some(id) => api
                .build(id)
                .await?
                .map(|b| {
                    b.images
                        .into_iter()
                        .map(|i| (i.target, i.image_names))
                        .collect()
                })
                .unwrap_or_default(),
            None => Vec::new(),
        };
        let mut images = Vec::new();
        for target in outputs {
            let tag = suffixed(arg, &target);
            let (bytes, _) = reg
                .manifest(project, &tag)
                .await
                .map_err(|e| match e.status() {
                    Some(404) => anyhow!("no build or save tag {arg} in project {project}"),
                    _ => anyhow!("{project}:{tag}: {e}"),
                })?;
            let image_names = recorded
                .iter()
                .find(|(t, _)| *t == target)
                .map(|(_, names)| names.clone())
                .unwrap_or_default();
            images.push(SourceImage {
                target,
                name: format!("{}/{project}:{tag}", ctx.host()),
                tag,
                digest: format!("sha256:{}", hex::encode(Sha256::digest(&bytes))),
                image_names,
            });
        }
        Source {
            reg,
            project: project.to_owned(),
            what: match &build {
                Some(id) => format!("save tag {arg} (build {id})"),
                None => format!("tag {arg}"),
            },
            build,
            images,
        }
    };
    if !targets.is_empty() {
        let have: Vec<String> = source.images.iter().map(|i| i.target.clone()).collect();
        for t in targets {
            if !have.contains(t) {
                bail!(
                    "{} has no target {t} (it has {})",
                    source.what,
                    if have.iter().all(String::is_empty) {
                        "no targets".to_owned()
                    } else {
                        have.join(", ")
                    }
                );
            }
        }
        source.images.retain(|i| targets.contains(&i.target));
    }
    Ok(source)
}
