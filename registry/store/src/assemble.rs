//! Turning the images builders push into a saved build.
//!
//! Each push of a build push token is an *arrival*: an image for one target and platform, told
//! by its tag (`<build-id>[-<target>][-<os>-<arch>[-<variant>]]`) or, pushed by digest, by the
//! platform in its config. When every target has its image (or, for a multi-platform target,
//! every expected platform), the registry writes an OCI image index over the platforms, tags it
//! `<build-id>[-<target>]`, points the save tags at it and marks the build saved. An explicit
//! finalize does the same with whatever has arrived.
//!
//! Two builders finishing at once both see both arrivals (each records its own before looking),
//! both write the same index bytes (children in declared platform order), and the state moves to
//! `saved` once: the race is harmless by construction.

use serde_json::{json, Value};

use crate::content::Content;
use crate::digest::{Algorithm, Digest};
use crate::error::{Error, Result};
use crate::manifest::{self, ParsedManifest, OCI_INDEX};
use crate::metadata::{BuildImage, Metadata, NewManifest, Owner};
use crate::model::{build_id_prefix, Build, BuildState, Platform, TagRole};
use crate::names::{RepoName, Tag};

/// Largest image config read to learn a platform.
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

const IMAGE_CONFIG_TYPES: [&str; 2] = [
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
];

pub fn owner(build: &Build) -> Owner {
    Owner {
        build_id: build.id.clone(),
        expires_at: build.expires_at,
    }
}

/// A manifest the build's push token just stored.
pub struct Pushed<'a> {
    pub repo: &'a RepoName,
    /// The tags it was pushed with (the reference's, or a multi-tag push's `?tag=`s).
    pub tags: &'a [Tag],
    pub digest: &'a Digest,
    pub size: u64,
    pub parsed: &'a ParsedManifest,
}

/// Records what a push brings to its build and saves the build once it is complete.
pub async fn on_push(content: &Content, build: &Build, pushed: Pushed<'_>) -> Result<()> {
    let Some(image) = arrival(content, build, &pushed).await? else {
        return Ok(());
    };
    let now = content.clock.now_ms();
    content
        .meta
        .record_build_image(&build.id, &image, now)
        .await?;
    tracing::debug!(build = %build.id, target = %image.target, platform = %image.platform, digest = %image.digest, "build image arrived");
    let images = content.meta.build_images(&build.id).await?;
    if build.state == BuildState::Building && is_complete(build, &images) {
        save(content, build, &images, pushed.repo).await?;
    } else if image.platform.is_empty() {
        // A single-image target pushed by digest: tag it now so it is pullable by build ID.
        let tag = build.output_tag(&image.target);
        if !pushed.tags.iter().any(|t| t.as_str() == tag.as_str()) {
            point_tag(content, build, pushed.repo, &tag, &image.digest).await?;
        }
    }
    Ok(())
}

/// Which target and platform a push is for, if it is a build image at all (referrers such as
/// signatures and SBOMs, and save-tag pushes, are not).
async fn arrival(content: &Content, build: &Build, p: &Pushed<'_>) -> Result<Option<BuildImage>> {
    if p.parsed.subject.is_some() {
        return Ok(None);
    }
    let outputs = build.spec.outputs();
    // The tag that says what the image is: an output's or a platform image's. Pushed only with
    // save tags it is not a build image; by digest alone, only a build with one output can tell
    // which target it belongs to.
    let roles: Vec<TagRole> = p
        .tags
        .iter()
        .filter_map(|t| build.tag_role(t.as_str()))
        .collect();
    let saying = roles
        .iter()
        .find(|r| matches!(r, TagRole::Output { .. } | TagRole::PlatformImage { .. }));
    let (target, tagged_platform) = match saying {
        Some(TagRole::Output { target }) => (target.clone(), None),
        Some(TagRole::PlatformImage { target, platform }) => {
            (target.clone(), Some(platform.clone()))
        }
        _ if !roles.is_empty() => return Ok(None),
        _ if outputs.len() == 1 => (outputs[0].name.clone(), None),
        _ => return Ok(None),
    };
    let Some(output) = outputs.iter().find(|o| o.name == target) else {
        return Ok(None);
    };
    let image = |platform: String| BuildImage {
        target: target.clone(),
        platform,
        digest: p.digest.to_string(),
        media_type: p.parsed.media_type.clone(),
        size: p.size,
    };
    if manifest::is_index(&p.parsed.media_type) {
        // A builder that pushes its own index covers the whole target; by digest it may be
        // just one of a tool's intermediate lists, so only a tagged index counts.
        return Ok((!p.tags.is_empty()).then(|| image(String::new())));
    }
    let config = &p.parsed.blobs[0];
    if !IMAGE_CONFIG_TYPES.contains(&config.media_type.as_str()) {
        return Ok(None);
    }
    if output.platforms.len() < 2 {
        return Ok(Some(image(String::new())));
    }
    let expected: Vec<Platform> = output
        .platforms
        .iter()
        .filter_map(|p| Platform::parse(p))
        .collect();
    let actual = match tagged_platform {
        Some(p) => Some(p),
        None => config_platform(content, &config.digest, config.size).await?,
    };
    Ok(actual
        .and_then(|a| expected.into_iter().find(|e| e.accepts(&a)))
        .map(|e| image(e.to_string())))
}

/// The platform an image config names (`os`, `architecture`, `variant`).
pub async fn config_platform(
    content: &Content,
    digest: &Digest,
    size: u64,
) -> Result<Option<Platform>> {
    if size > MAX_CONFIG_BYTES {
        return Ok(None);
    }
    let Some(blob) = content.stored_blob(digest).await? else {
        return Ok(None);
    };
    let bytes = content
        .store
        .read(&blob.location, 0..size)
        .await?
        .collect()
        .await?;
    let Ok(config) = serde_json::from_slice::<Value>(&bytes) else {
        return Ok(None);
    };
    let field = |k: &str| config.get(k).and_then(Value::as_str).map(str::to_owned);
    Ok(match (field("os"), field("architecture")) {
        (Some(os), Some(architecture)) => Some(Platform {
            os,
            architecture,
            variant: field("variant").filter(|v| !v.is_empty()),
        }),
        _ => None,
    })
}

/// Whether every output has its image, or all of its platforms.
fn is_complete(build: &Build, images: &[BuildImage]) -> bool {
    build.spec.outputs().iter().all(|o| {
        let of_target = || images.iter().filter(|i| i.target == o.name);
        of_target().any(|i| i.platform.is_empty())
            || (o.platforms.len() >= 2
                && o.platforms.iter().all(|p| {
                    let p = Platform::parse(p)
                        .map(|p| p.to_string())
                        .unwrap_or_default();
                    of_target().any(|i| i.platform == p)
                }))
    })
}

/// Writes each output (an index over its platforms where needed), points the save tags at the
/// outputs and marks the build saved. Fails if some output has no image at all.
pub async fn save(
    content: &Content,
    build: &Build,
    images: &[BuildImage],
    repo: &RepoName,
) -> Result<()> {
    let mut outputs = Vec::new();
    for output in build.spec.outputs() {
        let of_target: Vec<&BuildImage> =
            images.iter().filter(|i| i.target == output.name).collect();
        let top = match of_target.iter().find(|i| i.platform.is_empty()) {
            Some(whole) => whole.digest.clone(),
            None if of_target.is_empty() => {
                let what = if output.name.is_empty() {
                    "the build".to_owned()
                } else {
                    format!("target {}", output.name)
                };
                return Err(Error::StateConflict(format!("{what} has no image yet")));
            }
            None => write_index(content, build, repo, &output.platforms, &of_target).await?,
        };
        let tag = build.output_tag(&output.name);
        point_tag(content, build, repo, &tag, &top).await?;
        outputs.push((output.name, top));
    }
    for save_tag in &build.spec.save_tags {
        for (target, digest) in &outputs {
            let tag = if target.is_empty() {
                save_tag.clone()
            } else {
                format!("{save_tag}-{target}")
            };
            if !may_take_save_tag(&content.meta, repo, &tag, build).await? {
                tracing::warn!(build = %build.id, %tag, "save tag not pointed: it is named after another build");
                continue;
            }
            point_tag(content, build, repo, &tag, digest).await?;
        }
    }
    let now = content.clock.now_ms();
    if content
        .meta
        .transition_build(
            &build.id,
            BuildState::Building,
            BuildState::Saved,
            None,
            now,
        )
        .await?
    {
        tracing::info!(build = %build.id, project = %build.project, "build saved");
        // With one more saved build, the oldest beyond the project's count policy expires
        // now, not at the next collection: a pull of it is a 404 from this moment on.
        if let Some(project) = content.meta.project(&build.project).await? {
            content.apply_keep_policy(&project).await?;
        }
    }
    Ok(())
}

/// Stores the OCI index over a target's platform images (in declared order) and returns its
/// digest.
async fn write_index(
    content: &Content,
    build: &Build,
    repo: &RepoName,
    declared: &[String],
    images: &[&BuildImage],
) -> Result<String> {
    let mut children = Vec::new();
    for p in declared.iter().filter_map(|p| Platform::parse(p)) {
        let Some(image) = images.iter().find(|i| i.platform == p.to_string()) else {
            continue;
        };
        let mut platform = json!({ "architecture": p.architecture, "os": p.os });
        if let Some(v) = &p.variant {
            platform["variant"] = json!(v);
        }
        children.push((
            image.digest.parse::<Digest>().map_err(|_| Error::corrupt("digest in build_images"))?,
            json!({ "mediaType": image.media_type, "digest": image.digest, "size": image.size, "platform": platform }),
        ));
    }
    let index = json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": children.iter().map(|(_, d)| d.clone()).collect::<Vec<_>>(),
        "annotations": { "dev.depot.build.id": build.id },
    });
    let bytes = serde_json::to_vec(&index).map_err(Error::internal)?;
    let digest = Digest::of(Algorithm::Sha256, &bytes);
    let record = NewManifest {
        digest: digest.clone(),
        media_type: OCI_INDEX.to_owned(),
        content: bytes,
        subject: None,
        artifact_type: None,
        annotations: Some(json!({ "dev.depot.build.id": build.id }).to_string()),
        blobs: Vec::new(),
        manifests: children.into_iter().map(|(d, _)| d).collect(),
    };
    content
        .meta
        .put_manifest(repo, &record, &[], Some(&owner(build)))
        .await?;
    Ok(digest.to_string())
}

/// Whether `build` may point save tag `tag` at its output: a save tag moves from build to build
/// (that is what `latest` is for), but a tag named after another build's id (`<id>`,
/// `<id>-...`) stays that build's, even if this build declared it as a save tag, and even
/// after that build expired (its row stays, so its id keeps answering "expired", never another
/// build's image). Every path that points a save tag asks this: pushes, the automatic save and
/// finalize.
pub async fn may_take_save_tag(
    meta: &Metadata,
    repo: &RepoName,
    tag: &str,
    build: &Build,
) -> Result<bool> {
    let Some(named_after) = build_id_prefix(tag) else {
        return Ok(true);
    };
    if named_after == build.id {
        return Ok(true);
    }
    Ok(match meta.build(named_after).await? {
        Some(other) => other.project != repo.as_str(),
        None => true,
    })
}

/// Points `tag` at an already stored manifest, as the build's tag.
async fn point_tag(
    content: &Content,
    build: &Build,
    repo: &RepoName,
    tag: &str,
    digest: &str,
) -> Result<()> {
    let tag: Tag = tag
        .parse()
        .map_err(|_| Error::internal(format!("derived tag {tag:?} is invalid")))?;
    let digest: Digest = digest.parse().map_err(|_| Error::corrupt("digest"))?;
    content
        .tag_manifest(repo, &tag, &digest, &owner(build))
        .await
}
