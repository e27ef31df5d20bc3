//! `depot build` and `depot bake`: run a builder (buildah, or `docker buildx`) over a context
//! and, with `--save`, push its output straight into the depot registry under a fresh build ID.
//!
//! Both commands reduce to a list of [`Target`]s (one for `build`, one per bake target); what
//! happens to the images is the same for both: [`save`] (into a build, one builder per platform,
//! the registry writing the index), or [`local`] (the usual `--push`/`--load`, or nothing).

mod bake;
mod builder;
pub mod credhelper;
mod local;
mod passthrough;
mod runner;
mod save;

use std::path::PathBuf;

use anyhow::{bail, Result};

use crate::config::Context;
use crate::oci::manifest::Platform;
pub use builder::Kind as BuilderKind;
pub use passthrough::{Cache, Passthrough};

/// One image to build: a Dockerfile in a context, for one or more platforms.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// The bake target's name; empty for `depot build`.
    pub name: String,
    pub context: PathBuf,
    /// `None`: the builder's default (`Containerfile` or `Dockerfile` in the context).
    pub dockerfile: Option<PathBuf>,
    /// The Dockerfile stage to build (`--target`).
    pub stage: Option<String>,
    pub args: Vec<(String, String)>,
    pub labels: Vec<(String, String)>,
    /// Names for `--push`/`--load` (`-t`).
    pub tags: Vec<String>,
    /// Empty: the builder's own platform.
    pub platforms: Vec<Platform>,
    pub no_cache: bool,
    /// Secrets, SSH, extra contexts, caches, attestations, pull and network, for the builder.
    pub passthrough: Passthrough,
}

impl Target {
    /// How the target is named in messages: `web`, or `the build`.
    fn what(&self) -> String {
        if self.name.is_empty() {
            "the build".to_owned()
        } else {
            format!("target {}", self.name)
        }
    }
}

/// Where the images go, shared by `build` and `bake`.
#[derive(Debug, Clone, clap::Args)]
pub struct Outputs {
    /// Save the image in the depot registry under a new build ID
    #[arg(long)]
    pub save: bool,
    /// Also point this save tag at the build (repeat; with --save)
    #[arg(long = "save-tag", value_name = "TAG", requires = "save")]
    pub save_tags: Vec<String>,
    /// Keep the saved build this long instead of the project's retention (7d, 12h, 90m, 3600s)
    #[arg(long, value_name = "DURATION", requires = "save", value_parser = parse_retention)]
    pub retention: Option<i64>,
    /// Push the image to its -t names (with --save: copied from the saved build)
    #[arg(long)]
    pub push: bool,
    /// Load the image into the Docker daemon at DOCKER_HOST (with --save: pulled from the saved build)
    #[arg(long)]
    pub load: bool,
    /// Write the build ID, image names and digests as JSON to FILE
    #[arg(long, value_name = "FILE")]
    pub metadata_file: Option<PathBuf>,
    /// The builder to run [default: buildah when installed, else docker buildx]
    #[arg(long, value_enum)]
    pub builder: Option<BuilderKind>,
    /// Progress (quiet: builder output only when it fails, and no summary; with --save the
    /// build ID alone is printed on stdout)
    #[command(flatten)]
    pub progress: crate::progress::ProgressArgs,
    /// `depot build --iidfile` (not a bake flag): where the image ID goes.
    #[arg(skip)]
    pub iidfile: Option<PathBuf>,
}

/// A duration as people write it (`7d`, `12h`, `1h 30m`, `3600s`), in whole seconds. The
/// registry checks the range (a minute to ten years) and says so.
pub(crate) fn parse_retention(s: &str) -> std::result::Result<i64, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{e} (e.g. 7d, 12h, 3600s)"))?;
    i64::try_from(d.as_secs()).map_err(|_| "too long".to_owned())
}

impl Outputs {
    pub fn quiet(&self) -> bool {
        self.progress.quiet()
    }

    /// A line saying what happens next (on stderr), left out when quiet.
    pub fn status(&self, line: &str) {
        if !self.quiet() {
            eprintln!("{line}");
        }
    }
}

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  depot build --save .
  depot build --save --platform linux/amd64,linux/arm64 --save-tag latest .
  depot build --save --metadata-file build.json -f docker/Containerfile --build-arg VERSION=1.2 .
  depot build --save --push -t ghcr.io/acme/app:v1 .
  depot build --load -t app:dev .

With --save the build ID is printed on stdout (BUILD_ID=$(depot build --save -q .)), followed on
stderr by the commands that pull and promote it. Each platform is built by its own builder, at
the same time, and pushed to the registry, which assembles the multi-platform index.")]
pub struct BuildArgs {
    #[command(flatten)]
    pub outputs: Outputs,
    /// Name and tag for --push/--load (repeat)
    #[arg(short = 't', long = "tag", value_name = "NAME:TAG")]
    pub tags: Vec<String>,
    /// Target platforms, comma-separated or repeated (e.g. linux/amd64,linux/arm64)
    #[arg(long, value_name = "OS/ARCH[/VARIANT]", value_delimiter = ',')]
    pub platform: Vec<Platform>,
    /// The Dockerfile (default: Containerfile or Dockerfile in the context)
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// A build-time variable (repeat)
    #[arg(long = "build-arg", value_name = "KEY=VALUE", value_parser = key_value)]
    pub build_args: Vec<(String, String)>,
    /// A label on the image (repeat)
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = key_value)]
    pub labels: Vec<(String, String)>,
    /// The Dockerfile stage to build
    #[arg(long, value_name = "STAGE")]
    pub target: Option<String>,
    /// Do not use cached layers
    #[arg(long)]
    pub no_cache: bool,
    /// A secret for RUN --mount=type=secret: id=ID,src=PATH or id=ID,env=VAR (repeat)
    #[arg(long = "secret", value_name = "id=ID,src=PATH|env=VAR")]
    pub secrets: Vec<String>,
    /// An SSH agent socket or keys for RUN --mount=type=ssh: default or ID=PATH (repeat)
    #[arg(long = "ssh", value_name = "default|ID=SOCKET|KEY")]
    pub ssh: Vec<String>,
    /// Write the image ID to FILE (with --save: the saved image's config digest, or its
    /// index's digest for several platforms)
    #[arg(long, value_name = "FILE")]
    pub iidfile: Option<PathBuf>,
    /// An additional build context, for COPY --from=NAME (repeat)
    #[arg(long = "build-context", value_name = "NAME=PATH|URL", value_parser = key_value)]
    pub build_contexts: Vec<(String, String)>,
    /// Read the build cache from here: type=registry (the project's own cache in the depot
    /// registry), type=registry,ref=REPOSITORY, or any buildx cache with --builder buildx (repeat)
    #[arg(long = "cache-from", value_name = "SPEC", value_parser = Cache::parse)]
    pub cache_from: Vec<Cache>,
    /// Write the build cache here (as --cache-from; the project's cache needs --save;
    /// mode=max keeps every stage)
    #[arg(long = "cache-to", value_name = "SPEC", value_parser = Cache::parse)]
    pub cache_to: Vec<Cache>,
    /// Provenance attestation (buildx only: true, mode=max, false)
    #[arg(long, value_name = "VALUE", num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub provenance: Option<String>,
    /// SBOM attestation (buildx only: true, false)
    #[arg(long, value_name = "VALUE", num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub sbom: Option<String>,
    /// Always look for newer versions of the base images
    #[arg(long)]
    pub pull: bool,
    /// The network RUN instructions get (default, none, host; buildah also its own modes)
    #[arg(long, value_name = "MODE")]
    pub network: Option<String>,
    /// The build context (a directory)
    pub context: PathBuf,
}

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  depot bake --save
  depot bake --save -f docker-bake.hcl api web
  depot bake --save --save-tag latest --metadata-file bake.json
  depot bake --save -f compose.yaml
  depot bake --save --set '*.platform=linux/amd64,linux/arm64' --set web.args.VERSION=1.2
  depot bake --print api

Files (default: those present of compose.yaml, compose.yml, docker-compose.yml,
docker-compose.yaml, docker-bake.json, docker-bake.override.json, docker-bake.hcl,
docker-bake.override.hcl, read in that order, later ones overriding earlier ones):
HCL and JSON bake files (variable, group, target blocks; target attributes context, dockerfile,
tags, platforms, args, labels, target, no-cache, inherits, secret, ssh, contexts, cache-from,
cache-to, pull, network, attest; the matrix block; ${VAR} templates), and Compose files
(services with a build section). Without TARGET the group \"default\" is built,
else every target. With --save every target is saved in one build, as <build-id>-<target>.")]
pub struct BakeArgs {
    #[command(flatten)]
    pub outputs: Outputs,
    /// A bake file (repeat; default: the standard names in this directory)
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Override a target's attribute: TARGET.KEY=VALUE, TARGET a name or pattern (`*`), KEY
    /// one of context, dockerfile, tags, platform, target, args.NAME, labels.NAME, no-cache,
    /// pull, secrets, ssh, contexts.NAME, cache-from, cache-to, network, attest (repeat;
    /// KEY+=VALUE appends)
    #[arg(long = "set", value_name = "TARGET.KEY=VALUE")]
    pub set: Vec<String>,
    /// Print the resolved definition as JSON (as buildx does) and build nothing
    #[arg(long)]
    pub print: bool,
    /// Targets or groups to build
    pub targets: Vec<String>,
}

fn key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("{s:?}: expected KEY=VALUE")),
    }
}

pub async fn run_build(ctx: &Context, http: &reqwest::Client, args: BuildArgs) -> Result<()> {
    if !args.context.is_dir() {
        bail!(
            "build context {} is not a directory",
            args.context.display()
        );
    }
    let target = Target {
        name: String::new(),
        context: args.context,
        dockerfile: args.file,
        stage: args.target,
        args: args.build_args,
        labels: args.labels,
        tags: args.tags,
        platforms: dedup(args.platform),
        no_cache: args.no_cache,
        passthrough: Passthrough {
            secrets: args.secrets,
            ssh: args.ssh,
            contexts: args.build_contexts,
            cache_from: args.cache_from,
            cache_to: args.cache_to,
            pull: args.pull,
            network: args.network,
            provenance: args.provenance,
            sbom: args.sbom,
        },
    };
    let mut outputs = args.outputs;
    outputs.iidfile = args.iidfile;
    execute(ctx, http, vec![target], &outputs).await
}

pub async fn run_bake(ctx: &Context, http: &reqwest::Client, args: BakeArgs) -> Result<()> {
    let cwd = std::env::current_dir()?;
    let mut targets = bake::load(&cwd, &args.files, &args.targets)?;
    bake::overrides::apply(&mut targets, &args.set, &cwd)?;
    if args.print {
        let definition = bake::print::definition(&targets, &cwd);
        println!("{}", serde_json::to_string_pretty(&definition)?);
        return Ok(());
    }
    execute(ctx, http, targets, &args.outputs).await
}

async fn execute(
    ctx: &Context,
    http: &reqwest::Client,
    targets: Vec<Target>,
    outputs: &Outputs,
) -> Result<()> {
    let mut builder = builder::Builder::choose(outputs.builder)?;
    if outputs.progress.mode() == crate::progress::ProgressMode::Rawjson {
        builder.buildx_progress = Some("rawjson");
    }
    // Everything the builder could refuse is refused now, before a build is created.
    for t in &targets {
        t.passthrough.check(builder.kind, outputs.save, &t.what())?;
    }
    outputs.status(&format!("Building with {}", builder.describe()));
    if outputs.save {
        save::run(ctx, http, &builder, &targets, outputs).await
    } else {
        local::run(&builder, &targets, outputs).await
    }
}

/// `--iidfile`: the image ID from a metadata entry (the config digest of one image, else the
/// digest of the index over several platforms), as buildx writes it.
fn write_iidfile(file: &std::path::Path, entry: &serde_json::Value) -> Result<()> {
    let id = entry["containerimage.config.digest"]
        .as_str()
        .or(entry["containerimage.digest"].as_str())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "--iidfile: a multi-platform image built with buildah has no single image ID                  until it is pushed: add --push or --save"
            )
        })?;
    std::fs::write(file, id).map_err(|e| anyhow::anyhow!("writing {}: {e}", file.display()))
}

fn dedup(platforms: Vec<Platform>) -> Vec<Platform> {
    let mut out: Vec<Platform> = Vec::new();
    for p in platforms {
        if !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_is_written_as_people_write_durations() {
        assert_eq!(parse_retention("7d"), Ok(7 * 86_400));
        assert_eq!(parse_retention("1h 30m"), Ok(5400));
        assert!(parse_retention("soon").unwrap_err().contains("e.g. 7d"));
    }

    #[test]
    fn build_args_are_key_value_pairs() {
        assert_eq!(key_value("A=b=c"), Ok(("A".into(), "b=c".into())));
        assert_eq!(key_value("A="), Ok(("A".into(), "".into())));
        assert!(key_value("=x").is_err());
        assert!(key_value("A").is_err());
    }

    #[test]
    fn platforms_are_deduplicated_in_order() {
        let p = |s: &str| s.parse::<Platform>().unwrap();
        assert_eq!(
            dedup(vec![p("linux/arm64"), p("linux/amd64"), p("linux/arm64")]),
            vec![p("linux/arm64"), p("linux/amd64")]
        );
    }
}
