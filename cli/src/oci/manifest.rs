//! The parts of image manifests and indexes the CLI needs (the bytes themselves are always
//! copied as they are, so digests never change), and platforms: parsing, matching, choosing.

use serde::{Deserialize, Serialize};

use super::Descriptor;

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// The `Accept` header for manifest reads.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

pub fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_LIST
}

/// `os/arch[/variant]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Platform {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split('/').collect();
        let bad = || format!("platform {s:?} is not OS/ARCH[/VARIANT] (e.g. linux/arm64)");
        if !(2..=3).contains(&parts.len()) || parts.iter().any(|p| p.is_empty()) {
            return Err(bad());
        }
        Ok(Platform {
            os: parts[0].to_owned(),
            architecture: parts[1].to_owned(),
            variant: parts.get(2).map(|v| (*v).to_owned()),
        })
    }
}

impl Platform {
    /// This machine's platform, in Go's names as image configs use them.
    pub fn host() -> Platform {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            other => other,
        };
        Platform {
            os: std::env::consts::OS.to_owned(),
            architecture: arch.to_owned(),
            variant: None,
        }
    }

    /// Whether an image for `self` serves a request for `wanted` (a request without a variant
    /// takes any variant).
    pub fn serves(&self, wanted: &Platform) -> bool {
        self.os == wanted.os
            && self.architecture == wanted.architecture
            && (wanted.variant.is_none() || self.variant == wanted.variant)
    }
}

/// An image manifest or an index, as far as copying needs it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Parsed {
    #[serde(default)]
    pub media_type: Option<String>,
    /// An image manifest's config.
    pub config: Option<Descriptor>,
    /// An image manifest's layers.
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    /// An index's children.
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
}

impl Parsed {
    pub fn parse(bytes: &[u8]) -> Result<Parsed, String> {
        serde_json::from_slice(bytes).map_err(|e| format!("not an image manifest or index: {e}"))
    }

    /// The children of an index that are images (attestation manifests, which BuildKit puts
    /// in indexes with platform `unknown/unknown`, are not).
    pub fn images(&self) -> impl Iterator<Item = &Descriptor> {
        self.manifests.iter().filter(|d| {
            d.platform
                .as_ref()
                .is_none_or(|p| p.os != "unknown" && p.architecture != "unknown")
        })
    }

    /// The child of an index for `wanted`, or an error listing what there is.
    pub fn child_for(&self, wanted: &Platform) -> Result<&Descriptor, String> {
        self.images()
            .find(|d| d.platform.as_ref().is_some_and(|p| p.serves(wanted)))
            .ok_or_else(|| {
                let have: Vec<String> = self
                    .images()
                    .filter_map(|d| d.platform.as_ref().map(ToString::to_string))
                    .collect();
                format!(
                    "no image for platform {wanted} (the build has {})",
                    if have.is_empty() {
                        "no platforms listed".to_owned()
                    } else {
                        have.join(", ")
                    }
                )
            })
    }

    /// The blobs of an image manifest: config first, then layers.
    pub fn blobs(&self) -> Vec<Descriptor> {
        self.config
            .iter()
            .chain(self.layers.iter())
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_parse_and_match() {
        let arm: Platform = "linux/arm64/v8".parse().unwrap();
        assert_eq!(arm.to_string(), "linux/arm64/v8");
        assert!(arm.serves(&"linux/arm64".parse().unwrap()));
        assert!(!arm.serves(&"linux/arm64/v7".parse().unwrap()));
        assert!(!arm.serves(&"linux/amd64".parse().unwrap()));
        assert!("linux".parse::<Platform>().is_err());
        assert!("linux//v8".parse::<Platform>().is_err());
        assert!("a/b/c/d".parse::<Platform>().is_err());
    }

    #[test]
    fn index_children_skip_attestations_and_name_what_exists() {
        let index = Parsed::parse(
            br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[
            {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:a","size":1,"platform":{"os":"linux","architecture":"amd64"}},
            {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:b","size":1,"platform":{"os":"linux","architecture":"arm64","variant":"v8"}},
            {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:c","size":1,"platform":{"os":"unknown","architecture":"unknown"}}]}"#,
        )
        .unwrap();
        assert_eq!(index.images().count(), 2);
        assert_eq!(
            index
                .child_for(&"linux/arm64".parse().unwrap())
                .unwrap()
                .digest,
            "sha256:b"
        );
        let err = index
            .child_for(&"linux/s390x".parse().unwrap())
            .unwrap_err();
        assert!(err.contains("linux/amd64, linux/arm64/v8"), "{err}");
    }
}
