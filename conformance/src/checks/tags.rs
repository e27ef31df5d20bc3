//! Listing tags: order, pagination, `n=0`, unknown repositories.

use serde_json::json;

use super::helpers::*;
use crate::Ctx;

pub(super) fn tag_all(ctx: &mut Ctx, repo: &str, tags: &[&str]) -> R {
    let img = image(ctx, repo, OCI_MANIFEST, json!({}))?;
    for t in tags {
        let resp = put_manifest(ctx, repo, t, OCI_MANIFEST, &img.manifest)?;
        status(&resp, &[201], &format!("PUT tag {t}"))?;
    }
    Ok(())
}

pub(super) fn tags_of(resp: &Resp) -> Result<Vec<String>, String> {
    let json = resp.json()?;
    let tags = json
        .get("tags")
        .ok_or_else(|| format!("no tags field in {json}"))?;
    if tags.is_null() {
        return Ok(Vec::new());
    }
    serde_json::from_value(tags.clone()).map_err(|e| format!("tags field: {e}"))
}

pub(super) fn tags_list(ctx: &mut Ctx) -> R {
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

pub(super) fn tags_list_order(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("tagcase");
    tag_all(ctx, &repo, &["B", "a", "C"])?;
    let resp = get(ctx, &format!("/v2/{repo}/tags/list"))?;
    let tags = tags_of(&resp)?;
    // Lexical (case-insensitive) or "ASCIIbetical" (byte order, Go's sort.Strings): spec main
    // allows either, v1.1.1 asked for the first.
    ensure(tags == ["a", "B", "C"] || tags == ["B", "C", "a"], || {
        format!("tags are {tags:?}, expected [a, B, C] (lexical) or [B, C, a] (ASCIIbetical)")
    })
}

pub(super) fn tags_list_pagination(ctx: &mut Ctx) -> R {
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

pub(super) fn tags_list_n_zero(ctx: &mut Ctx) -> R {
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

pub(super) fn tags_list_unknown(ctx: &mut Ctx) -> R {
    let repo = ctx.repo("notags");
    let resp = get(ctx, &format!("/v2/{repo}/tags/list"))?;
    error(
        &resp,
        &[404],
        "NAME_UNKNOWN",
        "GET tags of an unknown repository",
    )
}
