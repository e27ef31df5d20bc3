//! Keyless CI: a job proves who it is with the OIDC ID token its CI provider issued it, and a
//! project's trust policies decide what that identity may do.
//!
//! [`Oidc::verify`] checks a token: an issuer the registry trusts ([`issuers`]), a key that
//! issuer publishes ([`keys`]), an asymmetric algorithm, the registry's audience, and its time
//! claims against the registry clock. [`Oidc::admit`] then finds the project's [`policy`] that
//! admits the job. Turning the admission into a credential is `auth`'s business, above this.

pub mod issuers;
pub mod keys;
pub mod policy;

use base64::Engine;
use depot_api_types::{OidcProvider, TrustAccess, TrustPolicySpec};
use depot_store::clock::Clock;
use depot_store::metadata::{Metadata, StoredPolicy};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

pub use issuers::Issuers;
pub use policy::{Claims, Policy};

use crate::error::Error;

/// Clock skew allowed on `exp`, `nbf` and `iat`.
pub const SKEW_SECS: i64 = 60;

/// Why a token or a job was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("not a JWT")]
    Malformed,
    #[error("unsigned tokens (alg none) are refused")]
    Unsigned,
    #[error("tokens signed with {0} are refused: only asymmetric algorithms (RS*, PS*, ES256, ES384, EdDSA)")]
    Algorithm(String),
    #[error("the token has no kid naming its issuer's key")]
    NoKeyId,
    #[error("issuer {0:?} is not one this registry trusts")]
    UntrustedIssuer(String),
    #[error("{0}")]
    Key(#[from] keys::KeyError),
    #[error("the token's signature does not verify")]
    Signature,
    #[error("the token's audience is {got:?}; this registry's is {want:?}")]
    Audience { got: String, want: String },
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token has no {0} claim")]
    MissingClaim(&'static str),
    #[error("the registry has no OIDC audience: start it with --public-url or --oidc-audience")]
    NoAudience,
    #[error("no trust policy of project {project} admits {subject}")]
    NoPolicy { project: String, subject: String },
}

impl From<Refused> for Error {
    fn from(r: Refused) -> Self {
        match r {
            Refused::NoPolicy { .. } => Error::denied(r.to_string()),
            Refused::NoAudience => Error::not_found(r.to_string()),
            Refused::Key(keys::KeyError::Unavailable(_)) => Error::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                crate::error::Code::Unsupported,
            )
            .message(r.to_string())
            .header(axum::http::header::RETRY_AFTER, "5"),
            _ => Error::unauthorized(format!("OIDC token refused: {r}")),
        }
    }
}

/// A verified ID token.
#[derive(Debug, Clone)]
pub struct Verified {
    pub provider: OidcProvider,
    pub claims: Claims,
    /// CircleCI: the organisation its issuer names.
    pub circleci_org: Option<String>,
}

impl Verified {
    /// Who the job is, for messages and logs (`repo:acme/app:ref:refs/heads/main`).
    pub fn subject(&self) -> String {
        format!(
            "{} job {}",
            self.provider.as_str(),
            policy::text(&self.claims, "sub")
        )
    }
}

/// A job a policy admitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admitted {
    pub project: String,
    pub policy: String,
    pub access: TrustAccess,
    /// The token's `sub`, prefixed with its provider.
    pub subject: String,
}

/// Verifies CI providers' ID tokens and matches them against trust policies.
#[derive(Debug)]
pub struct Oidc {
    issuers: Issuers,
    /// `--oidc-audience`, else `--public-url`.
    audience: Option<String>,
    keys: keys::KeyCache,
    clock: Clock,
}

/// A stored policy as checked rules (rows the registry wrote itself; one that no longer reads
/// is skipped, and logged).
pub fn parse_stored(p: &StoredPolicy) -> Option<Policy> {
    let spec: TrustPolicySpec = match serde_json::from_str(&p.rules) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(policy = %p.id, error = %e, "unreadable trust policy skipped");
            return None;
        }
    };
    Policy::from_spec(spec).ok()
}

fn decode_segment(segment: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(segment.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The header and claims of a JWT, unverified.
fn peek(token: &str) -> Option<(serde_json::Map<String, serde_json::Value>, Claims)> {
    let mut parts = token.split('.');
    let (header, claims) = (parts.next()?, parts.next()?);
    parts.next()?;
    Some((decode_segment(header)?, decode_segment(claims)?))
}

impl Oidc {
    pub fn new(issuers: Issuers, audience: Option<String>, clock: Clock) -> anyhow::Result<Self> {
        Ok(Oidc {
            issuers,
            audience: audience.map(|a| a.trim_end_matches('/').to_owned()),
            keys: keys::KeyCache::new()?,
            clock,
        })
    }

    pub fn issuers(&self) -> &Issuers {
        &self.issuers
    }

    pub fn audience(&self) -> Option<&str> {
        self.audience.as_deref()
    }

    /// Whether `secret` is a JWT issued by a CI provider this registry trusts (so a token
    /// request presenting it is an exchange); nothing is verified yet.
    pub fn is_ci_token(&self, secret: &str) -> bool {
        peek(secret)
            .and_then(|(_, claims)| {
                let iss = claims.get("iss")?.as_str()?.to_owned();
                self.issuers.provider_of(&iss)
            })
            .is_some()
    }

    /// Checks an ID token: issuer, key, algorithm, signature, audience, times.
    pub async fn verify(&self, token: &str) -> Result<Verified, Refused> {
        let want = self.audience.clone().ok_or(Refused::NoAudience)?;
        let (header, unverified) = peek(token).ok_or(Refused::Malformed)?;
        let alg = header.get("alg").and_then(|a| a.as_str()).unwrap_or("none");
        if alg.eq_ignore_ascii_case("none") {
            return Err(Refused::Unsigned);
        }
        let algorithm: Algorithm = alg
            .parse()
            .map_err(|_| Refused::Algorithm(alg.to_owned()))?;
        if matches!(
            algorithm,
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
        ) {
            return Err(Refused::Algorithm(alg.to_owned()));
        }
        let iss = policy::text(&unverified, "iss")
            .trim_end_matches('/')
            .to_owned();
        let (provider, circleci_org) = self
            .issuers
            .provider_of(&iss)
            .ok_or_else(|| Refused::UntrustedIssuer(iss.clone()))?;
        let kid = header
            .get("kid")
            .and_then(|k| k.as_str())
            .ok_or(Refused::NoKeyId)?;
        let jwk = self.keys.key(&iss, kid).await?;
        // A key published for one algorithm verifies nothing signed with another.
        if let Some(key_alg) = jwk.common.key_algorithm {
            if format!("{key_alg:?}") != format!("{algorithm:?}") {
                return Err(Refused::Algorithm(alg.to_owned()));
            }
        }
        let key = DecodingKey::from_jwk(&jwk).map_err(|_| Refused::Signature)?;
        let mut validation = Validation::new(algorithm);
        // Times and audience are checked below, against the registry clock and with messages
        // that say which one failed.
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        let claims: Claims = jsonwebtoken::decode::<Claims>(token, &key, &validation)
            .map_err(|_| Refused::Signature)?
            .claims;
        let auds: Vec<&str> = match claims.get("aud") {
            Some(serde_json::Value::String(a)) => vec![a.as_str()],
            Some(serde_json::Value::Array(a)) => a.iter().filter_map(|v| v.as_str()).collect(),
            _ => Vec::new(),
        };
        if !auds.iter().any(|a| a.trim_end_matches('/') == want) {
            return Err(Refused::Audience {
                got: auds.join(", "),
                want,
            });
        }
        let now = self.clock.now_secs();
        let time = |name: &'static str| claims.get(name).and_then(|v| v.as_i64());
        let exp = time("exp").ok_or(Refused::MissingClaim("exp"))?;
        let iat = time("iat").ok_or(Refused::MissingClaim("iat"))?;
        if exp.saturating_add(SKEW_SECS) <= now {
            return Err(Refused::Expired);
        }
        if iat > now.saturating_add(SKEW_SECS)
            || time("nbf").is_some_and(|nbf| nbf > now.saturating_add(SKEW_SECS))
        {
            return Err(Refused::NotYetValid);
        }
        if policy::text(&claims, "sub").is_empty() {
            return Err(Refused::MissingClaim("sub"));
        }
        Ok(Verified {
            provider,
            claims,
            circleci_org,
        })
    }

    /// The policy of `project` that admits the job (a `build` one before a `pull` one).
    pub async fn admit(
        &self,
        meta: &Metadata,
        project: &str,
        job: &Verified,
    ) -> Result<Admitted, Error> {
        let policies = meta.trust_policies(project).await?;
        Ok(best(
            project,
            job,
            policies
                .iter()
                .filter(|p| p.provider == job.provider.as_str()),
        )?)
    }

    /// The first of `projects` (or, with none, of every project with a policy for the job's
    /// provider) whose policies admit the job: a registry token request names its project
    /// only in its scopes, and `docker login` sends none.
    pub async fn admit_any(
        &self,
        meta: &Metadata,
        projects: &[String],
        job: &Verified,
    ) -> Result<Admitted, Error> {
        let all = meta
            .trust_policies_of_provider(job.provider.as_str())
            .await?;
        let mut candidates: Vec<&str> = projects.iter().map(String::as_str).collect();
        if candidates.is_empty() {
            candidates = all.iter().map(|p| p.project.as_str()).collect();
            // Each project once, in the order its first policy was made.
            let mut seen = std::collections::HashSet::new();
            candidates.retain(|p| seen.insert(*p));
        }
        for project in &candidates {
            if let Ok(admitted) = best(project, job, all.iter().filter(|p| p.project == *project)) {
                return Ok(admitted);
            }
        }
        Err(Refused::NoPolicy {
            project: candidates
                .first()
                .copied()
                .unwrap_or("(none named)")
                .to_owned(),
            subject: job.subject(),
        }
        .into())
    }
}

fn best<'a>(
    project: &str,
    job: &Verified,
    policies: impl Iterator<Item = &'a StoredPolicy>,
) -> Result<Admitted, Refused> {
    let mut found: Option<Admitted> = None;
    for stored in policies {
        let Some(policy) = parse_stored(stored) else {
            continue;
        };
        match policy.admits(&job.claims, job.circleci_org.as_deref()) {
            Ok(()) => {
                if found.as_ref().is_none_or(|f| f.access < policy.access) {
                    found = Some(Admitted {
                        project: project.to_owned(),
                        policy: stored.id.clone(),
                        access: policy.access,
                        subject: format!(
                            "{}:{}",
                            job.provider.as_str(),
                            policy::text(&job.claims, "sub")
                        ),
                    });
                }
            }
            Err(why) => {
                tracing::info!(project, policy = %stored.id, job = %job.subject(), why, "trust policy does not admit the job");
            }
        }
    }
    found.ok_or_else(|| Refused::NoPolicy {
        project: project.to_owned(),
        subject: job.subject(),
    })
}
