//! Writing images into an OCI image layout directory (`oci-layout`, `index.json`,
//! `blobs/sha256/...`). Each blob is written to a temporary file and renamed into place only
//! once its digest checked out, so the layout never holds a partial or corrupt blob; blobs
//! already present (and verified) are not downloaded again, so an interrupted pull resumes.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::image::Graph;
use crate::oci::BlobReader;
use crate::progress::{short, Progress};
use crate::source::Source;

const REF_NAME: &str = "org.opencontainers.image.ref.name";

fn blob_path(dir: &Path, digest: &str) -> Result<PathBuf> {
    let (alg, hex) = digest.split_once(':').context("malformed digest")?;
    Ok(dir.join("blobs").join(alg).join(hex))
}

/// Whether `path` holds exactly `digest`.
async fn holds(path: &Path, digest: &str) -> bool {
    let path = path.to_owned();
    let digest = digest.to_owned();
    tokio::task::spawn_blocking(move || {
        let Ok(mut f) = std::fs::File::open(&path) else {
            return false;
        };
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            match std::io::Read::read(&mut f, &mut buf) {
                Ok(0) => break,
                Ok(n) => h.update(&buf[..n]),
                Err(_) => return false,
            }
        }
        format!("sha256:{}", hex::encode(h.finalize())) == digest
    })
    .await
    .unwrap_or(false)
}

async fn put_bytes(dir: &Path, digest: &str, bytes: &[u8]) -> Result<()> {
    let path = blob_path(dir, digest)?;
    let tmp = path.with_extension("partial");
    tokio::fs::write(&tmp, bytes).await?;
    tokio::fs::rename(&tmp, &path).await?;
    Ok(())
}

/// Writes each `(ref name, graph)` into the layout at `dir` (created if needed); an existing
/// entry of the same name is replaced, others are kept.
pub async fn write(
    dir: &Path,
    source: &Source,
    images: &[(String, &Graph)],
    progress: &Progress,
) -> Result<()> {
    tokio::fs::create_dir_all(dir.join("blobs/sha256"))
        .await
        .with_context(|| format!("creating {}", dir.display()))?;
    tokio::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).await?;
    for (_, graph) in images {
        for blob in &graph.blobs {
            let path = blob_path(dir, &blob.desc.digest)?;
            let what = format!("{} ({})", blob.label, short(&blob.desc.digest));
            if holds(&path, &blob.desc.digest).await {
                progress.line(&format!("{what}: already in {}", dir.display()));
                continue;
            }
            let bar = progress.bar(what.clone(), blob.desc.size);
            let tmp = path.with_extension("partial");
            let mut f = tokio::fs::File::create(&tmp).await?;
            let mut r = BlobReader::open(&source.reg, &source.project, &blob.desc)
                .await
                .with_context(|| what.clone())?;
            while let Some(c) = r.next_chunk().await.with_context(|| what.clone())? {
                f.write_all(&c).await?;
                bar.inc(c.len() as u64);
            }
            f.sync_all().await?;
            drop(f);
            tokio::fs::rename(&tmp, &path).await?;
            bar.finish_bytes("pulled", blob.desc.size);
        }
        for m in graph.children.iter().chain([&graph.top]) {
            put_bytes(dir, &m.digest, &m.bytes).await?;
        }
    }
    // index.json last: the layout names an image only once all of it is there.
    let index_path = dir.join("index.json");
    let mut index: Value = match tokio::fs::read(&index_path).await {
        Ok(b) => serde_json::from_slice(&b)
            .with_context(|| format!("{} is not JSON", index_path.display()))?,
        Err(_) => {
            json!({ "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [] })
        }
    };
    let manifests = index["manifests"]
        .as_array_mut()
        .context("index.json has no manifests array")?;
    for (name, graph) in images {
        manifests.retain(|m| m["annotations"][REF_NAME] != json!(name));
        let d = graph.top.descriptor();
        manifests.push(json!({
            "mediaType": d.media_type,
            "digest": d.digest,
            "size": d.size,
            "annotations": { REF_NAME: name },
        }));
    }
    let tmp = dir.join("index.json.partial");
    tokio::fs::write(&tmp, serde_json::to_vec_pretty(&index)?).await?;
    tokio::fs::rename(&tmp, &index_path).await?;
    Ok(())
}
