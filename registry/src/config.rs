//! Server configuration: every option is a flag and an environment variable, with a default that
//! gives the zero-config embedded registry (SQLite and blobs under `./depot-data`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use depot_store::backend::{BackendConfig, GcConfig};

/// Options of `depot-registry serve`.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeConfig {
    /// Address to listen on.
    #[arg(long, env = "DEPOT_LISTEN", default_value = "127.0.0.1:5000")]
    pub listen: SocketAddr,

    /// Serve `/metrics` on this address only (not on --listen), so the registry's public port
    /// need not expose it.
    #[arg(long, env = "DEPOT_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,

    #[command(flatten)]
    pub backend: BackendConfig,

    /// Seconds to let requests in flight finish after SIGTERM/SIGINT before abandoning them.
    /// Abandoned uploads lose only their unacknowledged chunk and can be resumed.
    #[arg(long, env = "DEPOT_SHUTDOWN_GRACE", default_value_t = 30)]
    pub shutdown_grace_secs: u64,

    /// Serve TLS with this certificate chain (PEM; with --tls-key-file). The files are read
    /// again when they change, so a rotated certificate needs no restart.
    #[arg(long, env = "DEPOT_TLS_CERT_FILE", requires = "tls_key_file")]
    pub tls_cert_file: Option<PathBuf>,

    /// The private key of --tls-cert-file (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "DEPOT_TLS_KEY_FILE", requires = "tls_cert_file")]
    pub tls_key_file: Option<PathBuf>,

    /// Log lines as `text` (for people) or `json` (one object per line, for log collectors:
    /// timestamp, level, message, fields, and the request id of the request being served).
    #[arg(long, env = "DEPOT_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,

    /// Seconds between SIGTERM/SIGINT and closing the listener: `/readyz` answers 503 at once
    /// and new requests are still served meanwhile, so a load balancer that probes readiness
    /// stops sending before connections are refused (0 with a Kubernetes `preStop` pause).
    #[arg(long, env = "DEPOT_SHUTDOWN_DELAY", default_value_t = 0,
          value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub shutdown_delay_secs: u64,

    /// Most client connections served at once; beyond it a new connection is answered 503 and
    /// closed (raise the process's open-file limit to match: it is raised to its hard limit
    /// at start).
    #[arg(long, env = "DEPOT_MAX_CONNECTIONS", default_value_t = 4096,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_connections: u64,

    /// Seconds a client has to send a request's head (method, path, headers), counted from
    /// its connection's start or from the previous answer: also how long an idle kept-alive
    /// connection stays open.
    #[arg(long = "header-timeout", env = "DEPOT_HEADER_TIMEOUT", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub header_timeout_secs: u64,

    /// Seconds a connection may move no byte in either direction while a request is in
    /// flight (a stalled upload or download) before it is closed.
    #[arg(long = "idle-timeout", env = "DEPOT_IDLE_TIMEOUT", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub idle_timeout_secs: u64,

    /// Seconds a cached tag lookup may be served before the database is asked again.
    #[arg(long, env = "DEPOT_CACHE_TTL", default_value_t = 5)]
    pub cache_ttl_secs: u64,

    /// Blob GETs redirect (307) to presigned S3 URLs instead of streaming through the registry:
    /// `on`, `off`, or `auto` (on for AWS, off with --s3-endpoint, which clients may not reach).
    #[arg(long, env = "DEPOT_S3_REDIRECT", default_value = "auto", value_parser = ["auto", "on", "off"])]
    pub s3_redirect: String,

    /// MiB of recently read blob chunks kept in memory with S3 storage; concurrent pulls of the
    /// same blob share one S3 request per chunk through it.
    #[arg(long, env = "DEPOT_S3_READ_CACHE_MIB", default_value_t = 256)]
    pub s3_read_cache_mib: u64,

    /// Seconds between garbage collections run by this server (one replica at a time collects;
    /// the others skip); 0 turns them off (run `depot-gc` instead).
    #[arg(long = "gc-interval", env = "DEPOT_GC_INTERVAL", default_value_t = 300)]
    pub gc_interval_secs: u64,

    /// Seconds between samples of each project's usage (storage, saved builds, pulls) for the
    /// dashboard's chart; 0 turns sampling off
    #[arg(
        long = "usage-interval",
        env = "DEPOT_USAGE_INTERVAL",
        default_value_t = 600
    )]
    pub usage_interval_secs: u64,

    #[command(flatten)]
    pub gc: GcConfig,

    #[command(flatten)]
    pub auth: AuthConfig,
}

/// Authentication options.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct AuthConfig {
    /// Run without authentication (local experiments only): refused unless listening on a
    /// loopback address.
    #[arg(long, env = "DEPOT_NO_AUTH")]
    pub no_auth: bool,

    /// File holding the admin token. Default `<data-dir>/admin-token`, created (mode 0600) on
    /// first start when neither this nor DEPOT_ADMIN_TOKEN is given.
    #[arg(long, env = "DEPOT_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,

    /// The admin token itself (prefer the file: environments leak into process listings).
    #[arg(
        long = "admin-token",
        env = "DEPOT_ADMIN_TOKEN",
        hide_env_values = true
    )]
    pub admin_token: Option<String>,

    /// Ed25519 private key (PKCS#8 PEM) that signs tokens. Default: a key generated once and
    /// kept in the metadata database, shared by every replica.
    #[arg(long, env = "DEPOT_SIGNING_KEY_FILE")]
    pub signing_key_file: Option<PathBuf>,

    /// Extra keys (PEM, public or private) whose tokens are still accepted, for key rotation;
    /// repeat the flag, or separate files with commas in the environment variable.
    #[arg(
        long = "verify-key-file",
        env = "DEPOT_VERIFY_KEY_FILES",
        value_delimiter = ','
    )]
    pub verify_key_files: Vec<PathBuf>,

    /// The `service` named in challenges and the audience of tokens.
    #[arg(long, env = "DEPOT_AUTH_SERVICE", default_value = "depot-registry")]
    pub auth_service: String,

    /// URL clients reach the registry at, for the token realm (e.g. behind a proxy); default
    /// built from each request's Host header.
    #[arg(long, env = "DEPOT_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Believe `X-Forwarded-Host` and `X-Forwarded-Proto` (only behind a proxy that sets them,
    /// overwriting what clients send); without it the realm and image names come from `Host`.
    #[arg(long, env = "DEPOT_TRUST_PROXY")]
    pub trust_proxy: bool,

    /// Lifetime of access tokens issued by /token, in seconds.
    #[arg(long, env = "DEPOT_TOKEN_TTL", default_value_t = 300)]
    pub token_ttl_secs: i64,

    /// Replace a CI provider's OIDC issuer, as PROVIDER=URL (github, gitlab, circleci,
    /// buildkite): GitHub Enterprise Server (`github=https://HOST/_services/token`), a
    /// self-hosted GitLab (`gitlab=https://gitlab.example.com`). Repeatable; separate entries
    /// with commas in the environment variable.
    #[arg(
        long = "oidc-issuer",
        env = "DEPOT_OIDC_ISSUERS",
        value_delimiter = ','
    )]
    pub oidc_issuers: Vec<String>,

    /// The audience (`aud`) CI jobs' OIDC tokens must carry. Default: --public-url; without
    /// either, OIDC exchange is off (a Host header is no audience: any client chooses it).
    #[arg(long, env = "DEPOT_OIDC_AUDIENCE")]
    pub oidc_audience: Option<String>,

    /// Let the admin move the registry clock forward (`POST /api/v1/admin/clock`), for tests
    /// of expiry. Never in production.
    #[arg(long, env = "DEPOT_TEST_CLOCK", hide = true)]
    pub test_clock: bool,
}

impl ServeConfig {
    /// The configuration with every default, storing under `data_dir`.
    pub fn embedded(data_dir: impl Into<PathBuf>) -> Self {
        ServeConfig {
            listen: ([127, 0, 0, 1], 5000).into(),
            metrics_listen: None,
            backend: BackendConfig {
                data_dir: data_dir.into(),
                database_url: None,
                database_url_file: None,
                storage: None,
                s3_endpoint: None,
                s3_region: None,
                s3_force_path_style: false,
                s3_part_size_mib: 16,
            },
            shutdown_grace_secs: 30,
            shutdown_delay_secs: 0,
            log_format: "text".into(),
            tls_cert_file: None,
            tls_key_file: None,
            max_connections: 4096,
            header_timeout_secs: 10,
            idle_timeout_secs: 60,
            cache_ttl_secs: 5,
            s3_read_cache_mib: 256,
            s3_redirect: "auto".into(),
            gc_interval_secs: 300,
            usage_interval_secs: 600,
            gc: GcConfig::default(),
            auth: AuthConfig {
                auth_service: "depot-registry".into(),
                token_ttl_secs: 300,
                ..AuthConfig::default()
            },
        }
    }

    /// Refuses configurations that would expose an unauthenticated registry.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.auth.no_auth && !self.listen.ip().is_loopback() {
            anyhow::bail!(
                "--no-auth is only allowed on a loopback address, not {}",
                self.listen
            );
        }
        Ok(())
    }

    /// The TLS side of the listener, if --tls-cert-file is given (loaded now: a bad pair stops
    /// the start).
    pub fn tls(&self) -> anyhow::Result<Option<crate::tls::Tls>> {
        match (&self.tls_cert_file, &self.tls_key_file) {
            (Some(cert), Some(key)) => crate::tls::Tls::load(cert, key).map(Some),
            _ => Ok(None),
        }
    }

    /// How the server stops, on `signal`.
    pub fn shutdown<S>(&self, signal: S) -> Shutdown<S> {
        Shutdown {
            signal,
            delay: Duration::from_secs(self.shutdown_delay_secs),
            grace: Duration::from_secs(self.shutdown_grace_secs),
        }
    }

    /// The connection limits these flags set.
    pub fn connection_limits(&self) -> crate::connections::Limits {
        crate::connections::Limits {
            max_connections: self.max_connections as usize,
            header_timeout: Duration::from_secs(self.header_timeout_secs),
            idle_timeout: Duration::from_secs(self.idle_timeout_secs),
        }
    }
}

/// How the server stops: on `signal`, `/readyz` answers 503 at once; new connections are still
/// served for `delay` (so load balancers that probe readiness stop sending before connections
/// are refused); then the listener closes and requests in flight get up to `grace`.
pub struct Shutdown<S> {
    pub signal: S,
    pub delay: Duration,
    pub grace: Duration,
}
