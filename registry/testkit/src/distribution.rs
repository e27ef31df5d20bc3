//! A CNCF distribution registry (`docker-registry` 2.8), the reference peer: as a destination
//! for promotions, behind htpasswd Basic auth or not, restartable on the same storage.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::process::start_reporting;

pub struct Distribution {
    child: Option<Child>,
    pub port: u16,
    pub root: PathBuf,
    dir: PathBuf,
    auth: String,
    /// The `storage:` section's body (YAML, indented two spaces).
    storage: String,
}

impl Distribution {
    /// `basic`: user and password for htpasswd auth. It binds a port of its own choosing and
    /// says which in its log.
    pub fn start(dir: &Path, basic: Option<(&str, &str)>) -> Distribution {
        std::fs::create_dir_all(dir).unwrap();
        let mut auth = String::new();
        if let Some((user, pass)) = basic {
            let htpasswd = dir.join("htpasswd");
            let hash = bcrypt::hash(pass, 4).unwrap();
            std::fs::write(&htpasswd, format!("{user}:{hash}\n")).unwrap();
            auth = format!(
                "auth:\n  htpasswd:\n    realm: test\n    path: {}\n",
                htpasswd.display()
            );
        }
        let root = dir.join("storage");
        let storage = format!("  filesystem:\n    rootdirectory: {}\n", root.display());
        let mut d = Distribution {
            child: None,
            port: 0,
            root,
            dir: dir.to_owned(),
            auth,
            storage,
        };
        d.restart();
        d
    }

    /// Without auth, on the storage `storage` describes (the body of the `storage:` section,
    /// indented two spaces: an `s3:` driver, say; `delete` is enabled here).
    pub fn start_with_storage(dir: &Path, storage: &str) -> Distribution {
        std::fs::create_dir_all(dir).unwrap();
        let mut d = Distribution {
            child: None,
            port: 0,
            root: dir.join("storage"),
            dir: dir.to_owned(),
            auth: String::new(),
            storage: storage.to_owned(),
        };
        d.restart();
        d
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts the process (again), on the same storage and (after the first start) the same
    /// port; waits until it answers.
    pub fn restart(&mut self) {
        let config = self.dir.join("config.yml");
        // A fixed http secret: upload sessions stay valid across a restart.
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: info\nstorage:\n{}  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{}\n  secret: depot-test-secret\n{}",
                self.storage,
                self.port,
                self.auth
            ),
        )
        .unwrap();
        let started = start_reporting(
            Command::new("docker-registry")
                .arg("serve")
                .arg(&config)
                .env_remove("AWS_CA_BUNDLE"),
            "listening on ",
            "docker-registry",
            false,
        );
        self.port = started.port();
        self.child = Some(started.child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "docker-registry did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Distribution {
    fn drop(&mut self) {
        self.kill();
    }
}
