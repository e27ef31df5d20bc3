//! The checks, grouped by the spec's workflow categories, with small helpers to push content.

use reqwest::Method;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256, Sha512};

use crate::client::Resp;
use crate::{Check, Ctx, Level};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

type R = Result<(), String>;

// ---- helpers ------------------------------------------------------------------------------

fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

fn sha512(data: &[u8]) -> String {
    format!("sha512:{}", hex::encode(Sha512::digest(data)))
}

fn random_bytes(n: usize) -> Vec<u8> {
    (0..n).map(|_| rand::random::<u8>()).collect()
}

fn ensure(cond: bool, msg: impl FnOnce() -> String) -> R {
    if cond {
        Ok(())
    } else {
        Err(msg())
    }
}

fn status(resp: &Resp, want: &[u16], what: &str) -> R {
    ensure(want.contains(&resp.status), || {
        format!(
            "{what}: expected status {want:?}, got {}: {}",
            resp.status,
            resp.text()
        )
    })
}

/// Expects `status` and the JSON error envelope with `code` among the errors.
fn error(resp: &Resp, want_status: &[u16], code: &str, what: &str) -> R {
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

fn header_eq(resp: &Resp, name: &str, want: &str, what: &str) -> R {
    ensure(resp.header(name) == Some(want), || {
        format!(
            "{what}: header {name} is {:?}, expected {want:?}",
            resp.header(name)
        )
    })
}

fn location(resp: &Resp, what: &str) -> Result<String, String> {
    resp.header("location")
        .map(str::to_owned)
        .ok_or_else(|| format!("{what}: no Location header"))
}

/// Appends a query parameter to an upload location that may already carry a query.
fn with_query(location: &str, key: &str, value: &str) -> String {
    let sep = if location.contains('?') { '&' } else { '?' };
    format!("{location}{sep}{key}={value}")
}

fn get(ctx: &mut Ctx, path: &str) -> Result<Resp, String> {
    ctx.client.send(Method::GET, path, &[], None)
}

/// GETs a manifest, accepting every manifest type (clients SHOULD send Accept, and some
/// registries refuse OCI types to clients that do not list them).
fn get_manifest(ctx: &mut Ctx, repo: &str, reference: &str) -> Result<Resp, String> {
    let accept = format!("{OCI_MANIFEST}, {OCI_INDEX}, {DOCKER_MANIFEST}, {DOCKER_LIST}");
    ctx.client.send(
        Method::GET,
        &format!("/v2/{repo}/manifests/{reference}"),
        &[("accept", accept.as_str())],
        None,
    )
}

/// GETs a blob and checks it is a 200 carrying exactly `expected`.
fn fetch_blob(
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
fn fetch_manifest(
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

fn head(ctx: &mut Ctx, path: &str) -> Result<Resp, String> {
    ctx.client.send(Method::HEAD, path, &[], None)
}

fn delete(ctx: &mut Ctx, path: &str) -> Result<Resp, String> {
    ctx.client.send(Method::DELETE, path, &[], None)
}

fn start_upload(ctx: &mut Ctx, repo: &str) -> Result<String, String> {
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
fn push_blob(ctx: &mut Ctx, repo: &str, data: &[u8]) -> Result<String, String> {
    let digest = sha256(data);
    let loc = start_upload(ctx, repo)?;
    let resp = ctx.client.send(
        Method::PUT,
        &with_query(&loc, "digest", &digest),
        &[("content-type", "application/octet-stream")],
        Some(data.to_vec()),
    )?;
    status(&resp, &[201], "PUT blob")?;
    Ok(digest)
}

fn put_manifest(
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

fn descriptor(media_type: &str, data: &[u8]) -> Value {
    json!({ "mediaType": media_type, "digest": sha256(data), "size": data.len() })
}

/// An image: config and one layer pushed, manifest bytes returned (not pushed).
struct Image {
    manifest: Vec<u8>,
    digest: String,
    config_digest: String,
    layer_digest: String,
}

fn image(ctx: &mut Ctx, repo: &str, media_type: &str, extra: Value) -> Result<Image, String> {
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
fn pushed_image(ctx: &mut Ctx, repo: &str, tag: &str) -> Result<Image, String> {
    let img = image(ctx, repo, OCI_MANIFEST, json!({}))?;
    let resp = put_manifest(ctx, repo, tag, OCI_MANIFEST, &img.manifest)?;
    status(&resp, &[201], "PUT manifest")?;
    Ok(img)
}

// ---- checks -------------------------------------------------------------------------------

macro_rules! checks {
    ($($id:literal, $level:ident, $section:literal => $f:ident;)*) => {
        /// Every check, in the order they run.
        pub fn all() -> Vec<Check> {
            vec![$(Check { id: $id, section: $section, level: Level::$level, run: $f }),*]
        }
    };
}

checks! {
    "api-version-check", Must, "Determining Support: GET /v2/ returns 200" => api_version;
    "push-post-put", Must, "Push/POST then PUT: 202 with Location, then 201 with Location" => push_post_put;
    "push-single-post", Should, "Push/Single POST: 201 (MAY)" => push_single_post;
    "push-chunked", Must, "Push/chunks: PATCH 202 with Location and Range, PUT 201" => push_chunked;
    "push-chunked-final-in-put", Must, "Push/chunks: final chunk MAY be in the closing PUT" => push_chunked_final_in_put;
    "push-chunk-streamed", Should, "Push/chunks: PATCH without Content-Range (streamed)" => push_chunk_streamed;
    "push-chunk-out-of-order", Must, "Push/chunks: out-of-order chunk MUST get 416" => push_chunk_out_of_order;
    "push-chunk-overlap", Must, "Push/chunks: chunk not starting at the offset MUST get 416" => push_chunk_overlap;
    "push-upload-status", Must, "Push/chunks: GET upload MUST be 204 with Location and Range" => push_upload_status;
    "push-chunk-min-length", Should, "Push/chunks: OCI-Chunk-Min-Length SHOULD be advertised" => push_chunk_min_length;
    "push-digest-mismatch", Must, "Push: digest MUST match content (DIGEST_INVALID)" => push_digest_mismatch;
    "push-empty-blob", Must, "Push/POST then PUT: a zero-length blob" => push_empty_blob;
    "push-sha512-blob", Should, "Content Digests: sha512 is a registered algorithm" => push_sha512_blob;
    "push-same-blob-concurrently", Must, "Layer Upload De-duplication: both uploads succeed" => push_same_blob_concurrently;
    "upload-cancel", Should, "Push: DELETE of an upload session (204, then unknown)" => upload_cancel;
    "upload-unknown", Must, "Error Codes: BLOB_UPLOAD_UNKNOWN for an unknown session" => upload_unknown;
    "mount-from", Should, "Mounting a blob: 201 with Location" => mount_from;
    "mount-unknown-falls-back", Must, "Mounting a blob: unable to mount SHOULD return 202 (session)" => mount_unknown_falls_back;
    "mount-automatic", Should, "Mounting a blob: from MAY be optional" => mount_automatic;
    "pull-blob", Must, "Pulling blobs: 200 with the bytes (and Docker-Content-Digest unless redirected to storage)" => pull_blob;
    "pull-blob-head", Must, "Checking if content exists: HEAD 200 with Content-Length" => pull_blob_head;
    "pull-blob-range", Should, "Pulling blobs: Range requests (RFC 9110) SHOULD be supported" => pull_blob_range;
    "pull-blob-range-unsatisfiable", Should, "Pulling blobs: unsatisfiable Range gets 416 (RFC 9110)" => pull_blob_range_unsatisfiable;
    "pull-blob-unknown", Must, "Pulling blobs: 404 (BLOB_UNKNOWN)" => pull_blob_unknown;
    "blob-repository-isolation", Must, "Pulling blobs: a blob is only in repositories that received it" => blob_repository_isolation;
    "push-manifest-by-tag", Must, "Pushing Manifests: 201, Location, Docker-Content-Digest" => push_manifest_by_tag;
    "push-manifest-by-digest", Must, "Pushing Manifests: reference MAY be a digest" => push_manifest_by_digest;
    "push-manifest-exact-bytes", Must, "Pushing Manifests: stored in the exact byte representation" => push_manifest_exact_bytes;
    "push-manifest-docker-schema2", Should, "Pushing Manifests: Docker schema2 manifest and manifest list" => push_manifest_docker;
    "push-image-index", Must, "Pushing Manifests: an image index of pushed manifests" => push_image_index;
    "push-manifest-digest-mismatch", Must, "Pushing Manifests: digest reference MUST match content" => push_manifest_digest_mismatch;
    "push-manifest-invalid-json", Should, "Error Codes: MANIFEST_INVALID for malformed JSON" => push_manifest_invalid_json;
    "push-manifest-blob-unknown", Should, "Push: MAY reject unknown blobs, then MANIFEST_BLOB_UNKNOWN" => push_manifest_blob_unknown;
    "push-index-child-unknown", Should, "Push: MAY reject unknown child manifests, then MANIFEST_BLOB_UNKNOWN" => push_index_child_unknown;
    "push-manifest-media-type-mismatch", Should, "Pushing Manifests: Content-Type must match mediaType" => push_manifest_media_type_mismatch;
    "push-manifest-4mib", Should, "Pushing Manifests: SHOULD support manifests of at least 4 MB" => push_manifest_4mib;
    "push-manifest-too-large", Should, "Pushing Manifests: over the limit SHOULD get 413" => push_manifest_too_large;
    "push-manifest-subject", Must, "Pushing Manifests with Subject: OCI-Subject header" => push_manifest_subject;
    "push-manifest-subject-missing", Must, "Push: a subject that does not exist MUST be accepted" => push_manifest_subject_missing;
    "pull-manifest-by-tag", Must, "Pulling manifests: 200 with Content-Type and Docker-Content-Digest" => pull_manifest_by_tag;
    "pull-manifest-by-digest", Must, "Pulling manifests: by digest" => pull_manifest_by_digest;
    "pull-manifest-head", Must, "Checking if content exists: HEAD 200 with Content-Length" => pull_manifest_head;
    "pull-manifest-unknown", Must, "Pulling manifests: 404 (MANIFEST_UNKNOWN)" => pull_manifest_unknown;
    "pull-manifest-accept", Should, "Content negotiation: served when Accept lists the type" => pull_manifest_accept;
    "pull-repository-unknown", Must, "Pushing Manifests: pulling a nonexistent repository MUST be 404" => pull_repository_unknown;
    "tags-list", Must, "Listing Tags: 200 with name and tags" => tags_list;
    "tags-list-case-insensitive-order", Must, "Listing Tags: lexical (case-insensitive alphanumeric) order" => tags_list_order;
    "tags-list-pagination", Must, "Listing Tags: n and last, Link with rel=\"next\"" => tags_list_pagination;
    "tags-list-n-zero", Must, "Listing Tags: n=0 MUST be empty without Link" => tags_list_n_zero;
    "tags-list-unknown-repository", Must, "Listing Tags: unknown repository is 404" => tags_list_unknown;
    "referrers-list", Must, "Listing Referrers: image index with artifactType and annotations" => referrers_list;
    "referrers-config-artifact-type", Must, "Listing Referrers: artifactType falls back to config.mediaType" => referrers_config_type;
    "referrers-filter", Should, "Listing Referrers: artifactType filter and OCI-Filters-Applied" => referrers_filter;
    "referrers-empty", Must, "Listing Referrers: no referrers is an empty index, not 404" => referrers_empty;
    "referrers-invalid-digest", Must, "Listing Referrers: invalid digest MUST be 400" => referrers_invalid_digest;
    "delete-tag", Should, "Deleting tags: MAY be supported; 202, then the tag is 404" => delete_tag;
    "delete-manifest", Must, "Deleting Manifests: 202, then digest and tags are 404" => delete_manifest;
    "delete-manifest-unknown", Must, "Deleting Manifests: unknown is 404" => delete_manifest_unknown;
    "delete-blob", Must, "Deleting Blobs: 202, then 404" => delete_blob;
    "name-with-api-components", Must, "Pulling manifests: <name> grammar allows blobs/manifests/tags/uploads components" => name_with_components;
    "name-invalid", Should, "Error Codes: NAME_INVALID for a name outside the grammar" => name_invalid;
    "errors-are-json", Should, "Error Codes: JSON error bodies use the errors envelope" => errors_are_json;
}

fn api_version(ctx: &mut Ctx) -> R {
    let resp = get(ctx, "/v2/")?;
    status(&resp, &[200], "GET /v2/")
}

fn push_post_put(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("postput");
    let data = random_bytes(1000);
    let digest = push_blob(ctx, &repo, &data)?;
    fetch_blob(ctx, &repo, &digest, &data, "GET blob").map(|_| ())
}

fn push_single_post(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("single");
    let data = random_bytes(1000);
    let digest = sha256(&data);
    let resp = ctx.client.send(
        Method::POST,
        &format!("/v2/{repo}/blobs/uploads/?digest={digest}"),
        &[("content-type", "application/octet-stream")],
        Some(data.clone()),
    )?;
    status(&resp, &[201], "single POST")?;
    location(&resp, "single POST")?;
    fetch_blob(ctx, &repo, &digest, &data, "GET blob").map(|_| ())
}

fn patch(ctx: &mut Ctx, loc: &str, range: Option<&str>, data: &[u8]) -> Result<Resp, String> {
    let len = data.len().to_string();
    let mut headers = vec![
        ("content-type", "application/octet-stream"),
        ("content-length", len.as_str()),
    ];
    if let Some(r) = range {
        headers.push(("content-range", r));
    }
    ctx.client
        .send(Method::PATCH, loc, &headers, Some(data.to_vec()))
}

fn push_chunked(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("chunked");
    let data = random_bytes(3000);
    let digest = sha256(&data);
    let loc = start_upload(ctx, &repo)?;
    let resp = patch(ctx, &loc, Some("0-1499"), &data[..1500])?;
    status(&resp, &[202], "PATCH 1")?;
    header_eq(&resp, "range", "0-1499", "PATCH 1")?;
    let loc = location(&resp, "PATCH 1")?;
    let resp = patch(ctx, &loc, Some("1500-2999"), &data[1500..])?;
    status(&resp, &[202], "PATCH 2")?;
    header_eq(&resp, "range", "0-2999", "PATCH 2")?;
    let loc = location(&resp, "PATCH 2")?;
    let resp = ctx.client.send(
        Method::PUT,
        &with_query(&loc, "digest", &digest),
        &[("content-length", "0")],
        None,
    )?;
    status(&resp, &[201], "closing PUT")?;
    location(&resp, "closing PUT")?;
    fetch_blob(ctx, &repo, &digest, &data, "GET after chunked push").map(|_| ())
}

fn push_chunked_final_in_put(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("chunkput");
    let data = random_bytes(2000);
    let digest = sha256(&data);
    let loc = start_upload(ctx, &repo)?;
    let resp = patch(ctx, &loc, Some("0-999"), &data[..1000])?;
    status(&resp, &[202], "PATCH")?;
    let loc = location(&resp, "PATCH")?;
    let resp = ctx.client.send(
        Method::PUT,
        &with_query(&loc, "digest", &digest),
        &[
            ("content-type", "application/octet-stream"),
            ("content-range", "1000-1999"),
        ],
        Some(data[1000..].to_vec()),
    )?;
    status(&resp, &[201], "closing PUT with final chunk")?;
    fetch_blob(ctx, &repo, &digest, &data, "GET").map(|_| ())
}

fn push_chunk_streamed(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("streamed");
    let data = random_bytes(5000);
    let digest = sha256(&data);
    let loc = start_upload(ctx, &repo)?;
    let resp = patch(ctx, &loc, None, &data)?;
    status(&resp, &[202], "streamed PATCH")?;
    header_eq(&resp, "range", "0-4999", "streamed PATCH")?;
    let loc = location(&resp, "PATCH")?;
    let resp = ctx
        .client
        .send(Method::PUT, &with_query(&loc, "digest", &digest), &[], None)?;
    status(&resp, &[201], "closing PUT")
}

fn push_chunk_out_of_order(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("ooo");
    let data = random_bytes(2000);
    let loc = start_upload(ctx, &repo)?;
    let resp = patch(ctx, &loc, Some("1000-1999"), &data[1000..])?;
    status(&resp, &[416], "PATCH starting past the offset")
}

fn push_chunk_overlap(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("overlap");
    let data = random_bytes(2000);
    let loc = start_upload(ctx, &repo)?;
    let resp = patch(ctx, &loc, Some("0-999"), &data[..1000])?;
    status(&resp, &[202], "PATCH 1")?;
    let loc = location(&resp, "PATCH 1")?;
    let resp = patch(ctx, &loc, Some("500-1499"), &data[500..1500])?;
    status(&resp, &[416], "overlapping PATCH")?;
    // The session is intact: the right chunk still goes through and the blob verifies.
    let resp = patch(ctx, &loc, Some("1000-1999"), &data[1000..])?;
    status(&resp, &[202], "PATCH after 416")?;
    let loc = location(&resp, "PATCH after 416")?;
    let resp = ctx.client.send(
        Method::PUT,
        &with_query(&loc, "digest", &sha256(&data)),
        &[],
        None,
    )?;
    status(&resp, &[201], "closing PUT")
}

fn push_upload_status(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("status");
    let data = random_bytes(1000);
    let loc = start_upload(ctx, &repo)?;
    let resp = patch(ctx, &loc, Some("0-999"), &data)?;
    let loc = location(&resp, "PATCH")?;
    let resp = get(ctx, &loc)?;
    status(&resp, &[204], "GET upload status")?;
    header_eq(&resp, "range", "0-999", "GET upload status")?;
    location(&resp, "GET upload status").map(|_| ())
}

fn push_chunk_min_length(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("minlen");
    let resp = ctx.client.send(
        Method::POST,
        &format!("/v2/{repo}/blobs/uploads/"),
        &[("content-length", "0")],
        Some(Vec::new()),
    )?;
    status(&resp, &[202], "POST")?;
    let value = resp
        .header("oci-chunk-min-length")
        .ok_or("no OCI-Chunk-Min-Length header")?;
    value
        .parse::<u64>()
        .map(|_| ())
        .map_err(|_| format!("OCI-Chunk-Min-Length {value:?} is not a number"))
}

fn push_digest_mismatch(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("mismatch");
    let loc = start_upload(ctx, &repo)?;
    let wrong = sha256(b"something else");
    let resp = ctx.client.send(
        Method::PUT,
        &with_query(&loc, "digest", &wrong),
        &[],
        Some(b"actual".to_vec()),
    )?;
    error(&resp, &[400], "DIGEST_INVALID", "PUT with wrong digest")?;
    let resp = head(ctx, &format!("/v2/{repo}/blobs/{wrong}"))?;
    status(&resp, &[404], "HEAD of the wrongly named blob")
}

fn push_empty_blob(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("empty");
    let digest = push_blob(ctx, &repo, b"")?;
    fetch_blob(ctx, &repo, &digest, b"", "GET empty blob").map(|_| ())
}

fn push_sha512_blob(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("sha512");
    let data = random_bytes(777);
    let digest = sha512(&data);
    let loc = start_upload(ctx, &repo)?;
    let resp = ctx.client.send(
        Method::PUT,
        &with_query(&loc, "digest", &digest),
        &[],
        Some(data.clone()),
    )?;
    status(&resp, &[201], "PUT with sha512 digest")?;
    fetch_blob(ctx, &repo, &digest, &data, "GET sha512 blob").map(|_| ())
}

fn push_same_blob_concurrently(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("concurrent");
    let data = random_bytes(4000);
    let digest = sha256(&data);
    let a = start_upload(ctx, &repo)?;
    let b = start_upload(ctx, &repo)?;
    // Interleave the two sessions chunk by chunk.
    let ra = patch(ctx, &a, Some("0-1999"), &data[..2000])?;
    let rb = patch(ctx, &b, Some("0-1999"), &data[..2000])?;
    status(&ra, &[202], "PATCH a")?;
    status(&rb, &[202], "PATCH b")?;
    let (a, b) = (location(&ra, "a")?, location(&rb, "b")?);
    let ra = ctx.client.send(
        Method::PUT,
        &with_query(&a, "digest", &digest),
        &[("content-range", "2000-3999")],
        Some(data[2000..].to_vec()),
    )?;
    let rb = ctx.client.send(
        Method::PUT,
        &with_query(&b, "digest", &digest),
        &[("content-range", "2000-3999")],
        Some(data[2000..].to_vec()),
    )?;
    status(&ra, &[201], "PUT a")?;
    status(&rb, &[201], "PUT b")?;
    fetch_blob(ctx, &repo, &digest, &data, "GET after concurrent uploads").map(|_| ())
}

fn upload_cancel(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("cancel");
    let loc = start_upload(ctx, &repo)?;
    let resp = delete(ctx, &loc)?;
    status(&resp, &[204], "DELETE upload")?;
    let resp = get(ctx, &loc)?;
    error(&resp, &[404], "BLOB_UPLOAD_UNKNOWN", "GET cancelled upload")
}

fn upload_unknown(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("unknownup");
    push_blob(ctx, &repo, b"x")?;
    let resp = patch(
        ctx,
        &format!("/v2/{repo}/blobs/uploads/00000000-0000-4000-8000-000000000000"),
        Some("0-0"),
        b"x",
    )?;
    error(&resp, &[404], "BLOB_UPLOAD_UNKNOWN", "PATCH unknown upload")
}

fn mount_from(ctx: &mut Ctx) -> R {
    let from = ctx.repo("mountsrc");
    let to = ctx.repo("mountdst");
    let digest = push_blob(ctx, &from, &random_bytes(500))?;
    let resp = ctx.client.send(
        Method::POST,
        &format!("/v2/{to}/blobs/uploads/?mount={digest}&from={from}"),
        &[],
        Some(Vec::new()),
    )?;
    status(&resp, &[201], "mount")?;
    location(&resp, "mount")?;
    let resp = head(ctx, &format!("/v2/{to}/blobs/{digest}"))?;
    status(&resp, &[200], "HEAD mounted blob")
}

fn mount_unknown_falls_back(ctx: &mut Ctx) -> R {
    let from = ctx.repo("mountsrc");
    let to = ctx.repo("mountdst");
    push_blob(ctx, &from, b"present")?;
    let missing = sha256(&random_bytes(32));
    let resp = ctx.client.send(
        Method::POST,
        &format!("/v2/{to}/blobs/uploads/?mount={missing}&from={from}"),
        &[],
        Some(Vec::new()),
    )?;
    status(&resp, &[202], "mount of a blob the source lacks")?;
    location(&resp, "mount fallback").map(|_| ())
}

fn mount_automatic(ctx: &mut Ctx) -> R {
    let from = ctx.repo("automsrc");
    let to = ctx.repo("autodst");
    let digest = push_blob(ctx, &from, &random_bytes(500))?;
    let resp = ctx.client.send(
        Method::POST,
        &format!("/v2/{to}/blobs/uploads/?mount={digest}"),
        &[],
        Some(Vec::new()),
    )?;
    status(&resp, &[201], "mount without from")?;
    let resp = head(ctx, &format!("/v2/{to}/blobs/{digest}"))?;
    status(&resp, &[200], "HEAD mounted blob")
}

fn pull_blob(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("pull");
    let data = random_bytes(10_000);
    let digest = push_blob(ctx, &repo, &data)?;
    let resp = fetch_blob(ctx, &repo, &digest, &data, "GET blob")?;
    if resp.redirected {
        // Object storage answered; the registry's own headers were on the redirect.
        return Ok(());
    }
    header_eq(&resp, "docker-content-digest", &digest, "GET blob")
}

fn pull_blob_head(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("head");
    let data = random_bytes(1234);
    let digest = push_blob(ctx, &repo, &data)?;
    let resp = head(ctx, &format!("/v2/{repo}/blobs/{digest}"))?;
    status(&resp, &[200], "HEAD blob")?;
    header_eq(&resp, "content-length", "1234", "HEAD blob")?;
    header_eq(&resp, "docker-content-digest", &digest, "HEAD blob")?;
    ensure(resp.body.is_empty(), || "HEAD returned a body".into())
}

fn pull_blob_range(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("range");
    let data = random_bytes(1000);
    let digest = push_blob(ctx, &repo, &data)?;
    let resp = ctx.client.send(
        Method::GET,
        &format!("/v2/{repo}/blobs/{digest}"),
        &[("range", "bytes=100-199")],
        None,
    )?;
    status(&resp, &[206], "ranged GET")?;
    ensure(resp.body == data[100..200], || {
        format!("ranged GET returned {} bytes", resp.body.len())
    })?;
    header_eq(&resp, "content-range", "bytes 100-199/1000", "ranged GET")
}

fn pull_blob_range_unsatisfiable(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("range416");
    let digest = push_blob(ctx, &repo, &random_bytes(100))?;
    let resp = ctx.client.send(
        Method::GET,
        &format!("/v2/{repo}/blobs/{digest}"),
        &[("range", "bytes=500-600")],
        None,
    )?;
    status(&resp, &[416], "unsatisfiable range")
}

fn pull_blob_unknown(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("unknownblob");
    push_blob(ctx, &repo, b"x")?;
    let resp = get(
        ctx,
        &format!("/v2/{repo}/blobs/{}", sha256(&random_bytes(16))),
    )?;
    error(&resp, &[404], "BLOB_UNKNOWN", "GET unknown blob")
}

fn blob_repository_isolation(ctx: &mut Ctx) -> R {
    let a = ctx.repo("isoa");
    let b = ctx.repo("isob");
    push_blob(ctx, &b, b"b has something")?;
    let digest = push_blob(ctx, &a, &random_bytes(300))?;
    let resp = head(ctx, &format!("/v2/{b}/blobs/{digest}"))?;
    status(&resp, &[404], "HEAD of another repository's blob")?;
    let resp = get(ctx, &format!("/v2/{b}/blobs/{digest}"))?;
    status(&resp, &[404], "GET of another repository's blob")
}

fn push_manifest_by_tag(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("mtag");
    let img = image(ctx, &repo, OCI_MANIFEST, json!({}))?;
    let resp = put_manifest(ctx, &repo, "v1", OCI_MANIFEST, &img.manifest)?;
    status(&resp, &[201], "PUT manifest")?;
    location(&resp, "PUT manifest")?;
    header_eq(&resp, "docker-content-digest", &img.digest, "PUT manifest")
}

fn push_manifest_by_digest(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("mdigest");
    let img = image(ctx, &repo, OCI_MANIFEST, json!({}))?;
    let resp = put_manifest(ctx, &repo, &img.digest, OCI_MANIFEST, &img.manifest)?;
    status(&resp, &[201], "PUT manifest by digest")?;
    let resp = get_manifest(ctx, &repo, &img.digest)?;
    ensure(resp.status == 200 && resp.body == img.manifest, || {
        format!("GET by digest: {}", resp.status)
    })
}

fn push_manifest_exact_bytes(ctx: &mut Ctx) -> R {
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

fn push_manifest_docker(ctx: &mut Ctx) -> R {
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

fn push_image_index(ctx: &mut Ctx) -> R {
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

fn push_manifest_digest_mismatch(ctx: &mut Ctx) -> R {
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

fn push_manifest_invalid_json(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("badjson");
    push_blob(ctx, &repo, b"x")?;
    let resp = put_manifest(ctx, &repo, "bad", OCI_MANIFEST, b"{ this is not json")?;
    error(&resp, &[400], "MANIFEST_INVALID", "PUT invalid JSON")
}

fn push_manifest_blob_unknown(ctx: &mut Ctx) -> R {
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

fn push_index_child_unknown(ctx: &mut Ctx) -> R {
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

fn push_manifest_media_type_mismatch(ctx: &mut Ctx) -> R {
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

fn push_manifest_4mib(ctx: &mut Ctx) -> R {
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

fn push_manifest_too_large(ctx: &mut Ctx) -> R {
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

fn push_manifest_subject(ctx: &mut Ctx) -> R {
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

fn push_manifest_subject_missing(ctx: &mut Ctx) -> R {
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

fn pull_manifest_by_tag(ctx: &mut Ctx) -> R {
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

fn pull_manifest_by_digest(ctx: &mut Ctx) -> R {
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

fn pull_manifest_head(ctx: &mut Ctx) -> R {
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

fn pull_manifest_unknown(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("munknown");
    pushed_image(ctx, &repo, "latest")?;
    let resp = get_manifest(ctx, &repo, "nope")?;
    error(&resp, &[404], "MANIFEST_UNKNOWN", "GET unknown tag")?;
    let resp = get_manifest(ctx, &repo, &sha256(b"nope"))?;
    error(&resp, &[404], "MANIFEST_UNKNOWN", "GET unknown digest")
}

fn pull_manifest_accept(ctx: &mut Ctx) -> R {
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

fn pull_repository_unknown(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("neverpushed");
    let resp = get_manifest(ctx, &repo, "latest")?;
    status(&resp, &[404], "GET manifest of an unknown repository")
}

fn tag_all(ctx: &mut Ctx, repo: &str, tags: &[&str]) -> R {
    let img = image(ctx, repo, OCI_MANIFEST, json!({}))?;
    for t in tags {
        let resp = put_manifest(ctx, repo, t, OCI_MANIFEST, &img.manifest)?;
        status(&resp, &[201], &format!("PUT tag {t}"))?;
    }
    Ok(())
}

fn tags_of(resp: &Resp) -> Result<Vec<String>, String> {
    let json = resp.json()?;
    let tags = json
        .get("tags")
        .ok_or_else(|| format!("no tags field in {json}"))?;
    if tags.is_null() {
        return Ok(Vec::new());
    }
    serde_json::from_value(tags.clone()).map_err(|e| format!("tags field: {e}"))
}

fn tags_list(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("tags");
    tag_all(ctx, &repo, &["c", "a", "b"])?;
    let resp = get(ctx, &format!("/v2/{repo}/tags/list"))?;
    status(&resp, &[200], "GET tags")?;
    let json = resp.json()?;
    ensure(json["name"] == json!(repo), || {
        format!("name field is {}", json["name"])
    })?;
    let tags = tags_of(&resp)?;
    ensure(tags == ["a", "b", "c"], || format!("tags are {tags:?}"))
}

fn tags_list_order(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("tagcase");
    tag_all(ctx, &repo, &["B", "a", "C"])?;
    let resp = get(ctx, &format!("/v2/{repo}/tags/list"))?;
    let tags = tags_of(&resp)?;
    ensure(tags == ["a", "B", "C"], || {
        format!("tags are {tags:?}, expected case-insensitive [a, B, C]")
    })
}

fn tags_list_pagination(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("tagpage");
    tag_all(ctx, &repo, &["t1", "t2", "t3", "t4", "t5"])?;
    let resp = get(ctx, &format!("/v2/{repo}/tags/list?n=2"))?;
    status(&resp, &[200], "GET tags n=2")?;
    ensure(tags_of(&resp)? == ["t1", "t2"], || {
        format!("first page {:?}", tags_of(&resp))
    })?;
    let link = resp
        .header("link")
        .ok_or("no Link header on a partial page")?
        .to_owned();
    ensure(link.contains("rel=\"next\""), || {
        format!("Link {link:?} lacks rel=\"next\"")
    })?;
    let next = link
        .trim()
        .strip_prefix('<')
        .and_then(|l| l.split_once('>'))
        .map(|(u, _)| u.to_owned())
        .ok_or("unparsable Link")?;
    let resp = get(ctx, &next)?;
    ensure(tags_of(&resp)? == ["t3", "t4"], || {
        format!("second page (via Link) {:?}", tags_of(&resp))
    })?;
    let resp = get(ctx, &format!("/v2/{repo}/tags/list?n=10&last=t4"))?;
    ensure(tags_of(&resp)? == ["t5"], || {
        format!("page after t4 {:?}", tags_of(&resp))
    })?;
    let resp = get(ctx, &format!("/v2/{repo}/tags/list?last=t2"))?;
    ensure(tags_of(&resp)? == ["t3", "t4", "t5"], || {
        format!("last without n {:?}", tags_of(&resp))
    })
}

fn tags_list_n_zero(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("tagzero");
    tag_all(ctx, &repo, &["a"])?;
    let resp = get(ctx, &format!("/v2/{repo}/tags/list?n=0"))?;
    status(&resp, &[200], "GET tags n=0")?;
    ensure(tags_of(&resp)?.is_empty(), || {
        format!("n=0 returned {:?}", tags_of(&resp))
    })?;
    ensure(resp.header("link").is_none(), || {
        "n=0 returned a Link header".into()
    })
}

fn tags_list_unknown(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("notags");
    let resp = get(ctx, &format!("/v2/{repo}/tags/list"))?;
    error(
        &resp,
        &[404],
        "NAME_UNKNOWN",
        "GET tags of an unknown repository",
    )
}

fn referrers_setup(ctx: &mut Ctx, repo: &str) -> Result<(Image, Image, Image), String> {
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

fn referrer_entries(resp: &Resp) -> Result<Vec<Value>, String> {
    status(resp, &[200], "GET referrers")?;
    header_eq(resp, "content-type", OCI_INDEX, "GET referrers")?;
    let json = resp.json()?;
    json.get("manifests")
        .and_then(Value::as_array)
        .cloned()
        .ok_or_else(|| format!("no manifests array in {json}"))
}

fn referrers_list(ctx: &mut Ctx) -> R {
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

fn referrers_config_type(ctx: &mut Ctx) -> R {
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

fn referrers_filter(ctx: &mut Ctx) -> R {
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

fn referrers_empty(ctx: &mut Ctx) -> R {
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

fn referrers_invalid_digest(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("refbad");
    pushed_image(ctx, &repo, "latest")?;
    let resp = get(ctx, &format!("/v2/{repo}/referrers/sha256:nothex"))?;
    status(&resp, &[400], "GET referrers with an invalid digest")
}

fn delete_tag(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("deltag");
    let img = pushed_image(ctx, &repo, "gone")?;
    let resp = delete(ctx, &format!("/v2/{repo}/manifests/gone"))?;
    status(&resp, &[202], "DELETE tag")?;
    let resp = get_manifest(ctx, &repo, "gone")?;
    status(&resp, &[404], "GET deleted tag")?;
    let resp = get_manifest(ctx, &repo, &img.digest)?;
    status(
        &resp,
        &[200],
        "GET manifest by digest after its tag was deleted",
    )
}

fn delete_manifest(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("delmanifest");
    let img = pushed_image(ctx, &repo, "one")?;
    status(
        &put_manifest(ctx, &repo, "two", OCI_MANIFEST, &img.manifest)?,
        &[201],
        "PUT second tag",
    )?;
    let resp = delete(ctx, &format!("/v2/{repo}/manifests/{}", img.digest))?;
    status(&resp, &[202], "DELETE manifest")?;
    for r in [img.digest.as_str(), "one", "two"] {
        let resp = get_manifest(ctx, &repo, r)?;
        status(&resp, &[404], &format!("GET {r} after delete"))?;
    }
    Ok(())
}

fn delete_manifest_unknown(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("delunknown");
    pushed_image(ctx, &repo, "latest")?;
    let resp = delete(ctx, &format!("/v2/{repo}/manifests/{}", sha256(b"never")))?;
    status(&resp, &[404], "DELETE unknown manifest")
}

fn delete_blob(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("delblob");
    let digest = push_blob(ctx, &repo, &random_bytes(100))?;
    let resp = delete(ctx, &format!("/v2/{repo}/blobs/{digest}"))?;
    status(&resp, &[202], "DELETE blob")?;
    let resp = head(ctx, &format!("/v2/{repo}/blobs/{digest}"))?;
    status(&resp, &[404], "HEAD deleted blob")?;
    let resp = delete(ctx, &format!("/v2/{repo}/blobs/{digest}"))?;
    status(&resp, &[404], "DELETE blob again")
}

fn name_with_components(ctx: &mut Ctx) -> R {
    let base = ctx.repo("keywords");
    for repo in [
        format!("{base}/blobs"),
        format!("{base}/manifests/tags"),
        format!("{base}/blobs/uploads"),
    ] {
        let img = pushed_image(ctx, &repo, "latest")?;
        let resp = get_manifest(ctx, &repo, "latest")?;
        ensure(resp.status == 200 && resp.body == img.manifest, || {
            format!("{repo}: GET manifest {}", resp.status)
        })?;
        let resp = get(ctx, &format!("/v2/{repo}/blobs/{}", img.layer_digest))?;
        status(&resp, &[200], &format!("{repo}: GET layer"))?;
        let resp = get(ctx, &format!("/v2/{repo}/blobs/{}", img.config_digest))?;
        status(&resp, &[200], &format!("{repo}: GET config"))?;
        let resp = get(ctx, &format!("/v2/{repo}/tags/list"))?;
        ensure(tags_of(&resp)? == ["latest"], || {
            format!("{repo}: tags {:?}", tags_of(&resp))
        })?;
    }
    Ok(())
}

fn name_invalid(ctx: &mut Ctx) -> R {
    let resp = ctx.client.send(
        Method::POST,
        "/v2/Invalid_Name!/blobs/uploads/",
        &[],
        Some(Vec::new()),
    )?;
    error(
        &resp,
        &[400, 404],
        "NAME_INVALID",
        "POST upload to an invalid name",
    )
}

fn errors_are_json(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("jsonerr");
    pushed_image(ctx, &repo, "latest")?;
    for (method, path, want) in [
        (Method::GET, format!("/v2/{repo}/manifests/missing"), 404),
        (
            Method::GET,
            format!("/v2/{repo}/blobs/{}", sha256(b"missing")),
            404,
        ),
        (
            Method::GET,
            format!("/v2/{repo}/blobs/uploads/00000000-0000-4000-8000-000000000001"),
            404,
        ),
        (Method::PUT, format!("/v2/{repo}/manifests/bad"), 400),
    ] {
        let body = if method == Method::PUT {
            Some(b"{}".to_vec())
        } else {
            None
        };
        let resp = ctx.client.send(
            method.clone(),
            &path,
            &[("content-type", OCI_MANIFEST)],
            body,
        )?;
        status(&resp, &[want], &format!("{method} {path}"))?;
        let json = resp.json().map_err(|e| format!("{method} {path}: {e}"))?;
        let ok = json["errors"].as_array().is_some_and(|errs| {
            !errs.is_empty()
                && errs.iter().all(|e| {
                    e["code"].as_str().is_some_and(|c| {
                        !c.is_empty() && c.bytes().all(|b| b.is_ascii_uppercase() || b == b'_')
                    })
                })
        });
        ensure(ok, || {
            format!("{method} {path}: not an errors envelope: {json}")
        })?;
    }
    Ok(())
}
