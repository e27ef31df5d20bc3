//! Bake files to [`Target`]s: the part of `docker buildx bake` that maps targets to builds.
//!
//! HCL (parsed and evaluated by `hcl-rs`) and its JSON form become one set of definitions:
//! `variable` blocks (a default, overridden by the environment variable of the same name),
//! `group` blocks (`targets`), and `target` blocks with `context`, `dockerfile`, `tags`,
//! `platforms`, `args`, `labels`, `target`, `no-cache`, `inherits`, and `matrix` (with `name`).
//! Expressions may use the variables, `${...}` templates, conditionals and a few of bake's
//! functions (`lower`, `upper`, `join`, `replace`, `trimprefix`, `trimsuffix`, `equal`,
//! `notequal`). Compose files contribute their services that have a `build` section (no
//! `${VAR}` interpolation there). Several files merge in order: a later file's attributes
//! override an earlier file's for the same target. Other bake attributes (`output`,
//! `cache-from`, `secret`, ...) are reported as ignored.
//!
//! Paths: an HCL/JSON `context` is relative to the current directory, a Compose `context` to the
//! Compose file's directory, and `dockerfile` to the context, as buildx has them.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context as _, Result};
use hcl::eval::{Context as EvalContext, Evaluate, FuncArgs, FuncDef, ParamType};
use hcl::expr::{Expression, TemplateExpr};
use hcl::Value;

use super::Target;

/// The files read when no `-f` is given, in this order, as buildx has them.
const DEFAULT_FILES: [&str; 8] = [
    "compose.yaml",
    "compose.yml",
    "docker-compose.yml",
    "docker-compose.yaml",
    "docker-bake.json",
    "docker-bake.override.json",
    "docker-bake.hcl",
    "docker-bake.override.hcl",
];

/// Attributes understood on a target.
const KNOWN: [&str; 11] = [
    "context",
    "dockerfile",
    "tags",
    "platforms",
    "args",
    "labels",
    "target",
    "no-cache",
    "inherits",
    "matrix",
    "name",
];

/// Everything the files define, before evaluation.
#[derive(Default, Debug)]
struct Definitions {
    variables: Vec<(String, Expression)>,
    groups: BTreeMap<String, Expression>,
    /// In order of first definition.
    targets: Vec<RawTarget>,
}

#[derive(Debug)]
struct RawTarget {
    name: String,
    attrs: BTreeMap<String, Expression>,
    /// Relative `context` paths start here.
    base: PathBuf,
}

impl Definitions {
    fn target(&self, name: &str) -> Option<&RawTarget> {
        self.targets.iter().find(|t| t.name == name)
    }

    fn merge_target(&mut self, name: String, attrs: BTreeMap<String, Expression>, base: &Path) {
        match self.targets.iter_mut().find(|t| t.name == name) {
            Some(t) => t.attrs.extend(attrs),
            None => self.targets.push(RawTarget {
                name,
                attrs,
                base: base.to_owned(),
            }),
        }
    }

    fn set_variable(&mut self, name: String, default: Expression) {
        self.variables.retain(|(n, _)| *n != name);
        self.variables.push((name, default));
    }
}

/// The targets to build: those named in `wanted` (targets or groups), else the `default`
/// group (or target), else every target.
pub fn load(cwd: &Path, files: &[PathBuf], wanted: &[String]) -> Result<Vec<Target>> {
    let files: Vec<PathBuf> = if files.is_empty() {
        let found: Vec<PathBuf> = DEFAULT_FILES
            .iter()
            .map(|f| cwd.join(f))
            .filter(|p| p.is_file())
            .collect();
        if found.is_empty() {
            bail!(
                "no bake file here: looked for {}; name one with -f",
                DEFAULT_FILES.join(", ")
            );
        }
        found
    } else {
        files.iter().map(|f| cwd.join(f)).collect()
    };
    let mut defs = Definitions::default();
    for file in &files {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        read_file(&mut defs, file, &text, cwd).with_context(|| format!("in {}", file.display()))?;
    }
    evaluate(&defs, wanted, &|k| std::env::var(k).ok())
}

fn read_file(defs: &mut Definitions, file: &Path, text: &str, cwd: &Path) -> Result<()> {
    let name = file.file_name().unwrap_or_default().to_string_lossy();
    if name.ends_with(".hcl") {
        read_hcl(defs, text, cwd)
    } else if name.ends_with(".json") {
        read_json(defs, text, cwd)
    } else if name.ends_with(".yaml") || name.ends_with(".yml") {
        read_compose(defs, text, file.parent().unwrap_or(cwd))
    } else {
        // buildx guesses too: HCL is the common case, and JSON parses as HCL poorly.
        read_hcl(defs, text, cwd).or_else(|_| read_json(defs, text, cwd))
    }
}

fn read_hcl(defs: &mut Definitions, text: &str, cwd: &Path) -> Result<()> {
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
fn read_json(defs: &mut Definitions, text: &str, cwd: &Path) -> Result<()> {
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

fn json_expr(v: &serde_json::Value) -> Expression {
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

/// Compose: every service with a `build` section is a target.
fn read_compose(defs: &mut Definitions, text: &str, dir: &Path) -> Result<()> {
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
fn compose_map(v: &serde_json::Value) -> Option<Expression> {
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

/// Variables (defaults, then the environment), functions, then the selected targets.
fn evaluate(
    defs: &Definitions,
    wanted: &[String],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<Target>> {
    let mut ctx = EvalContext::new();
    declare_functions(&mut ctx);
    for (name, default) in &defs.variables {
        let default = default
            .evaluate(&ctx)
            .map_err(|e| anyhow!("variable {name}: {e}"))?;
        let value = match env(name) {
            Some(s) => from_env(&s, &default)
                .with_context(|| format!("variable {name} from the environment"))?,
            None => default,
        };
        ctx.declare_var(name.as_str(), value);
    }
    let names = select(defs, wanted, &ctx)?;
    let block = |raw: &RawTarget| -> Result<Vec<Target>> {
        let attrs = inherited(defs, raw, &ctx, &mut Vec::new())?;
        for (k, _) in attrs.iter().filter(|(k, _)| !KNOWN.contains(&k.as_str())) {
            eprintln!(
                "warning: target {}: attribute {k:?} ignored by depot bake",
                raw.name
            );
        }
        expand(&raw.name, raw, &attrs, &ctx)
    };
    let mut targets = Vec::new();
    for name in names {
        if let Some(raw) = defs.target(&name) {
            targets.extend(block(raw)?);
            continue;
        }
        let mut known: Vec<String> = defs.groups.keys().cloned().collect();
        let mut found = None;
        for raw in defs.targets.iter() {
            if !raw.attrs.contains_key("matrix") {
                known.push(raw.name.clone());
                continue;
            }
            for t in block(raw)? {
                if t.name == name {
                    found = Some(t);
                    break;
                }
                known.push(t.name);
            }
        }
        match found {
            Some(t) => targets.push(t),
            None => {
                known.sort();
                bail!(
                    "no target or group {name:?} (defined: {})",
                    known.join(", ")
                )
            }
        }
    }
    let mut seen = HashSet::new();
    for t in &targets {
        if !seen.insert(t.name.clone()) {
            bail!("target {} is defined twice (check matrix names)", t.name);
        }
    }
    Ok(targets)
}

/// An environment override takes the type of the default (`true`, `3`), else is a string.
fn from_env(s: &str, default: &Value) -> Result<Value> {
    Ok(match default {
        Value::Bool(_) => Value::Bool(
            s.parse()
                .map_err(|_| anyhow!("{s:?} is not true or false"))?,
        ),
        Value::Number(_) => {
            let n: f64 = s.parse().map_err(|_| anyhow!("{s:?} is not a number"))?;
            hcl::Number::from_f64(n).map_or(Value::Null, Value::Number)
        }
        _ => Value::String(s.to_owned()),
    })
}

/// Target names to build (blocks, or names matrix blocks give), groups expanded, in order,
/// each once.
fn select(defs: &Definitions, wanted: &[String], ctx: &EvalContext) -> Result<Vec<String>> {
    let wanted: Vec<String> = if !wanted.is_empty() {
        wanted.to_vec()
    } else if defs.groups.contains_key("default") || defs.target("default").is_some() {
        vec!["default".into()]
    } else {
        defs.targets.iter().map(|t| t.name.clone()).collect()
    };
    if wanted.is_empty() {
        bail!("the bake files define no targets");
    }
    let mut out = Vec::new();
    let mut stack: Vec<String> = Vec::new();
    fn visit(
        defs: &Definitions,
        name: &str,
        ctx: &EvalContext,
        out: &mut Vec<String>,
        stack: &mut Vec<String>,
    ) -> Result<()> {
        if let Some(group) = defs.groups.get(name) {
            if stack.iter().any(|s| s == name) {
                bail!("group {name} includes itself");
            }
            stack.push(name.to_owned());
            let members = strings(
                &group
                    .evaluate(ctx)
                    .map_err(|e| anyhow!("group {name}: {e}"))?,
            )
            .ok_or_else(|| anyhow!("group {name}: targets must be a list of names"))?;
            for m in members {
                visit(defs, &m, ctx, out, stack)?;
            }
            stack.pop();
        } else if !out.iter().any(|o| o == name) {
            // A target block, or a name one of the matrix targets gives (checked when expanded).
            out.push(name.to_owned());
        }
        Ok(())
    }
    for w in &wanted {
        visit(defs, w, ctx, &mut out, &mut stack)?;
    }
    Ok(out)
}

/// A target's attributes over those of the targets it `inherits` (nearest last).
fn inherited(
    defs: &Definitions,
    raw: &RawTarget,
    ctx: &EvalContext,
    stack: &mut Vec<String>,
) -> Result<BTreeMap<String, Expression>> {
    if stack.contains(&raw.name) {
        bail!("target {} inherits from itself", raw.name);
    }
    stack.push(raw.name.clone());
    let mut attrs = BTreeMap::new();
    if let Some(parents) = raw.attrs.get("inherits") {
        let parents = strings(
            &parents
                .evaluate(ctx)
                .map_err(|e| anyhow!("target {}: inherits: {e}", raw.name))?,
        )
        .ok_or_else(|| anyhow!("target {}: inherits must be a list of names", raw.name))?;
        for p in parents {
            let parent = defs
                .target(&p)
                .ok_or_else(|| anyhow!("target {} inherits from unknown target {p}", raw.name))?;
            let mut from_parent = inherited(defs, parent, ctx, stack)?;
            // A parent's matrix and name make it a family; they are not inherited.
            from_parent.remove("matrix");
            from_parent.remove("name");
            attrs.extend(from_parent);
        }
    }
    attrs.extend(
        raw.attrs
            .iter()
            .filter(|(k, _)| *k != "inherits")
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    stack.pop();
    Ok(attrs)
}

/// One target, or one per combination of its `matrix` values.
fn expand(
    block: &str,
    raw: &RawTarget,
    attrs: &BTreeMap<String, Expression>,
    ctx: &EvalContext,
) -> Result<Vec<Target>> {
    let Some(matrix) = attrs.get("matrix") else {
        return Ok(vec![to_target(block.to_owned(), raw, attrs, ctx)?]);
    };
    let matrix = matrix
        .evaluate(ctx)
        .map_err(|e| anyhow!("target {block}: matrix: {e}"))?;
    let Value::Object(axes) = matrix else {
        bail!("target {block}: matrix must be an object of lists");
    };
    let mut combos: Vec<Vec<(String, Value)>> = vec![Vec::new()];
    for (axis, values) in &axes {
        let Value::Array(values) = values else {
            bail!("target {block}: matrix.{axis} must be a list");
        };
        combos = combos
            .into_iter()
            .flat_map(|c| {
                values.iter().map(move |v| {
                    let mut c = c.clone();
                    c.push((axis.clone(), v.clone()));
                    c
                })
            })
            .collect();
    }
    let name_expr = attrs
        .get("name")
        .ok_or_else(|| anyhow!("target {block}: a matrix target needs a name expression"))?;
    combos
        .into_iter()
        .map(|combo| {
            let mut ctx = ctx.clone();
            for (k, v) in combo {
                ctx.declare_var(k.as_str(), v);
            }
            let name = match name_expr.evaluate(&ctx) {
                Ok(Value::String(s)) => s,
                Ok(other) => bail!("target {block}: name evaluated to {other}, not a string"),
                Err(e) => bail!("target {block}: name: {e}"),
            };
            to_target(name, raw, attrs, &ctx)
        })
        .collect()
}

fn to_target(
    name: String,
    raw: &RawTarget,
    attrs: &BTreeMap<String, Expression>,
    ctx: &EvalContext,
) -> Result<Target> {
    if !is_target_name(&name) {
        bail!(
            "target name {name:?}: use letters, digits, '_', '.', '-' (it becomes part of a tag)"
        );
    }
    let get = |k: &str| -> Result<Option<Value>> {
        attrs
            .get(k)
            .map(|e| e.evaluate(ctx))
            .transpose()
            .map_err(|e| anyhow!("target {name}: {k}: {e}"))
    };
    let string = |k: &str| -> Result<Option<String>> {
        match get(k)? {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => bail!("target {name}: {k} must be a string, not {other}"),
        }
    };
    let list = |k: &str| -> Result<Vec<String>> {
        match get(k)? {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(v) => {
                strings(&v).ok_or_else(|| anyhow!("target {name}: {k} must be a list of strings"))
            }
        }
    };
    let map = |k: &str| -> Result<Vec<(String, String)>> {
        match get(k)? {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Object(o)) => Ok(o
                .into_iter()
                .filter_map(|(k, v)| match v {
                    Value::Null => None,
                    Value::String(s) => Some((k, s)),
                    other => Some((k, other.to_string())),
                })
                .collect()),
            Some(_) => bail!("target {name}: {k} must be an object"),
        }
    };
    let context = raw
        .base
        .join(string("context")?.unwrap_or_else(|| ".".into()));
    let dockerfile = string("dockerfile")?.map(|f| context.join(f));
    let mut platforms = Vec::new();
    for p in list("platforms")? {
        let p = p.parse().map_err(|e| anyhow!("target {name}: {e}"))?;
        if !platforms.contains(&p) {
            platforms.push(p);
        }
    }
    let no_cache = matches!(get("no-cache")?, Some(Value::Bool(true)));
    Ok(Target {
        context,
        dockerfile,
        stage: string("target")?,
        args: map("args")?,
        labels: map("labels")?,
        // `cond ? "name" : ""` is how bake files leave a tag out.
        tags: list("tags")?
            .into_iter()
            .filter(|t| !t.is_empty())
            .collect(),
        platforms,
        no_cache,
        name,
    })
}

fn strings(v: &Value) -> Option<Vec<String>> {
    match v {
        Value::Array(a) => a.iter().map(|e| e.as_str().map(str::to_owned)).collect(),
        _ => None,
    }
}

/// Target names become part of tags (`<build-id>-<target>`).
fn is_target_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric() || c == '_')
        && s.len() <= 64
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

fn declare_functions(ctx: &mut EvalContext) {
    fn s(args: &FuncArgs, i: usize) -> String {
        args[i].as_str().unwrap_or_default().to_owned()
    }
    let strs = |n: usize| {
        let mut b = FuncDef::builder();
        for _ in 0..n {
            b = b.param(ParamType::String);
        }
        b
    };
    ctx.declare_func(
        "lower",
        strs(1).build(|a| Ok(s(&a, 0).to_lowercase().into())),
    );
    ctx.declare_func(
        "upper",
        strs(1).build(|a| Ok(s(&a, 0).to_uppercase().into())),
    );
    ctx.declare_func(
        "replace",
        strs(3).build(|a| Ok(s(&a, 0).replace(&s(&a, 1), &s(&a, 2)).into())),
    );
    ctx.declare_func(
        "trimprefix",
        strs(2).build(|a| {
            Ok(s(&a, 0)
                .strip_prefix(&s(&a, 1))
                .map_or_else(|| s(&a, 0), str::to_owned)
                .into())
        }),
    );
    ctx.declare_func(
        "trimsuffix",
        strs(2).build(|a| {
            Ok(s(&a, 0)
                .strip_suffix(&s(&a, 1))
                .map_or_else(|| s(&a, 0), str::to_owned)
                .into())
        }),
    );
    ctx.declare_func(
        "join",
        FuncDef::builder()
            .param(ParamType::String)
            .param(ParamType::array_of(ParamType::Any))
            .build(|a| {
                let items: Vec<String> = a[1]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                    .collect();
                Ok(items.join(&s(&a, 0)).into())
            }),
    );
    let any2 = || {
        FuncDef::builder()
            .param(ParamType::Any)
            .param(ParamType::Any)
    };
    ctx.declare_func("equal", any2().build(|a| Ok((a[0] == a[1]).into())));
    ctx.declare_func("notequal", any2().build(|a| Ok((a[0] != a[1]).into())));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval_hcl(text: &str, wanted: &[&str], env: &[(&str, &str)]) -> Result<Vec<Target>> {
        let mut defs = Definitions::default();
        read_hcl(&mut defs, text, Path::new("/w"))?;
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let wanted: Vec<String> = wanted.iter().map(|s| s.to_string()).collect();
        evaluate(&defs, &wanted, &|k| {
            env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
        })
    }

    const FILE: &str = r#"
variable "TAG" { default = "dev" }
variable "REGISTRY" { default = "ghcr.io/acme" }
group "default" { targets = ["web", "api"] }
group "all" { targets = ["default", "tools"] }
target "_common" {
  args = { VERSION = TAG }
  labels = { "org.opencontainers.image.version" = TAG }
}
target "web" {
  inherits = ["_common"]
  context = "web"
  dockerfile = "Containerfile"
  tags = ["${REGISTRY}/web:${TAG}", notequal(TAG, "dev") ? "${REGISTRY}/web:latest" : ""]
  platforms = ["linux/amd64", "linux/arm64"]
}
target "api" {
  inherits = ["_common"]
  context = "api"
  target = "final"
  tags = ["${REGISTRY}/api:${lower(TAG)}"]
}
target "tools" {
  name = "tools-${tool}"
  matrix = { tool = ["lint", "fmt"] }
  args = { TOOL = tool }
  no-cache = true
}
"#;

    #[test]
    fn hcl_targets_with_variables_groups_and_inherits() {
        let t = eval_hcl(FILE, &[], &[]).unwrap();
        let names: Vec<&str> = t.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["web", "api"]);
        let web = &t[0];
        assert_eq!(web.context, Path::new("/w/web"));
        assert_eq!(
            web.dockerfile.as_deref(),
            Some(Path::new("/w/web/Containerfile"))
        );
        assert_eq!(web.tags, ["ghcr.io/acme/web:dev"]);
        assert_eq!(web.platforms.len(), 2);
        assert_eq!(web.args, [("VERSION".to_owned(), "dev".to_owned())]);
        assert_eq!(t[1].stage.as_deref(), Some("final"));
        assert!(t[1].platforms.is_empty());
    }

    #[test]
    fn the_environment_overrides_variables() {
        let t = eval_hcl(FILE, &["api"], &[("TAG", "V2")]).unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].tags, ["ghcr.io/acme/api:v2"]);
        assert_eq!(t[0].args, [("VERSION".to_owned(), "V2".to_owned())]);
    }

    #[test]
    fn matrix_targets_expand_and_groups_nest() {
        let t = eval_hcl(FILE, &["all"], &[]).unwrap();
        let names: Vec<&str> = t.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["web", "api", "tools-lint", "tools-fmt"]);
        assert_eq!(t[3].args, [("TOOL".to_owned(), "fmt".to_owned())]);
        assert!(t[3].no_cache);
    }

    #[test]
    fn unknown_names_and_cycles_are_errors() {
        let e = eval_hcl(FILE, &["nope"], &[]).unwrap_err().to_string();
        assert!(
            e.contains("nope") && e.contains("web") && e.contains("tools-fmt"),
            "{e}"
        );
        let t = eval_hcl(FILE, &["tools-fmt"], &[]).unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].name, "tools-fmt");
        let e = eval_hcl(r#"group "a" { targets = ["a"] }"#, &["a"], &[]).unwrap_err();
        assert!(e.to_string().contains("itself"));
        let e = eval_hcl(r#"target "a" { inherits = ["a"] }"#, &[], &[]).unwrap_err();
        assert!(e.to_string().contains("itself"));
        let e = eval_hcl(r#"target "a b" {}"#, &[], &[]).unwrap_err();
        assert!(e.to_string().contains("target name"), "{e}");
        assert!(eval_hcl("target {", &[], &[]).is_err());
    }

    #[test]
    fn json_form_templates_strings() {
        let mut defs = Definitions::default();
        read_json(
            &mut defs,
            r#"{"variable": {"TAG": {"default": "1.0"}},
                "target": {"app": {"context": "src", "tags": ["app:${TAG}"], "platforms": ["linux/arm64"]}}}"#,
            Path::new("/w"),
        )
        .unwrap();
        let t = evaluate(&defs, &[], &|_| None).unwrap();
        assert_eq!(t[0].tags, ["app:1.0"]);
        assert_eq!(t[0].context, Path::new("/w/src"));
    }

    #[test]
    fn compose_services_with_build_sections() {
        let mut defs = Definitions::default();
        read_compose(
            &mut defs,
            r#"
services:
  web:
    image: acme/web:1
    build:
      context: ./web
      dockerfile: Containerfile
      args: ["A=1", "B=2"]
      platforms: [linux/amd64]
  api:
    build: api
  db:
    image: postgres:15
"#,
            Path::new("/proj"),
        )
        .unwrap();
        let t = evaluate(&defs, &[], &|_| None).unwrap();
        let names: Vec<&str> = t.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["web", "api"]);
        assert_eq!(t[0].context, Path::new("/proj/./web"));
        assert_eq!(t[0].tags, ["acme/web:1"]);
        assert_eq!(t[0].args.len(), 2);
        assert_eq!(t[1].context, Path::new("/proj/api"));
    }

    #[test]
    fn later_files_override_earlier_attributes() {
        let mut defs = Definitions::default();
        let first = "target \"a\" {\n context = \"x\"\n tags = [\"a:1\"]\n}";
        read_hcl(&mut defs, first, Path::new("/w")).unwrap();
        read_hcl(
            &mut defs,
            r#"target "a" { tags = ["a:2"] }"#,
            Path::new("/w"),
        )
        .unwrap();
        let t = evaluate(&defs, &[], &|_| None).unwrap();
        assert_eq!(t[0].tags, ["a:2"]);
        assert_eq!(t[0].context, Path::new("/w/x"));
    }
}
