//! Credentials for destination registries from the Docker config (`$DOCKER_CONFIG/config.json`
//! or `~/.docker/config.json`): `auths`, `credsStore` and `credHelpers` (which run
//! `docker-credential-<name>`), through the `docker_credential` crate.

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
