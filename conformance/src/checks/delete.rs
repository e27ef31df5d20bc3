//! Content management: deleting tags, manifests and blobs.

use super::helpers::*;
use crate::Ctx;

pub(super) fn delete_tag(ctx: &mut Ctx) -> R {
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

pub(super) fn delete_manifest(ctx: &mut Ctx) -> R {
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

pub(super) fn delete_manifest_unknown(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("delunknown");
    pushed_image(ctx, &repo, "latest")?;
    let resp = delete(ctx, &format!("/v2/{repo}/manifests/{}", sha256(b"never")))?;
    status(&resp, &[404], "DELETE unknown manifest")
}

pub(super) fn delete_blob(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("delblob");
    let digest = push_blob(ctx, &repo, &random_bytes(100))?;
    let resp = delete(ctx, &format!("/v2/{repo}/blobs/{digest}"))?;
    status(&resp, &[202], "DELETE blob")?;
    let resp = head(ctx, &format!("/v2/{repo}/blobs/{digest}"))?;
    status(&resp, &[404], "HEAD deleted blob")?;
    let resp = delete(ctx, &format!("/v2/{repo}/blobs/{digest}"))?;
    status(&resp, &[404], "DELETE blob again")
}

pub(super) fn delete_manifest_malformed_reference(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("delmalformed");
    pushed_image(ctx, &repo, "latest")?;
    let resp = delete(ctx, &format!("/v2/{repo}/manifests/.INVALID_MANIFEST_NAME"))?;
    error(
        &resp,
        &[404],
        "MANIFEST_UNKNOWN",
        "DELETE a malformed reference",
    )
}
