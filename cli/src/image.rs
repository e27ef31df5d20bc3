//! An image as it is copied: the top manifest (an index or an image manifest), the children
//! of an index, and every blob, deduplicated, with words for each in messages. Manifests keep
//! their exact bytes, so digests never change.

use anyhow::{anyhow, bail, Context as _, Result};
use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::oci::manifest::{is_index, Parsed, Platform};
use crate::oci::{BlobReader, Descriptor};
use crate::progress::short;
use crate::source::Source;

/// A blob to copy, and what it is ("layer 2/5 of linux/arm64").
pub struct Blob {
    pub desc: Descriptor,
    pub label: String,
}

/// A manifest, verbatim.
pub struct Manifest {
    pub digest: String,
    pub media_type: String,
    pub bytes: Bytes,
}

impl Manifest {
    pub fn descriptor(&self) -> Descriptor {
        Descriptor {
            media_type: self.media_type.clone(),
            digest: self.digest.clone(),
            size: self.bytes.len() as u64,
            platform: None,
        }
    }
}

/// What to copy for one image.
pub struct Graph {
    pub top: Manifest,
    /// The children of `top` when it is an index (all of them, so its digest stays valid).
    pub children: Vec<Manifest>,
    /// The image manifests (`top` itself, or each child), parsed, with their platform label.
    pub images: Vec<(String, Parsed)>,
    pub blobs: Vec<Blob>,
}

impl Graph {
    pub fn size(&self) -> u64 {
        self.blobs.iter().map(|b| b.desc.size).sum()
    }

    /// Reads the manifests under `digest` from the source. With `platform`, an index is
    /// narrowed to that platform's image; a single image is checked against it when `strict`.
    pub async fn read(
        source: &Source,
        digest: &str,
        platform: Option<&Platform>,
        strict: bool,
    ) -> Result<Graph> {
        let (mut top, mut parsed) = fetch(source, digest).await?;
        let mut g = Graph {
            top: Manifest {
                digest: String::new(),
                media_type: String::new(),
                bytes: Bytes::new(),
            },
            children: Vec::new(),
            images: Vec::new(),
            blobs: Vec::new(),
        };
        if is_index(&top.media_type) {
            if let Some(p) = platform {
                let child = parsed.child_for(p).map_err(|e| anyhow!(e))?.clone();
                let label = child
                    .platform
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_else(|| p.to_string());
                (top, parsed) = fetch(source, &child.digest).await?;
                g.add(label, parsed);
            } else {
                for d in &parsed.manifests {
                    let (m, p) = fetch(source, &d.digest).await?;
                    if is_index(&m.media_type) {
                        bail!("{}: nested indexes are not supported", d.digest);
                    }
                    let label = d
                        .platform
                        .as_ref()
                        .map(ToString::to_string)
                        .unwrap_or_else(|| short(&d.digest).to_owned());
                    g.add(label, p);
                    g.children.push(m);
                }
            }
        } else {
            let mut label = "the image".to_owned();
            if let (Some(p), true) = (platform, strict) {
                let config = parsed.config.clone().context("manifest has no config")?;
                let have = config_platform(source, &config).await?;
                if !have.serves(p) {
                    bail!("the image is for {have}, not {p}");
                }
                label = have.to_string();
            }
            g.add(label, parsed);
        }
        g.top = top;
        Ok(g)
    }

    fn add(&mut self, label: String, parsed: Parsed) {
        let n = parsed.layers.len();
        for (i, d) in parsed.blobs().into_iter().enumerate() {
            if self.blobs.iter().any(|b| b.desc.digest == d.digest) {
                continue;
            }
            let what = if i == 0 {
                format!("config of {label}")
            } else {
                format!("layer {i}/{n} of {label}")
            };
            self.blobs.push(Blob {
                desc: d,
                label: what,
            });
        }
        self.images.push((label, parsed));
    }
}

/// A manifest by digest, verified.
async fn fetch(source: &Source, digest: &str) -> Result<(Manifest, Parsed)> {
    let (bytes, header_type) = source.reg.manifest(&source.project, digest).await?;
    let got = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
    if got != digest {
        bail!("manifest {digest} arrived with digest {got}");
    }
    let parsed = Parsed::parse(&bytes).map_err(|e| anyhow!("{digest}: {e}"))?;
    let media_type = parsed.media_type.clone().unwrap_or(header_type);
    Ok((
        Manifest {
            digest: digest.to_owned(),
            media_type,
            bytes,
        },
        parsed,
    ))
}

/// Reads a small blob (a config) whole, verified.
pub async fn small_blob(source: &Source, desc: &Descriptor) -> Result<Vec<u8>> {
    if desc.size > 64 << 20 {
        bail!(
            "{} is {} bytes: too large for a config",
            desc.digest,
            desc.size
        );
    }
    let mut r = BlobReader::open(&source.reg, &source.project, desc).await?;
    let mut bytes = Vec::with_capacity(desc.size as usize);
    while let Some(c) = r.next_chunk().await? {
        bytes.extend_from_slice(&c);
    }
    Ok(bytes)
}

/// The platform an image config declares.
pub async fn config_platform(source: &Source, config: &Descriptor) -> Result<Platform> {
    let bytes = small_blob(source, config).await?;
    let v: serde_json::Value =
        serde_json::from_slice(&bytes).context("image config is not JSON")?;
    Ok(Platform {
        os: v["os"].as_str().unwrap_or_default().to_owned(),
        architecture: v["architecture"].as_str().unwrap_or_default().to_owned(),
        variant: v["variant"].as_str().map(str::to_owned),
    })
}
