//! The builders `depot build` drives: `buildah` (daemonless; runs anywhere, including CI
//! containers, with the vfs storage driver and chroot isolation) or `docker buildx build`
//! (BuildKit). Each build of one platform is one builder process, so several platforms build at
//! once, each as its own native builder would.
//!
//! Registry credentials never appear on a command line: buildah gets an auth file, buildx a
//! temporary Docker config whose credential helper is this binary ([`super::credhelper`]).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context as _, Result};
use base64::Engine;
use serde_json::json;
use tokio::process::Command;

use super::{credhelper, runner, Target};
use crate::oci::manifest::Platform;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    Buildah,
    Buildx,
}

/// A builder found on this machine.
pub struct Builder {
    pub kind: Kind,
    program: PathBuf,
    /// Whether it was chosen by `--builder` rather than found.
    forced: bool,
    /// buildx's own progress output (`rawjson`), when asked for.
    pub buildx_progress: Option<&'static str>,
}

/// A registry reference to push one image to, and how.
pub struct Dest {
    /// `host[:port]/repository:tag`.
    pub reference: String,
    pub auth: Option<Auth>,
    /// Plain HTTP.
    pub insecure: bool,
    /// The project's build cache on the same registry (`host/project/cache`), which the
    /// build's push token may write.
    pub cache: Option<String>,
}

/// Credentials for one registry host.
#[derive(Clone)]
pub struct Auth {
    pub host: String,
    pub username: String,
    pub secret: String,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("host", &self.host)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl Builder {
    /// `forced`, or buildah when it is installed, else docker (with buildx).
    pub fn choose(forced: Option<Kind>) -> Result<Builder> {
        let find = |kind: Kind| {
            let name = match kind {
                Kind::Buildah => "buildah",
                Kind::Buildx => "docker",
            };
            which::which(name).ok().map(|program| Builder {
                kind,
                program,
                forced: forced.is_some(),
                buildx_progress: None,
            })
        };
        match forced {
            Some(Kind::Buildah) => find(Kind::Buildah)
                .ok_or_else(|| anyhow!("--builder buildah: buildah is not on PATH (apt-get install buildah)")),
            Some(Kind::Buildx) => find(Kind::Buildx)
                .ok_or_else(|| anyhow!("--builder buildx: docker is not on PATH")),
            None => find(Kind::Buildah).or_else(|| find(Kind::Buildx)).ok_or_else(|| {
                anyhow!("no builder found: install buildah (apt-get install buildah) or Docker with the buildx plugin")
            }),
        }
    }

    pub fn describe(&self) -> String {
        let what = match self.kind {
            Kind::Buildah => "buildah",
            Kind::Buildx => "docker buildx",
        };
        let why = if self.forced {
            "chosen by --builder"
        } else {
            "found on PATH; --builder buildah|buildx to choose"
        };
        format!("{what} ({}, {why})", self.program.display())
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.program);
        if self.kind == Kind::Buildx {
            cmd.args(["buildx", "build"]);
            if let Some(mode) = self.buildx_progress {
                cmd.env("BUILDKIT_PROGRESS", mode);
            }
        } else {
            cmd.arg("build");
        }
        cmd
    }

    /// Builds one platform of `target` (`None`: the builder's own) and pushes the image to
    /// `dest`; returns the digest of the manifest pushed.
    pub async fn build_and_push(
        &self,
        target: &Target,
        platform: Option<&Platform>,
        dest: &Dest,
        label: &str,
        quiet: bool,
    ) -> Result<String> {
        let tmp = tempfile::tempdir().context("creating a temporary directory")?;
        match self.kind {
            Kind::Buildah => {
                let iid = self
                    .build_local(target, platform, &[], tmp.path(), label, quiet, Some(dest))
                    .await?;
                let digest = tmp.path().join("digest");
                let mut push = self.buildah(["push"]);
                push.arg("--digestfile").arg(&digest);
                if dest.insecure {
                    push.arg("--tls-verify=false");
                }
                if let Some(auth) = &dest.auth {
                    let file = write_auth_file(tmp.path(), "push-auth.json", auth)?;
                    push.arg("--authfile").arg(file);
                }
                push.arg(&iid).arg(format!("docker://{}", dest.reference));
                runner::run(push, label, quiet).await?;
                read_trimmed(&digest)
            }
            Kind::Buildx => {
                let metadata = tmp.path().join("metadata.json");
                let mut cmd = self.command();
                let pass = &target.passthrough;
                if pass.attestations() {
                    // Attestations make each output an index of its own: buildx builds every
                    // platform of the target in one go and pushes that whole index.
                    cmd.args(common_args(target, target.platforms.iter()));
                    cmd.args(pass.args(Kind::Buildx, dest.cache.as_deref()));
                } else {
                    cmd.args(common_args(target, platform.into_iter()));
                    // One platform's image, not an index with attestations: the registry
                    // assembles the index over the platforms.
                    let plain = super::Passthrough {
                        provenance: None,
                        sbom: None,
                        ..pass.clone()
                    };
                    cmd.args(plain.args(Kind::Buildx, dest.cache.as_deref()));
                    cmd.args(["--provenance=false", "--sbom=false"]);
                }
                let mut output = format!("type=image,name={},push=true", dest.reference);
                if dest.insecure {
                    output.push_str(",registry.insecure=true");
                }
                cmd.arg("--output").arg(output);
                cmd.arg("--metadata-file").arg(&metadata);
                if let Some(auth) = &dest.auth {
                    credhelper::configure(&mut cmd, tmp.path(), auth)?;
                }
                cmd.arg(&target.context);
                runner::run(cmd, label, quiet).await?;
                let meta: serde_json::Value = serde_json::from_slice(
                    &std::fs::read(&metadata).context("buildx wrote no metadata file")?,
                )?;
                meta["containerimage.digest"]
                    .as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| anyhow!("buildx reported no image digest"))
            }
        }
    }

    /// buildah: builds one platform into local storage, named `tags`; returns the image ID.
    /// `dest`: where a saved build's image goes, whose registry also holds the project's cache.
    #[allow(clippy::too_many_arguments)]
    pub async fn build_local(
        &self,
        target: &Target,
        platform: Option<&Platform>,
        tags: &[String],
        tmp: &Path,
        label: &str,
        quiet: bool,
        dest: Option<&Dest>,
    ) -> Result<String> {
        debug_assert_eq!(self.kind, Kind::Buildah);
        let iidfile = tmp.join(format!("iid-{}", label.replace(['/', ' '], "-")));
        let mut cmd = self.command();
        // buildah sets TARGETOS/TARGETARCH/... only for an explicit platform; BuildKit always
        // does, and Containerfiles rely on it.
        let host = Platform::host();
        cmd.args(common_args(
            target,
            Some(platform.unwrap_or(&host)).into_iter(),
        ));
        let pass = &target.passthrough;
        cmd.args(pass.args(Kind::Buildah, dest.and_then(|d| d.cache.as_deref())));
        if let Some(dest) = dest.filter(|_| pass.uses_project_cache()) {
            // The cache is read and written during the build, with the build's push token.
            if dest.insecure {
                cmd.arg("--tls-verify=false");
            }
            if let Some(auth) = &dest.auth {
                let name = format!("cache-auth-{}.json", label.replace(['/', ' '], "-"));
                cmd.arg("--authfile")
                    .arg(write_auth_file(tmp, &name, auth)?);
            }
        }
        for t in tags {
            cmd.arg("--tag").arg(t);
        }
        cmd.arg("--iidfile").arg(&iidfile).arg(&target.context);
        runner::run(cmd, label, quiet).await?;
        read_trimmed(&iidfile)
    }

    /// `buildah <args...>`.
    pub fn buildah<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut cmd = Command::new(&self.program);
        cmd.args(args);
        cmd
    }

    /// `docker buildx build` over every platform of `target` at once, for the usual meaning of
    /// `--push`/`--load` (no depot registry involved).
    pub fn buildx_passthrough(
        &self,
        target: &Target,
        push: bool,
        load: bool,
        iidfile: Option<&Path>,
    ) -> Command {
        let mut cmd = self.command();
        cmd.args(common_args(target, target.platforms.iter()));
        cmd.args(target.passthrough.args(Kind::Buildx, None));
        if let Some(file) = iidfile {
            cmd.arg("--iidfile").arg(file);
        }
        for t in &target.tags {
            cmd.arg("--tag").arg(t);
        }
        if push {
            cmd.arg("--push");
        }
        if load {
            cmd.arg("--load");
        }
        cmd.arg(&target.context);
        cmd
    }
}

/// The flags buildah and buildx share.
fn common_args<'a>(
    target: &Target,
    platforms: impl Iterator<Item = &'a Platform>,
) -> Vec<OsString> {
    let mut args: Vec<OsString> = Vec::new();
    let platforms: Vec<String> = platforms.map(ToString::to_string).collect();
    if !platforms.is_empty() {
        args.extend(["--platform".into(), platforms.join(",").into()]);
    }
    if let Some(f) = &target.dockerfile {
        args.extend(["--file".into(), f.clone().into_os_string()]);
    }
    for (k, v) in &target.args {
        args.extend(["--build-arg".into(), format!("{k}={v}").into()]);
    }
    for (k, v) in &target.labels {
        args.extend(["--label".into(), format!("{k}={v}").into()]);
    }
    if let Some(stage) = &target.stage {
        args.extend(["--target".into(), stage.into()]);
    }
    if target.no_cache {
        args.push("--no-cache".into());
    }
    args
}

/// A containers-auth.json `name` in `dir` holding just `auth`, readable by the user only.
fn write_auth_file(dir: &Path, name: &str, auth: &Auth) -> Result<PathBuf> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(name);
    let basic = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", auth.username, auth.secret));
    let body = json!({ "auths": { &auth.host: { "auth": basic } } });
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(body.to_string().as_bytes())?;
    Ok(path)
}

fn read_trimmed(path: &Path) -> Result<String> {
    let s = std::fs::read_to_string(path)
        .with_context(|| format!("the builder did not write {}", path.display()))?;
    let s = s.trim();
    if s.is_empty() {
        bail!("the builder left {} empty", path.display());
    }
    Ok(s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Target {
        Target {
            name: "web".into(),
            context: "ctx".into(),
            dockerfile: Some("ctx/Containerfile.web".into()),
            stage: Some("final".into()),
            args: vec![("A".into(), "1".into())],
            labels: vec![("org.example".into(), "x y".into())],
            tags: vec!["app:v1".into()],
            platforms: vec![
                "linux/amd64".parse().unwrap(),
                "linux/arm64".parse().unwrap(),
            ],
            no_cache: true,
            passthrough: super::super::Passthrough {
                secrets: vec!["id=npm,env=NPM_TOKEN".into()],
                ..Default::default()
            },
        }
    }

    #[test]
    fn builder_flags_follow_docker_build() {
        let t = target();
        let args: Vec<String> = common_args(&t, t.platforms.iter())
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect();
        assert_eq!(
            args,
            [
                "--platform",
                "linux/amd64,linux/arm64",
                "--file",
                "ctx/Containerfile.web",
                "--build-arg",
                "A=1",
                "--label",
                "org.example=x y",
                "--target",
                "final",
                "--no-cache"
            ]
        );
        let one = common_args(&t, t.platforms[1..].iter());
        assert_eq!(one[1], "linux/arm64");
    }

    #[test]
    fn buildx_pushes_one_platform_without_attestations() {
        let b = Builder {
            kind: Kind::Buildx,
            program: "docker".into(),
            forced: true,
            buildx_progress: Some("rawjson"),
        };
        let cmd = b.buildx_passthrough(&target(), true, false, Some(Path::new("iid.txt")));
        let args: Vec<String> = cmd
            .as_std()
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(&args[..2], ["buildx", "build"]);
        assert!(args.contains(&"--push".to_owned()) && args.ends_with(&["ctx".to_owned()]));
        assert!(args
            .windows(2)
            .any(|w| w == ["--secret", "id=npm,env=NPM_TOKEN"]));
        assert!(args.windows(2).any(|w| w == ["--iidfile", "iid.txt"]));
        // --progress rawjson reaches buildx.
        assert!(cmd
            .as_std()
            .get_envs()
            .any(|(k, v)| k == "BUILDKIT_PROGRESS" && v == Some("rawjson".as_ref())));
    }

    #[test]
    fn the_auth_file_is_private_and_holds_basic_credentials() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let auth = Auth {
            host: "127.0.0.1:5000".into(),
            username: "x-token".into(),
            secret: "s3cret".into(),
        };
        let path = write_auth_file(dir.path(), "auth.json", &auth).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(v["auths"]["127.0.0.1:5000"]["auth"], "eC10b2tlbjpzM2NyZXQ=");
        assert!(!format!("{auth:?}").contains("s3cret"));
    }
}
