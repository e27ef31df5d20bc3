//! Manifest parsing and validation at push time: which media types are accepted, the shape each
//! must have, and what a manifest references (blobs, child manifests, subject).
//!
//! The bytes are never re-serialized: the registry stores and serves exactly what was pushed.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::digest::Digest;
use crate::error::{Error, Result};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// Manifests larger than this are refused with 413 (the spec asks registries to accept 4 MiB).
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

/// Docker foreign layers live elsewhere (their `urls`), so the registry does not hold them.
const FOREIGN_LAYER_TYPES: [&str; 2] = [
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
];

pub fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_LIST
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDescriptor {
    media_type: Option<Value>,
    digest: Option<Value>,
    size: Option<Value>,
    urls: Option<Value>,
}

/// A descriptor with the fields the registry relies on checked.
#[derive(Debug, Clone)]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    pub foreign: bool,
}

fn descriptor(value: &Value, field: &str) -> Result<Descriptor> {
    let raw: RawDescriptor = serde_json::from_value(value.clone())
        .map_err(|e| Error::manifest_invalid(format!("{field}: {e}")))?;
    let media_type = match raw.media_type {
        Some(Value::String(s)) if !s.is_empty() => s,
        _ => {
            return Err(Error::manifest_invalid(format!(
                "{field}: mediaType must be a non-empty string"
            )))
        }
    };
    let digest = match raw.digest {
        Some(Value::String(s)) => s
            .parse()
            .map_err(|_| Error::manifest_invalid(format!("{field}: invalid digest {s:?}")))?,
        _ => {
            return Err(Error::manifest_invalid(format!(
                "{field}: digest must be a string"
            )))
        }
    };
    let size = match raw.size.as_ref().and_then(Value::as_u64) {
        Some(s) => s,
        None => {
            return Err(Error::manifest_invalid(format!(
                "{field}: size must be a non-negative integer"
            )))
        }
    };
    let foreign = FOREIGN_LAYER_TYPES.contains(&media_type.as_str())
        || raw.urls.is_some_and(|u| !u.is_null());
    Ok(Descriptor {
        media_type,
        digest,
        size,
        foreign,
    })
}

/// What the registry learns from a manifest it accepts.
#[derive(Debug, Clone)]
pub struct ParsedManifest {
    pub media_type: String,
    /// Config and layers (image manifests).
    pub blobs: Vec<Descriptor>,
    /// Children (indexes).
    pub manifests: Vec<Descriptor>,
    pub subject: Option<Digest>,
    /// The `artifactType` for referrers: the manifest's own, else (image manifests) the config's
    /// media type, else none.
    pub artifact_type: Option<String>,
    /// The `annotations` object, as JSON text.
    pub annotations: Option<String>,
}

/// Walks a JSON document and fails on an object that names a key twice. JSON parsers disagree
/// on such objects (some keep the first value, most the last), so two clients could read two
/// different manifests from the same bytes: the registry refuses them.
struct NoDuplicateKeys;

impl<'de> serde::de::DeserializeSeed<'de> for NoDuplicateKeys {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for NoDuplicateKeys {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<(), A::Error> {
        let mut seen = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                return Err(serde::de::Error::custom(format!("duplicate key {key:?}")));
            }
            map.next_value_seed(NoDuplicateKeys)?;
        }
        Ok(())
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(
        self,
        mut seq: A,
    ) -> std::result::Result<(), A::Error> {
        while seq.next_element_seed(NoDuplicateKeys)?.is_some() {}
        Ok(())
    }

    fn visit_bool<E>(self, _: bool) -> std::result::Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> std::result::Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> std::result::Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> std::result::Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> std::result::Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> std::result::Result<(), E> {
        Ok(())
    }
}

fn check_unique_keys(body: &[u8]) -> Result<()> {
    use serde::de::DeserializeSeed;
    let mut d = serde_json::Deserializer::from_slice(body);
    NoDuplicateKeys
        .deserialize(&mut d)
        .and_then(|()| d.end())
        .map_err(|e| Error::manifest_invalid(format!("invalid JSON: {e}")))
}

/// Parses manifest `body` pushed with `content_type` (parameters already stripped, may be empty).
pub fn parse(content_type: &str, body: &[u8]) -> Result<ParsedManifest> {
    check_unique_keys(body)?;
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| Error::manifest_invalid(format!("invalid JSON: {e}")))?;
    let obj: &Map<String, Value> = value
        .as_object()
        .ok_or_else(|| Error::manifest_invalid("manifest must be a JSON object"))?;

    let declared = match obj.get("mediaType") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => return Err(Error::manifest_invalid("mediaType must be a string")),
    };
    let media_type = match (content_type, declared) {
        ("", None) => return Err(Error::manifest_invalid("no Content-Type and no mediaType")),
        ("", Some(d)) => d.to_owned(),
        (ct, Some(d)) if ct != d => {
            return Err(Error::manifest_invalid(format!(
                "Content-Type {ct:?} does not match mediaType {d:?}"
            )));
        }
        (ct, _) => ct.to_owned(),
    };
    if !matches!(
        media_type.as_str(),
        OCI_MANIFEST | OCI_INDEX | DOCKER_MANIFEST | DOCKER_LIST
    ) {
        return Err(Error::manifest_invalid(format!(
            "unsupported manifest media type {media_type:?}"
        )));
    }
    if obj.get("schemaVersion").and_then(Value::as_i64) != Some(2) {
        return Err(Error::manifest_invalid("schemaVersion must be 2"));
    }

    let subject = match obj.get("subject") {
        None | Some(Value::Null) => None,
        Some(v) => Some(descriptor(v, "subject")?.digest),
    };
    let annotations = match obj.get("annotations") {
        None | Some(Value::Null) => None,
        Some(v @ Value::Object(map)) => {
            if map.values().any(|v| !v.is_string()) {
                return Err(Error::manifest_invalid(
                    "annotations values must be strings",
                ));
            }
            Some(v.to_string())
        }
        Some(_) => return Err(Error::manifest_invalid("annotations must be an object")),
    };
    let own_artifact_type = match obj.get("artifactType") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(Error::manifest_invalid("artifactType must be a string")),
    };

    let list = |field: &str, required: bool| -> Result<Vec<Descriptor>> {
        match obj.get(field) {
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| descriptor(v, &format!("{field}[{i}]")))
                .collect(),
            None if !required => Ok(Vec::new()),
            _ => Err(Error::manifest_invalid(format!("{field} must be an array"))),
        }
    };

    if is_index(&media_type) {
        let manifests = list("manifests", true)?;
        if obj.contains_key("layers") || obj.contains_key("config") {
            return Err(Error::manifest_invalid(
                "an index has manifests, not config or layers",
            ));
        }
        Ok(ParsedManifest {
            media_type,
            blobs: Vec::new(),
            manifests,
            subject,
            artifact_type: own_artifact_type,
            annotations,
        })
    } else {
        let config = obj
            .get("config")
            .ok_or_else(|| Error::manifest_invalid("config is required"))?;
        let config = descriptor(config, "config")?;
        if obj.contains_key("manifests") {
            return Err(Error::manifest_invalid(
                "an image manifest has config and layers, not manifests",
            ));
        }
        let layers = list("layers", true)?;
        let artifact_type = own_artifact_type.or_else(|| Some(config.media_type.clone()));
        let mut blobs = vec![config];
        blobs.extend(layers);
        Ok(ParsedManifest {
            media_type,
            blobs,
            manifests: Vec::new(),
            subject,
            artifact_type,
            annotations,
        })
    }
}

/// Strips parameters (`; charset=...`) and whitespace from a `Content-Type` value.
pub fn bare_media_type(value: &str) -> &str {
    value.split(';').next().unwrap_or("").trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    #[test]
    fn image_manifest() {
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/x-cfg","digest":"{}","size":2}},
            "layers":[{{"mediaType":"l","digest":"{}","size":5}}],"subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":9}},
            "annotations":{{"a":"b"}}}}"#,
            d('a'),
            d('b'),
            d('c')
        );
        let m = parse(OCI_MANIFEST, body.as_bytes()).unwrap();
        assert_eq!(m.blobs.len(), 2);
        assert_eq!(m.artifact_type.as_deref(), Some("application/x-cfg"));
        assert_eq!(m.subject.unwrap().to_string(), d('c'));
        assert_eq!(m.annotations.as_deref(), Some(r#"{"a":"b"}"#));
        // Content-Type wins when mediaType is absent; a mismatch is refused.
        assert!(parse(DOCKER_MANIFEST, body.as_bytes()).is_err());
    }

    #[test]
    fn rejects() {
        for (ct, body) in [
            (OCI_MANIFEST, "not json"),
            (OCI_MANIFEST, "[]"),
            (OCI_MANIFEST, r#"{"schemaVersion":1}"#),
            ("application/json", r#"{"schemaVersion":2}"#),
            (OCI_MANIFEST, r#"{"schemaVersion":2,"layers":[]}"#),
            (
                OCI_INDEX,
                r#"{"schemaVersion":2,"manifests":[{"mediaType":"x","digest":"sha256:00","size":1}]}"#,
            ),
            (
                OCI_INDEX,
                r#"{"schemaVersion":2,"manifests":[{"mediaType":"x","digest":"sha256:00","size":-1}]}"#,
            ),
            ("", r#"{"schemaVersion":2,"manifests":[]}"#),
            // A key twice, at the top or nested: readers would disagree on what it says.
            (
                OCI_INDEX,
                r#"{"schemaVersion":2,"manifests":[],"manifests":[{"mediaType":"x","digest":"sha256:00","size":1}]}"#,
            ),
            (
                OCI_INDEX,
                r#"{"schemaVersion":2,"manifests":[],"annotations":{"a":"1","a":"2"}}"#,
            ),
        ] {
            assert!(parse(ct, body.as_bytes()).is_err(), "{ct} {body}");
        }
        let index = parse(
            "",
            format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[]}}"#).as_bytes(),
        )
        .unwrap();
        assert!(index.artifact_type.is_none());
    }

    #[test]
    fn strips_parameters() {
        assert_eq!(
            bare_media_type("application/json; charset=utf-8"),
            "application/json"
        );
    }
}
