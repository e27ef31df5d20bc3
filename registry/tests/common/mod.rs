//! Starts the real `depot-registry` binary for integration tests: on `127.0.0.1:0` (the address
//! is read from its startup log line, so tests never race for a port), with a data directory
//! the test owns, so a test can kill it and start it again on the same data.

#![allow(dead_code)]

pub mod tools;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The `depot-registry` binary: Cargo's for this package's tests; for other packages' tests
/// (which share this module), the one built beside them in the same target directory.
pub fn registry_bin() -> PathBuf {
    match option_env!("CARGO_BIN_EXE_depot-registry") {
        Some(p) => PathBuf::from(p),
        None => {
            let exe = std::env::current_exe().expect("test executable path");
            let bin = exe
                .parent()
                .and_then(Path::parent)
                .expect("target/<profile>/deps")
                .join("depot-registry");
            assert!(
                bin.exists(),
                "{} is missing: build the workspace first (cargo build --workspace)",
                bin.display()
            );
            bin
        }
    }
}

pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    logs: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
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
        let mut child = Command::new(registry_bin())
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .env("DEPOT_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start depot-registry");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        let logs = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = logs.clone();
        // Keep draining the log so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                kept.lock().unwrap().push(line.clone());
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    let addr = rest.split_whitespace().next().unwrap_or("").to_owned();
                    let _ = tx.send(addr);
                }
                if std::env::var_os("DEPOT_TEST_SHOW_LOGS").is_some() {
                    eprintln!("[registry] {line}");
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("registry printed its address");
        Server {
            child,
            addr: addr.parse().expect("address"),
            data_dir: data_dir.to_owned(),
            logs,
        }
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
        format!("http://{}", self.addr)
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

pub fn sha256(data: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}

pub fn random_bytes(n: usize) -> Vec<u8> {
    use rand::RngCore;
    let mut v = vec![0u8; n];
    rand::thread_rng().fill_bytes(&mut v);
    v
}

/// `method /api/v1{path}` on the registry at `base` with `secret` as Bearer token; the JSON
/// answer, which must be a success.
pub fn api(
    http: &reqwest::blocking::Client,
    base: &str,
    method: reqwest::Method,
    path: &str,
    secret: &str,
    body: serde_json::Value,
) -> serde_json::Value {
    let resp = http
        .request(method, format!("{base}/api/v1{path}"))
        .bearer_auth(secret)
        .json(&body)
        .send()
        .unwrap();
    let status = resp.status();
    let v: serde_json::Value = resp.json().unwrap_or(serde_json::Value::Null);
    assert!(status.is_success(), "{path}: {status} {v}");
    v
}

/// An access token for `scope` from the registry at `base`, presenting `secret` as `x-token`.
pub fn access_token(
    http: &reqwest::blocking::Client,
    base: &str,
    secret: &str,
    scope: &str,
) -> String {
    let v: serde_json::Value = http
        .get(format!("{base}/token"))
        .query(&[("service", "depot-registry"), ("scope", scope)])
        .basic_auth("x-token", Some(secret))
        .send()
        .unwrap()
        .json()
        .unwrap();
    v["token"].as_str().unwrap().to_owned()
}
