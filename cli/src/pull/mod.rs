//! `depot pull`: a build's image into the local Docker daemon, or to disk (`--output`).

mod archive;
mod daemon;
mod layout;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context as _, Result};
use bollard::auth::DockerCredentials;
use futures::StreamExt;

use crate::api::Api;
use crate::config::Context;
use crate::image::Graph;
use crate::oci::manifest::Platform;
use crate::progress::{Progress, ProgressArgs};
use crate::source::{self, Source, SourceImage};
use daemon::split_tag;
pub use daemon::{Daemon, Transfer};

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  depot pull q8wm3k0z7c2f4n1x
  depot pull -t app:test q8wm3k0z7c2f4n1x
  depot pull --platform linux/arm64 -t app:arm64 latest
  depot pull --target api --target web q8wm3k0z7c2f4n1x
  depot pull -t api=app-api:ci -t web=app-web:ci q8wm3k0z7c2f4n1x
  depot pull --output oci:./image q8wm3k0z7c2f4n1x
  depot pull --output docker-archive:app.tar q8wm3k0z7c2f4n1x

Without -t the image keeps its registry name, <registry>/<project>:<build-id>[-<target>].
The names of the images loaded are printed on stdout, one per line.")]
pub struct Args {
    /// Also name the image NAME:TAG (repeat; for one target of a bake build: TARGET=NAME:TAG)
    #[arg(short = 't', long = "tag", value_name = "NAME:TAG")]
    pub tags: Vec<String>,
    /// The platform to pull from a multi-platform build (default: the daemon's)
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    pub platform: Option<Platform>,
    /// Only these targets of a bake build (repeat; default: all)
    #[arg(long = "target", value_name = "TARGET")]
    pub targets: Vec<String>,
    /// Write the image instead of loading it: oci:DIR (an OCI layout) or docker-archive:FILE
    #[arg(long, value_name = "oci:DIR|docker-archive:FILE", value_parser = parse_output)]
    pub output: Option<Output>,
    /// How the image reaches the daemon
    #[arg(long, value_enum, default_value_t = Transfer::Auto)]
    pub transfer: Transfer,
    #[command(flatten)]
    pub progress: ProgressArgs,
    /// The build ID, or a save tag of the project (none: choose among the newest builds on a
    /// terminal; elsewhere they are listed and the command fails)
    #[arg(value_name = "BUILD_ID|SAVE_TAG")]
    pub build: Option<String>,
}

impl Args {
    /// A pull of `build` into the daemon, every other option at its default (what
    /// `depot build --save --load` does). Parsed, so the defaults live in one place.
    pub fn of(build: &str, quiet: bool) -> Result<Args> {
        #[derive(clap::Parser)]
        struct Cmd {
            #[command(flatten)]
            args: Args,
        }
        let mut argv: Vec<&str> = vec!["pull"];
        if quiet {
            argv.push("--quiet");
        }
        argv.extend(["--", build]);
        Ok(<Cmd as clap::Parser>::try_parse_from(argv)?.args)
    }
}

#[derive(Debug, Clone)]
pub enum Output {
    Oci(PathBuf),
    DockerArchive(PathBuf),
}

fn parse_output(s: &str) -> Result<Output, String> {
    match s.split_once(':') {
        Some(("oci", p)) if !p.is_empty() => Ok(Output::Oci(p.into())),
        Some(("docker-archive", p)) if !p.is_empty() => Ok(Output::DockerArchive(p.into())),
        _ => Err(format!("{s:?}: expected oci:DIR or docker-archive:FILE")),
    }
}

/// The extra names of each image, as Depot gives them: without `-t`, the `-t` names the build
/// was created with; `-t TARGET=NAME:TAG` names one target's image; a plain `-t NAME:TAG`
/// names the one image, or, pulling several targets, each as `NAME:TAG-<target>`.
fn assign_tags(tags: &[String], images: &[SourceImage]) -> Result<Vec<Vec<String>>> {
    if tags.is_empty() {
        return Ok(images.iter().map(|i| i.image_names.clone()).collect());
    }
    let mut out = vec![Vec::new(); images.len()];
    for t in tags {
        let (target, name) = match t.split_once('=') {
            Some((target, name)) => (Some(target), name),
            None => (None, t.as_str()),
        };
        if name.is_empty() || name.contains(char::is_whitespace) {
            bail!("-t {t}: not an image name");
        }
        match target {
            Some(target) => {
                let i = images
                    .iter()
                    .position(|i| i.target == target)
                    .ok_or_else(|| anyhow!("-t {t}: no target {target} is being pulled"))?;
                out[i].push(name.to_owned());
            }
            None if images.len() == 1 => out[0].push(name.to_owned()),
            None => {
                for (i, image) in images.iter().enumerate() {
                    out[i].push(suffixed_name(name, &image.target));
                }
            }
        }
    }
    Ok(out)
}

/// `NAME:TAG` as `NAME:TAG-<target>` (`NAME` alone: `NAME:<target>`). The tag is what follows
/// the last `:` after the last `/`, so a registry port is not taken for one.
fn suffixed_name(name: &str, target: &str) -> String {
    let last_part = name.rfind('/').map_or(0, |i| i + 1);
    match name[last_part..].find(':') {
        Some(_) => format!("{name}-{target}"),
        None => format!("{name}:{target}"),
    }
}

pub async fn run(ctx: &Context, http: &reqwest::Client, args: Args) -> Result<()> {
    let progress = Progress::of(&args.progress);
    let api = Api::new(http.clone(), ctx);
    let reg = Arc::new(source::registry(http, ctx, &progress)?);
    let build = match &args.build {
        Some(b) => b.clone(),
        None => choose_build(ctx, &api).await?,
    };
    let source = source::resolve(&api, reg, ctx, &build, &args.targets).await?;
    let tags = assign_tags(&args.tags, &source.images)?;
    match &args.output {
        Some(Output::Oci(dir)) => to_layout(&source, &args, &tags, dir, &progress).await,
        Some(Output::DockerArchive(file)) => {
            to_archive(&source, &args, &tags, file, &progress).await
        }
        None => to_daemon(ctx, &api, &source, &args, &tags, &progress).await,
    }
}

/// How many of the newest builds `depot pull` without a build ID offers.
const PICKER_BUILDS: u32 = 10;

/// The build to pull when none was named: picked from the project's newest saved builds on a
/// terminal; elsewhere they are printed (CSV) and the command fails, saying a build ID is needed.
async fn choose_build(ctx: &Context, api: &Api) -> Result<String> {
    let project = ctx.project()?;
    let (builds, _) = api
        .builds_page(project, PICKER_BUILDS * 5, None)
        .await?
        .ok_or_else(|| anyhow!("project {project} not found (or not visible to this token)"))?;
    let rows: Vec<Vec<String>> = builds
        .into_iter()
        .filter(|b| !b.expired && b.state == depot_api_types::BuildState::Saved)
        .take(PICKER_BUILDS as usize)
        .map(|b| {
            vec![
                b.id,
                b.created_at,
                b.targets.join(" "),
                b.platforms.join(" "),
                b.save_tags.join(" "),
            ]
        })
        .collect();
    crate::picker::pick(
        "build",
        &["id", "created_at", "targets", "platforms", "save_tags"],
        &rows,
        "a build ID is needed: depot pull <build-id> (or a save tag)",
    )
}

/// Words for errors: which build, which image, which platform.
fn about(source: &Source, image: &SourceImage, platform: Option<&Platform>) -> String {
    let mut s = format!("{} ({}", source.what, image.name);
    if let Some(p) = platform {
        s.push_str(&format!(", {p}"));
    }
    s.push(')');
    s
}

async fn to_layout(
    source: &Source,
    args: &Args,
    tags: &[Vec<String>],
    dir: &std::path::Path,
    progress: &Progress,
) -> Result<()> {
    let mut graphs = Vec::new();
    for image in &source.images {
        let g = Graph::read(source, &image.digest, args.platform.as_ref(), true)
            .await
            .with_context(|| about(source, image, args.platform.as_ref()))?;
        graphs.push(g);
    }
    let mut named = Vec::new();
    for ((image, g), extra) in source.images.iter().zip(&graphs).zip(tags) {
        named.push((image.tag.clone(), g));
        for t in extra {
            named.push((t.clone(), g));
        }
    }
    layout::write(dir, source, &named, progress)
        .await
        .with_context(|| format!("writing {} to {}", source.what, dir.display()))?;
    for (name, g) in &named {
        progress.line(&format!("{}:{name} {}", dir.display(), g.top.digest));
        println!("oci:{}:{name}", dir.display());
    }
    Ok(())
}

async fn to_archive(
    source: &Source,
    args: &Args,
    tags: &[Vec<String>],
    file: &std::path::Path,
    progress: &Progress,
) -> Result<()> {
    // An archive holds one platform per image: the one asked for, else this machine's.
    let platform = args.platform.clone().unwrap_or_else(Platform::host);
    let mut graphs = Vec::new();
    for image in &source.images {
        let g = Graph::read(
            source,
            &image.digest,
            Some(&platform),
            args.platform.is_some(),
        )
        .await
        .with_context(|| about(source, image, Some(&platform)))?;
        graphs.push(g);
    }
    let entries: Vec<archive::Entry> = source
        .images
        .iter()
        .zip(&graphs)
        .zip(tags)
        .map(|((image, graph), extra)| archive::Entry {
            graph,
            repo_tags: std::iter::once(image.name.clone())
                .chain(extra.iter().cloned())
                .collect(),
        })
        .collect();
    let tmp = file.with_extension("partial");
    let mut out = tokio::io::BufWriter::with_capacity(
        1 << 20,
        tokio::fs::File::create(&tmp)
            .await
            .with_context(|| format!("creating {}", tmp.display()))?,
    );
    let written = archive::write(&mut out, source, &entries, progress).await;
    if let Err(e) = written {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(e.context(format!("writing {} to {}", source.what, file.display())));
    }
    out.into_inner().sync_all().await?;
    tokio::fs::rename(&tmp, file).await?;
    for e in &entries {
        for name in &e.repo_tags {
            println!("{name}");
        }
    }
    Ok(())
}

async fn to_daemon(
    ctx: &Context,
    api: &Api,
    source: &Source,
    args: &Args,
    tags: &[Vec<String>],
    progress: &Progress,
) -> Result<()> {
    let mut daemon = Daemon::connect().await?;
    let platform = args
        .platform
        .clone()
        .unwrap_or_else(|| daemon.platform.clone());
    daemon.creds = daemon_credentials(ctx, api, source).await;
    daemon.transfer = args.transfer;
    let daemon = &daemon;
    let platform = &platform;
    // A few targets at a time (the daemon pulls each from the registry itself, or takes an
    // archive), reported in the build's order.
    let loaded: Vec<Result<()>> = futures::stream::iter(source.images.iter().zip(tags))
        .map(|(image, extra)| async move {
            let what = about(source, image, Some(platform));
            let graph = Graph::read(
                source,
                &image.digest,
                Some(platform),
                args.platform.is_some(),
            )
            .await
            .with_context(|| what.clone())?;
            // The platform goes to the daemon only for an index: a single image is what it is.
            let pick = (!graph.children.is_empty() || graph.top.digest != image.digest)
                .then_some(platform);
            let how = daemon
                .load(source, &graph, &image.name, pick, progress)
                .await
                .with_context(|| what.clone())?;
            progress.line(&format!("{} ({}): {how}", image.name, graph.images[0].0));
            for t in extra {
                daemon.tag(&image.name, t).await?;
            }
            Ok(())
        })
        .buffered(DAEMON_LOADS_AT_ONCE)
        .collect()
        .await;
    for ((image, extra), outcome) in source.images.iter().zip(tags).zip(loaded) {
        outcome?;
        println!("{}", image.name);
        for t in extra {
            println!("{t}");
        }
    }
    Ok(())
}

/// Bake targets loaded into the daemon at once.
const DAEMON_LOADS_AT_ONCE: usize = 3;

/// What the daemon presents to the registry: a pull token for just this build (short-lived,
/// so the user's own token never reaches the daemon), else the user's token.
async fn daemon_credentials(
    ctx: &Context,
    api: &Api,
    source: &Source,
) -> Option<DockerCredentials> {
    let token = ctx.token.as_ref()?;
    let password = match api
        .pull_token(Some(&source.project), source.build.as_deref(), Some(900))
        .await
    {
        Ok(t) => t.token,
        Err(_) => token.clone(),
    };
    Some(DockerCredentials {
        username: Some("x-token".into()),
        password: Some(password),
        serveraddress: Some(
            split_tag(&source.images[0].name)
                .0
                .split('/')
                .next()
                .unwrap_or_default()
                .to_owned(),
        ),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img(target: &str) -> SourceImage {
        SourceImage {
            target: target.into(),
            tag: format!("b-{target}"),
            name: format!("r/p:b-{target}"),
            digest: "sha256:x".into(),
            image_names: vec![format!("ghcr.io/acme/{target}:v1")],
        }
    }

    #[test]
    fn tags_go_to_their_targets() {
        let one = [img("")];
        assert_eq!(
            assign_tags(&["app:ci".into()], &one).unwrap(),
            vec![vec!["app:ci".to_owned()]]
        );
        let two = [img("api"), img("web")];
        // Without -t: the names the build was created with.
        assert_eq!(
            assign_tags(&[], &two).unwrap(),
            vec![
                vec!["ghcr.io/acme/api:v1".to_owned()],
                vec!["ghcr.io/acme/web:v1".to_owned()]
            ]
        );
        // A plain -t over several targets: one name per target, suffixed as Depot does.
        assert_eq!(
            assign_tags(&["app:ci".into(), "localhost:5000/app".into()], &two).unwrap(),
            vec![
                vec!["app:ci-api".to_owned(), "localhost:5000/app:api".to_owned()],
                vec!["app:ci-web".to_owned(), "localhost:5000/app:web".to_owned()]
            ]
        );
        assert_eq!(
            assign_tags(&["web=w:1".into(), "api=a:1".into()], &two).unwrap(),
            vec![vec!["a:1".to_owned()], vec!["w:1".to_owned()]]
        );
        assert!(assign_tags(&["db=d:1".into()], &two).is_err());
    }

    #[test]
    fn outputs_parse() {
        assert!(matches!(parse_output("oci:./x"), Ok(Output::Oci(_))));
        assert!(matches!(
            parse_output("docker-archive:a.tar"),
            Ok(Output::DockerArchive(_))
        ));
        assert!(parse_output("tar:x").is_err());
        assert!(parse_output("oci:").is_err());
    }
}
