//! Compose files: every service with a `build` section is a target.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{anyhow, bail, Result};
use hcl::expr::Expression;

use super::hcl_files::json_expr;
use super::Definitions;

/// Compose: every service with a `build` section is a target.
pub(super) fn read_compose(defs: &mut Definitions, text: &str, dir: &Path) -> Result<()> {
    // serde_yaml's mapping keeps the file's order of services; serde_json's would sort them.
    let doc: serde_yaml::Value =
        serde_yaml::from_str(text).map_err(|e| anyhow!("not valid YAML: {e}"))?;
    let Some(services) = doc.get("services").and_then(|s| s.as_mapping()) else {
        bail!("a Compose file without services");
    };
    for (name, service) in services {
        let name = name
            .as_str()
            .ok_or_else(|| anyhow!("service names must be strings"))?;
        let service: serde_json::Value = serde_json::to_value(service)?;
        let Some(build) = service.get("build") else {
            continue;
        };
        let mut attrs = BTreeMap::new();
        let build = match build {
            serde_json::Value::String(context) => serde_json::json!({ "context": context }),
            other => other.clone(),
        };
        let context = build["context"].as_str().unwrap_or(".");
        attrs.insert(
            "context".to_owned(),
            Expression::String(dir.join(context).to_string_lossy().into_owned()),
        );
        if let Some(f) = build["dockerfile"].as_str() {
            attrs.insert("dockerfile".into(), Expression::String(f.to_owned()));
        }
        if let Some(t) = build["target"].as_str() {
            attrs.insert("target".into(), Expression::String(t.to_owned()));
        }
        let mut tags: Vec<Expression> = Vec::new();
        if let Some(image) = service["image"].as_str() {
            tags.push(Expression::String(image.to_owned()));
        }
        for t in build["tags"].as_array().into_iter().flatten() {
            tags.extend(t.as_str().map(|t| Expression::String(t.to_owned())));
        }
        attrs.insert("tags".into(), Expression::Array(tags));
        if let Some(p) = build.get("platforms") {
            attrs.insert("platforms".into(), json_expr(p));
        }
        for (key, attr) in [("args", "args"), ("labels", "labels")] {
            if let Some(map) = compose_map(&build[key]) {
                attrs.insert(attr.into(), map);
            }
        }
        if build["no_cache"].as_bool() == Some(true) {
            attrs.insert("no-cache".into(), Expression::Bool(true));
        }
        defs.merge_target(name.to_owned(), attrs, dir);
    }
    Ok(())
}

/// Compose `args`/`labels`: a map, or a list of `KEY=VALUE`.
pub(super) fn compose_map(v: &serde_json::Value) -> Option<Expression> {
    let pairs: Vec<(String, String)> = match v {
        serde_json::Value::Object(o) => o
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| v.to_string()),
                )
            })
            .collect(),
        serde_json::Value::Array(a) => a
            .iter()
            .filter_map(|e| e.as_str()?.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        _ => return None,
    };
    Some(Expression::Object(
        pairs
            .into_iter()
            .map(|(k, v)| (hcl::ObjectKey::from(k.as_str()), Expression::String(v)))
            .collect(),
    ))
}
