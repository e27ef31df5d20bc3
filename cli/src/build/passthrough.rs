//! The buildx flags `depot build` hands to its builder: `--secret`, `--ssh`, `--build-context`,
//! `--cache-from`/`--cache-to`, `--provenance`/`--sbom`, `--pull`, `--network`. Each is checked
//! before any builder starts, and refused with what helps when the chosen builder cannot do it
//! (buildah makes no attestations and caches only in a registry; buildx's network modes are
//! `default`, `none` and `host`).
//!
//! `--cache-to type=registry` / `--cache-from type=registry` without a `ref` mean the project's
//! own cache in the depot registry (`<registry>/<project>/cache`), written by each builder with
//! its build's push token (so `--save` is needed to write it) and kept as long as the builds
//! that wrote it.

use std::ffi::OsString;

use anyhow::{bail, Result};

use super::builder::Kind;

/// The tag buildx keeps the project's cache under.
const PROJECT_CACHE_TAG: &str = "buildcache";

/// Where a build cache is read from or written to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cache {
    /// The project's cache in the depot registry (`type=registry` with no `ref`).
    Project { max: bool },
    /// A registry reference (`type=registry,ref=REF` or just `REF`).
    Registry { reference: String, max: bool },
    /// Another buildx cache backend (`type=local,...`, `type=gha`, `type=inline`, ...), as given.
    Other(String),
}

/// As buildx writes it (`--print`).
impl std::fmt::Display for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cache::Project { max } => {
                f.write_str("type=registry")?;
                if *max {
                    f.write_str(",mode=max")?;
                }
                Ok(())
            }
            Cache::Registry { reference, max } => f.write_str(&registry_spec(reference, *max)),
            Cache::Other(spec) => f.write_str(spec),
        }
    }
}

impl Cache {
    /// Reads a buildx cache spec.
    pub fn parse(spec: &str) -> std::result::Result<Cache, String> {
        if spec.trim().is_empty() {
            return Err("an empty cache spec".into());
        }
        if !spec.contains('=') {
            return Ok(Cache::Registry {
                reference: spec.to_owned(),
                max: false,
            });
        }
        let mut kind = None;
        let mut reference = None;
        let mut max = false;
        for field in spec.split(',') {
            let (k, v) = field
                .split_once('=')
                .ok_or_else(|| format!("{spec:?}: {field:?} is not KEY=VALUE"))?;
            match k {
                "type" => kind = Some(v),
                "ref" => reference = Some(v.to_owned()),
                "mode" => max = v == "max",
                _ => {}
            }
        }
        match (kind.unwrap_or("registry"), reference) {
            ("registry", None) => Ok(Cache::Project { max }),
            ("registry", Some(reference)) => Ok(Cache::Registry { reference, max }),
            _ => Ok(Cache::Other(spec.to_owned())),
        }
    }

    fn is_project(&self) -> bool {
        matches!(self, Cache::Project { .. })
    }
}

/// The pass-through options of one target (from flags, or a bake target's attributes).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Passthrough {
    /// `id=ID,src=PATH` or `id=ID,env=VAR` (buildx's form; `type=` and `source=` too).
    pub secrets: Vec<String>,
    /// `default` or `ID=SOCKET|KEY[,KEY]`.
    pub ssh: Vec<String>,
    /// `NAME=PATH|URL|docker-image://...`.
    pub contexts: Vec<(String, String)>,
    pub cache_from: Vec<Cache>,
    pub cache_to: Vec<Cache>,
    /// Always pull the base images.
    pub pull: bool,
    pub network: Option<String>,
    /// buildx's `--provenance` and `--sbom` values (`true`, `mode=max`, `false`, ...).
    pub provenance: Option<String>,
    pub sbom: Option<String>,
}

/// An attestation value that asks for one (`false` and `0` ask for none).
fn wants(value: &Option<String>) -> bool {
    value
        .as_deref()
        .is_some_and(|v| !matches!(v, "false" | "0" | "disabled=true"))
}

impl Passthrough {
    /// Whether attestations are asked for: buildx then pushes each output's whole index itself.
    pub fn attestations(&self) -> bool {
        wants(&self.provenance) || wants(&self.sbom)
    }

    /// Whether the project's own cache is read or written.
    pub fn uses_project_cache(&self) -> bool {
        self.cache_from
            .iter()
            .chain(&self.cache_to)
            .any(Cache::is_project)
    }

    /// Refuses, before anything runs, what `kind` cannot do or what cannot work (`saving`:
    /// with `--save`). `what` names the target in messages.
    pub fn check(&self, kind: Kind, saving: bool, what: &str) -> Result<()> {
        for s in &self.secrets {
            check_secret(s).map_err(|e| anyhow::anyhow!("{what}: --secret {s:?}: {e}"))?;
        }
        if self.cache_to.iter().any(Cache::is_project) && !saving {
            bail!(
                "{what}: --cache-to type=registry without ref= writes the project's cache, with \
                 the build's push token: add --save, or name a ref=REGISTRY/REPOSITORY"
            );
        }
        match kind {
            Kind::Buildah => {
                if self.attestations() {
                    bail!(
                        "{what}: --provenance and --sbom need --builder buildx (buildah makes no \
                         attestations); pass --provenance=false --sbom=false to build without"
                    );
                }
                if let Some(Cache::Other(spec)) = self
                    .cache_from
                    .iter()
                    .chain(&self.cache_to)
                    .find(|c| matches!(c, Cache::Other(_)))
                {
                    bail!(
                        "{what}: buildah keeps a build cache only in a registry: {spec:?} needs \
                         --builder buildx, or use type=registry[,ref=REGISTRY/REPOSITORY]"
                    );
                }
            }
            Kind::Buildx => {
                if let Some(n) = &self.network {
                    if !matches!(n.as_str(), "default" | "none" | "host") {
                        bail!("{what}: --network {n:?}: buildx takes default, none or host");
                    }
                }
            }
        }
        Ok(())
    }

    /// The builder's flags. `project_cache`: the project's cache repository as the builder
    /// reaches it (`host/project/cache`), when there is one.
    pub fn args(&self, kind: Kind, project_cache: Option<&str>) -> Vec<OsString> {
        let mut args: Vec<OsString> = Vec::new();
        for s in &self.secrets {
            args.extend(["--secret".into(), s.into()]);
        }
        for s in &self.ssh {
            args.extend(["--ssh".into(), s.into()]);
        }
        for (name, value) in &self.contexts {
            args.extend(["--build-context".into(), format!("{name}={value}").into()]);
        }
        if self.pull {
            args.push(match kind {
                // Docker's --pull: always look for newer base images.
                Kind::Buildah => "--pull=always".into(),
                Kind::Buildx => "--pull".into(),
            });
        }
        match (&self.network, kind) {
            // buildah's default is its own private network, buildx's `default`.
            (Some(n), Kind::Buildah) if n == "default" => {}
            (Some(n), _) => args.extend(["--network".into(), n.into()]),
            (None, _) => {}
        }
        let caches = [
            ("--cache-from", &self.cache_from),
            ("--cache-to", &self.cache_to),
        ];
        match kind {
            Kind::Buildah => {
                // buildah keeps layers to cache only with --layers; it takes a repository.
                let any = caches.iter().any(|(_, c)| !c.is_empty());
                if any {
                    args.push("--layers".into());
                }
                for (flag, list) in caches {
                    for c in list {
                        let repo = match c {
                            Cache::Project { .. } => project_cache.map(str::to_owned),
                            Cache::Registry { reference, .. } => Some(repository_of(reference)),
                            Cache::Other(_) => None,
                        };
                        if let Some(repo) = repo {
                            args.extend([flag.into(), repo.into()]);
                        }
                    }
                }
            }
            Kind::Buildx => {
                for (flag, list) in caches {
                    for c in list {
                        let spec = match c {
                            Cache::Project { max } => project_cache
                                .map(|r| registry_spec(&format!("{r}:{PROJECT_CACHE_TAG}"), *max)),
                            Cache::Registry { reference, max } => {
                                Some(registry_spec(reference, *max))
                            }
                            Cache::Other(spec) => Some(spec.clone()),
                        };
                        if let Some(spec) = spec {
                            args.extend([flag.into(), spec.into()]);
                        }
                    }
                }
                if let Some(p) = &self.provenance {
                    args.push(format!("--provenance={p}").into());
                }
                if let Some(s) = &self.sbom {
                    args.push(format!("--sbom={s}").into());
                }
            }
        }
        args
    }
}

fn registry_spec(reference: &str, max: bool) -> String {
    let mut spec = format!("type=registry,ref={reference}");
    if max {
        spec.push_str(",mode=max");
    }
    spec
}

/// A reference without its tag or digest (buildah names cache images itself).
fn repository_of(reference: &str) -> String {
    let without_digest = reference.split('@').next().unwrap_or(reference);
    match without_digest.rsplit_once(':') {
        // A colon after the last slash is a tag; before it, a port.
        Some((repo, tag)) if !tag.contains('/') => repo.to_owned(),
        _ => without_digest.to_owned(),
    }
}

/// A secret as buildx takes it: an `id`, and its source a file that exists or an environment
/// variable that is set (checked here, so a typo fails at once, not deep in a build).
fn check_secret(spec: &str) -> std::result::Result<(), String> {
    let mut id = None;
    let mut src = None;
    let mut env = None;
    for field in spec.split(',') {
        match field.split_once('=') {
            Some(("id", v)) => id = Some(v),
            Some(("src" | "source", v)) => src = Some(v),
            Some(("env", v)) => env = Some(v),
            Some(("type", "file" | "env")) => {}
            Some(("type", other)) => return Err(format!("type {other:?}: file or env")),
            _ => {
                return Err(format!(
                    "{field:?}: expected id=ID,src=PATH or id=ID,env=VAR"
                ))
            }
        }
    }
    let id = id.filter(|i| !i.is_empty()).ok_or("no id=")?;
    match (src, env) {
        (Some(path), _) if !std::path::Path::new(path).is_file() => {
            Err(format!("secret {id}: no file {path}"))
        }
        (None, Some(var)) if std::env::var_os(var).is_none() => Err(format!(
            "secret {id}: environment variable {var} is not set"
        )),
        (None, None) if std::env::var_os(id).is_none() => Err(format!(
            "secret {id}: give src=PATH or env=VAR (or set the environment variable {id})"
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: Vec<OsString>) -> Vec<String> {
        args.into_iter().map(|a| a.into_string().unwrap()).collect()
    }

    #[test]
    fn cache_specs_read_as_buildx_writes_them() {
        assert_eq!(
            Cache::parse("type=registry").unwrap(),
            Cache::Project { max: false }
        );
        assert_eq!(
            Cache::parse("type=registry,mode=max").unwrap(),
            Cache::Project { max: true }
        );
        assert_eq!(
            Cache::parse("type=registry,ref=ghcr.io/acme/cache:web,mode=max").unwrap(),
            Cache::Registry {
                reference: "ghcr.io/acme/cache:web".into(),
                max: true
            }
        );
        assert_eq!(
            Cache::parse("ghcr.io/acme/cache").unwrap(),
            Cache::Registry {
                reference: "ghcr.io/acme/cache".into(),
                max: false
            }
        );
        assert_eq!(
            Cache::parse("type=local,dest=/tmp/c").unwrap(),
            Cache::Other("type=local,dest=/tmp/c".into())
        );
        assert!(Cache::parse("type=registry,oops").is_err());
        assert!(Cache::parse("").is_err());
    }

    #[test]
    fn each_builder_gets_its_own_spelling() {
        let p = Passthrough {
            ssh: vec!["default".into()],
            contexts: vec![("extra".into(), "../shared".into())],
            cache_from: vec![
                Cache::Project { max: false },
                Cache::Registry {
                    reference: "127.0.0.1:5000/acme/cache:web".into(),
                    max: false,
                },
            ],
            cache_to: vec![Cache::Project { max: true }],
            pull: true,
            network: Some("host".into()),
            ..Passthrough::default()
        };
        let buildah = strings(p.args(Kind::Buildah, Some("reg:5000/p1/cache")));
        assert_eq!(
            buildah,
            [
                "--ssh",
                "default",
                "--build-context",
                "extra=../shared",
                "--pull=always",
                "--network",
                "host",
                "--layers",
                "--cache-from",
                "reg:5000/p1/cache",
                "--cache-from",
                "127.0.0.1:5000/acme/cache",
                "--cache-to",
                "reg:5000/p1/cache",
            ]
        );
        let buildx = strings(p.args(Kind::Buildx, Some("reg:5000/p1/cache")));
        assert!(buildx.contains(&"--pull".to_owned()));
        assert!(buildx.windows(2).any(|w| w
            == [
                "--cache-to",
                "type=registry,ref=reg:5000/p1/cache:buildcache,mode=max"
            ]));
        assert!(buildx.windows(2).any(|w| w
            == [
                "--cache-from",
                "type=registry,ref=127.0.0.1:5000/acme/cache:web"
            ]));
        let defaults = Passthrough {
            network: Some("default".into()),
            provenance: Some("mode=max".into()),
            sbom: Some("true".into()),
            ..Passthrough::default()
        };
        assert!(strings(defaults.args(Kind::Buildah, None)).is_empty());
        assert_eq!(
            strings(defaults.args(Kind::Buildx, None)),
            [
                "--network",
                "default",
                "--provenance=mode=max",
                "--sbom=true"
            ]
        );
    }

    #[test]
    fn what_a_builder_cannot_do_is_refused_with_what_helps() {
        let attest = Passthrough {
            provenance: Some("mode=max".into()),
            ..Passthrough::default()
        };
        let err = attest.check(Kind::Buildah, true, "the build").unwrap_err();
        assert!(err.to_string().contains("need --builder buildx"), "{err}");
        attest.check(Kind::Buildx, true, "the build").unwrap();
        let off = Passthrough {
            provenance: Some("false".into()),
            sbom: Some("0".into()),
            ..Passthrough::default()
        };
        off.check(Kind::Buildah, true, "the build").unwrap();

        let local = Passthrough {
            cache_to: vec![Cache::Other("type=local,dest=/tmp/c".into())],
            ..Passthrough::default()
        };
        let err = local.check(Kind::Buildah, true, "target web").unwrap_err();
        assert!(
            err.to_string().starts_with("target web: buildah keeps"),
            "{err}"
        );
        let project = Passthrough {
            cache_to: vec![Cache::Project { max: false }],
            ..Passthrough::default()
        };
        let err = project
            .check(Kind::Buildah, false, "the build")
            .unwrap_err();
        assert!(err.to_string().contains("add --save"), "{err}");
        let net = Passthrough {
            network: Some("ns:/proc/1/ns/net".into()),
            ..Passthrough::default()
        };
        net.check(Kind::Buildah, true, "the build").unwrap();
        assert!(net.check(Kind::Buildx, true, "the build").is_err());
    }

    #[test]
    fn secrets_are_checked_before_anything_runs() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token.txt");
        std::fs::write(&file, "s3cret").unwrap();
        assert!(check_secret(&format!("id=npm,src={}", file.display())).is_ok());
        assert!(check_secret(&format!("id=npm,type=file,source={}", file.display())).is_ok());
        assert!(check_secret("id=path,env=PATH").is_ok());
        let err = check_secret("id=npm,src=/no/such/file").unwrap_err();
        assert!(err.contains("no file /no/such/file"), "{err}");
        let err = check_secret("id=npm,env=DEPOT_TEST_NO_SUCH_VARIABLE").unwrap_err();
        assert!(
            err.contains("DEPOT_TEST_NO_SUCH_VARIABLE is not set"),
            "{err}"
        );
        assert!(check_secret("src=/x").unwrap_err().contains("no id="));
        assert!(check_secret("id=a,type=ssh").is_err());
        assert!(check_secret("id=a,bogus").is_err());
    }

    #[test]
    fn a_cache_reference_loses_its_tag_not_its_port() {
        assert_eq!(repository_of("reg:5000/a/b:tag"), "reg:5000/a/b");
        assert_eq!(repository_of("reg:5000/a/b"), "reg:5000/a/b");
        assert_eq!(repository_of("a/b@sha256:00"), "a/b");
    }
}
