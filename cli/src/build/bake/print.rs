//! `depot bake --print`: the resolved definition (files merged, variables, inheritance, matrix
//! and `--set` applied) as JSON, in buildx's shape: `{"group": {"default": {"targets": [...]}},
//! "target": {NAME: {"context", "dockerfile", "tags", ...}}}`. Paths are printed as buildx
//! prints them: the context relative to the working directory, the Dockerfile relative to the
//! context.

use std::path::Path;

use serde_json::{json, Map, Value};

use crate::build::Target;

/// `path` relative to `base` when it is under it (`.` for `base` itself).
fn relative(path: &Path, base: &Path) -> String {
    match path.strip_prefix(base) {
        Ok(rel) if rel.as_os_str().is_empty() => ".".to_owned(),
        Ok(rel) => rel.display().to_string(),
        Err(_) => path.display().to_string(),
    }
}

fn object(pairs: &[(String, String)]) -> Value {
    Value::Object(
        pairs
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
            .collect(),
    )
}

/// One target as buildx prints it: only what is set.
fn target(t: &Target, cwd: &Path) -> Value {
    let mut m = Map::new();
    let mut put = |k: &str, v: Value| {
        let empty = match &v {
            Value::Array(a) => a.is_empty(),
            Value::Object(o) => o.is_empty(),
            Value::Null | Value::Bool(false) => true,
            _ => false,
        };
        if !empty {
            m.insert(k.to_owned(), v);
        }
    };
    let p = &t.passthrough;
    put("context", json!(relative(&t.context, cwd)));
    put("contexts", object(&p.contexts));
    let dockerfile = t
        .dockerfile
        .as_deref()
        .map_or_else(|| "Dockerfile".to_owned(), |f| relative(f, &t.context));
    put("dockerfile", json!(dockerfile));
    put("args", object(&t.args));
    put("labels", object(&t.labels));
    put("tags", json!(t.tags));
    put("target", json!(t.stage));
    put("secret", json!(p.secrets));
    put("ssh", json!(p.ssh));
    put(
        "platforms",
        json!(t
            .platforms
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()),
    );
    let caches =
        |c: &[crate::build::Cache]| json!(c.iter().map(ToString::to_string).collect::<Vec<_>>());
    put("cache-from", caches(&p.cache_from));
    put("cache-to", caches(&p.cache_to));
    let mut attest = Vec::new();
    if let Some(v) = &p.provenance {
        attest.push(attestation("provenance", v));
    }
    if let Some(v) = &p.sbom {
        attest.push(attestation("sbom", v));
    }
    put("attest", json!(attest));
    put("pull", json!(p.pull));
    put("no-cache", json!(t.no_cache));
    put("network", json!(p.network));
    Value::Object(m)
}

/// An `attest` entry from a builder value (`true`, `false`, `mode=max`).
fn attestation(kind: &str, value: &str) -> String {
    match value {
        "true" | "1" => format!("type={kind}"),
        "false" | "0" => format!("type={kind},disabled=true"),
        rest => format!("type={kind},{rest}"),
    }
}

/// The whole definition of the targets to build.
pub fn definition(targets: &[Target], cwd: &Path) -> Value {
    let names: Vec<&str> = targets.iter().map(|t| t.name.as_str()).collect();
    let defined: Map<String, Value> = targets
        .iter()
        .map(|t| (t.name.clone(), target(t, cwd)))
        .collect();
    json!({
        "group": { "default": { "targets": names } },
        "target": defined,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::{Cache, Passthrough};

    #[test]
    fn the_definition_is_printed_as_buildx_prints_it() {
        let web = Target {
            name: "web".into(),
            context: "/w/web".into(),
            dockerfile: Some("/w/web/docker/Dockerfile.prod".into()),
            stage: Some("final".into()),
            args: vec![("V".into(), "1".into())],
            labels: vec![],
            tags: vec!["acme/web:1".into()],
            platforms: vec!["linux/amd64".parse().unwrap()],
            no_cache: true,
            passthrough: Passthrough {
                cache_to: vec![Cache::Project { max: true }],
                provenance: Some("mode=max".into()),
                ..Passthrough::default()
            },
        };
        let api = Target {
            name: "api".into(),
            context: "/w".into(),
            dockerfile: None,
            passthrough: Passthrough::default(),
            no_cache: false,
            tags: vec![],
            stage: None,
            platforms: vec![],
            ..web.clone()
        };
        let printed = definition(&[web, api], Path::new("/w"));
        assert_eq!(
            printed,
            json!({
                "group": { "default": { "targets": ["web", "api"] } },
                "target": {
                    "web": {
                        "context": "web",
                        "dockerfile": "docker/Dockerfile.prod",
                        "args": { "V": "1" },
                        "tags": ["acme/web:1"],
                        "target": "final",
                        "platforms": ["linux/amd64"],
                        "cache-to": ["type=registry,mode=max"],
                        "attest": ["type=provenance,mode=max"],
                        "no-cache": true,
                    },
                    "api": { "context": ".", "dockerfile": "Dockerfile", "args": { "V": "1" } },
                }
            })
        );
    }
}
