//! Pulling blobs: GET and HEAD, ranges, unknown and malformed digests, and repository isolation.

use reqwest::Method;

use super::helpers::*;
use crate::Ctx;

pub(super) fn pull_blob(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("pull");
    let data = random_bytes(10_000);
    let digest = push_blob(ctx, &repo, &data)?;
    let resp = fetch_blob(ctx, &repo, &digest, &data, "GET blob")?;
    // Required on the answer after any redirect (spec main: "The status codes documented in
    // this specification are those returned after any redirects have been followed").
    header_eq(&resp, "docker-content-digest", &digest, "GET blob").map_err(|e| {
        if resp.redirected {
            format!("{e} (after a redirect to another server)")
        } else {
            e
        }
    })
}

pub(super) fn pull_blob_malformed_digest(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("bmalformed");
    push_blob(ctx, &repo, b"x")?;
    let resp = get(ctx, &format!("/v2/{repo}/blobs/sha256:nothex"))?;
    error(
        &resp,
        &[404],
        "BLOB_UNKNOWN",
        "GET blob with a malformed digest",
    )?;
    let resp = head(ctx, &format!("/v2/{repo}/blobs/sha256:nothex"))?;
    status(&resp, &[404], "HEAD blob with a malformed digest")
}

pub(super) fn pull_blob_head(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("head");
    let data = random_bytes(1234);
    let digest = push_blob(ctx, &repo, &data)?;
    let resp = head(ctx, &format!("/v2/{repo}/blobs/{digest}"))?;
    status(&resp, &[200], "HEAD blob")?;
    header_eq(&resp, "content-length", "1234", "HEAD blob")?;
    header_eq(&resp, "docker-content-digest", &digest, "HEAD blob")?;
    ensure(resp.body.is_empty(), || "HEAD returned a body".into())
}

pub(super) fn pull_blob_range(ctx: &mut Ctx) -> R {
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

pub(super) fn pull_blob_range_unsatisfiable(ctx: &mut Ctx) -> R {
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

pub(super) fn pull_blob_unknown(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("unknownblob");
    push_blob(ctx, &repo, b"x")?;
    let resp = get(
        ctx,
        &format!("/v2/{repo}/blobs/{}", sha256(&random_bytes(16))),
    )?;
    error(&resp, &[404], "BLOB_UNKNOWN", "GET unknown blob")
}

pub(super) fn blob_repository_isolation(ctx: &mut Ctx) -> R {
    let a = ctx.repo("isoa");
    let b = ctx.repo("isob");
    push_blob(ctx, &b, b"b has something")?;
    let digest = push_blob(ctx, &a, &random_bytes(300))?;
    let resp = head(ctx, &format!("/v2/{b}/blobs/{digest}"))?;
    status(&resp, &[404], "HEAD of another repository's blob")?;
    let resp = get(ctx, &format!("/v2/{b}/blobs/{digest}"))?;
    status(&resp, &[404], "GET of another repository's blob")
}
