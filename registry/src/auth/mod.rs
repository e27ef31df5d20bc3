//! Authentication: the secrets callers present, the JWTs the registry signs, and what the
//! Docker/OCI token flow (`/token`, served by the control plane) turns the first into.
//!
//! Credentials: the admin token (a secret held in a file or given by configuration), project
//! tokens (stored only as SHA-256 hashes), and JWTs the API mints: build push tokens and pull
//! tokens. Registry routes accept only short-lived access tokens from `/token`, whose `access`
//! claim never exceeds what the presented credential allows; the `access` module, above this
//! one, checks them.

pub mod claims;
pub mod keys;

use std::path::Path;
use std::sync::Arc;

use axum::http::{header, HeaderMap, StatusCode};
use base64::Engine;
use sha2::Digest as _;

pub use claims::{Claims, CredKind, Credential, ResourceActions, TokenKind};
pub use keys::{Keys, Rejected};

use crate::error::{Code, Error, Result};
use depot_store::clock::Clock;
use depot_store::metadata::Metadata;
use depot_store::model::{random_id, Build, BuildState};

/// How long a build push token keeps working after the build is saved, for late pushes such as
/// signatures and SBOMs that refer to the image.
pub const PUSH_GRACE_SECS: i64 = 600;
/// Allowed clock skew for `nbf`.
const SKEW_SECS: i64 = 60;
pub const ADMIN_PREFIX: &str = "depot_admin_";
/// How the root of a credential a trust policy admitted is written (`minted_by`).
pub const POLICY_ROOT_PREFIX: &str = "trust-policy:";
/// The longest life of a credential an OIDC exchange gives (a CI job asks again when it needs
/// more; its provider's token is short-lived too).
pub const MAX_CI_CREDENTIAL_SECS: i64 = 3600;
pub const PROJECT_TOKEN_PREFIX: &str = "depot_pt_";

/// Hex SHA-256 of a secret: what is stored and compared, never the secret itself.
pub fn secret_hash(secret: &str) -> String {
    hex::encode(sha2::Sha256::digest(secret.as_bytes()))
}

/// A fresh secret with a recognizable prefix (about 200 random bits).
pub fn new_secret(prefix: &str) -> String {
    format!("{prefix}{}", random_id(40))
}

/// Reads the admin token from `path`, or creates it there (mode 0600) on first start.
pub fn load_or_create_admin_token(path: &Path) -> anyhow::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(s) if !s.trim().is_empty() => return Ok(s.trim().to_owned()),
        Ok(_) => anyhow::bail!("{} is empty", path.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(anyhow::anyhow!("reading {}: {e}", path.display())),
    }
    let token = new_secret(ADMIN_PREFIX);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("creating {}: {e}", dir.display()))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .map_err(|e| anyhow::anyhow!("creating {}: {e}", path.display()))?;
    std::io::Write::write_all(&mut file, format!("{token}\n").as_bytes())?;
    file.sync_all()?;
    Ok(token)
}

/// Everything needed to check credentials and sign tokens.
pub struct Auth {
    keys: Keys,
    admin_hash: String,
    /// The `service` of challenges and the `aud` of access tokens.
    pub service: String,
    /// Base URL clients reach the registry at (for the challenge `realm`).
    base_url: BaseUrl,
    token_ttl_secs: i64,
    clock: Clock,
    meta: Metadata,
    /// CI providers' ID tokens and the trust policies that admit them.
    pub oidc: crate::oidc::Oidc,
    /// Tokens whose signature has been checked, so a client's repeated requests with one token
    /// cost a hash lookup instead of an Ed25519 verification each. Time claims are still
    /// checked on every use.
    verified: moka::sync::Cache<String, Arc<Claims>>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("service", &self.service)
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

/// The answer of `/token`.
#[derive(Debug)]
pub struct Issued {
    pub token: String,
    pub expires_in: i64,
    pub granted: Vec<ResourceActions>,
}

impl Auth {
    /// Times are judged by `meta`'s clock, the one every stored timestamp is written with.
    pub fn new(
        keys: Keys,
        admin_token: &str,
        service: String,
        base_url: BaseUrl,
        token_ttl_secs: i64,
        meta: Metadata,
        oidc: crate::oidc::Oidc,
    ) -> Self {
        let clock = meta.clock().clone();
        Auth {
            keys,
            oidc,
            admin_hash: secret_hash(admin_token),
            service,
            base_url,
            token_ttl_secs,
            clock,
            meta,
            verified: moka::sync::Cache::builder()
                .max_capacity(32 * 1024 * 1024)
                .weigher(|token: &String, _| token.len() as u32 + 512)
                .time_to_live(std::time::Duration::from_secs(token_ttl_secs.max(1) as u64))
                .build(),
        }
    }

    fn claims(&self, kind: TokenKind, sub: String, exp: i64) -> Claims {
        let now = self.clock.now_secs();
        Claims {
            iss: self.service.clone(),
            sub,
            aud: self.service.clone(),
            exp,
            nbf: now,
            iat: now,
            jti: random_id(20),
            kind,
            access: Vec::new(),
            cred: None,
            project: None,
            build: None,
            minted_by: None,
        }
    }

    /// Verifies a JWT of `kind`: signature, key, issuer, audience and times. The claims are
    /// shared with the cache of verified tokens (every request of a client presents the same
    /// token: a reference count, not a copy of its grants).
    pub fn verify(&self, token: &str, kind: TokenKind) -> Result<Arc<Claims>, Rejected> {
        if let Some(claims) = self.verified.get(token) {
            self.check(&claims, kind)?;
            return Ok(claims);
        }
        let claims: Arc<Claims> = Arc::new(self.keys.verify(token)?);
        self.check(&claims, kind)?;
        self.verified.insert(token.to_owned(), claims.clone());
        Ok(claims)
    }

    /// Checks what a valid signature does not: kind, issuer, audience and times (against the
    /// registry clock). A token that passes all but its expiry is `Expired`, so that its
    /// holder can be told so.
    fn check(&self, claims: &Claims, kind: TokenKind) -> Result<(), Rejected> {
        let now = self.clock.now_secs();
        if claims.kind != kind
            || claims.iss != self.service
            || claims.aud != self.service
            || claims.nbf > now + SKEW_SECS
        {
            return Err(Rejected::Invalid);
        }
        if claims.exp <= now {
            return Err(Rejected::Expired(claims.exp));
        }
        Ok(())
    }

    /// Whether `hash` is the current admin token's [`secret_hash`] (a dashboard session opened
    /// with an earlier admin token ends when the token changes).
    pub fn is_admin_hash(&self, hash: &str) -> bool {
        hash == self.admin_hash
    }

    /// Whether the project token `id` is still live (the database decides, on every replica).
    pub async fn project_token_live(&self, id: &str) -> Result<bool> {
        Ok(self.meta.project_token_live(id).await?)
    }

    /// Resolves a presented secret into a credential; a wrong, revoked or expired one is a 401.
    pub async fn credential(&self, secret: &str) -> Result<Credential> {
        let invalid = || Error::unauthorized("invalid credentials");
        if secret.starts_with(ADMIN_PREFIX) {
            // Comparing hashes keeps the comparison's timing independent of the secret.
            return if secret_hash(secret) == self.admin_hash {
                Ok(Credential::Admin)
            } else {
                Err(invalid())
            };
        }
        if secret.starts_with(PROJECT_TOKEN_PREFIX) {
            let token = self
                .meta
                .project_token_by_hash(&secret_hash(secret))
                .await?
                .ok_or_else(invalid)?;
            if let Some(at) = token.revoked_at {
                // Only the holder of the real secret learns this: saying so saves them hunting
                // for a typo.
                return Err(Error::unauthorized(format!(
                    "this project token ({}) was revoked at {}; create a new one",
                    token.name,
                    depot_store::model::rfc3339(at)
                )));
            }
            return Ok(Credential::Project {
                project: token.project,
                token_id: token.id,
            });
        }
        // Otherwise it must be a push or pull JWT; access tokens are not credentials.
        let claims: Claims = self.keys.verify(secret).map_err(|_| invalid())?;
        if claims.kind == TokenKind::Access {
            return Err(invalid());
        }
        self.check(&claims, claims.kind).map_err(|r| match r {
            // The token was real, and has run out.
            Rejected::Expired(exp) => Error::unauthorized(format!(
                "this {} token expired at {}; get a new one",
                claims.kind.name(),
                depot_store::model::rfc3339(exp.saturating_mul(1000))
            )),
            _ => invalid(),
        })?;
        // Every replica asks the database, so a revoked project token (or a deleted trust
        // policy) stops what it minted at once, everywhere (access tokens already issued run
        // out within --token-ttl-secs).
        if let Some(root) = &claims.minted_by {
            self.root_live(root).await?;
        }
        let project = claims.project.ok_or_else(invalid)?;
        Ok(match claims.kind {
            TokenKind::Push => Credential::Push {
                project,
                build: claims.build.ok_or_else(invalid)?,
                expires_at: claims.exp,
                minted_by: claims.minted_by,
            },
            TokenKind::Ci => Credential::Ci {
                project,
                minted_by: claims.minted_by.ok_or_else(invalid)?,
                expires_at: claims.exp,
                job: claims
                    .sub
                    .strip_prefix("ci:")
                    .unwrap_or(&claims.sub)
                    .to_owned(),
            },
            _ => Credential::Pull {
                project,
                build: claims.build,
                expires_at: claims.exp,
                minted_by: claims.minted_by,
            },
        })
    }

    /// Refuses a credential whose root (a project token, or a trust policy) is gone.
    async fn root_live(&self, root: &str) -> Result<()> {
        if let Some(policy) = root.strip_prefix(POLICY_ROOT_PREFIX) {
            if !self.meta.trust_policy_live(policy).await? {
                return Err(Error::unauthorized(
                    "the trust policy this was issued under has been deleted",
                ));
            }
        } else if !self.meta.project_token_live(root).await? {
            return Err(Error::unauthorized(
                "the project token this was minted with has been revoked",
            ));
        }
        Ok(())
    }

    /// A CI job's OIDC ID token presented at `/token`: verified and admitted by a policy of
    /// the project its scopes name (any project trusting the job when they name none, as for
    /// `docker login`), it works like the credential an exchange would give.
    pub async fn ci_credential(
        &self,
        id_token: &str,
        scopes: &[ResourceActions],
    ) -> Result<Credential> {
        let job = self.oidc.verify(id_token).await?;
        let mut projects: Vec<String> = scopes
            .iter()
            .filter(|s| s.kind == "repository")
            .map(|s| s.name.clone())
            .collect();
        projects.dedup();
        let admitted = self.oidc.admit_any(&self.meta, &projects, &job).await?;
        let expires_at = self.clock.now_secs() + MAX_CI_CREDENTIAL_SECS;
        Ok(self.admitted(&admitted, expires_at))
    }

    /// The credential of a CI job a trust policy admitted, ending at `expires_at`.
    pub fn admitted(&self, admitted: &crate::oidc::Admitted, expires_at: i64) -> Credential {
        let minted_by = policy_root(admitted);
        match admitted.access {
            depot_api_types::TrustAccess::Build => Credential::Ci {
                project: admitted.project.clone(),
                minted_by,
                expires_at,
                job: admitted.subject.clone(),
            },
            depot_api_types::TrustAccess::Pull => Credential::Pull {
                project: admitted.project.clone(),
                build: None,
                expires_at,
                minted_by: Some(minted_by),
            },
        }
    }

    /// The credential a CI job a trust policy admitted gets, signed: what an exchange
    /// answers with. Returns the token and its expiry (Unix seconds).
    pub fn mint_admitted(&self, admitted: &crate::oidc::Admitted) -> (String, i64) {
        let root = policy_root(admitted);
        match admitted.access {
            depot_api_types::TrustAccess::Build => {
                let exp = self.clock.now_secs() + MAX_CI_CREDENTIAL_SECS;
                let sub = format!("ci:{}", admitted.subject);
                let mut claims = self.claims(TokenKind::Ci, sub, exp);
                claims.project = Some(admitted.project.clone());
                claims.minted_by = Some(root);
                (self.keys.sign(&claims), exp)
            }
            // A `pull` policy's credential is a project pull token.
            depot_api_types::TrustAccess::Pull => {
                self.mint_pull(&admitted.project, None, MAX_CI_CREDENTIAL_SECS, Some(&root))
            }
        }
    }

    /// The caller of an API request, from `Authorization: Bearer <secret>` or Basic with the
    /// secret as password.
    pub async fn caller(&self, headers: &HeaderMap) -> Result<Credential> {
        match presented_secret(headers)? {
            Some(secret) => self.credential(&secret).await,
            None => Err(Error::unauthorized("credentials required")),
        }
    }

    /// The build a push credential is for, if it may still push: building within its lease, or
    /// saved less than [`PUSH_GRACE_SECS`] ago, and not expired.
    pub async fn pushable(&self, build_id: &str) -> Result<Build> {
        let now = self.clock.now_ms();
        let build = self
            .meta
            .build(build_id)
            .await?
            .ok_or_else(|| Error::denied(format!("build {build_id} does not exist")))?;
        let open = match build.state {
            BuildState::Building => now < build.lease_expires_at,
            BuildState::Saved => now < build.updated_at + PUSH_GRACE_SECS * 1000,
            BuildState::Failed => false,
        };
        if !open || build.is_expired(now) {
            return Err(Error::denied(format!(
                "build {build_id} is {} and no longer accepts pushes",
                build.state.as_str()
            )));
        }
        Ok(build)
    }

    /// Signs an access token for `cred` with the requested scopes it allows.
    pub fn issue(&self, cred: &Credential, requested: &[ResourceActions]) -> Issued {
        let now = self.clock.now_secs();
        let mut exp = now + self.token_ttl_secs;
        if let Some(limit) = cred.expires_at() {
            exp = exp.min(limit);
        }
        let granted: Vec<ResourceActions> = requested
            .iter()
            .map(|r| ResourceActions {
                kind: r.kind.clone(),
                name: r.name.clone(),
                actions: cred.grant(r),
            })
            .filter(|r| !r.actions.is_empty())
            .collect();
        let mut claims = self.claims(TokenKind::Access, cred.subject(), exp);
        claims.access = granted.clone();
        claims.cred = Some(cred.kind());
        claims.project = cred.project().map(str::to_owned);
        claims.build = cred.build().map(str::to_owned);
        Issued {
            token: self.keys.sign(&claims),
            expires_in: exp - now,
            granted,
        }
    }

    /// The push token handed to a build's builders: valid until its lease ends, or until
    /// `minted_by` (the creator's project token) is revoked.
    pub fn mint_push(&self, build: &Build, minted_by: Option<&str>) -> String {
        let mut claims = self.claims(
            TokenKind::Push,
            format!("build:{}", build.id),
            build.lease_expires_at.div_euclid(1000),
        );
        claims.project = Some(build.project.clone());
        claims.build = Some(build.id.clone());
        claims.minted_by = minted_by.map(str::to_owned);
        self.keys.sign(&claims)
    }

    /// A read-only token for a project, or one build of it, that ends with `minted_by`'s
    /// revocation. Returns the token and its expiry (Unix seconds).
    pub fn mint_pull(
        &self,
        project: &str,
        build: Option<&str>,
        ttl_secs: i64,
        minted_by: Option<&str>,
    ) -> (String, i64) {
        let exp = self.clock.now_secs() + ttl_secs;
        let sub = match build {
            Some(b) => format!("pull:build:{b}"),
            None => format!("pull:{project}"),
        };
        let mut claims = self.claims(TokenKind::Pull, sub, exp);
        claims.project = Some(project.to_owned());
        claims.build = build.map(str::to_owned);
        claims.minted_by = minted_by.map(str::to_owned);
        (self.keys.sign(&claims), exp)
    }

    /// Where clients fetch tokens: `<public-url>/token`, or built from the request's host.
    pub fn realm(&self, headers: &HeaderMap) -> String {
        format!("{}/token", self.base_url(headers))
    }

    /// The registry's base URL as clients see it: `--public-url`, or built from the request.
    pub fn base_url(&self, headers: &HeaderMap) -> String {
        self.base_url.of(headers)
    }

    /// A 401 with the Bearer challenge telling the client where to get a token for `scope`.
    pub fn challenge(
        &self,
        headers: &HeaderMap,
        scope: Option<&str>,
        error: Option<&str>,
    ) -> Error {
        let mut value = format!(
            "Bearer realm=\"{}\",service=\"{}\"",
            self.realm(headers),
            self.service
        );
        if let Some(scope) = scope {
            value.push_str(&format!(",scope=\"{scope}\""));
        }
        if let Some(error) = error {
            value.push_str(&format!(",error=\"{error}\""));
        }
        let message = match error {
            Some("insufficient_scope") => "the token does not grant this access",
            Some(_) => "the token is invalid or expired",
            None => "authentication required",
        };
        Error::new(StatusCode::UNAUTHORIZED, Code::Unauthorized)
            .message(message)
            .header(header::WWW_AUTHENTICATE, value)
    }
}

/// The root (`minted_by`) of what a trust policy's admission gives: deleting the policy ends it.
fn policy_root(admitted: &crate::oidc::Admitted) -> String {
    format!("{POLICY_ROOT_PREFIX}{}", admitted.policy)
}

/// How the registry tells clients its own address (the token `realm`, image names): a fixed
/// `--public-url`, or the request's `Host`; `X-Forwarded-Host`/`-Proto` only with
/// `--trust-proxy`, since any client can send them and would otherwise choose the realm that
/// other clients' credentials are sent to.
#[derive(Debug, Clone, Default)]
pub struct BaseUrl {
    fixed: Option<String>,
    trust_proxy: bool,
    /// The registry serves TLS itself: `https` unless a trusted proxy says otherwise.
    tls: bool,
}

impl BaseUrl {
    pub fn new(public_url: Option<&str>, trust_proxy: bool) -> Self {
        BaseUrl {
            fixed: public_url.map(|u| u.trim_end_matches('/').to_owned()),
            trust_proxy,
            tls: false,
        }
    }

    pub fn with_tls(mut self, tls: bool) -> Self {
        self.tls = tls;
        self
    }

    /// `scheme://host` as the client addressed the registry.
    pub fn of(&self, headers: &HeaderMap) -> String {
        if let Some(base) = &self.fixed {
            return base.clone();
        }
        let forwarded = |name: &str| {
            self.trust_proxy
                .then(|| headers.get(name).and_then(|v| v.to_str().ok()))
                .flatten()
        };
        let host = forwarded("x-forwarded-host")
            .or_else(|| headers.get(header::HOST).and_then(|v| v.to_str().ok()))
            .unwrap_or("localhost");
        let scheme = forwarded("x-forwarded-proto")
            .filter(|s| *s == "https" || *s == "http")
            .unwrap_or(if self.tls { "https" } else { "http" });
        format!("{scheme}://{host}")
    }

    /// The `host[:port]` part of [`BaseUrl::of`].
    pub fn host(&self, headers: &HeaderMap) -> String {
        let base = self.of(headers);
        match base.split_once("://") {
            Some((_, host)) => host.to_owned(),
            None => base,
        }
    }
}

/// The secret in an `Authorization` header: a Bearer token, or the password of Basic
/// credentials (the user name is ignored; clients send `x-token`). `None` without the header;
/// a malformed header is a 401.
pub fn presented_secret(headers: &HeaderMap) -> Result<Option<String>> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let malformed = || Error::unauthorized("malformed Authorization header");
    let value = value.to_str().map_err(|_| malformed())?.trim();
    let (scheme, rest) = value.split_once(' ').ok_or_else(malformed)?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty() {
        return Ok(Some(rest.to_owned()));
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .map_err(|_| malformed())?;
        let decoded = String::from_utf8(decoded).map_err(|_| malformed())?;
        let (_, password) = decoded.split_once(':').ok_or_else(malformed)?;
        if password.is_empty() {
            return Err(malformed());
        }
        return Ok(Some(password.to_owned()));
    }
    Err(malformed())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, v.parse().unwrap());
        h
    }

    #[test]
    fn reads_presented_secrets() {
        assert_eq!(
            presented_secret(&headers("Bearer abc")).unwrap(),
            Some("abc".into())
        );
        let basic = base64::engine::general_purpose::STANDARD.encode("x-token:s3cret");
        assert_eq!(
            presented_secret(&headers(&format!("Basic {basic}"))).unwrap(),
            Some("s3cret".into())
        );
        assert_eq!(presented_secret(&HeaderMap::new()).unwrap(), None);
        for bad in [
            "Bearer",
            "Bearer   ",
            "Basic !!!",
            "Basic eC10b2tlbg==",
            "Digest x",
            "x",
        ] {
            assert!(presented_secret(&headers(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn admin_token_file_is_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin-token");
        let first = load_or_create_admin_token(&path).unwrap();
        assert!(first.starts_with(ADMIN_PREFIX));
        assert_eq!(load_or_create_admin_token(&path).unwrap(), first);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
