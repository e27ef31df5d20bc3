//! `--save`: build straight into the depot registry under a new build ID.
//!
//! The build is created through the API (its push token is handed to the builders); every
//! target × platform is built by its own builder process, all at once, each pushing its
//! single-platform image to `<build-id>[-<target>][-<os>-<arch>]`; the registry writes the
//! index once every platform has arrived and marks the build saved. The first failure cancels
//! the other builders and marks the build failed, naming the target and platform; so does
//! Ctrl-C. Then `--push`/`--load` work from the saved build (`depot push`, `depot pull`).

use anyhow::{anyhow, bail, Context as _, Result};
use futures::future::try_join_all;
use serde_json::{json, Map, Value};

use super::builder::{Auth, Builder, Dest};
use super::{Outputs, Target};
use crate::api::{Api, Build, BuildState, CreateBuild, TargetRequest};
use crate::config::Context;
use crate::oci::manifest::Platform;
use crate::{pull, push};

/// One builder process: a target on one platform (or the builder's own).
struct Job<'a> {
    target: &'a Target,
    platform: Option<&'a Platform>,
    /// The tag it pushes to.
    tag: String,
    label: String,
}

/// Failure of one job, for the build's failure record.
struct JobError {
    target: String,
    platform: Option<String>,
    label: String,
    error: anyhow::Error,
}

pub async fn run(
    ctx: &Context,
    http: &reqwest::Client,
    builder: &Builder,
    targets: &[Target],
    outputs: &Outputs,
) -> Result<()> {
    if outputs.push {
        // Before building: a destination `depot push` would refuse fails the command now.
        for t in targets {
            if t.tags.is_empty() {
                bail!("--push: {} has no -t names to push to", t.what());
            }
            for tag in &t.tags {
                push::parse_dest(tag)?;
            }
        }
    }
    let api = Api::new(http.clone(), ctx);
    let project = ctx.project()?.to_owned();
    let bake = targets.iter().any(|t| !t.name.is_empty());
    let spec = CreateBuild {
        platforms: if bake {
            Vec::new()
        } else {
            targets[0]
                .platforms
                .iter()
                .map(ToString::to_string)
                .collect()
        },
        targets: if bake {
            targets
                .iter()
                .map(|t| {
                    TargetRequest::Full(depot_api_types::Target {
                        name: t.name.clone(),
                        platforms: t.platforms.iter().map(ToString::to_string).collect(),
                        image_names: t.tags.clone(),
                    })
                })
                .collect()
        } else {
            Vec::new()
        },
        save_tags: outputs.save_tags.clone(),
        // Recorded, so that `depot pull <id>` names the image after them later, as Depot does.
        image_names: if bake {
            Vec::new()
        } else {
            targets[0].tags.clone()
        },
        retention_secs: outputs.retention,
        ..CreateBuild::default()
    };
    let created = api
        .create_build(&project, &spec)
        .await
        .context("creating the build")?;
    outputs.status(&format!(
        "Build {} created in project {project}",
        created.id
    ));
    let jobs = jobs(&created, targets);
    let dests = jobs
        .iter()
        .map(|job| dest_for(ctx, &created, &job.tag))
        .collect::<Result<Vec<Dest>>>()?;

    let all = try_join_all(jobs.iter().zip(&dests).map(|(job, dest)| async move {
        builder
            .build_and_push(job.target, job.platform, dest, &job.label, outputs.quiet())
            .await
            .map_err(|error| JobError {
                target: job.target.name.clone(),
                platform: job.platform.map(ToString::to_string),
                label: job.label.clone(),
                error,
            })
    }));
    let outcome = tokio::select! {
        r = all => r,
        _ = tokio::signal::ctrl_c() => Err(JobError {
            target: String::new(),
            platform: None,
            label: "interrupted".into(),
            error: anyhow!("interrupted"),
        }),
    };
    if let Err(failed) = outcome {
        // Dropping the other builds killed their processes (kill_on_drop).
        // The whole reason (the builder's last lines say why), not just its first line.
        let reason = format!("{:#}", failed.error);
        if let Err(e) = api
            .fail_build(
                &created.id,
                &reason,
                Some(&failed.target),
                failed.platform.as_deref(),
            )
            .await
        {
            eprintln!("warning: could not mark build {} failed: {e:#}", created.id);
        }
        bail!("build {} failed: [{}] {reason}", created.id, failed.label);
    }

    let mut build = api
        .build(&created.id)
        .await?
        .ok_or_else(|| anyhow!("build {} vanished", created.id))?;
    if build.state == BuildState::Building {
        // Every builder pushed, so this only happens when a platform's image could not be
        // told apart; finalizing saves what arrived.
        build = api.finalize_build(&created.id).await?;
    }
    if build.state != BuildState::Saved {
        bail!(
            "build {} is {}: {}",
            build.id,
            build.state,
            build.failure.as_deref().unwrap_or("no reason given")
        );
    }
    println!("{}", build.id);
    // The build ID alone on stdout (`id=$(depot build --save -q .)`); the summary unless quiet.
    if !outputs.quiet() {
        report(ctx, &build, targets, &outputs.save_tags);
    }
    if outputs.metadata_file.is_some() || outputs.iidfile.is_some() {
        let manifests = saved_manifests(ctx, http, &build).await?;
        let entries = metadata(&build, targets, &manifests);
        if let Some(file) = &outputs.metadata_file {
            let body = serde_json::to_vec_pretty(&entries)?;
            std::fs::write(file, body).with_context(|| format!("writing {}", file.display()))?;
        }
        if let Some(file) = &outputs.iidfile {
            super::write_iidfile(file, &entries)?;
        }
    }
    follow_on(ctx, http, &build, targets, outputs).await
}

/// The builder processes of a build: one per target and platform.
fn jobs<'a>(created: &Build, targets: &'a [Target]) -> Vec<Job<'a>> {
    let mut jobs = Vec::new();
    for t in targets {
        let output = if t.name.is_empty() {
            created.id.clone()
        } else {
            format!("{}-{}", created.id, t.name)
        };
        let prefix = if t.name.is_empty() {
            String::new()
        } else {
            format!("{} ", t.name)
        };
        // With attestations (buildx only) each output is an index of its own, which buildx
        // builds over every platform and pushes whole.
        let platforms = if t.passthrough.attestations() {
            &[][..]
        } else {
            t.platforms.as_slice()
        };
        match platforms {
            [] => jobs.push(Job {
                target: t,
                platform: None,
                tag: output,
                label: if t.name.is_empty() {
                    "build".into()
                } else {
                    t.name.clone()
                },
            }),
            // One platform: its image is the output itself.
            [p] => jobs.push(Job {
                target: t,
                platform: Some(p),
                tag: output,
                label: format!("{prefix}{p}"),
            }),
            many => jobs.extend(many.iter().map(|p| Job {
                target: t,
                platform: Some(p),
                tag: format!("{output}-{}", tag_suffix(p)),
                label: format!("{prefix}{p}"),
            })),
        }
    }
    jobs
}

/// `os-arch[-variant]`, as the registry expects platform images to be tagged.
fn tag_suffix(p: &Platform) -> String {
    p.to_string().replace('/', "-")
}

/// Where a job pushes: the build's repository in the depot registry, with its push token.
fn dest_for(ctx: &Context, created: &Build, tag: &str) -> Result<Dest> {
    let (repo, _) = created
        .image
        .rsplit_once(':')
        .ok_or_else(|| anyhow!("the registry named the build's image {:?}", created.image))?;
    let host = repo.split('/').next().unwrap_or(repo).to_owned();
    Ok(Dest {
        reference: format!("{repo}:{tag}"),
        auth: created.push_token.as_ref().map(|secret| Auth {
            host,
            username: "x-token".into(),
            secret: secret.clone(),
        }),
        insecure: ctx.registry.starts_with("http://"),
        cache: Some(format!("{repo}/cache")),
    })
}

/// A `-t` name as `depot push` takes it: with its registry spelled out (`acme/web:dev` is
/// Docker Hub's `docker.io/acme/web:dev`, as for `docker push`), since push refuses a name
/// without one.
fn push_destination(tag: &str) -> String {
    match tag.parse::<oci_spec::distribution::Reference>() {
        Ok(r) if crate::push::parse_dest(tag).is_err() => format!(
            "{}/{}:{}",
            r.registry(),
            r.repository(),
            r.tag().unwrap_or("latest")
        ),
        _ => tag.to_owned(),
    }
}

/// What was saved, and the commands that use it.
fn report(ctx: &Context, build: &Build, specs: &[Target], save_tags: &[String]) {
    let project = &build.project;
    eprintln!();
    for image in &build.images {
        eprintln!("Saved {}@{}", image.name, image.digest);
    }
    eprintln!("\nBuild ID: {}", build.id);
    eprintln!("Next:");
    eprintln!("  depot pull --project {project} {}", build.id);
    let targets: Vec<&str> = build
        .images
        .iter()
        .map(|i| i.target.as_str())
        .filter(|t| !t.is_empty())
        .collect();
    // The -t names where there are some (where a promotion usually goes), else a placeholder.
    let dests = |target: &str| {
        let tags = specs
            .iter()
            .find(|t| t.name == target)
            .map(|t| t.tags.clone())
            .unwrap_or_default();
        if tags.is_empty() {
            "-t <registry>/<repository>:<tag>".to_owned()
        } else {
            tags.iter()
                .map(|t| format!("-t {}", push_destination(t)))
                .collect::<Vec<_>>()
                .join(" ")
        }
    };
    if targets.is_empty() {
        eprintln!(
            "  depot push --project {project} {} {}",
            dests(""),
            build.id
        );
    }
    for t in &targets {
        eprintln!(
            "  depot push --project {project} --target {t} {} {}",
            dests(t),
            build.id
        );
    }
    if !save_tags.is_empty() {
        let host = ctx.host();
        eprintln!("  depot pull-token --project {project} | docker login {host} -u x-token --password-stdin");
        for tag in save_tags {
            if targets.is_empty() {
                eprintln!("  docker pull {host}/{project}:{tag}");
            } else {
                for t in &targets {
                    eprintln!("  docker pull {host}/{project}:{tag}-{t}");
                }
            }
        }
    }
}

/// What the metadata file says of a saved image that the build view does not: its manifest's
/// size and, for an image (not an index), its config's digest, which Docker calls the image ID.
struct SavedManifest {
    size: usize,
    config: Option<String>,
}

/// Each saved image's manifest, by target.
async fn saved_manifests(
    ctx: &Context,
    http: &reqwest::Client,
    build: &Build,
) -> Result<std::collections::HashMap<String, SavedManifest>> {
    let reg = crate::source::registry(http, ctx, &crate::progress::Progress::new(true))?;
    let mut out = std::collections::HashMap::new();
    for image in &build.images {
        let (bytes, _) = reg
            .manifest(&build.project, &image.digest)
            .await
            .with_context(|| format!("reading the manifest of {}", image.name))?;
        let config = serde_json::from_slice::<Value>(&bytes)
            .ok()
            .and_then(|m| m["config"]["digest"].as_str().map(str::to_owned));
        out.insert(
            image.target.clone(),
            SavedManifest {
                size: bytes.len(),
                config,
            },
        );
    }
    Ok(out)
}

/// What `--metadata-file` holds: buildx's keys (`image.name`, `containerimage.digest`,
/// `containerimage.descriptor`, `containerimage.config.digest`, per target for a bake) and
/// ours, `depot.build`.
fn metadata(
    build: &Build,
    targets: &[Target],
    manifests: &std::collections::HashMap<String, SavedManifest>,
) -> Value {
    let entry = |target: &str| -> Value {
        let Some(image) = build.images.iter().find(|i| i.target == target) else {
            return json!({});
        };
        let mut names = vec![image.name.clone()];
        if let Some(t) = targets.iter().find(|t| t.name == target) {
            names.extend(t.tags.iter().cloned());
        }
        let mut e = json!({
            "image.name": names.join(","),
            "containerimage.digest": image.digest,
            "containerimage.mediaType": image.media_type,
            "depot.build.tag": image.tag,
        });
        if let Some(m) = manifests.get(target) {
            e["containerimage.descriptor"] = json!({
                "mediaType": image.media_type, "digest": image.digest, "size": m.size,
            });
            if let Some(config) = &m.config {
                e["containerimage.config.digest"] = json!(config);
            }
        }
        e
    };
    let mut out = Map::new();
    let mut depot_build = json!({ "buildID": build.id, "projectID": build.project });
    if targets.iter().all(|t| t.name.is_empty()) {
        if let Value::Object(m) = entry("") {
            out.extend(m);
        }
    } else {
        for t in targets {
            out.insert(t.name.clone(), entry(&t.name));
        }
        // As Depot writes it for bake: the targets built, sorted.
        let mut names: Vec<&str> = targets.iter().map(|t| t.name.as_str()).collect();
        names.sort_unstable();
        depot_build["targets"] = json!(names);
    }
    out.insert("depot.build".into(), depot_build);
    Value::Object(out)
}

/// `--push` and `--load` after a save: from the saved build, with the CLI's own push and pull.
async fn follow_on(
    ctx: &Context,
    http: &reqwest::Client,
    build: &Build,
    targets: &[Target],
    outputs: &Outputs,
) -> Result<()> {
    for t in targets {
        let target = (!t.name.is_empty()).then(|| t.name.clone());
        if outputs.push {
            outputs.status(&format!("Pushing {} to {}", t.what(), t.tags.join(", ")));
            let args = push::Args::to(&t.tags, target.as_deref(), &build.id, outputs.quiet())?;
            push::run(ctx, http, args).await?;
        }
        if outputs.load {
            outputs.status(&format!("Loading {} into the Docker daemon", t.what()));
            let mut args = pull::Args::of(&build.id, outputs.quiet())?;
            args.tags = t.tags.clone();
            args.targets = target.into_iter().collect();
            pull::run(ctx, http, args).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_hints_print_destinations_push_accepts() {
        for (tag, dest) in [
            ("acme/web:dev", "docker.io/acme/web:dev"),
            ("web", "docker.io/library/web:latest"),
            ("ghcr.io/acme/web:v1", "ghcr.io/acme/web:v1"),
            ("127.0.0.1:5000/web:v1", "127.0.0.1:5000/web:v1"),
        ] {
            assert_eq!(push_destination(tag), dest);
            assert!(crate::push::parse_dest(dest).is_ok(), "{dest}");
        }
    }

    fn target(name: &str, platforms: &[&str]) -> Target {
        Target {
            name: name.into(),
            context: ".".into(),
            dockerfile: None,
            stage: None,
            args: vec![],
            labels: vec![],
            tags: vec![],
            platforms: platforms.iter().map(|p| p.parse().unwrap()).collect(),
            no_cache: false,
            passthrough: Default::default(),
        }
    }

    fn created() -> Build {
        serde_json::from_value(serde_json::json!({
            "id": "b1", "project": "p1", "repository": "p1", "image": "127.0.0.1:5000/p1:b1",
            "state": "building", "created_at": "", "updated_at": "", "lease_expires_at": "",
            "expires_at": "", "push_token": "tok",
        }))
        .unwrap()
    }

    #[test]
    fn each_platform_pushes_to_its_own_tag() {
        let one = [target("", &["linux/arm64"])];
        let j = jobs(&created(), &one);
        assert_eq!(j.len(), 1);
        assert_eq!(j[0].tag, "b1");
        let two = [target("", &["linux/amd64", "linux/arm/v7"])];
        let tags: Vec<String> = jobs(&created(), &two).into_iter().map(|j| j.tag).collect();
        assert_eq!(tags, ["b1-linux-amd64", "b1-linux-arm-v7"]);
        let bake = [
            target("web", &[]),
            target("api", &["linux/amd64", "linux/arm64"]),
        ];
        let j = jobs(&created(), &bake);
        let tags: Vec<&str> = j.iter().map(|j| j.tag.as_str()).collect();
        assert_eq!(tags, ["b1-web", "b1-api-linux-amd64", "b1-api-linux-arm64"]);
        assert_eq!(j[2].label, "api linux/arm64");
        // With attestations buildx pushes each output's whole index: one job per target.
        let mut attested = target("api", &["linux/amd64", "linux/arm64"]);
        attested.passthrough.provenance = Some("mode=max".into());
        let attested = [attested];
        let j = jobs(&created(), &attested);
        assert_eq!(j.len(), 1);
        assert_eq!((j[0].tag.as_str(), j[0].platform), ("b1-api", None));
    }

    #[test]
    fn destinations_are_in_the_builds_repository() {
        let ctx = Context::resolve(Some("http://127.0.0.1:5000".into()), None, None).unwrap();
        let d = dest_for(&ctx, &created(), "b1-linux-amd64").unwrap();
        assert_eq!(d.reference, "127.0.0.1:5000/p1:b1-linux-amd64");
        assert_eq!(d.cache.as_deref(), Some("127.0.0.1:5000/p1/cache"));
        assert!(d.insecure);
        let auth = d.auth.unwrap();
        assert_eq!(auth.host, "127.0.0.1:5000");
        assert_eq!(auth.secret, "tok");
    }
}
