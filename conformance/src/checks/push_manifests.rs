//! Pushing manifests: by tag and digest, exact bytes, Docker types, indexes, validation
//! (digest, JSON, referenced blobs and children, media type, size) and subjects.

use serde_json::{json, Value};

use super::helpers::*;
use crate::Ctx;

pub(super) fn push_manifest_by_tag(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("mtag");
    let img = image(ctx, &repo, OCI_MANIFEST, json!({}))?;
    let resp = put_manifest(ctx, &repo, "v1", OCI_MANIFEST, &img.manifest)?;
    status(&resp, &[201], "PUT manifest")?;
    location(&resp, "PUT manifest")?;
    header_eq(&resp, "docker-content-digest", &img.digest, "PUT manifest")
}

pub(super) fn push_manifest_by_digest(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("mdigest");
    let img = image(ctx, &repo, OCI_MANIFEST, json!({}))?;
    let resp = put_manifest(ctx, &repo, &img.digest, OCI_MANIFEST, &img.manifest)?;
    status(&resp, &[201], "PUT manifest by digest")?;
    let resp = get_manifest(ctx, &repo, &img.digest)?;
    ensure(resp.status == 200 && resp.body == img.manifest, || {
        format!("GET by digest: {}", resp.status)
    })
}

pub(super) fn push_manifest_exact_bytes(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("exact");
    let img = image(ctx, &repo, OCI_MANIFEST, json!({}))?;
    // Odd but valid JSON formatting must survive untouched.
    let mut odd = b"  \n\t".to_vec();
    odd.extend(
        String::from_utf8_lossy(&img.manifest)
            .replace(": ", " :   ")
            .into_bytes(),
    );
    odd.extend(b"\n\n");
    let digest = sha256(&odd);
    let resp = put_manifest(ctx, &repo, "odd", OCI_MANIFEST, &odd)?;
    status(&resp, &[201], "PUT manifest")?;
    header_eq(&resp, "docker-content-digest", &digest, "PUT manifest")?;
    let resp = get_manifest(ctx, &repo, "odd")?;
    ensure(resp.body == odd, || "manifest bytes were changed".into())
}

pub(super) fn push_manifest_docker(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("docker");
    let img = image(ctx, &repo, DOCKER_MANIFEST, json!({}))?;
    let resp = put_manifest(ctx, &repo, &img.digest, DOCKER_MANIFEST, &img.manifest)?;
    status(&resp, &[201], "PUT schema2 manifest")?;
    let list = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_LIST,
        "manifests": [{ "mediaType": DOCKER_MANIFEST, "digest": img.digest, "size": img.manifest.len(),
                        "platform": { "architecture": "amd64", "os": "linux" } }],
    }))
    .map_err(|e| e.to_string())?;
    let resp = put_manifest(ctx, &repo, "list", DOCKER_LIST, &list)?;
    status(&resp, &[201], "PUT manifest list")?;
    let resp = fetch_manifest(ctx, &repo, "list", DOCKER_LIST, &list, "GET manifest list")?;
    header_eq(&resp, "content-type", DOCKER_LIST, "GET manifest list")
}

pub(super) fn push_image_index(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("index");
    let mut entries = Vec::new();
    for arch in ["amd64", "arm64"] {
        let img = image(ctx, &repo, OCI_MANIFEST, json!({}))?;
        let resp = put_manifest(ctx, &repo, &img.digest, OCI_MANIFEST, &img.manifest)?;
        status(&resp, &[201], "PUT child manifest")?;
        entries.push(
            json!({ "mediaType": OCI_MANIFEST, "digest": img.digest, "size": img.manifest.len(),
                             "platform": { "architecture": arch, "os": "linux" } }),
        );
    }
    let index = serde_json::to_vec(
        &json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries }),
    )
    .map_err(|e| e.to_string())?;
    let resp = put_manifest(ctx, &repo, "multi", OCI_INDEX, &index)?;
    status(&resp, &[201], "PUT index")?;
    let resp = fetch_manifest(ctx, &repo, "multi", OCI_INDEX, &index, "GET index")?;
    header_eq(&resp, "content-type", OCI_INDEX, "GET index")
}

pub(super) fn push_manifest_digest_mismatch(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("mdmismatch");
    let img = image(ctx, &repo, OCI_MANIFEST, json!({}))?;
    let wrong = sha256(b"not this manifest");
    let resp = put_manifest(ctx, &repo, &wrong, OCI_MANIFEST, &img.manifest)?;
    ensure(resp.status == 400, || {
        format!(
            "PUT by a wrong digest: expected 400, got {}: {}",
            resp.status,
            resp.text()
        )
    })?;
    let resp = get_manifest(ctx, &repo, &wrong)?;
    status(&resp, &[404], "GET by the wrong digest")
}

pub(super) fn push_manifest_invalid_json(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("badjson");
    push_blob(ctx, &repo, b"x")?;
    let resp = put_manifest(ctx, &repo, "bad", OCI_MANIFEST, b"{ this is not json")?;
    error(&resp, &[400], "MANIFEST_INVALID", "PUT invalid JSON")
}

pub(super) fn push_manifest_blob_unknown(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("mblob");
    let config = b"{}".to_vec();
    push_blob(ctx, &repo, &config)?;
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_CONFIG, &config),
        "layers": [descriptor(OCI_LAYER, &random_bytes(64))],
    }))
    .map_err(|e| e.to_string())?;
    let resp = put_manifest(ctx, &repo, "missing", OCI_MANIFEST, &manifest)?;
    error(
        &resp,
        &[400, 404],
        "MANIFEST_BLOB_UNKNOWN",
        "PUT manifest with an unknown layer",
    )
}

pub(super) fn push_index_child_unknown(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("ichild");
    push_blob(ctx, &repo, b"x")?;
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [{ "mediaType": OCI_MANIFEST, "digest": sha256(&random_bytes(8)), "size": 100 }],
    }))
    .map_err(|e| e.to_string())?;
    let resp = put_manifest(ctx, &repo, "missing", OCI_INDEX, &index)?;
    error(
        &resp,
        &[400, 404],
        "MANIFEST_BLOB_UNKNOWN",
        "PUT index with an unknown child",
    )
}

pub(super) fn push_manifest_media_type_mismatch(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("mtype");
    let img = image(ctx, &repo, OCI_MANIFEST, json!({}))?;
    let resp = put_manifest(ctx, &repo, "x", OCI_INDEX, &img.manifest)?;
    error(
        &resp,
        &[400],
        "MANIFEST_INVALID",
        "PUT with Content-Type unlike mediaType",
    )
}

pub(super) fn push_manifest_4mib(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("big");
    // 4,000,000 bytes: "4 megabytes", just under 4 MiB.
    let img = image(
        ctx,
        &repo,
        OCI_MANIFEST,
        json!({ "annotations": { "pad": "" } }),
    )?;
    let mut value: Value = serde_json::from_slice(&img.manifest).map_err(|e| e.to_string())?;
    let pad = 4_000_000 - img.manifest.len();
    value["annotations"]["pad"] = json!("p".repeat(pad));
    let body = serde_json::to_vec_pretty(&value).map_err(|e| e.to_string())?;
    let resp = put_manifest(ctx, &repo, "big", OCI_MANIFEST, &body)?;
    status(&resp, &[201], &format!("PUT {} byte manifest", body.len()))
}

pub(super) fn push_manifest_too_large(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("toolarge");
    let img = image(
        ctx,
        &repo,
        OCI_MANIFEST,
        json!({ "annotations": { "pad": "" } }),
    )?;
    let mut value: Value = serde_json::from_slice(&img.manifest).map_err(|e| e.to_string())?;
    value["annotations"]["pad"] = json!("p".repeat(5 * 1024 * 1024));
    let body = serde_json::to_vec(&value).map_err(|e| e.to_string())?;
    let resp = put_manifest(ctx, &repo, "huge", OCI_MANIFEST, &body)?;
    status(&resp, &[413], "PUT 5 MiB manifest")
}

pub(super) fn push_manifest_subject(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("subject");
    let subject = pushed_image(ctx, &repo, "base")?;
    let sbom = image(
        ctx,
        &repo,
        OCI_MANIFEST,
        json!({ "artifactType": "application/vnd.example.sbom.v1",
                "subject": { "mediaType": OCI_MANIFEST, "digest": subject.digest, "size": subject.manifest.len() } }),
    )?;
    let resp = put_manifest(ctx, &repo, &sbom.digest, OCI_MANIFEST, &sbom.manifest)?;
    status(&resp, &[201], "PUT manifest with subject")?;
    header_eq(
        &resp,
        "oci-subject",
        &subject.digest,
        "PUT manifest with subject",
    )
}

pub(super) fn push_manifest_subject_missing(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("subjmissing");
    let absent = sha256(&random_bytes(8));
    let sig = image(
        ctx,
        &repo,
        OCI_MANIFEST,
        json!({ "subject": { "mediaType": OCI_MANIFEST, "digest": absent, "size": 10 } }),
    )?;
    let resp = put_manifest(ctx, &repo, &sig.digest, OCI_MANIFEST, &sig.manifest)?;
    status(&resp, &[201], "PUT manifest whose subject is absent")
}

pub(super) fn push_manifest_multiple_tags(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("multitag");
    let img = image(ctx, &repo, OCI_MANIFEST, json!({}))?;
    // Twelve tags: the spec asks registries that offer this for at least ten per request.
    let mut tags: Vec<String> = ["1.2.3", "1.2", "1", "latest"].map(String::from).to_vec();
    tags.extend((0..8).map(|i| format!("extra-{i}")));
    let query: Vec<String> = tags.iter().map(|t| format!("tag={t}")).collect();
    let reference = format!("{}?{}", img.digest, query.join("&"));
    let resp = put_manifest(ctx, &repo, &reference, OCI_MANIFEST, &img.manifest)?;
    status(&resp, &[201], "PUT manifest by digest with 12 tags")?;
    header_eq(&resp, "docker-content-digest", &img.digest, "PUT with tags")?;
    let named = resp.header_values("oci-tag");
    for t in &tags {
        ensure(named.contains(t), || {
            format!("OCI-Tag does not name {t}: {named:?}")
        })?;
        let got = get_manifest(ctx, &repo, t)?;
        status(&got, &[200], &format!("GET tag {t}"))?;
        header_eq(
            &got,
            "docker-content-digest",
            &img.digest,
            &format!("GET tag {t}"),
        )?;
    }
    Ok(())
}

pub(super) fn push_manifest_multiple_tags_invalid(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("multitagbad");
    let img = image(ctx, &repo, OCI_MANIFEST, json!({}))?;
    let reference = format!("{}?tag=good&tag=-bad", img.digest);
    let resp = put_manifest(ctx, &repo, &reference, OCI_MANIFEST, &img.manifest)?;
    status(&resp, &[400], "PUT with one invalid tag among valid ones")?;
    let resp = get_manifest(ctx, &repo, "good")?;
    status(&resp, &[404], "the valid tag of a refused push")
}
