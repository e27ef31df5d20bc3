//! The production backends, really started: a fresh PostgreSQL database and S3 bucket on the
//! servers `.ci/run` starts ([`fresh`]), and servers a test owns and can stop, freeze and start
//! again ([`S3Server`], [`Postgres`]), for replica and fault tests.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::process::{free_port, start_reporting};

/// What several replicas share.
pub struct Backends {
    pub database_url: String,
    pub endpoint: String,
    pub bucket: String,
    /// An admin token every replica is started with.
    pub admin: String,
}

impl Backends {
    /// The `serve` flags that put a replica on these backends.
    pub fn flags(&self) -> Vec<String> {
        let mut flags = self.store_flags();
        flags.extend(["--admin-token".to_owned(), self.admin.clone()]);
        flags
    }

    /// `serve` flags for a test server on these backends: no authentication, no collection,
    /// and S3's smallest part (5 MiB), so a few MiB make a blob of several parts and a tail.
    pub fn test_flags(&self) -> Vec<String> {
        let mut flags: Vec<String> = ["--no-auth", "--gc-interval", "0"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        flags.extend(self.flags());
        flags.extend(["--s3-part-size-mib".into(), "5".into()]);
        flags
    }

    /// The database and store flags `serve`, `admin` and `depot-gc` all take.
    pub fn store_flags(&self) -> Vec<String> {
        [
            "--database-url",
            &self.database_url,
            "--storage",
            &format!("s3://{}/registry", self.bucket),
            "--s3-endpoint",
            &self.endpoint,
            "--s3-region",
            "us-east-1",
            "--s3-force-path-style",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }
}

impl Backends {
    /// How many objects the bucket holds (committed blobs and whatever upload sessions left).
    pub fn object_count(&self) -> usize {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                let options = depot_store::storage::S3Options {
                    endpoint: Some(self.endpoint.clone()),
                    region: Some("us-east-1".into()),
                    force_path_style: true,
                };
                let client = depot_store::storage::s3_client(&options).await;
                let mut count = 0;
                let mut pages = client
                    .list_objects_v2()
                    .bucket(&self.bucket)
                    .into_paginator()
                    .send();
                while let Some(page) = pages.next().await {
                    count += page.unwrap().contents().len();
                }
                count
            })
    }
}

/// A new database and bucket named after `prefix`, or `None` (and a note) when
/// `DEPOT_TEST_POSTGRES_URL` or `DEPOT_TEST_S3_ENDPOINT` is not set.
pub fn fresh(prefix: &str) -> Option<Backends> {
    let (Ok(postgres), Ok(endpoint)) = (
        std::env::var("DEPOT_TEST_POSTGRES_URL"),
        std::env::var("DEPOT_TEST_S3_ENDPOINT"),
    ) else {
        eprintln!("DEPOT_TEST_S3_ENDPOINT not set (or DEPOT_TEST_POSTGRES_URL); this test runs in .ci/run");
        return None;
    };
    let suffix = format!("{:016x}", rand::random::<u64>());
    let database = format!("{prefix}_{suffix}");
    let bucket = format!("{prefix}-{suffix}");
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&postgres).await.unwrap();
            sqlx::query(&format!("CREATE DATABASE {database}"))
                .execute(&mut conn)
                .await
                .unwrap();
            let options = depot_store::storage::S3Options {
                endpoint: Some(endpoint.clone()),
                region: Some("us-east-1".into()),
                force_path_style: true,
            };
            let client = depot_store::storage::s3_client(&options).await;
            client.create_bucket().bucket(&bucket).send().await.unwrap();
        });
    let base = postgres.rsplit_once('/').unwrap().0;
    Some(Backends {
        database_url: format!("{base}/{database}"),
        endpoint,
        bucket,
        admin: format!("depot_admin_{}", "k".repeat(8) + &suffix + &suffix),
    })
}

/// An s3s-fs server over `root`, restartable on the same data (and, once started, the same
/// port: the first start takes the port it bound itself and reported).
pub struct S3Server {
    child: Option<Child>,
    root: PathBuf,
    port: u16,
}

impl S3Server {
    pub fn start(root: &Path) -> S3Server {
        let mut s = S3Server {
            child: None,
            root: root.to_owned(),
            port: 0,
        };
        s.restart();
        s
    }

    pub fn restart(&mut self) {
        let started = start_reporting(
            Command::new("s3s-fs")
                .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
                .args(["--access-key", &std::env::var("AWS_ACCESS_KEY_ID").unwrap()])
                .args([
                    "--secret-key",
                    &std::env::var("AWS_SECRET_ACCESS_KEY").unwrap(),
                ])
                .arg(&self.root)
                .env("RUST_LOG", "info"),
            "server is running at http://",
            "s3s-fs",
            false,
        );
        self.port = started.port();
        self.child = Some(started.child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "s3s-fs did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// SIGSTOP (`true`) or SIGCONT: a store that stops answering without closing connections.
    pub fn freeze(&self, frozen: bool) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        let signal = if frozen { "-STOP" } else { "-CONT" };
        run_ok(Command::new("kill").args([signal, &pid]));
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A throwaway PostgreSQL cluster, run as `postgres`, stoppable and restartable. PostgreSQL
/// cannot bind a port of its own choosing and report it, so a free port is picked and, should
/// another process take it first, the start is tried again on another.
pub struct Postgres {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    /// More server options (`-c name=value ...`).
    options: String,
}

impl Postgres {
    pub fn start(dir: &Path) -> Postgres {
        Self::start_with(dir, "")
    }

    /// With more server options, e.g. `-c shared_preload_libraries=pg_stat_statements`.
    pub fn start_with(dir: &Path, options: &str) -> Postgres {
        let initdb = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL binaries")
            .filter_map(|e| e.ok().map(|e| e.path().join("bin/initdb")))
            .filter(|p| p.exists())
            .max()
            .expect("initdb");
        let bin = initdb.parent().unwrap().to_owned();
        std::fs::create_dir_all(dir).unwrap();
        // The test's temporary directory is private; the postgres user must reach into it.
        use std::os::unix::fs::PermissionsExt;
        let parent = dir.parent().unwrap();
        std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o755)).unwrap();
        let data = dir.join("pg");
        run_ok(Command::new("chown").args(["postgres"]).arg(dir));
        run_ok(
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(bin.join("initdb"))
                .args(["-A", "trust", "-U", "postgres", "-D"])
                .arg(&data),
        );
        let mut pg = Postgres {
            bin,
            data,
            port: 0,
            options: options.to_owned(),
        };
        for attempt in 0.. {
            pg.port = free_port();
            match pg.try_pg_ctl("start") {
                Ok(()) => break,
                Err(e) if attempt < 5 => eprintln!("PostgreSQL on port {}: {e}; again", pg.port),
                Err(e) => panic!("PostgreSQL did not start: {e}"),
            }
        }
        run_ok(
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(pg.bin.join("createdb"))
                .args(["-h", "127.0.0.1", "-p", &pg.port.to_string(), "depot"]),
        );
        pg
    }

    pub fn pg_ctl(&self, action: &str) {
        if let Err(e) = self.try_pg_ctl(action) {
            panic!("pg_ctl {action}: {e}");
        }
    }

    fn try_pg_ctl(&self, action: &str) -> Result<(), String> {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off {}",
            self.port,
            self.data.display(),
            self.options
        );
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&self.data)
            .args(["-w", "-m", "immediate", "-l"])
            .arg(self.data.join("log"));
        // `restart` reuses the options of the last start (postmaster.opts).
        if action == "start" {
            cmd.args(["-o", &options]);
        }
        let out = cmd.arg(action).output().map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        Ok(())
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/depot", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "stop"])
            .output();
    }
}

/// Runs `cmd` (as root, or through `runuser`), which must succeed.
pub fn run_ok(cmd: &mut Command) {
    let out = cmd.output().expect("run a PostgreSQL command");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
