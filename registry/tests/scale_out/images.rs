//! Images the suite pushes and pulls: OCI layouts on disk, and pulls verified by digest.

use std::path::Path;

use depot_testkit::oci::{manifest_of, OCI_MANIFEST};
use depot_testkit::sha256;
use reqwest::blocking::Client;
use serde_json::{json, Value};

/// An image whose blobs are pushed: its manifest and every blob (config and layers).
#[derive(Clone)]
pub struct Image {
    pub manifest: Vec<u8>,
    pub blobs: Vec<(String, u64)>,
}

impl Image {
    pub fn digest(&self) -> String {
        sha256(&self.manifest)
    }
}

/// An OCI layout at `dir` holding one image (tag `latest`) of a config and `layers`.
pub fn write_layout(dir: &Path, layers: &[Vec<u8>]) -> Image {
    let blobs_dir = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs_dir).unwrap();
    let put = |bytes: &[u8]| {
        let d = sha256(bytes);
        std::fs::write(blobs_dir.join(d.trim_start_matches("sha256:")), bytes).unwrap();
        (d, bytes.len() as u64)
    };
    let layer_refs: Vec<(String, u64)> = layers.iter().map(|l| put(l)).collect();
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": { "type": "layers", "diff_ids": layer_refs.iter().map(|l| l.0.clone()).collect::<Vec<_>>() },
    }))
    .unwrap();
    let config_ref = put(&config);
    let manifest = manifest_of(&config, &layer_refs);
    let m = put(&manifest);
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    std::fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "manifests": [{ "mediaType": OCI_MANIFEST, "digest": m.0, "size": m.1,
                            "annotations": { "org.opencontainers.image.ref.name": "latest" } }],
        }))
        .unwrap(),
    )
    .unwrap();
    let mut blobs = vec![config_ref];
    blobs.extend(layer_refs);
    Image { manifest, blobs }
}

/// Pulls `repo@digest` from `base` and checks the manifest and every blob it names (config
/// and layers) by digest and size; `Err` says what did not verify.
pub fn pull_verify(
    http: &Client,
    base: &str,
    repo: &str,
    digest: &str,
    bearer: Option<&str>,
) -> Result<(), String> {
    let get = |path: String| {
        let mut req = http
            .get(format!("{base}/v2/{repo}/{path}"))
            .header("accept", OCI_MANIFEST);
        if let Some(b) = bearer {
            req = req.bearer_auth(b);
        }
        req.send()
    };
    let resp = get(format!("manifests/{digest}")).map_err(|e| e.to_string())?;
    let status = resp.status();
    let body = resp.bytes().map_err(|e| e.to_string())?;
    if status != 200 || sha256(&body) != digest {
        return Err(format!("manifest {repo}@{digest}: {status}"));
    }
    let manifest: Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
    let named = std::iter::once(&manifest["config"]).chain(manifest["layers"].as_array().unwrap());
    for blob in named {
        let (d, size) = (
            blob["digest"].as_str().unwrap(),
            blob["size"].as_u64().unwrap(),
        );
        let resp = get(format!("blobs/{d}")).map_err(|e| e.to_string())?;
        let status = resp.status();
        let body = resp.bytes().map_err(|e| e.to_string())?;
        if status != 200 || body.len() as u64 != size || sha256(&body) != d {
            return Err(format!(
                "blob {d} of {repo}: {status}, {} of {size} bytes",
                body.len()
            ));
        }
    }
    Ok(())
}
