//! What every check uses: media types, digests, assertions on answers, and pushing content the
//! plain way (POST then PUT, then the manifest).

use reqwest::Method;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256, Sha512};

pub(super) use crate::client::Resp;
use crate::Ctx;

pub(super) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub(super) const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub(super) const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub(super) const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub(super) const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub(super) const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

pub(super) type R = Result<(), String>;

// ---- helpers ------------------------------------------------------------------------------

pub(super) fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

pub(super) fn sha512(data: &[u8]) -> String {
    format!("sha512:{}", hex::encode(Sha512::digest(data)))
}

/// The digest of `data` with `algorithm` (`sha256` or `sha512`).
pub(super) fn digest_as(algorithm: &str, data: &[u8]) -> String {
    match algorithm {
        "sha512" => sha512(data),
        _ => sha256(data),
    }
}

pub(super) fn random_bytes(n: usize) -> Vec<u8> {
    (0..n).map(|_| rand::random::<u8>()).collect()
}

pub(super) fn ensure(cond: bool, msg: impl FnOnce() -> String) -> R {
    if cond {
        Ok(())
    } else {
        Err(msg())
    }
}

pub(super) fn status(resp: &Resp, want: &[u16], what: &str) -> R {
    ensure(want.contains(&resp.status), || {
        format!(
            "{what}: expected status {want:?}, got {}: {}",
            resp.status,
            resp.text()
        )
    })
}

/// Expects `status` and the JSON error envelope with `code` among the errors.
pub(super) fn error(resp: &Resp, want_status: &[u16], code: &str, what: &str) -> R {
    status(resp, want_status, what)?;
    let json = resp
        .json()
        .map_err(|e| format!("{what}: error body: {e}"))?;
    let errors = json
        .get("errors")
        .and_then(Value::as_array)
        .ok_or_else(|| format!("{what}: no errors array in {json}"))?;
    ensure(
        errors
            .iter()
            .any(|e| e.get("code").and_then(Value::as_str) == Some(code)),
        || format!("{what}: expected error code {code}, got {json}"),
    )
}

pub(super) fn header_eq(resp: &Resp, name: &str, want: &str, what: &str) -> R {
    ensure(resp.header(name) == Some(want), || {
        format!(
            "{what}: header {name} is {:?}, expected {want:?}",
            resp.header(name)
        )
    })
}

pub(super) fn location(resp: &Resp, what: &str) -> Result<String, String> {
    resp.header("location")
        .map(str::to_owned)
        .ok_or_else(|| format!("{what}: no Location header"))
}

/// Appends a query parameter to an upload location that may already carry a query.
pub(super) fn with_query(location: &str, key: &str, value: &str) -> String {
    let sep = if location.contains('?') { '&' } else { '?' };
    format!("{location}{sep}{key}={value}")
}

pub(super) fn get(ctx: &mut Ctx, path: &str) -> Result<Resp, String> {
    ctx.client.send(Method::GET, path, &[], None)
}

/// GETs a manifest, accepting every manifest type (clients SHOULD send Accept, and some
/// registries refuse OCI types to clients that do not list them).
pub(super) fn get_manifest(ctx: &mut Ctx, repo: &str, reference: &str) -> Result<Resp, String> {
    let accept = format!("{OCI_MANIFEST}, {OCI_INDEX}, {DOCKER_MANIFEST}, {DOCKER_LIST}");
    ctx.client.send(
        Method::GET,
        &format!("/v2/{repo}/manifests/{reference}"),
        &[("accept", accept.as_str())],
        None,
    )
}

/// GETs a blob and checks it is a 200 carrying exactly `expected`.
pub(super) fn fetch_blob(
    ctx: &mut Ctx,
    repo: &str,
    digest: &str,
    expected: &[u8],
    what: &str,
) -> Result<Resp, String> {
    let resp = get(ctx, &format!("/v2/{repo}/blobs/{digest}"))?;
    status(&resp, &[200], what)?;
    ensure(resp.body == expected, || {
        format!(
            "{what}: {} bytes, not the {} pushed",
            resp.body.len(),
            expected.len()
        )
    })?;
    Ok(resp)
}

/// GETs a manifest with `accept` and checks it is a 200 carrying exactly `expected`.
pub(super) fn fetch_manifest(
    ctx: &mut Ctx,
    repo: &str,
    reference: &str,
    accept: &str,
    expected: &[u8],
    what: &str,
) -> Result<Resp, String> {
    let path = format!("/v2/{repo}/manifests/{reference}");
    let resp = ctx
        .client
        .send(Method::GET, &path, &[("accept", accept)], None)?;
    status(&resp, &[200], what)?;
    ensure(resp.body == expected, || {
        format!("{what}: manifest bytes differ")
    })?;
    Ok(resp)
}

pub(super) fn head(ctx: &mut Ctx, path: &str) -> Result<Resp, String> {
    ctx.client.send(Method::HEAD, path, &[], None)
}

pub(super) fn delete(ctx: &mut Ctx, path: &str) -> Result<Resp, String> {
    ctx.client.send(Method::DELETE, path, &[], None)
}

pub(super) fn start_upload(ctx: &mut Ctx, repo: &str) -> Result<String, String> {
    let resp = ctx.client.send(
        Method::POST,
        &format!("/v2/{repo}/blobs/uploads/"),
        &[("content-length", "0")],
        Some(Vec::new()),
    )?;
    status(&resp, &[202], "POST upload")?;
    location(&resp, "POST upload")
}

/// Pushes a blob with POST then PUT (the method every registry supports); returns its digest.
pub(super) fn push_blob(ctx: &mut Ctx, repo: &str, data: &[u8]) -> Result<String, String> {
    push_blob_as(ctx, repo, data, "sha256")
}

/// Pushes a blob with POST then PUT under its `algorithm` digest (a sha512 session is opened
/// with the spec's `digest-algorithm` hint); returns the digest.
pub(super) fn push_blob_as(
    ctx: &mut Ctx,
    repo: &str,
    data: &[u8],
    algorithm: &str,
) -> Result<String, String> {
    let digest = digest_as(algorithm, data);
    let loc = if algorithm == "sha256" {
        start_upload(ctx, repo)?
    } else {
        let resp = ctx.client.send(
            Method::POST,
            &format!("/v2/{repo}/blobs/uploads/?digest-algorithm={algorithm}"),
            &[("content-length", "0")],
            Some(Vec::new()),
        )?;
        status(&resp, &[202], "POST upload with digest-algorithm")?;
        location(&resp, "POST upload")?
    };
    let resp = ctx.client.send(
        Method::PUT,
        &with_query(&loc, "digest", &digest),
        &[("content-type", "application/octet-stream")],
        Some(data.to_vec()),
    )?;
    status(&resp, &[201], "PUT blob")?;
    Ok(digest)
}

pub(super) fn put_manifest(
    ctx: &mut Ctx,
    repo: &str,
    reference: &str,
    media_type: &str,
    body: &[u8],
) -> Result<Resp, String> {
    ctx.client.send(
        Method::PUT,
        &format!("/v2/{repo}/manifests/{reference}"),
        &[("content-type", media_type)],
        Some(body.to_vec()),
    )
}

pub(super) fn descriptor(media_type: &str, data: &[u8]) -> Value {
    descriptor_as("sha256", media_type, data)
}

pub(super) fn descriptor_as(algorithm: &str, media_type: &str, data: &[u8]) -> Value {
    json!({ "mediaType": media_type, "digest": digest_as(algorithm, data), "size": data.len() })
}

/// An image: config and one layer pushed, manifest bytes returned (not pushed).
pub(super) struct Image {
    pub(super) manifest: Vec<u8>,
    pub(super) digest: String,
    pub(super) config_digest: String,
    pub(super) layer_digest: String,
}

pub(super) fn image(
    ctx: &mut Ctx,
    repo: &str,
    media_type: &str,
    extra: Value,
) -> Result<Image, String> {
    let (config_type, layer_type) = if media_type == DOCKER_MANIFEST {
        (
            "application/vnd.docker.container.image.v1+json",
            "application/vnd.docker.image.rootfs.diff.tar.gzip",
        )
    } else {
        (OCI_CONFIG, OCI_LAYER)
    };
    let config = json!({ "architecture": "amd64", "os": "linux", "rootfs": { "type": "layers", "diff_ids": [] }, "nonce": rand::random::<u64>() })
        .to_string()
        .into_bytes();
    let layer = random_bytes(2048);
    let config_digest = push_blob(ctx, repo, &config)?;
    let layer_digest = push_blob(ctx, repo, &layer)?;
    let mut manifest = json!({
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": descriptor(config_type, &config),
        "layers": [descriptor(layer_type, &layer)],
    });
    if let (Some(m), Some(e)) = (manifest.as_object_mut(), extra.as_object()) {
        m.extend(e.clone());
    }
    let manifest = serde_json::to_vec_pretty(&manifest).map_err(|e| e.to_string())?;
    Ok(Image {
        digest: sha256(&manifest),
        manifest,
        config_digest,
        layer_digest,
    })
}

/// Pushes an image by tag and returns it.
pub(super) fn pushed_image(ctx: &mut Ctx, repo: &str, tag: &str) -> Result<Image, String> {
    let img = image(ctx, repo, OCI_MANIFEST, json!({}))?;
    let resp = put_manifest(ctx, repo, tag, OCI_MANIFEST, &img.manifest)?;
    status(&resp, &[201], "PUT manifest")?;
    Ok(img)
}
