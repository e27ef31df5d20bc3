//! Handing a build's push token to `docker buildx` without writing it into the user's Docker
//! config or onto a command line.
//!
//! buildx (and BuildKit through it) reads credentials from `$DOCKER_CONFIG/config.json`, and
//! for a host listed in `credHelpers` asks `docker-credential-<name>`. So the build runs with a
//! temporary Docker config: the user's own `config.json` plus `credHelpers[<registry>] =
//! "depot-build"`, and the user's other entries (`buildx/` with its builders, `contexts/`,
//! `cli-plugins/`) linked in; and `docker-credential-depot-build` on `PATH` is a link to this very
//! binary, which answers the helper protocol from its environment (see [`serve_if_invoked`]).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use serde_json::{json, Value};
use tokio::process::Command;

use super::builder::Auth;

const HELPER: &str = "depot-build";
const ENV_HOST: &str = "DEPOT_CREDENTIAL_HOST";
const ENV_USERNAME: &str = "DEPOT_CREDENTIAL_USERNAME";
const ENV_SECRET: &str = "DEPOT_CREDENTIAL_SECRET";

/// Makes `cmd` (a docker command) use `auth` for its host, with files under `tmp`.
pub fn configure(cmd: &mut Command, tmp: &Path, auth: &Auth) -> Result<()> {
    let user_dir = user_docker_config_dir();
    let config_dir = tmp.join("docker-config");
    write_config(user_dir.as_deref(), &config_dir, &auth.host)?;
    let bin = tmp.join("bin");
    std::fs::create_dir_all(&bin)?;
    let exe = std::env::current_exe().context("locating the depot binary")?;
    std::os::unix::fs::symlink(exe, bin.join(format!("docker-credential-{HELPER}")))?;
    let path = std::env::var_os("PATH").unwrap_or_default();
    let path = std::env::join_paths(std::iter::once(bin).chain(std::env::split_paths(&path)))?;
    cmd.env("DOCKER_CONFIG", &config_dir)
        .env("PATH", path)
        .env(ENV_HOST, &auth.host)
        .env(ENV_USERNAME, &auth.username)
        .env(ENV_SECRET, &auth.secret);
    Ok(())
}

fn user_docker_config_dir() -> Option<PathBuf> {
    std::env::var_os("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| dirs::home_dir().map(|h| h.join(".docker")))
        .filter(|d| d.is_dir())
}

/// Writes `dir/config.json` (the user's, if any, with our helper for `host`) and links every
/// other entry of the user's config directory into `dir`.
fn write_config(user_dir: Option<&Path>, dir: &Path, host: &str) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut config = json!({});
    if let Some(user) = user_dir {
        for entry in std::fs::read_dir(user)? {
            let entry = entry?;
            if entry.file_name() == "config.json" {
                config = serde_json::from_slice(&std::fs::read(entry.path())?)
                    .with_context(|| format!("{} is not JSON", entry.path().display()))?;
            } else {
                std::os::unix::fs::symlink(entry.path(), dir.join(entry.file_name()))?;
            }
        }
    }
    if !config.is_object() {
        config = json!({});
    }
    if !config["credHelpers"].is_object() {
        config["credHelpers"] = json!({});
    }
    config["credHelpers"][host] = json!(HELPER);
    std::fs::write(dir.join("config.json"), serde_json::to_vec_pretty(&config)?)?;
    Ok(())
}

/// When this binary runs as `docker-credential-depot-build`, answers the Docker credential
/// helper protocol (`get`, and harmless `store`/`erase`/`list`) and returns the exit code.
pub fn serve_if_invoked() -> Option<ExitCode> {
    let argv0 = std::env::args_os().next()?;
    let name = Path::new(&argv0)
        .file_name()?
        .to_string_lossy()
        .into_owned();
    if name != format!("docker-credential-{HELPER}") {
        return None;
    }
    let action = std::env::args().nth(1).unwrap_or_default();
    let mut input = String::new();
    let _ = std::io::stdin().read_to_string(&mut input);
    let (out, code) = answer(&action, input.trim(), |k| std::env::var(k).ok());
    let _ = std::io::stdout().write_all(out.as_bytes());
    Some(ExitCode::from(code))
}

/// The helper's answer to `action` with `input` on stdin: (stdout, exit code).
fn answer(action: &str, input: &str, env: impl Fn(&str) -> Option<String>) -> (String, u8) {
    match action {
        "get" => {
            let host = env(ENV_HOST).unwrap_or_default();
            let asked = input
                .trim_start_matches("https://")
                .trim_start_matches("http://")
                .trim_end_matches('/');
            match (asked == host && !host.is_empty(), env(ENV_SECRET)) {
                (true, Some(secret)) => {
                    let v = json!({
                        "ServerURL": input,
                        "Username": env(ENV_USERNAME).unwrap_or_else(|| "x-token".into()),
                        "Secret": secret,
                    });
                    (v.to_string(), 0)
                }
                // The message docker recognises as "no credentials here".
                _ => ("credentials not found in native keychain\n".into(), 1),
            }
        }
        "list" => {
            let host = env(ENV_HOST).unwrap_or_default();
            let v: Value = json!({ host: env(ENV_USERNAME).unwrap_or_default() });
            (v.to_string(), 0)
        }
        // Nothing is kept: the credential lives for one build.
        "store" | "erase" => (String::new(), 0),
        other => (format!("unknown action {other:?}\n"), 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(k: &str) -> Option<String> {
        match k {
            ENV_HOST => Some("127.0.0.1:5000".into()),
            ENV_USERNAME => Some("x-token".into()),
            ENV_SECRET => Some("tok".into()),
            _ => None,
        }
    }

    #[test]
    fn the_helper_answers_for_its_host_only() {
        let (out, code) = answer("get", "127.0.0.1:5000", env);
        assert_eq!(code, 0);
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["Username"], "x-token");
        assert_eq!(v["Secret"], "tok");
        assert_eq!(answer("get", "https://127.0.0.1:5000/", env).1, 0);
        let (out, code) = answer("get", "ghcr.io", env);
        assert_eq!(code, 1);
        assert!(out.contains("credentials not found"));
        assert_eq!(answer("store", "{}", env).1, 0);
        assert_eq!(answer("frobnicate", "", env).1, 1);
    }

    #[test]
    fn the_config_keeps_the_users_settings_and_adds_the_helper() {
        let user = tempfile::tempdir().unwrap();
        std::fs::write(
            user.path().join("config.json"),
            r#"{"auths": {"ghcr.io": {"auth": "eA=="}}, "credHelpers": {"gcr.io": "gcloud"}}"#,
        )
        .unwrap();
        std::fs::create_dir(user.path().join("buildx")).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("cfg");
        write_config(Some(user.path()), &dir, "127.0.0.1:5000").unwrap();
        let v: Value =
            serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
        assert_eq!(v["auths"]["ghcr.io"]["auth"], "eA==");
        assert_eq!(v["credHelpers"]["gcr.io"], "gcloud");
        assert_eq!(v["credHelpers"]["127.0.0.1:5000"], HELPER);
        assert!(dir.join("buildx").is_dir(), "buildx builders stay visible");
        // No user config at all.
        let bare = tmp.path().join("bare");
        write_config(None, &bare, "h:1").unwrap();
        assert!(std::fs::read_to_string(bare.join("config.json"))
            .unwrap()
            .contains("depot-build"));
    }
}
