//! HCL bake files, and their JSON form, into [`Definitions`].

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{anyhow, bail, Result};
use hcl::expr::{Expression, TemplateExpr};

use super::Definitions;

pub(super) fn read_hcl(defs: &mut Definitions, text: &str, cwd: &Path) -> Result<()> {
    let body = hcl::parse(text).map_err(|e| anyhow!("not valid HCL: {e}"))?;
    for block in body.blocks() {
        let label = || -> Result<String> {
            match block.labels() {
                [l] => Ok(l.as_str().to_owned()),
                _ => bail!("a {} block takes one name", block.identifier()),
            }
        };
        let attrs: BTreeMap<String, Expression> = block
            .body()
            .attributes()
            .map(|a| (a.key.to_string(), a.expr.clone()))
            .collect();
        match block.identifier() {
            "variable" => {
                let default = attrs.get("default").cloned().unwrap_or(Expression::Null);
                defs.set_variable(label()?, default);
            }
            "group" => {
                let targets = attrs
                    .get("targets")
                    .cloned()
                    .unwrap_or(Expression::Array(vec![]));
                defs.groups.insert(label()?, targets);
            }
            "target" => defs.merge_target(label()?, attrs, cwd),
            "function" => bail!("user-defined functions are not supported"),
            other => eprintln!("warning: bake block {other:?} ignored"),
        }
    }
    for attr in body.attributes() {
        // A top-level attribute is a variable without a block.
        defs.set_variable(attr.key.to_string(), attr.expr.clone());
    }
    Ok(())
}

/// The JSON form: `{"variable": {...}, "group": {...}, "target": {...}}`, strings templated.
pub(super) fn read_json(defs: &mut Definitions, text: &str, cwd: &Path) -> Result<()> {
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| anyhow!("not valid JSON: {e}"))?;
    let section = |k: &str| {
        v.get(k)
            .and_then(|s| s.as_object())
            .cloned()
            .unwrap_or_default()
    };
    for (name, var) in section("variable") {
        let default = var
            .get("default")
            .map(json_expr)
            .unwrap_or(Expression::Null);
        defs.set_variable(name, default);
    }
    for (name, group) in section("group") {
        let targets = group
            .get("targets")
            .map(json_expr)
            .unwrap_or(Expression::Array(vec![]));
        defs.groups.insert(name, targets);
    }
    for (name, target) in section("target") {
        let attrs = target
            .as_object()
            .ok_or_else(|| anyhow!("target {name:?} is not an object"))?
            .iter()
            .map(|(k, v)| (k.clone(), json_expr(v)))
            .collect();
        defs.merge_target(name, attrs, cwd);
    }
    Ok(())
}

pub(super) fn json_expr(v: &serde_json::Value) -> Expression {
    use serde_json::Value as J;
    match v {
        J::Null => Expression::Null,
        J::Bool(b) => Expression::Bool(*b),
        J::Number(n) => Expression::String(n.to_string()),
        J::String(s) if s.contains("${") || s.contains("%{") => {
            Expression::TemplateExpr(Box::new(TemplateExpr::QuotedString(s.clone())))
        }
        J::String(s) => Expression::String(s.clone()),
        J::Array(a) => Expression::Array(a.iter().map(json_expr).collect()),
        J::Object(o) => Expression::Object(
            o.iter()
                .map(|(k, v)| (hcl::ObjectKey::from(k.as_str()), json_expr(v)))
                .collect(),
        ),
    }
}
