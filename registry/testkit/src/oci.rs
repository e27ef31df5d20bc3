//! Content for tests, and pushing it the plain way (monolithic blob uploads, then the manifest)
//! with an HTTP client: digests, random bytes, one-layer images.

use reqwest::blocking::{Client, Response};
use serde_json::json;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

/// `sha256:<hex>` of `data`.
pub fn sha256(data: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}

/// `sha512:<hex>` of `data`.
pub fn sha512(data: &[u8]) -> String {
    use sha2::Digest;
    format!("sha512:{}", hex::encode(sha2::Sha512::digest(data)))
}

pub fn random_bytes(n: usize) -> Vec<u8> {
    use rand::RngCore;
    let mut v = vec![0u8; n];
    rand::thread_rng().fill_bytes(&mut v);
    v
}

/// `POST /v2/<repo>/blobs/uploads/?digest=` with the whole blob, with `token` as Bearer if
/// given: the answer, whatever it is.
pub fn post_blob(
    http: &Client,
    base: &str,
    repo: &str,
    token: Option<&str>,
    data: &[u8],
) -> Response {
    let mut req = http
        .post(format!(
            "{base}/v2/{repo}/blobs/uploads/?digest={}",
            sha256(data)
        ))
        .body(data.to_vec());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().unwrap()
}

/// Pushes a blob, which must be accepted (201); returns its digest.
pub fn push_blob(
    http: &Client,
    base: &str,
    repo: &str,
    token: Option<&str>,
    data: &[u8],
) -> String {
    let r = post_blob(http, base, repo, token, data);
    assert_eq!(r.status(), 201, "{}", r.text().unwrap_or_default());
    sha256(data)
}

/// The manifest of an image of one config and these layers (already pushed or not).
pub fn image_manifest(config: &[u8], layers: &[&[u8]]) -> Vec<u8> {
    let layers: Vec<(String, u64)> = layers.iter().map(|l| (sha256(l), l.len() as u64)).collect();
    manifest_of(config, &layers)
}

/// The manifest of an image of one config and layers known by digest and size (blobs too
/// large to keep in memory for the purpose, or pushed by another client).
pub fn manifest_of(config: &[u8], layers: &[(String, u64)]) -> Vec<u8> {
    let layers: Vec<_> = layers
        .iter()
        .map(|(d, s)| json!({ "mediaType": OCI_LAYER, "digest": d, "size": s }))
        .collect();
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": { "mediaType": OCI_CONFIG, "digest": sha256(config), "size": config.len() },
        "layers": layers,
    }))
    .unwrap()
}

/// `PUT /v2/<repo>/manifests/<reference>` of an OCI image manifest: the answer.
pub fn put_manifest(
    http: &Client,
    base: &str,
    repo: &str,
    reference: &str,
    token: Option<&str>,
    manifest: &[u8],
) -> Response {
    let mut req = http
        .put(format!("{base}/v2/{repo}/manifests/{reference}"))
        .header("content-type", OCI_MANIFEST)
        .body(manifest.to_vec());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().unwrap()
}

/// Pushes an SBOM artifact (`artifactType: application/spdx+json`) whose `subject` is the image
/// manifest `subject` of `repo`, by digest, with `secret` (a build's push token, traded at
/// `/token`); returns the artifact's digest.
pub fn push_sbom(
    base: &str,
    repo: &str,
    secret: &str,
    subject: &str,
    subject_size: usize,
) -> String {
    let http = Client::new();
    let token =
        crate::api::access_token(&http, base, secret, &format!("repository:{repo}:pull,push"));
    let sbom = random_bytes(1000);
    for blob in [sbom.as_slice(), b"{}"] {
        let resp = post_blob(&http, base, repo, Some(&token), blob);
        assert_eq!(resp.status().as_u16(), 201);
    }
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/spdx+json",
        "config": { "mediaType": "application/vnd.oci.empty.v1+json", "digest": sha256(b"{}"), "size": 2 },
        "layers": [{ "mediaType": "application/spdx+json", "digest": sha256(&sbom), "size": sbom.len() }],
        "subject": { "mediaType": OCI_MANIFEST, "digest": subject, "size": subject_size },
    }))
    .unwrap();
    let digest = sha256(&manifest);
    let resp = put_manifest(&http, base, repo, &digest, Some(&token), &manifest);
    assert_eq!(
        resp.status().as_u16(),
        201,
        "{}",
        resp.text().unwrap_or_default()
    );
    digest
}
