//! Server configuration: every option is a flag and an environment variable, with a default that
//! gives the zero-config embedded registry (SQLite and blobs under `./depot-data`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Options of `depot-registry serve`.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeConfig {
    /// Address to listen on.
    #[arg(long, env = "DEPOT_LISTEN", default_value = "127.0.0.1:5000")]
    pub listen: SocketAddr,

    /// Directory for the embedded metadata database and blob files; created on first start.
    #[arg(long, env = "DEPOT_DATA_DIR", default_value = "./depot-data")]
    pub data_dir: PathBuf,

    /// Seconds to let requests in flight finish after SIGTERM/SIGINT before abandoning them.
    /// Abandoned uploads lose only their unacknowledged chunk and can be resumed.
    #[arg(long, env = "DEPOT_SHUTDOWN_GRACE", default_value_t = 30)]
    pub shutdown_grace_secs: u64,

    /// Seconds a cached tag lookup may be served before the database is asked again.
    #[arg(long, env = "DEPOT_CACHE_TTL", default_value_t = 5)]
    pub cache_ttl_secs: u64,
}

impl ServeConfig {
    /// The configuration with every default, storing under `data_dir`.
    pub fn embedded(data_dir: impl Into<PathBuf>) -> Self {
        ServeConfig {
            listen: ([127, 0, 0, 1], 5000).into(),
            data_dir: data_dir.into(),
            shutdown_grace_secs: 30,
            cache_ttl_secs: 5,
        }
    }

    pub fn database_url(&self) -> String {
        format!(
            "sqlite:{}?mode=rwc",
            self.data_dir.join("metadata.db").display()
        )
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }
}
