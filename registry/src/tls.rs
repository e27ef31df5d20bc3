//! TLS without a proxy (`--tls-cert-file`, `--tls-key-file`: PEM files), served with rustls.
//!
//! The files are looked at again every [`RELOAD_EVERY`]; when either changed (cert-manager
//! rotating a certificate writes new files into the Secret's volume), the pair is loaded and new
//! connections get it, without a restart. A pair that does not load (a half-written file, a key
//! that does not match) keeps the previous certificate in service and says so in the log.
//! HTTP/2 is offered by ALPN beside HTTP/1.1.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use tokio_rustls::rustls::crypto::aws_lc_rs;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

/// How often the certificate files are checked for a change.
pub const RELOAD_EVERY: Duration = Duration::from_secs(10);

/// The certificate in service, and where it comes from.
#[derive(Debug)]
struct Reloading {
    current: RwLock<Arc<CertifiedKey>>,
    cert: PathBuf,
    key: PathBuf,
    /// The files' modification times and lengths when last loaded.
    seen: Mutex<Stamp>,
}

type Stamp = [(Option<SystemTime>, u64); 2];

fn stamp(cert: &Path, key: &Path) -> Stamp {
    let one = |p: &Path| std::fs::metadata(p).map_or((None, 0), |m| (m.modified().ok(), m.len()));
    [one(cert), one(key)]
}

impl ResolvesServerCert for Reloading {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        )
    }
}

/// Reads a certificate chain and its private key.
fn load_pair(cert: &Path, key: &Path) -> anyhow::Result<CertifiedKey> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("reading {}", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing {}", cert.display()))?;
    anyhow::ensure!(!chain.is_empty(), "{} holds no certificate", cert.display());
    let key_der = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("reading the private key in {}", key.display()))?;
    let signing = aws_lc_rs::sign::any_supported_type(&key_der)
        .with_context(|| format!("{} is not a usable private key", key.display()))?;
    let pair = CertifiedKey::new(chain, signing);
    pair.keys_match().with_context(|| {
        format!(
            "the key in {} does not belong to {}",
            key.display(),
            cert.display()
        )
    })?;
    Ok(pair)
}

/// The TLS side of the listener.
#[derive(Clone)]
pub struct Tls {
    acceptor: TlsAcceptor,
    certs: Arc<Reloading>,
}

impl Tls {
    /// Loads the pair (a failure here stops the start) and builds the server configuration.
    pub fn load(cert: &Path, key: &Path) -> anyhow::Result<Tls> {
        let seen = stamp(cert, key);
        let certs = Arc::new(Reloading {
            current: RwLock::new(Arc::new(load_pair(cert, key)?)),
            cert: cert.to_owned(),
            key: key.to_owned(),
            seen: Mutex::new(seen),
        });
        let mut config =
            ServerConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
                .with_safe_default_protocol_versions()
                .context("TLS protocol versions")?
                .with_no_client_auth()
                .with_cert_resolver(certs.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Tls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            certs,
        })
    }

    pub fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }

    /// Loads the pair again if either file changed since it was last loaded; `true` if a new
    /// certificate is now in service.
    pub fn reload_if_changed(&self) -> bool {
        let c = &self.certs;
        let now = stamp(&c.cert, &c.key);
        let mut seen = c.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if *seen == now {
            return false;
        }
        match load_pair(&c.cert, &c.key) {
            Ok(pair) => {
                *c.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(pair);
                *seen = now;
                tracing::info!(cert = %c.cert.display(), "TLS certificate reloaded");
                true
            }
            Err(e) => {
                // Likely mid-rotation: keep serving the previous one and look again later.
                tracing::warn!(cert = %c.cert.display(), cause = %format!("{e:#}"), "the changed TLS files do not load; the previous certificate stays in service");
                false
            }
        }
    }

    /// Checks the files every [`RELOAD_EVERY`] for as long as the process runs.
    pub fn spawn_reloader(&self) {
        let tls = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(RELOAD_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let t = tls.clone();
                // File reads: off the async workers.
                let _ = tokio::task::spawn_blocking(move || t.reload_if_changed()).await;
            }
        });
    }
}
