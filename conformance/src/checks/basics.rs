//! Determining support, the `<name>` grammar and the error envelope.

use reqwest::Method;

use super::helpers::*;
use super::tags::tags_of;
use crate::Ctx;

pub(super) fn api_version(ctx: &mut Ctx) -> R {
    let resp = get(ctx, "/v2/")?;
    status(&resp, &[200], "GET /v2/")
}

pub(super) fn name_with_components(ctx: &mut Ctx) -> R {
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

pub(super) fn name_invalid(ctx: &mut Ctx) -> R {
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

pub(super) fn errors_are_json(ctx: &mut Ctx) -> R {
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
