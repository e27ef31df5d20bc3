//! Starts the real `depot-registry` binary for integration tests: on `127.0.0.1:0` (the process
//! keeps the listener it bound and the address is read from its startup log line, so tests
//! never race for a port), with a data directory the test owns, so a test can kill it and start
//! it again on the same data.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use crate::process::start_reporting;

/// A binary of this workspace, built beside the test executables in the same target directory
/// (`target/<profile>/<name>`): `cargo test --workspace` builds every package's binaries.
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps")
        .join(name);
    assert!(
        bin.exists(),
        "{} is missing: build the workspace first (cargo build --workspace)",
        bin.display()
    );
    bin
}

/// The `depot-registry` binary.
pub fn registry_bin() -> PathBuf {
    workspace_bin("depot-registry")
}

pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    logs: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    /// `http`, or `https` when the registry serves TLS itself.
    scheme: &'static str,
    /// The flags it was started with after `--data-dir`, for [`Server::restart`].
    extra: Vec<String>,
    /// Environment variables set for it (S3 credentials of a store of the test's own).
    envs: Vec<(String, String)>,
}

impl Server {
    /// Without authentication (`--no-auth`).
    pub fn start(data_dir: &Path) -> Server {
        Self::start_with(data_dir, &["--no-auth"])
    }

    /// With token authentication (the default) and a clock the admin can move forward.
    pub fn start_authed(data_dir: &Path) -> Server {
        Self::start_with(data_dir, &["--test-clock"])
    }

    pub fn start_with(data_dir: &Path, extra: &[&str]) -> Server {
        Self::start_as("http", data_dir, extra)
    }

    /// Serving TLS itself (`extra` names `--tls-cert-file` and `--tls-key-file`): [`Server::url`]
    /// is `https://`.
    pub fn start_tls(data_dir: &Path, extra: &[&str]) -> Server {
        Self::start_as("https", data_dir, extra)
    }

    /// [`Server::start_with`], with environment variables `envs` set for the process.
    pub fn start_with_env(data_dir: &Path, extra: &[&str], envs: &[(&str, &str)]) -> Server {
        let envs = envs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Self::start_full("http", data_dir, extra, envs)
    }

    fn start_as(scheme: &'static str, data_dir: &Path, extra: &[&str]) -> Server {
        Self::start_full(scheme, data_dir, extra, Vec::new())
    }

    fn start_full(
        scheme: &'static str,
        data_dir: &Path,
        extra: &[&str],
        envs: Vec<(String, String)>,
    ) -> Server {
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let started = Self::spawn(scheme, "127.0.0.1:0", data_dir, &extra, &envs);
        Server {
            child: started.child,
            addr: started.addr.parse().expect("address"),
            data_dir: data_dir.to_owned(),
            logs: started.logs,
            scheme,
            extra,
            envs,
        }
    }

    fn spawn(
        scheme: &'static str,
        listen: &str,
        data_dir: &Path,
        extra: &[String],
        envs: &[(String, String)],
    ) -> crate::process::Reported {
        let marker = if scheme == "https" {
            "listening on https://"
        } else {
            "listening on http://"
        };
        start_reporting(
            Command::new(registry_bin())
                .args(["serve", "--listen", listen, "--data-dir"])
                .arg(data_dir)
                .args(extra)
                .envs(envs.iter().map(|(k, v)| (k, v)))
                .env("DEPOT_LOG", "info"),
            marker,
            "depot-registry",
            true,
        )
    }

    /// Kills the process if it runs and starts it again with the same flags, on the same data
    /// and the same address (a load balancer in front keeps finding it); the logs go on.
    pub fn restart(&mut self) {
        self.kill();
        let started = Self::spawn(
            self.scheme,
            &self.addr.to_string(),
            &self.data_dir,
            &self.extra,
            &self.envs,
        );
        self.child = started.child;
        // One log across both lives: the earlier lines first.
        let earlier = std::mem::take(&mut *self.logs.lock().unwrap());
        {
            let mut lines = started.logs.lock().unwrap();
            let later = std::mem::replace(&mut *lines, earlier);
            lines.extend(later);
        }
        self.logs = started.logs;
    }

    /// Everything the server has logged so far.
    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    /// The admin token the server created on first start.
    pub fn admin_token(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("admin-token"))
            .expect("admin-token file")
            .trim()
            .to_owned()
    }

    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    /// `host:port`, as image references want it.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: the crash case.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, without waiting.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
    }

    /// Waits for the process to exit, up to `limit`.
    pub fn wait(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
