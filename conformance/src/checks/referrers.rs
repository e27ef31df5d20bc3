//! Listing referrers: the index, artifact types, filtering, empty lists, invalid digests.

use serde_json::{json, Value};

use super::helpers::*;
use crate::Ctx;

pub(super) fn referrers_setup(ctx: &mut Ctx, repo: &str) -> Result<(Image, Image, Image), String> {
    let subject = pushed_image(ctx, repo, "base")?;
    let subj = json!({ "mediaType": OCI_MANIFEST, "digest": subject.digest, "size": subject.manifest.len() });
    let sbom = image(
        ctx,
        repo,
        OCI_MANIFEST,
        json!({ "artifactType": "application/vnd.example.sbom.v1", "subject": subj, "annotations": { "org.example.k": "v" } }),
    )?;
    status(
        &put_manifest(ctx, repo, &sbom.digest, OCI_MANIFEST, &sbom.manifest)?,
        &[201],
        "PUT sbom",
    )?;
    let sig = image(ctx, repo, OCI_MANIFEST, json!({ "subject": subj }))?;
    status(
        &put_manifest(ctx, repo, &sig.digest, OCI_MANIFEST, &sig.manifest)?,
        &[201],
        "PUT signature",
    )?;
    Ok((subject, sbom, sig))
}

pub(super) fn referrer_entries(resp: &Resp) -> Result<Vec<Value>, String> {
    status(resp, &[200], "GET referrers")?;
    header_eq(resp, "content-type", OCI_INDEX, "GET referrers")?;
    let json = resp.json()?;
    json.get("manifests")
        .and_then(Value::as_array)
        .cloned()
        .ok_or_else(|| format!("no manifests array in {json}"))
}

pub(super) fn referrers_list(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("refs");
    let (subject, sbom, sig) = referrers_setup(ctx, &repo)?;
    let entries = referrer_entries(&get(
        ctx,
        &format!("/v2/{repo}/referrers/{}", subject.digest),
    )?)?;
    ensure(entries.len() == 2, || {
        format!("expected 2 referrers, got {entries:?}")
    })?;
    let find = |d: &str| entries.iter().find(|e| e["digest"] == json!(d)).cloned();
    let s = find(&sbom.digest).ok_or("sbom not listed")?;
    ensure(
        s["artifactType"] == json!("application/vnd.example.sbom.v1"),
        || format!("sbom artifactType {}", s["artifactType"]),
    )?;
    ensure(s["annotations"]["org.example.k"] == json!("v"), || {
        format!("sbom annotations {}", s["annotations"])
    })?;
    ensure(s["size"] == json!(sbom.manifest.len()), || {
        format!("sbom size {}", s["size"])
    })?;
    ensure(s["mediaType"] == json!(OCI_MANIFEST), || {
        format!("sbom mediaType {}", s["mediaType"])
    })?;
    find(&sig.digest)
        .map(|_| ())
        .ok_or_else(|| "signature not listed".to_owned())
}

pub(super) fn referrers_config_type(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("refcfg");
    let (subject, _, sig) = referrers_setup(ctx, &repo)?;
    let entries = referrer_entries(&get(
        ctx,
        &format!("/v2/{repo}/referrers/{}", subject.digest),
    )?)?;
    let s = entries
        .iter()
        .find(|e| e["digest"] == json!(sig.digest))
        .ok_or("signature not listed")?;
    ensure(s["artifactType"] == json!(OCI_CONFIG), || {
        format!(
            "artifactType {} should be the config media type",
            s["artifactType"]
        )
    })
}

pub(super) fn referrers_filter(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("reffilter");
    let (subject, sbom, _) = referrers_setup(ctx, &repo)?;
    let resp = get(
        ctx,
        &format!(
            "/v2/{repo}/referrers/{}?artifactType=application/vnd.example.sbom.v1",
            subject.digest
        ),
    )?;
    let entries = referrer_entries(&resp)?;
    ensure(
        entries.len() == 1 && entries[0]["digest"] == json!(sbom.digest),
        || format!("filtered list {entries:?}"),
    )?;
    header_eq(
        &resp,
        "oci-filters-applied",
        "artifactType",
        "filtered referrers",
    )
}

pub(super) fn referrers_empty(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("refempty");
    pushed_image(ctx, &repo, "latest")?;
    let entries = referrer_entries(&get(
        ctx,
        &format!("/v2/{repo}/referrers/{}", sha256(&random_bytes(8))),
    )?)?;
    ensure(entries.is_empty(), || {
        format!("expected no referrers, got {entries:?}")
    })
}

pub(super) fn referrers_invalid_digest(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("refbad");
    pushed_image(ctx, &repo, "latest")?;
    let resp = get(ctx, &format!("/v2/{repo}/referrers/sha256:nothex"))?;
    status(&resp, &[400], "GET referrers with an invalid digest")
}
