//! Where the CLI's settings come from: flags and environment (through clap), the token stored
//! by `depot login`, and the project named by a `depot.json` in this directory or a parent.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use serde::{Deserialize, Serialize};

pub const DEFAULT_REGISTRY: &str = "http://127.0.0.1:5000";

/// The ways a command finds its credentials, in order, for the error when none applied.
pub const NO_CREDENTIALS_HINT: &str = "pass --token, set DEPOT_TOKEN, run `depot login`, or in CI \
    use the job's OIDC identity (a trust policy of the project must admit it): GitHub Actions \
    with `permissions: id-token: write`, GitLab with an `id_tokens:` entry DEPOT_OIDC_TOKEN for \
    the registry's audience, CircleCI (CIRCLE_OIDC_TOKEN_V2 or the circleci CLI), Buildkite \
    (buildkite-agent)";

/// What `depot login` keeps (`<config dir>/depot/credentials.json`, mode 0600).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Stored {
    pub registry: Option<String>,
    pub token: Option<String>,
    /// The project of a project token (a token that sees exactly one project): commands use
    /// it when neither a flag, the environment nor a project file names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
}

pub fn stored_path() -> Result<PathBuf> {
    let dir =
        dirs::config_dir().context("no configuration directory (set HOME or XDG_CONFIG_HOME)")?;
    Ok(dir.join("depot").join("credentials.json"))
}

pub fn load_stored() -> Result<Stored> {
    let path = stored_path()?;
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not valid JSON", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Stored::default()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Writes the stored credentials readable by the user only: the file is created 0600 (never
/// briefly world-readable) and replaced atomically.
pub fn save_stored(stored: &Stored) -> Result<PathBuf> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = stored_path()?;
    let dir = path.parent().expect("has a parent");
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = dir.join(".credentials.json.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(&serde_json::to_vec_pretty(stored)?)?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}

/// Removes the stored token; returns whether there was one.
pub fn forget_stored() -> Result<bool> {
    let path = stored_path()?;
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).with_context(|| format!("removing {}", path.display())),
    }
}

/// The files naming a directory's project, in the order they are looked for in each directory
/// (as Depot's CLI does): `{"id": "<project>"}` in JSON, or `id: <project>` in YAML.
pub const PROJECT_FILES: [&str; 3] = ["depot.json", "depot.yml", "depot.yaml"];

/// `depot.json` / `depot.yml`: the project's ID; other keys are Depot's and left alone.
#[derive(Deserialize)]
struct ProjectFile {
    id: String,
}

/// The nearest project file at or above `dir`: its path and project.
pub fn find_project_file(dir: &Path) -> Result<Option<(PathBuf, String)>> {
    for d in dir.ancestors() {
        for name in PROJECT_FILES {
            let path = d.join(name);
            let bytes = match std::fs::read(&path) {
                Ok(bytes) => bytes,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
            };
            let parsed: Result<ProjectFile, String> = if name.ends_with(".json") {
                serde_json::from_slice(&bytes).map_err(|e| e.to_string())
            } else {
                serde_yaml::from_slice(&bytes).map_err(|e| e.to_string())
            };
            let f = parsed.map_err(|e| {
                let shape = if name.ends_with(".json") {
                    "{\"id\": \"<project id>\"}"
                } else {
                    "id: <project id>"
                };
                anyhow::anyhow!("{} must be {shape}: {e}", path.display())
            })?;
            if f.id.trim().is_empty() {
                bail!("{} has an empty project id", path.display());
            }
            return Ok(Some((path, f.id)));
        }
    }
    Ok(None)
}

/// The project of the nearest project file at or above `dir`.
pub fn project_from_files(dir: &Path) -> Result<Option<String>> {
    Ok(find_project_file(dir)?.map(|(_, id)| id))
}

/// The settings every command works with.
#[derive(Debug, Clone)]
pub struct Context {
    /// Base URL of the depot registry, without a trailing slash.
    pub registry: String,
    pub token: Option<String>,
    pub(crate) project: Option<String>,
    /// The project given by --project or DEPOT_PROJECT_ID, not found in a file or the login.
    pub(crate) explicit_project: Option<String>,
}

impl Context {
    pub fn resolve(
        registry: Option<String>,
        project: Option<String>,
        token: Option<String>,
    ) -> Result<Context> {
        let stored = load_stored()?;
        let registry = registry
            .or(stored.registry)
            .unwrap_or_else(|| DEFAULT_REGISTRY.to_owned());
        if !registry.starts_with("http://") && !registry.starts_with("https://") {
            bail!(
                "--registry must be a URL such as https://registry.example.com (got {registry:?})"
            );
        }
        let explicit_project = project.filter(|p| !p.is_empty());
        // The login's project goes with the login's token only: a token given by flag or
        // environment may belong to another project.
        let login_project = if token.is_none() {
            stored.project
        } else {
            None
        };
        let project = match &explicit_project {
            Some(p) => Some(p.clone()),
            None => project_from_files(&std::env::current_dir()?)?.or(login_project),
        };
        Ok(Context {
            registry: registry.trim_end_matches('/').to_owned(),
            token: token.or(stored.token),
            project,
            explicit_project,
        })
    }

    /// The project named on the command line or in DEPOT_PROJECT_ID, if any.
    pub fn explicit_project(&self) -> Option<&str> {
        self.explicit_project.as_deref()
    }

    pub fn project(&self) -> Result<&str> {
        self.project.as_deref().context(
            "no project: pass --project, set DEPOT_PROJECT_ID, or run `depot init --project <project>` (writes depot.json)",
        )
    }

    /// `host[:port]` of the registry, as image names use it.
    pub fn host(&self) -> &str {
        self.registry
            .split_once("://")
            .map(|(_, h)| h)
            .unwrap_or(&self.registry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depot_json_is_found_in_a_parent() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a/b");
        std::fs::create_dir_all(&nested).unwrap();
        assert_eq!(project_from_files(&nested).unwrap(), None);
        std::fs::write(dir.path().join("a/depot.json"), r#"{"id": "k3j9x2m1pq"}"#).unwrap();
        assert_eq!(
            project_from_files(&nested).unwrap().as_deref(),
            Some("k3j9x2m1pq")
        );
        // YAML, as Depot writes it too; the nearest file wins, JSON before YAML in one folder.
        std::fs::write(dir.path().join("a/b/depot.yml"), "id: yml0000001\n").unwrap();
        assert_eq!(
            project_from_files(&nested).unwrap().as_deref(),
            Some("yml0000001")
        );
        std::fs::write(dir.path().join("a/b/depot.json"), r#"{"id": "json000001"}"#).unwrap();
        assert_eq!(
            project_from_files(&nested).unwrap().as_deref(),
            Some("json000001")
        );
        std::fs::remove_file(dir.path().join("a/b/depot.json")).unwrap();
        std::fs::remove_file(dir.path().join("a/b/depot.yml")).unwrap();
        std::fs::write(dir.path().join("a/b/depot.yaml"), "name: x\n").unwrap();
        let e = project_from_files(&nested).unwrap_err().to_string();
        assert!(e.contains("depot.yaml must be id: <project id>"), "{e}");
        std::fs::write(dir.path().join("a/b/depot.yaml"), "{}").unwrap();
        assert!(project_from_files(&nested).is_err());
    }
}
