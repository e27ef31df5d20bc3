//! A `docker save` archive written as a stream: each image's config (`<hex>.json`), its layers
//! (`<hex>.tar`, as stored: `docker load` decompresses them), and `manifest.json`. Tar headers
//! need sizes up front, and descriptors have them, so layers go straight from the registry to
//! the output without touching disk or being held in memory.

use std::collections::HashSet;

use anyhow::{Context as _, Result};
use serde_json::json;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::image::{small_blob, Graph};
use crate::oci::BlobReader;
use crate::progress::{short, Progress};
use crate::source::Source;

/// One image of the archive: a single-platform graph and the names it loads as.
pub struct Entry<'a> {
    pub graph: &'a Graph,
    pub repo_tags: Vec<String>,
}

fn hex_of(digest: &str) -> &str {
    digest.split_once(':').map(|(_, h)| h).unwrap_or(digest)
}

async fn header<W: AsyncWrite + Unpin>(out: &mut W, path: &str, size: u64) -> Result<()> {
    let mut h = tar::Header::new_ustar();
    h.set_path(path)?;
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    out.write_all(h.as_bytes()).await?;
    Ok(())
}

async fn pad<W: AsyncWrite + Unpin>(out: &mut W, size: u64) -> Result<()> {
    let rem = (size % 512) as usize;
    if rem != 0 {
        out.write_all(&[0u8; 512][..512 - rem]).await?;
    }
    Ok(())
}

async fn file<W: AsyncWrite + Unpin>(out: &mut W, path: &str, bytes: &[u8]) -> Result<()> {
    header(out, path, bytes.len() as u64).await?;
    out.write_all(bytes).await?;
    pad(out, bytes.len() as u64).await
}

/// Writes the archive of `entries` to `out`, every blob verified on the way.
pub async fn write<W: AsyncWrite + Unpin>(
    out: &mut W,
    source: &Source,
    entries: &[Entry<'_>],
    progress: &Progress,
) -> Result<()> {
    let mut written = HashSet::new();
    let mut manifest = Vec::new();
    for entry in entries {
        let [(platform, image)] = entry.graph.images.as_slice() else {
            anyhow::bail!(
                "a docker archive holds one platform per image: choose one with --platform"
            );
        };
        let config = image
            .config
            .as_ref()
            .context("image manifest has no config")?;
        let config_name = format!("{}.json", hex_of(&config.digest));
        if written.insert(config.digest.clone()) {
            let bytes = small_blob(source, config)
                .await
                .with_context(|| format!("config of {platform}"))?;
            file(out, &config_name, &bytes).await?;
        }
        let mut layers = Vec::new();
        for (i, layer) in image.layers.iter().enumerate() {
            let name = format!("{}.tar", hex_of(&layer.digest));
            layers.push(name.clone());
            if !written.insert(layer.digest.clone()) {
                continue;
            }
            let what = format!(
                "layer {}/{} of {platform} ({})",
                i + 1,
                image.layers.len(),
                short(&layer.digest)
            );
            let bar = progress.bar(what.clone(), layer.size);
            header(out, &name, layer.size).await?;
            let mut r = BlobReader::open(&source.reg, &source.project, layer)
                .await
                .with_context(|| what.clone())?;
            while let Some(c) = r.next_chunk().await.with_context(|| what.clone())? {
                out.write_all(&c)
                    .await
                    .with_context(|| format!("writing {what}"))?;
                bar.inc(c.len() as u64);
            }
            pad(out, layer.size).await?;
            bar.finish_bytes("pulled", layer.size);
        }
        manifest.push(json!({
            "Config": config_name,
            "RepoTags": entry.repo_tags,
            "Layers": layers,
        }));
    }
    file(out, "manifest.json", &serde_json::to_vec(&manifest)?).await?;
    out.write_all(&[0u8; 1024]).await?;
    out.flush().await?;
    Ok(())
}
