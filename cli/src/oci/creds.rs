//! Credentials for destination registries from the Docker config (`$DOCKER_CONFIG/config.json`
//! or `~/.docker/config.json`): `auths`, `credsStore` and `credHelpers` (which run
//! `docker-credential-<name>`), through the `docker_credential` crate; or, for `depot push`,
//! from the environment (`DEPOT_PUSH_REGISTRY_*`), so that concurrent CI jobs need not share
//! one Docker config.

use base64::Engine;
use docker_credential::{CredentialRetrievalError, DockerCredential};

use super::Credentials;

/// The key Docker uses for a registry host in its config.
fn config_key(host: &str) -> &str {
    match host {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => "https://index.docker.io/v1/",
        h => h,
    }
}

/// What the Docker config holds for `host`: anonymous when it holds nothing, an error when a
/// credential helper failed (a broken helper should be seen, not silently turned anonymous).
pub fn for_host(host: &str) -> Result<Credentials, String> {
    match docker_credential::get_credential(config_key(host)) {
        Ok(DockerCredential::UsernamePassword(username, password)) => {
            Ok(Credentials::Basic { username, password })
        }
        Ok(DockerCredential::IdentityToken(token)) => Ok(Credentials::IdentityToken(token)),
        Err(
            CredentialRetrievalError::ConfigNotFound
            | CredentialRetrievalError::ConfigReadError
            | CredentialRetrievalError::NoCredentialConfigured,
        ) => Ok(Credentials::Anonymous),
        // The helper protocol's answer for "nothing stored for this server".
        Err(CredentialRetrievalError::HelperFailure { stdout, .. })
            if stdout.contains("credentials not found") =>
        {
            Ok(Credentials::Anonymous)
        }
        Err(e) => Err(format!(
            "credentials for {host} from the Docker config: {e}"
        )),
    }
}

/// The variables of [`push_override`].
pub const PUSH_USERNAME: &str = "DEPOT_PUSH_REGISTRY_USERNAME";
pub const PUSH_PASSWORD: &str = "DEPOT_PUSH_REGISTRY_PASSWORD";
pub const PUSH_AUTH: &str = "DEPOT_PUSH_REGISTRY_AUTH";

/// Credentials for every destination of `depot push` from the environment, overriding the
/// Docker config: `DEPOT_PUSH_REGISTRY_AUTH` (base64 of `user:password`, as a Docker config's
/// `auth` field), else `DEPOT_PUSH_REGISTRY_USERNAME` with `DEPOT_PUSH_REGISTRY_PASSWORD`.
/// `None` when none is set; an error for half a pair or an `auth` that does not decode, rather
/// than pushing anonymously.
pub fn push_override(var: impl Fn(&str) -> Option<String>) -> Result<Option<Credentials>, String> {
    let set = |name: &str| var(name).filter(|v| !v.is_empty());
    if let Some(auth) = set(PUSH_AUTH) {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| format!("{PUSH_AUTH} is not base64 of USER:PASSWORD"))?;
        let (username, password) = decoded
            .split_once(':')
            .ok_or_else(|| format!("{PUSH_AUTH} decodes to no USER:PASSWORD (no colon)"))?;
        return Ok(Some(Credentials::Basic {
            username: username.to_owned(),
            password: password.to_owned(),
        }));
    }
    match (set(PUSH_USERNAME), set(PUSH_PASSWORD)) {
        (Some(username), Some(password)) => Ok(Some(Credentials::Basic { username, password })),
        (None, None) => Ok(None),
        (Some(_), None) => Err(format!("{PUSH_USERNAME} is set without {PUSH_PASSWORD}")),
        (None, Some(_)) => Err(format!("{PUSH_PASSWORD} is set without {PUSH_USERNAME}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(c: Option<Credentials>) -> Option<(String, String)> {
        match c {
            Some(Credentials::Basic { username, password }) => Some((username, password)),
            _ => None,
        }
    }

    #[test]
    fn push_credentials_come_from_the_environment() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        assert!(push_override(env(&[])).unwrap().is_none());
        assert_eq!(
            basic(push_override(env(&[(PUSH_USERNAME, "u"), (PUSH_PASSWORD, "p:w")])).unwrap()),
            Some(("u".into(), "p:w".into()))
        );
        // `auth` wins, and a password may hold colons.
        let auth = base64::engine::general_purpose::STANDARD.encode("robot$ci:s3:cret");
        let with_auth = [(PUSH_AUTH, auth.as_str()), (PUSH_USERNAME, "other")];
        let var = |name: &str| {
            with_auth
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        };
        assert_eq!(
            basic(push_override(var).unwrap()),
            Some(("robot$ci".into(), "s3:cret".into()))
        );
        assert!(push_override(env(&[(PUSH_USERNAME, "u")]))
            .unwrap_err()
            .contains(PUSH_PASSWORD));
        assert!(push_override(env(&[(PUSH_AUTH, "%%%")]))
            .unwrap_err()
            .contains("not base64"));
        assert!(push_override(env(&[(PUSH_AUTH, "dXNlcg==")]))
            .unwrap_err()
            .contains("no colon"));
    }
}
