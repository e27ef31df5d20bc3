//! Pushing blobs: POST then PUT, single POST, chunked uploads (order, overlap, status, minimum
//! length, the final chunk out of order), digests (sha512 with and without the
//! `digest-algorithm` hint, unsupported algorithms), de-duplication, cancelling, and
//! cross-repository mounts.

use reqwest::Method;

use super::helpers::*;
use crate::Ctx;

pub(super) fn push_post_put(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("postput");
    let data = random_bytes(1000);
    let digest = push_blob(ctx, &repo, &data)?;
    fetch_blob(ctx, &repo, &digest, &data, "GET blob").map(|_| ())
}

pub(super) fn push_single_post(ctx: &mut Ctx) -> R {
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

pub(super) fn patch(
    ctx: &mut Ctx,
    loc: &str,
    range: Option<&str>,
    data: &[u8],
) -> Result<Resp, String> {
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

pub(super) fn push_chunked(ctx: &mut Ctx) -> R {
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

pub(super) fn push_chunked_final_in_put(ctx: &mut Ctx) -> R {
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

pub(super) fn push_chunk_streamed(ctx: &mut Ctx) -> R {
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

pub(super) fn push_chunk_out_of_order(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("ooo");
    let data = random_bytes(2000);
    let loc = start_upload(ctx, &repo)?;
    let resp = patch(ctx, &loc, Some("1000-1999"), &data[1000..])?;
    status(&resp, &[416], "PATCH starting past the offset")
}

pub(super) fn push_chunk_overlap(ctx: &mut Ctx) -> R {
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

pub(super) fn push_upload_status(ctx: &mut Ctx) -> R {
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

pub(super) fn push_chunk_min_length(ctx: &mut Ctx) -> R {
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

pub(super) fn push_digest_mismatch(ctx: &mut Ctx) -> R {
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

pub(super) fn push_empty_blob(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("empty");
    let digest = push_blob(ctx, &repo, b"")?;
    fetch_blob(ctx, &repo, &digest, b"", "GET empty blob").map(|_| ())
}

pub(super) fn push_sha512_blob(ctx: &mut Ctx) -> R {
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

pub(super) fn push_same_blob_concurrently(ctx: &mut Ctx) -> R {
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

pub(super) fn upload_cancel(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("cancel");
    let loc = start_upload(ctx, &repo)?;
    let resp = delete(ctx, &loc)?;
    status(&resp, &[204], "DELETE upload")?;
    let resp = get(ctx, &loc)?;
    error(&resp, &[404], "BLOB_UPLOAD_UNKNOWN", "GET cancelled upload")
}

pub(super) fn upload_unknown(ctx: &mut Ctx) -> R {
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

pub(super) fn mount_from(ctx: &mut Ctx) -> R {
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

pub(super) fn mount_unknown_falls_back(ctx: &mut Ctx) -> R {
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

pub(super) fn mount_automatic(ctx: &mut Ctx) -> R {
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

pub(super) fn push_final_chunk_out_of_order(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("finalooo");
    let data = random_bytes(2000);
    let loc = start_upload(ctx, &repo)?;
    let resp = patch(ctx, &loc, Some("0-999"), &data[..1000])?;
    status(&resp, &[202], "PATCH")?;
    let loc = location(&resp, "PATCH")?;
    let resp = ctx.client.send(
        Method::PUT,
        &with_query(&loc, "digest", &sha256(&data)),
        &[
            ("content-type", "application/octet-stream"),
            ("content-range", "1500-1999"),
        ],
        Some(data[1500..].to_vec()),
    )?;
    status(
        &resp,
        &[416],
        "closing PUT whose chunk starts past the offset",
    )?;
    // The session is intact: the right final chunk still completes it.
    let resp = ctx.client.send(
        Method::PUT,
        &with_query(&loc, "digest", &sha256(&data)),
        &[
            ("content-type", "application/octet-stream"),
            ("content-range", "1000-1999"),
        ],
        Some(data[1000..].to_vec()),
    )?;
    status(&resp, &[201], "closing PUT after the 416")?;
    fetch_blob(ctx, &repo, &sha256(&data), &data, "GET").map(|_| ())
}

/// A chunked sha512 upload: opened with `?digest-algorithm=sha512` when `hint`, else plain.
fn chunked_sha512(ctx: &mut Ctx, hint: bool) -> R {
    let repo = ctx.repo(if hint { "sha512hint" } else { "sha512nohint" });
    let data = random_bytes(3000);
    let digest = sha512(&data);
    let path = if hint {
        format!("/v2/{repo}/blobs/uploads/?digest-algorithm=sha512")
    } else {
        format!("/v2/{repo}/blobs/uploads/")
    };
    let resp = ctx.client.send(
        Method::POST,
        &path,
        &[("content-length", "0")],
        Some(Vec::new()),
    )?;
    status(&resp, &[202], "POST")?;
    let loc = location(&resp, "POST")?;
    let resp = patch(ctx, &loc, Some("0-1999"), &data[..2000])?;
    status(&resp, &[202], "PATCH")?;
    let loc = location(&resp, "PATCH")?;
    let resp = ctx.client.send(
        Method::PUT,
        &with_query(&loc, "digest", &digest),
        &[
            ("content-type", "application/octet-stream"),
            ("content-range", "2000-2999"),
        ],
        Some(data[2000..].to_vec()),
    )?;
    status(&resp, &[201], "closing PUT with a sha512 digest")?;
    header_eq(&resp, "docker-content-digest", &digest, "closing PUT")?;
    fetch_blob(ctx, &repo, &digest, &data, "GET sha512 blob").map(|_| ())
}

pub(super) fn push_digest_algorithm_hint(ctx: &mut Ctx) -> R {
    chunked_sha512(ctx, true)
}

pub(super) fn push_sha512_without_hint(ctx: &mut Ctx) -> R {
    chunked_sha512(ctx, false)?;
    // And a wrong sha512 without the hint is a mismatch, not stored.
    let repo = ctx.repo("sha512wrong");
    let loc = start_upload(ctx, &repo)?;
    let wrong = sha512(b"something else");
    let resp = ctx.client.send(
        Method::PUT,
        &with_query(&loc, "digest", &wrong),
        &[("content-type", "application/octet-stream")],
        Some(random_bytes(500)),
    )?;
    error(
        &resp,
        &[400],
        "DIGEST_INVALID",
        "PUT with a wrong sha512 digest",
    )?;
    let resp = head(ctx, &format!("/v2/{repo}/blobs/{wrong}"))?;
    status(&resp, &[404], "HEAD of the wrongly named blob")
}

pub(super) fn push_digest_algorithm_unsupported(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("badalg");
    let resp = ctx.client.send(
        Method::POST,
        &format!("/v2/{repo}/blobs/uploads/?digest-algorithm=md5"),
        &[("content-length", "0")],
        Some(Vec::new()),
    )?;
    status(&resp, &[400], "POST with digest-algorithm=md5")?;
    let resp = ctx.client.send(
        Method::POST,
        &format!("/v2/{repo}/blobs/uploads/?digest=md5:0cc175b9c0f1b6a831c399e269772661"),
        &[("content-type", "application/octet-stream")],
        Some(b"a".to_vec()),
    )?;
    status(&resp, &[400], "single POST with an md5 digest")
}
