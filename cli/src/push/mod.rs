//! `depot push`: promote a build's image to one or more registries at once.
//!
//! Every destination gets the same bytes, so digests do not change. Each destination goes
//! through the blobs on its own ([`copy`]): asks for each (`HEAD`), mounts it where its registry
//! already holds it in another repository, and what is left is read from the depot registry
//! once and streamed to every destination that lacks it ([`fanout`]). Several destinations in
//! one registry get one upload and mounts. A destination's manifests follow as soon as its own
//! blobs have landed, children before their index. A destination that fails is reported and
//! the others carry on, without waiting for it.

mod copy;
mod fanout;
mod locations;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{anyhow, bail, Context as _, Result};
use futures::future::join_all;
use indicatif::HumanBytes;
use serde::Serialize;
use serde_json::json;

use crate::api::Api;
use crate::config::Context;
use crate::image::{Graph, Manifest};
use crate::oci::manifest::Platform;
use crate::oci::{creds, Registry};
use crate::progress::{short, Bar, Progress, ProgressArgs};
use crate::source::{self, Source};
use copy::Copy;

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  depot push -t ghcr.io/acme/app:v1.2 q8wm3k0z7c2f4n1x
  depot push -t ghcr.io/acme/app:v1.2 -t docker.io/acme/app:v1.2 -t 10.0.0.5:5000/app:v1.2 \\
      --insecure-registry 10.0.0.5:5000 q8wm3k0z7c2f4n1x
  depot push --platform linux/arm64 -t ghcr.io/acme/app:arm64 latest
  depot push --target api -t ghcr.io/acme/api:v1 q8wm3k0z7c2f4n1x

Credentials for destinations come from the Docker config (~/.docker/config.json or
$DOCKER_CONFIG/config.json: auths, credsStore, credHelpers), as `docker login` leaves them;
DEPOT_PUSH_REGISTRY_USERNAME with DEPOT_PUSH_REGISTRY_PASSWORD, or DEPOT_PUSH_REGISTRY_AUTH
(base64 of USER:PASSWORD), override it for every destination.")]
pub struct Args {
    /// Destination REGISTRY/REPOSITORY[:TAG] (repeat for more; all are pushed in parallel)
    #[arg(short = 't', long = "tag", value_name = "DEST", required = true)]
    pub tags: Vec<String>,
    /// Push only this platform's image of a multi-platform build (OS/ARCH[/VARIANT])
    #[arg(long)]
    pub platform: Option<Platform>,
    /// The bake target to push (required when the build has several)
    #[arg(long)]
    pub target: Option<String>,
    /// Talk plain HTTP to every destination
    #[arg(long)]
    pub insecure: bool,
    /// Talk plain HTTP to this destination registry (HOST[:PORT]; repeat, or comma-separate)
    #[arg(
        long = "insecure-registry",
        value_name = "HOST",
        env = "DEPOT_INSECURE_REGISTRIES",
        value_delimiter = ','
    )]
    pub insecure_registries: Vec<String>,
    /// Print the summary as JSON on stdout
    #[arg(long)]
    pub json: bool,
    /// Progress (quiet: only errors and the summary)
    #[command(flatten)]
    pub progress: ProgressArgs,
    /// Blobs copied at once
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=32))]
    pub parallel: u16,
    /// Size of the chunks uploads are sent in, in MiB (memory grows with chunk × --parallel;
    /// smaller chunks cost registries more requests)
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=512))]
    pub chunk_mib: u16,
    /// Attempts per request before a destination is given up (backoff 0.5 s doubling to 8 s)
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub retries: u32,
    /// The build ID, or a save tag of the project
    #[arg(value_name = "BUILD_ID|SAVE_TAG")]
    pub build: String,
}

impl Args {
    /// A push of `build` (one `target` of a bake build) to `tags`, every other option at its
    /// default (what `depot build --save --push` does). Parsed, so the defaults live in one place.
    pub fn to(tags: &[String], target: Option<&str>, build: &str, quiet: bool) -> Result<Args> {
        #[derive(clap::Parser)]
        struct Cmd {
            #[command(flatten)]
            args: Args,
        }
        let mut argv: Vec<String> = vec!["push".into()];
        argv.extend(tags.iter().map(|t| format!("--tag={t}")));
        argv.extend(target.map(|t| format!("--target={t}")));
        if quiet {
            argv.push("--quiet".into());
        }
        argv.extend(["--".into(), build.to_owned()]);
        Ok(<Cmd as clap::Parser>::try_parse_from(argv)?.args)
    }
}

/// One destination repository (several `-t` of one repository share it).
pub struct Dest {
    pub reg: Arc<Registry>,
    pub host: String,
    pub repo: String,
    pub tags: Vec<String>,
    pub label: String,
    pub bar: Bar,
    pub progress: Progress,
    stats: Mutex<Stats>,
    failure: Mutex<Option<String>>,
    finished: Mutex<Option<f64>>,
}

#[derive(Debug, Default, Clone, Serialize)]
struct Stats {
    pushed_bytes: u64,
    mounted_bytes: u64,
    skipped_bytes: u64,
    blobs_pushed: u32,
    blobs_mounted: u32,
    blobs_skipped: u32,
    /// Manifest PUTs sent (children, then the top one once per tag, or once for every tag where
    /// the destination takes several tags in one request).
    manifest_puts: u32,
}

impl Dest {
    fn failed(&self) -> bool {
        self.failure.lock().unwrap().is_some()
    }

    fn fail(&self, why: String) {
        let mut f = self.failure.lock().unwrap();
        if f.is_none() {
            self.bar.abandon(&format!("failed: {why}"));
            *f = Some(why);
        }
    }
}

/// Parses a destination; a missing tag means `latest`, a digest is refused.
pub fn parse_dest(s: &str) -> Result<(String, String, String)> {
    let r: oci_spec::distribution::Reference = s
        .parse()
        .map_err(|e| anyhow!("-t {s}: not an image reference ({e})"))?;
    if r.digest().is_some() {
        bail!("-t {s}: a destination is a tag, not a digest");
    }
    if !s.contains('/')
        || !s
            .split('/')
            .next()
            .is_some_and(|h| h.contains('.') || h.contains(':') || h == "localhost")
    {
        // `app:v1` would silently mean Docker Hub's `library/app`; promotion should be explicit.
        bail!("-t {s}: name the registry (e.g. ghcr.io/acme/app:v1 or docker.io/acme/app:v1)");
    }
    Ok((
        r.registry().to_owned(),
        r.repository().to_owned(),
        r.tag().unwrap_or("latest").to_owned(),
    ))
}

pub async fn run(ctx: &Context, http: &reqwest::Client, args: Args) -> Result<()> {
    let started = Instant::now();
    let progress = if args.json {
        Progress::new(true)
    } else {
        Progress::of(&args.progress)
    };
    let api = Api::new(http.clone(), ctx);
    let source_reg = Arc::new(source::registry(http, ctx, &progress)?);
    let targets: Vec<String> = args.target.iter().cloned().collect();
    let source = source::resolve(&api, source_reg, ctx, &args.build, &targets).await?;
    let image = match source.images.as_slice() {
        [one] => one.clone(),
        many => bail!(
            "{} has targets {}: name one with --target",
            source.what,
            many.iter()
                .map(|i| i.target.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let graph = Graph::read(&source, &image.digest, args.platform.as_ref(), true)
        .await
        .with_context(|| format!("reading {} ({})", source.what, image.name))?;
    let total = graph.size();

    // Destinations, grouped by repository; one client (credentials, tokens) per registry.
    let env_creds =
        creds::push_override(|name| std::env::var(name).ok()).map_err(|e| anyhow!(e))?;
    let mut registries: HashMap<String, Arc<Registry>> = HashMap::new();
    let mut dests: Vec<Dest> = Vec::new();
    for t in &args.tags {
        let (host, repo, tag) = parse_dest(t)?;
        if let Some(d) = dests.iter_mut().find(|d| d.host == host && d.repo == repo) {
            if !d.tags.contains(&tag) {
                d.tags.push(tag);
            }
            continue;
        }
        let reg = match registries.get(&host) {
            Some(r) => r.clone(),
            None => {
                let creds = match &env_creds {
                    Some(c) => c.clone(),
                    None => creds::for_host(&host).map_err(|e| anyhow!(e))?,
                };
                let insecure = args.insecure || args.insecure_registries.contains(&host);
                let p = progress.clone();
                let mut r = Registry::new(http.clone(), &host, insecure, creds)
                    .on_retry(move |m| p.note(&m));
                r.retry.attempts = args.retries;
                let r = Arc::new(r);
                registries.insert(host.clone(), r.clone());
                r
            }
        };
        let label = format!("{host}/{repo}");
        dests.push(Dest {
            reg,
            bar: progress.bar(label.clone(), total),
            label,
            host,
            repo,
            tags: vec![tag],
            progress: progress.clone(),
            stats: Mutex::default(),
            failure: Mutex::default(),
            finished: Mutex::default(),
        });
    }
    progress.line(&format!(
        "pushing {} ({}, {} in {} blobs) to {} destination(s)",
        source.what,
        short(&graph.top.digest),
        HumanBytes(total),
        graph.blobs.len(),
        dests.len()
    ));

    // Each destination on its own; the blobs they lack alike are read once for all of them.
    let copy = Copy::new(
        &source,
        &dests,
        usize::from(args.chunk_mib) << 20,
        usize::from(args.parallel),
    );
    join_all((0..dests.len()).map(|i| {
        let copy = &copy;
        let graph = &graph;
        async move {
            copy.destination(i, &graph.blobs).await;
            push_manifests(&copy.dests[i], graph, started).await;
        }
    }))
    .await;
    copy.locations.save();

    report(
        &source, &graph, &dests, &copy, started, args.json, &progress,
    )
}

/// Pushes the manifests of a destination whose blobs all landed: children, then the top one
/// under every tag.
async fn push_manifests(d: &Dest, graph: &Graph, started: Instant) {
    if d.failed() {
        return;
    }
    let result: Result<()> = async {
        for m in graph.children.iter() {
            put(d, &m.digest, m).await?;
        }
        let mut left: Vec<&String> = d.tags.iter().collect();
        if d.tags.len() > 1 {
            // Every tag in one request where the destination supports it; whatever it did not
            // take (all of it, on a registry without the feature or one that refuses the
            // parameter) is pushed tag by tag, where a real failure shows.
            if let Ok(taken) = put_tagged(d, &graph.top).await {
                left.retain(|t| !taken.contains(t));
            }
        }
        for tag in left {
            put(d, tag, &graph.top).await?;
        }
        Ok(())
    }
    .await;
    match result {
        Ok(()) => {
            *d.finished.lock().unwrap() = Some(started.elapsed().as_secs_f64());
            d.bar.finish(&format!("pushed :{}", d.tags.join(", :")));
        }
        Err(e) => d.fail(format!("{e:#}")),
    }
}

/// The top manifest under all of the destination's tags at once; the tags it took.
async fn put_tagged(d: &Dest, m: &Manifest) -> Result<Vec<String>> {
    d.stats.lock().unwrap().manifest_puts += 1;
    let stored = d
        .reg
        .put_manifest_tagged(&d.repo, &m.digest, &d.tags, &m.media_type, m.bytes.clone())
        .await?;
    same_digest(d, m, stored.digest.as_deref())?;
    Ok(stored.tags)
}

async fn put(d: &Dest, reference: &str, m: &Manifest) -> Result<()> {
    d.stats.lock().unwrap().manifest_puts += 1;
    let reported = d
        .reg
        .put_manifest(&d.repo, reference, &m.media_type, m.bytes.clone())
        .await
        .with_context(|| format!("manifest {} as {reference}", short(&m.digest)))?;
    same_digest(d, m, reported.as_deref())
}

/// A destination that reports another digest for the bytes it was given would change them.
fn same_digest(d: &Dest, m: &Manifest, reported: Option<&str>) -> Result<()> {
    match reported {
        Some(r) if r != m.digest => bail!(
            "{} stored manifest {} as {r}: digests would change",
            d.host,
            m.digest
        ),
        _ => Ok(()),
    }
}

fn report(
    source: &Source,
    graph: &Graph,
    dests: &[Dest],
    copy: &Copy<'_>,
    started: Instant,
    as_json: bool,
    progress: &Progress,
) -> Result<()> {
    let read = copy.source_bytes.load(Ordering::Relaxed);
    let failed: Vec<&Dest> = dests.iter().filter(|d| d.failed()).collect();
    if as_json {
        let rows: Vec<_> = dests
            .iter()
            .map(|d| {
                let s = d.stats.lock().unwrap().clone();
                json!({
                    "destination": d.label,
                    "tags": d.tags,
                    "ok": !d.failed(),
                    "error": *d.failure.lock().unwrap(),
                    "seconds": *d.finished.lock().unwrap(),
                    "stats": s,
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "source": source.what,
                "digest": graph.top.digest,
                "image_bytes": graph.size(),
                "source_bytes_read": read,
                "seconds": started.elapsed().as_secs_f64(),
                "destinations": rows,
            }))?
        );
    } else {
        for d in dests {
            let s = d.stats.lock().unwrap().clone();
            match &*d.failure.lock().unwrap() {
                None => eprintln!(
                    "ok     {}:{}  pushed {}, mounted {}, already there {}  in {:.1}s",
                    d.label,
                    d.tags.join(",:"),
                    HumanBytes(s.pushed_bytes),
                    HumanBytes(s.mounted_bytes),
                    HumanBytes(s.skipped_bytes),
                    d.finished.lock().unwrap().unwrap_or_default()
                ),
                Some(why) => eprintln!("FAILED {}: {why}", d.label),
            }
        }
        progress.line(&format!(
            "{} {} read from the depot registry once; {:.1}s",
            source.what,
            HumanBytes(read),
            started.elapsed().as_secs_f64()
        ));
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(anyhow!(
            "{} of {} destination(s) failed: {}",
            failed.len(),
            dests.len(),
            failed
                .iter()
                .map(|d| d.label.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_name_their_registry() {
        assert_eq!(
            parse_dest("ghcr.io/acme/app:v1").unwrap(),
            ("ghcr.io".into(), "acme/app".into(), "v1".into())
        );
        assert_eq!(
            parse_dest("127.0.0.1:5000/app").unwrap(),
            ("127.0.0.1:5000".into(), "app".into(), "latest".into())
        );
        assert_eq!(parse_dest("docker.io/acme/app:v1").unwrap().0, "docker.io");
        assert!(parse_dest("app:v1").is_err());
        assert!(parse_dest("acme/app:v1").is_err());
        assert!(parse_dest("ghcr.io/acme/app@sha256:0123456789012345678901234567890123456789012345678901234567890123").is_err());
    }
}
