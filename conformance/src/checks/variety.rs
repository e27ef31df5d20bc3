//! Content as clients push it today, beyond the plain image: sha512 throughout, an index of
//! indexes, descriptors with the `data` field, non-distributable layer references, custom
//! fields in manifests and configs, an image with no layers, artifact manifests and indexes with
//! `artifactType`, subjects on indexes, and a referrer pushed before its subject. Each must be
//! stored in its exact bytes and served back (image spec v1.1; distribution spec "Pushing
//! Manifests", "Listing Referrers").

use base64::Engine as _;
use serde_json::{json, Value};

use super::helpers::*;
use super::referrers::referrer_entries;
use crate::Ctx;

const EMPTY_CONFIG: &str = "application/vnd.oci.empty.v1+json";

fn to_bytes(v: &Value) -> Result<Vec<u8>, String> {
    serde_json::to_vec(v).map_err(|e| e.to_string())
}

fn base64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// PUTs `body` (of `media_type`) at `reference`, expecting 201, and reads it back by `get_as`
/// with the exact bytes.
fn put_and_fetch(
    ctx: &mut Ctx,
    repo: &str,
    reference: &str,
    get_as: &str,
    media_type: &str,
    body: &[u8],
    what: &str,
) -> Result<Resp, String> {
    let resp = put_manifest(ctx, repo, reference, media_type, body)?;
    status(&resp, &[201], &format!("PUT {what}"))?;
    fetch_manifest(ctx, repo, get_as, media_type, body, &format!("GET {what}"))
}

/// An image whose config and layer are pushed (under `algorithm` digests); its manifest is
/// returned unpushed, with `extra` fields merged in.
fn image_as(ctx: &mut Ctx, repo: &str, algorithm: &str, extra: Value) -> Result<Vec<u8>, String> {
    let config = to_bytes(&json!({ "architecture": "amd64", "os": "linux",
        "rootfs": { "type": "layers", "diff_ids": [] }, "nonce": rand::random::<u64>() }))?;
    let layer = random_bytes(1500);
    push_blob_as(ctx, repo, &config, algorithm)?;
    push_blob_as(ctx, repo, &layer, algorithm)?;
    let mut manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor_as(algorithm, OCI_CONFIG, &config),
        "layers": [descriptor_as(algorithm, OCI_LAYER, &layer)],
    });
    if let (Some(m), Some(e)) = (manifest.as_object_mut(), extra.as_object()) {
        m.extend(e.clone());
    }
    to_bytes(&manifest)
}

pub(super) fn sha512_throughout(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("sha512all");
    let manifest = image_as(ctx, &repo, "sha512", json!({}))?;
    let digest = sha512(&manifest);
    let resp = put_and_fetch(
        ctx,
        &repo,
        &digest,
        &digest,
        OCI_MANIFEST,
        &manifest,
        "sha512 image",
    )?;
    header_eq(
        &resp,
        "docker-content-digest",
        &digest,
        "GET by sha512 digest",
    )?;
    // An index of it, itself named by sha512.
    let index = to_bytes(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{ "mediaType": OCI_MANIFEST, "digest": digest, "size": manifest.len(),
                        "platform": { "architecture": "amd64", "os": "linux" } }],
    }))?;
    let index_digest = sha512(&index);
    let resp = put_and_fetch(
        ctx,
        &repo,
        &index_digest,
        &index_digest,
        OCI_INDEX,
        &index,
        "sha512 index",
    )?;
    header_eq(
        &resp,
        "docker-content-digest",
        &index_digest,
        "GET index by sha512 digest",
    )
}

pub(super) fn index_of_indexes(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("nested");
    let manifest = image_as(ctx, &repo, "sha256", json!({}))?;
    let digest = sha256(&manifest);
    status(
        &put_manifest(ctx, &repo, &digest, OCI_MANIFEST, &manifest)?,
        &[201],
        "PUT image",
    )?;
    let inner = to_bytes(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{ "mediaType": OCI_MANIFEST, "digest": digest, "size": manifest.len(),
                        "platform": { "architecture": "amd64", "os": "linux" } }],
    }))?;
    let inner_digest = sha256(&inner);
    status(
        &put_manifest(ctx, &repo, &inner_digest, OCI_INDEX, &inner)?,
        &[201],
        "PUT inner index",
    )?;
    let outer = to_bytes(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{ "mediaType": OCI_INDEX, "digest": inner_digest, "size": inner.len() }],
    }))?;
    put_and_fetch(
        ctx,
        &repo,
        "nested",
        "nested",
        OCI_INDEX,
        &outer,
        "index of indexes",
    )
    .map(|_| ())
}

pub(super) fn descriptor_data_field(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("datafield");
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let layer = random_bytes(64);
    push_blob(ctx, &repo, config)?;
    push_blob(ctx, &repo, &layer)?;
    let mut config_desc = descriptor(OCI_CONFIG, config);
    config_desc["data"] = json!(base64(config));
    let mut layer_desc = descriptor(OCI_LAYER, &layer);
    layer_desc["data"] = json!(base64(&layer));
    let manifest = to_bytes(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config_desc,
        "layers": [layer_desc],
    }))?;
    put_and_fetch(
        ctx,
        &repo,
        "data",
        "data",
        OCI_MANIFEST,
        &manifest,
        "manifest with data fields",
    )
    .map(|_| ())
}

pub(super) fn non_distributable_layer(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("foreign");
    let config =
        br#"{"architecture":"amd64","os":"windows","rootfs":{"type":"layers","diff_ids":[]}}"#;
    push_blob(ctx, &repo, config)?;
    // The base layer lives elsewhere (its URL); it is never pushed to this registry.
    let absent = random_bytes(32);
    let mut foreign = descriptor(
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        &absent,
    );
    foreign["urls"] = json!(["https://example.com/layers/base.tar.gz"]);
    let layer = random_bytes(200);
    push_blob(ctx, &repo, &layer)?;
    let manifest = to_bytes(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_CONFIG, config),
        "layers": [foreign, descriptor(OCI_LAYER, &layer)],
    }))?;
    put_and_fetch(
        ctx,
        &repo,
        "win",
        "win",
        OCI_MANIFEST,
        &manifest,
        "manifest with a non-distributable layer",
    )
    .map(|_| ())
}

pub(super) fn custom_fields(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("custom");
    let config = to_bytes(&json!({
        "architecture": "amd64", "os": "linux", "rootfs": { "type": "layers", "diff_ids": [] },
        "x-vendor": { "build": { "steps": [1, 2, 3], "cache": null } },
    }))?;
    let config_digest = push_blob(ctx, &repo, &config)?;
    let manifest = to_bytes(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_CONFIG, &config),
        "layers": [],
        "annotations": { "org.opencontainers.image.source": "https://example.com/app", "com.example.ünïcode": "✓" },
        "x-unknown-field": { "kept": true, "list": ["a", 1, null] },
    }))?;
    put_and_fetch(
        ctx,
        &repo,
        "custom",
        "custom",
        OCI_MANIFEST,
        &manifest,
        "manifest with custom fields",
    )?;
    fetch_blob(
        ctx,
        &repo,
        &config_digest,
        &config,
        "GET config with custom fields",
    )
    .map(|_| ())
}

pub(super) fn image_without_layers(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("nolayers");
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    push_blob(ctx, &repo, config)?;
    let manifest = to_bytes(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_CONFIG, config),
        "layers": [],
    }))?;
    put_and_fetch(
        ctx,
        &repo,
        "empty",
        "empty",
        OCI_MANIFEST,
        &manifest,
        "image without layers",
    )
    .map(|_| ())
}

/// The empty config an artifact manifest uses (`{}`, inlined as `data` too).
fn empty_config(ctx: &mut Ctx, repo: &str) -> Result<Value, String> {
    push_blob(ctx, repo, b"{}")?;
    let mut d = descriptor(EMPTY_CONFIG, b"{}");
    d["data"] = json!("e30=");
    Ok(d)
}

pub(super) fn artifact_manifest(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("artifact");
    let subject = pushed_image(ctx, &repo, "app")?;
    let payload = random_bytes(300);
    push_blob(ctx, &repo, &payload)?;
    let artifact = to_bytes(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.report.v1",
        "config": empty_config(ctx, &repo)?,
        "layers": [descriptor("application/vnd.example.report.v1+json", &payload)],
        "subject": { "mediaType": OCI_MANIFEST, "digest": subject.digest, "size": subject.manifest.len() },
        "annotations": { "org.opencontainers.image.created": "2026-01-01T00:00:00Z" },
    }))?;
    let digest = sha256(&artifact);
    put_and_fetch(
        ctx,
        &repo,
        &digest,
        &digest,
        OCI_MANIFEST,
        &artifact,
        "artifact manifest",
    )?;
    let entries = referrer_entries(&get(
        ctx,
        &format!("/v2/{repo}/referrers/{}", subject.digest),
    )?)?;
    let entry = entries
        .iter()
        .find(|e| e["digest"] == json!(digest))
        .ok_or("the artifact is not among its subject's referrers")?;
    ensure(
        entry["artifactType"] == json!("application/vnd.example.report.v1"),
        || format!("artifactType {}", entry["artifactType"]),
    )
}

pub(super) fn artifact_index_with_subject(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("artindex");
    let subject = pushed_image(ctx, &repo, "app")?;
    let member = pushed_image(ctx, &repo, "member")?;
    let index = to_bytes(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "artifactType": "application/vnd.example.bundle.v1",
        "manifests": [{ "mediaType": OCI_MANIFEST, "digest": member.digest, "size": member.manifest.len() }],
        "subject": { "mediaType": OCI_MANIFEST, "digest": subject.digest, "size": subject.manifest.len() },
    }))?;
    let digest = sha256(&index);
    let resp = put_manifest(ctx, &repo, &digest, OCI_INDEX, &index)?;
    status(&resp, &[201], "PUT index with a subject")?;
    header_eq(
        &resp,
        "oci-subject",
        &subject.digest,
        "PUT index with a subject",
    )?;
    let entries = referrer_entries(&get(
        ctx,
        &format!("/v2/{repo}/referrers/{}", subject.digest),
    )?)?;
    let entry = entries
        .iter()
        .find(|e| e["digest"] == json!(digest))
        .ok_or("the index is not among its subject's referrers")?;
    ensure(entry["mediaType"] == json!(OCI_INDEX), || {
        format!("mediaType {}", entry["mediaType"])
    })?;
    ensure(
        entry["artifactType"] == json!("application/vnd.example.bundle.v1"),
        || format!("artifactType {}", entry["artifactType"]),
    )
}

pub(super) fn referrer_before_subject(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("reflater");
    // The subject's manifest is made (its blobs pushed) but not pushed yet.
    let subject = image(ctx, &repo, OCI_MANIFEST, json!({}))?;
    let sbom = image(
        ctx,
        &repo,
        OCI_MANIFEST,
        json!({ "artifactType": "application/vnd.example.sbom.v1",
                "subject": { "mediaType": OCI_MANIFEST, "digest": subject.digest, "size": subject.manifest.len() } }),
    )?;
    let resp = put_manifest(ctx, &repo, &sbom.digest, OCI_MANIFEST, &sbom.manifest)?;
    status(&resp, &[201], "PUT a referrer before its subject")?;
    status(
        &put_manifest(ctx, &repo, "app", OCI_MANIFEST, &subject.manifest)?,
        &[201],
        "PUT the subject",
    )?;
    let entries = referrer_entries(&get(
        ctx,
        &format!("/v2/{repo}/referrers/{}", subject.digest),
    )?)?;
    ensure(
        entries.iter().any(|e| e["digest"] == json!(sbom.digest)),
        || format!("the earlier referrer is not listed: {entries:?}"),
    )
}
