//! Pulling manifests: by tag and digest, HEAD, unknown manifests and repositories, malformed
//! references, Accept, and the proxy's `ns` parameter.

use reqwest::Method;

use super::helpers::*;
use crate::Ctx;

pub(super) fn pull_manifest_by_tag(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("pulltag");
    let img = pushed_image(ctx, &repo, "latest")?;
    let resp = fetch_manifest(
        ctx,
        &repo,
        "latest",
        OCI_MANIFEST,
        &img.manifest,
        "GET manifest",
    )?;
    header_eq(&resp, "content-type", OCI_MANIFEST, "GET manifest")?;
    header_eq(&resp, "docker-content-digest", &img.digest, "GET manifest")
}

pub(super) fn pull_manifest_by_digest(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("pulldigest");
    let img = pushed_image(ctx, &repo, "latest")?;
    fetch_manifest(
        ctx,
        &repo,
        &img.digest,
        OCI_MANIFEST,
        &img.manifest,
        "GET manifest by digest",
    )
    .map(|_| ())
}

pub(super) fn pull_manifest_head(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("mhead");
    let img = pushed_image(ctx, &repo, "latest")?;
    let resp = ctx.client.send(
        Method::HEAD,
        &format!("/v2/{repo}/manifests/latest"),
        &[("accept", OCI_MANIFEST)],
        None,
    )?;
    status(&resp, &[200], "HEAD manifest")?;
    header_eq(
        &resp,
        "content-length",
        &img.manifest.len().to_string(),
        "HEAD manifest",
    )?;
    header_eq(&resp, "docker-content-digest", &img.digest, "HEAD manifest")?;
    ensure(resp.body.is_empty(), || "HEAD returned a body".into())
}

pub(super) fn pull_manifest_unknown(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("munknown");
    pushed_image(ctx, &repo, "latest")?;
    let resp = get_manifest(ctx, &repo, "nope")?;
    error(&resp, &[404], "MANIFEST_UNKNOWN", "GET unknown tag")?;
    let resp = get_manifest(ctx, &repo, &sha256(b"nope"))?;
    error(&resp, &[404], "MANIFEST_UNKNOWN", "GET unknown digest")
}

pub(super) fn pull_manifest_accept(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("accept");
    let img = pushed_image(ctx, &repo, "latest")?;
    let accept = format!("{DOCKER_MANIFEST}, {OCI_INDEX};q=0.9, {OCI_MANIFEST}");
    let resp = ctx.client.send(
        Method::GET,
        &format!("/v2/{repo}/manifests/latest"),
        &[("accept", accept.as_str())],
        None,
    )?;
    status(&resp, &[200], "GET with a list of accepted types")?;
    ensure(resp.body == img.manifest, || "manifest differs".into())
}

pub(super) fn pull_repository_unknown(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("neverpushed");
    let resp = get_manifest(ctx, &repo, "latest")?;
    status(&resp, &[404], "GET manifest of an unknown repository")
}

pub(super) fn pull_manifest_malformed_reference(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("mmalformed");
    pushed_image(ctx, &repo, "latest")?;
    for reference in [".INVALID_MANIFEST_NAME", "sha256:nothex"] {
        let resp = get_manifest(ctx, &repo, reference)?;
        error(
            &resp,
            &[404],
            "MANIFEST_UNKNOWN",
            &format!("GET {reference}"),
        )?;
        let resp = head(ctx, &format!("/v2/{repo}/manifests/{reference}"))?;
        status(&resp, &[404], &format!("HEAD {reference}"))?;
    }
    Ok(())
}

pub(super) fn pull_ns_ignored(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("ns");
    let img = pushed_image(ctx, &repo, "latest")?;
    let resp = ctx.client.send(
        Method::GET,
        &format!("/v2/{repo}/manifests/latest?ns=registry.example.com"),
        &[("accept", OCI_MANIFEST)],
        None,
    )?;
    status(&resp, &[200], "GET manifest with ?ns=")?;
    ensure(resp.body == img.manifest, || "manifest differs".into())?;
    // A registry that scopes by `ns` says so; one that ignores it must not claim to.
    match resp.header("oci-namespace") {
        None => Ok(()),
        Some(ns) => ensure(ns == "registry.example.com", || {
            format!("OCI-Namespace is {ns:?}, not the ns sent")
        }),
    }
}
