//! The OIDC issuers the registry trusts, one per CI provider: the public ones built in, each
//! replaceable with `--oidc-issuer PROVIDER=URL` (GitHub Enterprise Server, a self-hosted
//! GitLab, or a test's own issuer).

use depot_api_types::OidcProvider;

/// GitHub Actions' issuer on github.com.
pub const GITHUB: &str = "https://token.actions.githubusercontent.com";
pub const GITLAB: &str = "https://gitlab.com";
/// CircleCI issues per organisation: `<this>/<organization id>`.
pub const CIRCLECI: &str = "https://oidc.circleci.com/org";
pub const BUILDKITE: &str = "https://agent.buildkite.com";

/// Which issuer stands for which provider.
#[derive(Debug, Clone)]
pub struct Issuers {
    urls: Vec<(OidcProvider, String)>,
}

impl Default for Issuers {
    fn default() -> Self {
        Issuers {
            urls: vec![
                (OidcProvider::Github, GITHUB.to_owned()),
                (OidcProvider::Gitlab, GITLAB.to_owned()),
                (OidcProvider::Circleci, CIRCLECI.to_owned()),
                (OidcProvider::Buildkite, BUILDKITE.to_owned()),
            ],
        }
    }
}

impl Issuers {
    /// The built-in issuers with `overrides` (`PROVIDER=URL` each) in their place.
    pub fn with_overrides(overrides: &[String]) -> anyhow::Result<Self> {
        let mut issuers = Issuers::default();
        for o in overrides {
            let (name, url) = o
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("--oidc-issuer takes PROVIDER=URL (got {o:?})"))?;
            let provider = OidcProvider::parse(name.trim()).ok_or_else(|| {
                anyhow::anyhow!(
                    "--oidc-issuer: unknown provider {name:?} (github, gitlab, circleci, buildkite)"
                )
            })?;
            let url = url.trim().trim_end_matches('/');
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                anyhow::bail!("--oidc-issuer {name}: {url:?} is not an http(s) URL");
            }
            for entry in &mut issuers.urls {
                if entry.0 == provider {
                    entry.1 = url.to_owned();
                }
            }
        }
        Ok(issuers)
    }

    /// Every provider and its issuer (CircleCI's: the prefix before the organisation id).
    pub fn all(&self) -> impl Iterator<Item = (OidcProvider, &str)> {
        self.urls.iter().map(|(p, u)| (*p, u.as_str()))
    }

    /// The provider a token's `iss` belongs to, if any; for CircleCI also the organisation id
    /// the issuer names.
    pub fn provider_of(&self, iss: &str) -> Option<(OidcProvider, Option<String>)> {
        self.all().find_map(|(provider, url)| match provider {
            OidcProvider::Circleci => {
                let org = iss.strip_prefix(url)?.strip_prefix('/')?;
                let plain = !org.is_empty()
                    && org.len() <= 64
                    && org.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
                plain.then(|| (provider, Some(org.to_owned())))
            }
            _ => (iss == url).then_some((provider, None)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_providers_and_replaces_them() {
        let i = Issuers::default();
        assert_eq!(i.provider_of(GITHUB), Some((OidcProvider::Github, None)));
        assert_eq!(i.provider_of("https://gitlab.com/"), None);
        assert_eq!(
            i.provider_of("https://oidc.circleci.com/org/0a1b-2c"),
            Some((OidcProvider::Circleci, Some("0a1b-2c".into())))
        );
        assert_eq!(i.provider_of("https://oidc.circleci.com/org/a/b"), None);
        assert_eq!(i.provider_of("https://oidc.circleci.com/org/"), None);
        assert_eq!(i.provider_of("https://evil.example"), None);
        let ghes =
            Issuers::with_overrides(&["github=https://ghe.acme.internal/_services/token/".into()])
                .unwrap();
        assert_eq!(ghes.provider_of(GITHUB), None);
        assert_eq!(
            ghes.provider_of("https://ghe.acme.internal/_services/token"),
            Some((OidcProvider::Github, None))
        );
        assert!(Issuers::with_overrides(&["jenkins=https://x".into()]).is_err());
        assert!(Issuers::with_overrides(&["github".into()]).is_err());
        assert!(Issuers::with_overrides(&["github=ftp://x".into()]).is_err());
    }
}
