//! `depot bake --set TARGET.KEY=VALUE`: what buildx lets a command line override in the bake
//! files. `TARGET` is a target name or a pattern (`*`, `web-*`); `KEY` is `context`,
//! `dockerfile`, `tags`, `platform`, `target`, `args.NAME`, `labels.NAME`, `no-cache`, `pull`,
//! `secrets`, `ssh`, `contexts.NAME`, `cache-from`, `cache-to`, `network` or `attest`. A list
//! set several times gathers the values and replaces the file's; `KEY+=VALUE` appends to it.

use std::collections::HashSet;
use std::path::Path;

use anyhow::{anyhow, bail, Result};

use crate::build::{Cache, Passthrough, Target};

/// The keys `--set` takes (for the message that lists them).
const KEYS: &str = "context, dockerfile, tags, platform, target, args.NAME, labels.NAME, \
                    no-cache, pull, secrets, ssh, contexts.NAME, cache-from, cache-to, network, attest";

/// An `attest` entry (`type=provenance,mode=max`, `type=sbom`, `type=sbom,disabled=true`) as the
/// builder's `--provenance`/`--sbom` value.
pub fn attest(p: &mut Passthrough, spec: &str) -> Result<()> {
    let mut kind = None;
    let mut rest = Vec::new();
    let mut disabled = false;
    for field in spec.split(',') {
        match field.split_once('=') {
            Some(("type", t)) => kind = Some(t),
            Some(("disabled", v)) => disabled = v == "true",
            _ => rest.push(field),
        }
    }
    let value = if disabled {
        "false".to_owned()
    } else if rest.is_empty() {
        "true".to_owned()
    } else {
        rest.join(",")
    };
    match kind {
        Some("provenance") => p.provenance = Some(value),
        Some("sbom") => p.sbom = Some(value),
        _ => bail!("attest {spec:?}: type=provenance or type=sbom"),
    }
    Ok(())
}

/// `*` and `?` as in shell patterns.
fn matches(pattern: &str, name: &str) -> bool {
    fn go(p: &[u8], n: &[u8]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], n) || (!n.is_empty() && go(p, &n[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &n[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &n[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), name.as_bytes())
}

fn boolean(key: &str, value: &str) -> Result<bool> {
    value
        .parse()
        .map_err(|_| anyhow!("{key}={value:?}: true or false"))
}

/// Applies every `--set` to the targets, in order. `cwd`: what a `context` is relative to.
pub fn apply(targets: &mut [Target], sets: &[String], cwd: &Path) -> Result<()> {
    // (target, key) pairs a plain `=` has replaced already: later ones add to them.
    let mut replaced: HashSet<(String, String)> = HashSet::new();
    for set in sets {
        let (lhs, value) = set
            .split_once('=')
            .ok_or_else(|| anyhow!("--set {set:?}: expected TARGET.KEY=VALUE"))?;
        let (lhs, append) = match lhs.strip_suffix('+') {
            Some(l) => (l, true),
            None => (lhs, false),
        };
        let (pattern, key) = lhs
            .split_once('.')
            .ok_or_else(|| anyhow!("--set {set:?}: expected TARGET.KEY=VALUE"))?;
        let mut any = false;
        for t in targets.iter_mut().filter(|t| matches(pattern, &t.name)) {
            any = true;
            // Replace the file's list the first time, gather after that, append with `+=`.
            let fresh = !append && replaced.insert((t.name.clone(), key.to_owned()));
            one(t, key, value, fresh, cwd).map_err(|e| anyhow!("--set {set:?}: {e}"))?;
        }
        if !any {
            let names: Vec<&str> = targets.iter().map(|t| t.name.as_str()).collect();
            bail!(
                "--set {set:?}: no target matches {pattern:?} (building: {})",
                names.join(", ")
            );
        }
    }
    Ok(())
}

/// Sets `key` of `t`; `fresh`: a list is replaced rather than added to.
fn one(t: &mut Target, key: &str, value: &str, fresh: bool, cwd: &Path) -> Result<()> {
    fn list<T>(v: &mut Vec<T>, fresh: bool, items: impl IntoIterator<Item = T>) {
        if fresh {
            v.clear();
        }
        v.extend(items);
    }
    fn pair(v: &mut Vec<(String, String)>, k: &str, value: &str) {
        v.retain(|(name, _)| name != k);
        v.push((k.to_owned(), value.to_owned()));
    }
    let p = &mut t.passthrough;
    match key {
        "context" => {
            // The Dockerfile stays where it was relative to the context.
            let old = t.context.clone();
            t.context = cwd.join(value);
            if let Some(f) = &t.dockerfile {
                if let Ok(rel) = f.strip_prefix(&old) {
                    t.dockerfile = Some(t.context.join(rel));
                }
            }
        }
        "dockerfile" => t.dockerfile = Some(t.context.join(value)),
        "tags" => list(&mut t.tags, fresh, [value.to_owned()]),
        "platform" | "platforms" => {
            let mut parsed = Vec::new();
            for s in value.split(',').filter(|s| !s.is_empty()) {
                parsed.push(s.parse().map_err(|e| anyhow!("{e}"))?);
            }
            list(&mut t.platforms, fresh, parsed);
        }
        "target" => t.stage = Some(value.to_owned()),
        "no-cache" => t.no_cache = boolean(key, value)?,
        "pull" => p.pull = boolean(key, value)?,
        "network" => p.network = Some(value.to_owned()),
        "secrets" | "secret" => list(&mut p.secrets, fresh, [value.to_owned()]),
        "ssh" => list(&mut p.ssh, fresh, [value.to_owned()]),
        "cache-from" => list(
            &mut p.cache_from,
            fresh,
            [Cache::parse(value).map_err(|e| anyhow!(e))?],
        ),
        "cache-to" => list(
            &mut p.cache_to,
            fresh,
            [Cache::parse(value).map_err(|e| anyhow!(e))?],
        ),
        "attest" => attest(p, value)?,
        "output" => {
            bail!("depot bake decides where images go: --save (the depot registry), --push, --load")
        }
        _ => match key.split_once('.') {
            Some(("args", name)) if !name.is_empty() => pair(&mut t.args, name, value),
            Some(("labels", name)) if !name.is_empty() => pair(&mut t.labels, name, value),
            Some(("contexts", name)) if !name.is_empty() => pair(&mut p.contexts, name, value),
            _ => bail!("unknown key {key:?} (known: {KEYS})"),
        },
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(name: &str) -> Target {
        Target {
            name: name.into(),
            context: "/w".into(),
            dockerfile: Some("/w/Dockerfile".into()),
            stage: None,
            args: vec![("A".into(), "1".into())],
            labels: vec![],
            tags: vec!["acme/web:file".into()],
            platforms: vec!["linux/amd64".parse().unwrap()],
            no_cache: false,
            passthrough: Passthrough::default(),
        }
    }

    fn sets(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn sets_replace_gather_and_append_as_buildx_does() {
        let mut ts = vec![target("web"), target("api"), target("worker")];
        apply(
            &mut ts,
            &sets(&[
                "web.tags=acme/web:one",
                "web.tags=acme/web:two",
                "api.tags+=acme/api:more",
                "*.platform=linux/arm64,linux/amd64",
                "w*.args.A=2",
                "web.args.B=3",
                "api.no-cache=true",
                "*.cache-to=type=registry,mode=max",
                "web.context=sub",
                "worker.attest=type=provenance,mode=max",
            ]),
            Path::new("/w"),
        )
        .unwrap();
        assert_eq!(ts[0].tags, ["acme/web:one", "acme/web:two"]);
        assert_eq!(ts[1].tags, ["acme/web:file", "acme/api:more"]);
        assert_eq!(ts[2].platforms.len(), 2);
        assert_eq!(
            ts[0].args,
            [
                ("A".to_owned(), "2".to_owned()),
                ("B".to_owned(), "3".to_owned())
            ]
        );
        assert_eq!(ts[1].args, [("A".to_owned(), "1".to_owned())]);
        assert!(ts[1].no_cache);
        assert_eq!(ts[1].passthrough.cache_to, [Cache::Project { max: true }]);
        assert_eq!(ts[0].context, Path::new("/w/sub"));
        assert_eq!(
            ts[0].dockerfile.as_deref(),
            Some(Path::new("/w/sub/Dockerfile"))
        );
        assert_eq!(ts[2].passthrough.provenance.as_deref(), Some("mode=max"));
    }

    #[test]
    fn a_set_that_cannot_apply_says_why() {
        let mut ts = vec![target("web")];
        let err = |s: &str| {
            apply(&mut ts.clone(), &sets(&[s]), Path::new("/w"))
                .unwrap_err()
                .to_string()
        };
        assert!(err("api.tags=x").contains("no target matches \"api\" (building: web)"));
        assert!(err("web.colour=red").contains("unknown key \"colour\""));
        assert!(err("web.no-cache=maybe").contains("true or false"));
        assert!(err("web.output=type=docker").contains("--save"));
        assert!(err("webtags").contains("TARGET.KEY=VALUE"));
        assert!(err("web.platform=linux").contains("linux"));
        apply(&mut ts, &sets(&["web.pull=true"]), Path::new("/w")).unwrap();
        assert!(ts[0].passthrough.pull);
    }

    #[test]
    fn patterns_match_like_a_shell() {
        assert!(matches("*", "web"));
        assert!(matches("w?b", "web"));
        assert!(matches("web-*", "web-prod"));
        assert!(!matches("web-*", "api-prod"));
        assert!(!matches("web", "web2"));
    }

    #[test]
    fn attest_entries_become_builder_values() {
        let mut p = Passthrough::default();
        attest(&mut p, "type=provenance,mode=max").unwrap();
        attest(&mut p, "type=sbom").unwrap();
        assert_eq!(
            (p.provenance.as_deref(), p.sbom.as_deref()),
            (Some("mode=max"), Some("true"))
        );
        attest(&mut p, "type=sbom,disabled=true").unwrap();
        assert_eq!(p.sbom.as_deref(), Some("false"));
        assert!(attest(&mut p, "type=signature").is_err());
    }
}
