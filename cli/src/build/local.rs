//! Without `--save`: the builder's usual meaning of `--push` (to the `-t` names) and `--load`
//! (into the Docker daemon at `DOCKER_HOST`), or just a build into the builder's own store.
//!
//! buildx does all of that itself. With buildah each platform is built by its own process (as
//! with `--save`); several platforms are gathered into a manifest list named after the first
//! `-t` and pushed with `buildah manifest push --all`; `--load` goes through buildah's
//! `docker-daemon:` transport, one platform only (a daemon image has one).

use anyhow::{bail, Context as _, Result};
use futures::future::try_join_all;
use serde_json::{json, Map, Value};

use super::builder::{Builder, Kind};
use super::{runner, Outputs, Target};
use crate::pull::Daemon;

pub async fn run(builder: &Builder, targets: &[Target], outputs: &Outputs) -> Result<()> {
    for t in targets {
        if (outputs.push || outputs.load) && t.tags.is_empty() {
            bail!("--push and --load need -t NAME:TAG for {}", t.what());
        }
        if outputs.load && t.platforms.len() > 1 {
            bail!(
                "--load of {} platforms for {}: a Docker daemon image has one platform; build one, \
                 or use --save and `depot pull --platform`",
                t.platforms.len(),
                t.what()
            );
        }
    }
    let results = try_join_all(targets.iter().map(|t| async move {
        let entry = match builder.kind {
            Kind::Buildx => {
                let cmd = builder.buildx_passthrough(
                    t,
                    outputs.push,
                    outputs.load,
                    outputs.iidfile.as_deref(),
                );
                runner::run(cmd, &label(t, None), outputs.quiet()).await?;
                json!({ "image.name": t.tags.join(",") })
            }
            Kind::Buildah => with_buildah(builder, t, outputs).await?,
        };
        anyhow::Ok((t.name.clone(), entry))
    }))
    .await?;
    if let (Some(file), Kind::Buildah, [(_, entry)]) =
        (&outputs.iidfile, builder.kind, results.as_slice())
    {
        super::write_iidfile(file, entry)?;
    }
    if let Some(file) = &outputs.metadata_file {
        let body = match results.as_slice() {
            [(name, entry)] if name.is_empty() => entry.clone(),
            _ => Value::Object(results.into_iter().collect::<Map<_, _>>()),
        };
        std::fs::write(file, serde_json::to_vec_pretty(&body)?)
            .with_context(|| format!("writing {}", file.display()))?;
    }
    Ok(())
}

fn label(t: &Target, platform: Option<&crate::oci::manifest::Platform>) -> String {
    let name = if t.name.is_empty() { "build" } else { &t.name };
    match platform {
        Some(p) => format!("{name} {p}"),
        None => name.to_owned(),
    }
}

/// Puts image `iid` into the Docker daemon as `tags`: buildah writes a `docker save` archive,
/// sent to `POST /images/load` (buildah's own `docker-daemon:` transport fails against
/// podman's Docker API), then the other names are added.
async fn load(
    builder: &Builder,
    iid: &str,
    tags: &[String],
    tmp: &std::path::Path,
    label: &str,
    quiet: bool,
) -> Result<()> {
    let daemon = Daemon::connect().await?;
    let archive = tmp.join("image.tar");
    let mut cmd = builder.buildah(["push", iid]);
    cmd.arg(format!("docker-archive:{}:{}", archive.display(), tags[0]));
    runner::run(cmd, label, quiet).await?;
    daemon.load_archive_file(&archive).await?;
    for tag in &tags[1..] {
        daemon.tag(&tags[0], tag).await?;
    }
    if !quiet {
        eprintln!("[{label}] loaded as {}", tags.join(", "));
    }
    Ok(())
}

/// `--tls-verify=false` for a destination named in `DEPOT_INSECURE_REGISTRIES` (as for
/// `depot push`): buildah 1.28's `manifest push` ignores `insecure` in registries.conf.
fn tls_flag(tag: &str) -> Option<&'static str> {
    let insecure = std::env::var("DEPOT_INSECURE_REGISTRIES").unwrap_or_default();
    let host = tag.split('/').next().unwrap_or_default();
    (tag.contains('/') && insecure.split(',').any(|h| !h.is_empty() && h == host))
        .then_some("--tls-verify=false")
}

/// Builds `t` with buildah and pushes or loads it; returns its metadata entry.
async fn with_buildah(builder: &Builder, t: &Target, outputs: &Outputs) -> Result<Value> {
    let tmp = tempfile::tempdir()?;
    let quiet = outputs.quiet();
    let mut meta = Map::new();
    meta.insert("image.name".into(), json!(t.tags.join(",")));
    if t.platforms.len() < 2 {
        let platform = t.platforms.first();
        let label = label(t, platform);
        let iid = builder
            .build_local(t, platform, &t.tags, tmp.path(), &label, quiet, None)
            .await?;
        meta.insert("containerimage.config.digest".into(), json!(iid));
        for tag in &t.tags {
            if outputs.push {
                let digest_file = tmp.path().join("digest");
                let mut cmd = builder.buildah(["push", "--digestfile"]);
                cmd.arg(&digest_file)
                    .args(tls_flag(tag))
                    .arg(&iid)
                    .arg(format!("docker://{tag}"));
                runner::run(cmd, &label, quiet).await?;
                let digest = std::fs::read_to_string(&digest_file)?;
                meta.insert("containerimage.digest".into(), json!(digest.trim()));
            }
        }
        if outputs.load {
            load(builder, &iid, &t.tags, tmp.path(), &label, quiet).await?;
        }
        if !quiet {
            eprintln!("[{label}] built {iid}");
        }
        return Ok(Value::Object(meta));
    }
    let ids = try_join_all(t.platforms.iter().map(|p| {
        let label = label(t, Some(p));
        let dir = tmp.path();
        async move {
            builder
                .build_local(t, Some(p), &[], dir, &label, quiet, None)
                .await
        }
    }))
    .await?;
    let list = match t.tags.first() {
        Some(name) => name.clone(),
        None => format!("localhost/depot-build-{}", std::process::id()),
    };
    let label = label(t, None);
    // A list left by an earlier build of the same name would gather stale platforms.
    let _ = runner::run(builder.buildah(["manifest", "rm", &list]), &label, true).await;
    runner::run(
        builder.buildah(["manifest", "create", &list]),
        &label,
        quiet,
    )
    .await?;
    for id in &ids {
        runner::run(
            builder.buildah(["manifest", "add", &list, id]),
            &label,
            quiet,
        )
        .await?;
    }
    if outputs.push {
        for tag in &t.tags {
            // No --digestfile here: with it, buildah 1.28 (Debian 12) exits 0 and writes an
            // empty file when the push fails. So the metadata has no digest for this case.
            let mut cmd = builder.buildah(["manifest", "push", "--all"]);
            cmd.args(tls_flag(tag))
                .arg(&list)
                .arg(format!("docker://{tag}"));
            runner::run(cmd, &label, quiet).await?;
        }
    }
    if !quiet {
        eprintln!(
            "[{label}] built manifest list {list} over {} platforms",
            ids.len()
        );
    }
    Ok(Value::Object(meta))
}
