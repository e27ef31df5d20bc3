//! Bake files to [`Target`]s: the part of `docker buildx bake` that maps targets to builds.
//!
//! HCL (parsed and evaluated by `hcl-rs`) and its JSON form become one set of definitions:
//! `variable` blocks (a default, overridden by the environment variable of the same name),
//! `group` blocks (`targets`), and `target` blocks with `context`, `dockerfile`, `tags`,
//! `platforms`, `args`, `labels`, `target`, `no-cache`, `inherits`, `matrix` (with `name`), and
//! what is handed to the builder: `secret`, `ssh`, `contexts`, `cache-from`, `cache-to`,
//! `pull`, `network`, `attest`.
//! Expressions may use the variables, `${...}` templates, conditionals and a few of bake's
//! functions (`lower`, `upper`, `join`, `replace`, `trimprefix`, `trimsuffix`, `equal`,
//! `notequal`). Compose files contribute their services that have a `build` section (no
//! `${VAR}` interpolation there). Several files merge in order: a later file's attributes
//! override an earlier file's for the same target; `--set TARGET.KEY=VALUE` overrides them all
//! ([`overrides`]), and `--print` shows the result as buildx does ([`print`]). Other bake
//! attributes (`output`, ...) are reported as ignored.
//!
//! Paths: an HCL/JSON `context` is relative to the current directory, a Compose `context` to the
//! Compose file's directory, and `dockerfile` to the context, as buildx has them.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context as _, Result};
use hcl::eval::{Context as EvalContext, Evaluate};
use hcl::expr::Expression;
use hcl::Value;

use super::{Cache, Passthrough, Target};

mod compose;
mod functions;
mod hcl_files;
pub mod overrides;
pub mod print;
#[cfg(test)]
mod tests;

use compose::read_compose;
use functions::declare_functions;
use hcl_files::{read_hcl, read_json};

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
const KNOWN: [&str; 19] = [
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
    "secret",
    "ssh",
    "contexts",
    "cache-from",
    "cache-to",
    "pull",
    "network",
    "attest",
];

/// Everything the files define, before evaluation.
#[derive(Default, Debug)]
pub(super) struct Definitions {
    pub(super) variables: Vec<(String, Expression)>,
    pub(super) groups: BTreeMap<String, Expression>,
    /// In order of first definition.
    pub(super) targets: Vec<RawTarget>,
}

#[derive(Debug)]
pub(super) struct RawTarget {
    pub(super) name: String,
    pub(super) attrs: BTreeMap<String, Expression>,
    /// Relative `context` paths start here.
    pub(super) base: PathBuf,
}

impl Definitions {
    pub(super) fn target(&self, name: &str) -> Option<&RawTarget> {
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
    let caches = |k: &str| -> Result<Vec<Cache>> {
        list(k)?
            .iter()
            .map(|c| Cache::parse(c).map_err(|e| anyhow!("target {name}: {k}: {e}")))
            .collect()
    };
    let mut passthrough = Passthrough {
        secrets: list("secret")?,
        ssh: list("ssh")?,
        contexts: map("contexts")?,
        cache_from: caches("cache-from")?,
        cache_to: caches("cache-to")?,
        pull: matches!(get("pull")?, Some(Value::Bool(true))),
        network: string("network")?,
        ..Passthrough::default()
    };
    for a in list("attest")? {
        overrides::attest(&mut passthrough, &a).map_err(|e| anyhow!("target {name}: {e}"))?;
    }
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
        passthrough,
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
