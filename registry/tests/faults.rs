//! The production backends failing mid-push: the real S3 server (s3s-fs) and the real PostgreSQL
//! server are stopped during an upload and started again. The client gets a `503` with the JSON
//! envelope quickly (no hang), nothing partial becomes visible, and once the backend is back the
//! client's retry succeeds and nothing saved before is lost.
//!
//! Runs where `.ci/run` provides the servers (`DEPOT_TEST_S3_ENDPOINT` set, s3s-fs on the PATH,
//! PostgreSQL binaries installed, root to run them as `postgres`).

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{random_bytes, sha256, Server};
use reqwest::blocking::{Client, Response};
use serde_json::Value;

fn enabled() -> bool {
    if std::env::var("DEPOT_TEST_S3_ENDPOINT").is_err() {
        eprintln!("DEPOT_TEST_S3_ENDPOINT not set; backend faults are covered by .ci/run");
        return false;
    }
    true
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An s3s-fs server over `root` on `port`, restartable on the same data.
struct S3Server {
    child: Option<Child>,
    root: PathBuf,
    port: u16,
}

impl S3Server {
    fn start(root: &Path, port: u16) -> S3Server {
        let mut s = S3Server {
            child: None,
            root: root.to_owned(),
            port,
        };
        s.restart();
        s
    }

    fn restart(&mut self) {
        let child = Command::new("s3s-fs")
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--access-key", &std::env::var("AWS_ACCESS_KEY_ID").unwrap()])
            .args([
                "--secret-key",
                &std::env::var("AWS_SECRET_ACCESS_KEY").unwrap(),
            ])
            .arg(&self.root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start s3s-fs (bash .ci/setup installs it)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "s3s-fs did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// SIGSTOP (`true`) or SIGCONT: a store that stops answering without closing connections.
    fn freeze(&self, frozen: bool) {
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

/// A throwaway PostgreSQL cluster, run as `postgres`, stoppable and restartable.
struct Postgres {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
}

impl Postgres {
    fn start(dir: &Path) -> Postgres {
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
        let pg = Postgres {
            bin,
            data,
            port: free_port(),
        };
        pg.pg_ctl("start");
        run_ok(
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(pg.bin.join("createdb"))
                .args(["-h", "127.0.0.1", "-p", &pg.port.to_string(), "depot"]),
        );
        pg
    }

    fn pg_ctl(&self, action: &str) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.data.display()
        );
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&self.data)
            .args(["-w", "-m", "immediate", "-l"])
            .arg(self.data.join("log"));
        if action == "start" {
            cmd.args(["-o", &options]);
        }
        run_ok(cmd.arg(action));
    }

    fn url(&self) -> String {
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
fn run_ok(cmd: &mut Command) {
    let out = cmd.output().expect("run a PostgreSQL command");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap()
}

/// Asserts a quick `503` with the error envelope: within `limit`.
fn unavailable(resp: Response, took: Duration, limit: Duration) {
    assert_eq!(
        resp.status().as_u16(),
        503,
        "expected 503 while the backend is down"
    );
    assert!(took < limit, "took {took:?}: a hang, not an error");
    let body: Value = resp.json().unwrap();
    assert!(body["errors"][0]["code"].is_string(), "{body}");
}

/// Pushes chunk 1, takes the backend down, sees chunk 2 refused, brings it back, retries chunk 2
/// and closes the upload; checks the new blob and one pushed before the outage.
fn push_through_an_outage(
    server: &Server,
    down: &mut dyn FnMut(),
    up: &mut dyn FnMut(),
    limit: Duration,
) {
    let c = client();
    let base = server.url();
    let earlier = random_bytes(300_000);
    let resp = c
        .post(format!(
            "{base}/v2/team/app/blobs/uploads/?digest={}",
            sha256(&earlier)
        ))
        .body(earlier.clone())
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);

    let data = random_bytes(3 * 1024 * 1024);
    let mid = 1024 * 1024;
    let start = c
        .post(format!("{base}/v2/team/app/blobs/uploads/"))
        .send()
        .unwrap();
    let location = start.headers()["location"].to_str().unwrap().to_owned();
    let patch = |range: std::ops::Range<usize>| {
        c.patch(format!("{base}{location}"))
            .header("content-type", "application/octet-stream")
            .header(
                "content-range",
                format!("{}-{}", range.start, range.end - 1),
            )
            .body(data[range].to_vec())
            .send()
            .unwrap()
    };
    assert_eq!(patch(0..mid).status().as_u16(), 202);

    down();
    let t = Instant::now();
    let refused = patch(mid..data.len());
    unavailable(refused, t.elapsed(), limit);
    // While it is down the new blob is not there, whatever else may still be answered.
    let head = c
        .head(format!("{base}/v2/team/app/blobs/{}", sha256(&data)))
        .send()
        .unwrap();
    assert_ne!(head.status().as_u16(), 200);
    up();

    // Nothing partial is visible; the client's retry of the refused chunk goes on from where the
    // session stood.
    let head = c
        .head(format!("{base}/v2/team/app/blobs/{}", sha256(&data)))
        .send()
        .unwrap();
    assert_eq!(head.status().as_u16(), 404);
    let status = c.get(format!("{base}{location}")).send().unwrap();
    assert_eq!(
        status.headers()["range"].to_str().unwrap(),
        format!("0-{}", mid - 1)
    );
    assert_eq!(patch(mid..data.len()).status().as_u16(), 202);
    let closed = c
        .put(format!("{base}{location}?digest={}", sha256(&data)))
        .send()
        .unwrap();
    assert_eq!(closed.status().as_u16(), 201);
    for (blob, name) in [(&data, "new"), (&earlier, "earlier")] {
        let got = c
            .get(format!("{base}/v2/team/app/blobs/{}", sha256(blob)))
            .send()
            .unwrap();
        assert_eq!(got.status().as_u16(), 200, "{name} blob");
        assert!(got.bytes().unwrap() == *blob, "{name} blob changed");
    }
}

#[test]
fn s3_outage_mid_push() {
    if !enabled() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (s3, server) = on_s3s_fs(dir.path());
    let s3 = std::cell::RefCell::new(s3);
    push_through_an_outage(
        &server,
        &mut || s3.borrow_mut().stop(),
        &mut || s3.borrow_mut().restart(),
        Duration::from_secs(30),
    );
}

/// An s3s-fs server of its own under `dir`, and a registry storing its blobs there.
fn on_s3s_fs(dir: &Path) -> (S3Server, Server) {
    let root = dir.join("s3");
    std::fs::create_dir_all(root.join("depot")).unwrap();
    let s3 = S3Server::start(&root, free_port());
    let server = Server::start_with(
        &dir.join("registry"),
        &[
            "--no-auth",
            "--storage",
            "s3://depot/registry",
            "--s3-endpoint",
            &s3.url(),
            "--s3-region",
            "us-east-1",
            "--s3-force-path-style",
        ],
    );
    (s3, server)
}

/// A store that stops answering (SIGSTOP: connections stay open, nothing comes back) costs the
/// client about `CALL_TIMEOUT` (10 s), not the SDK's 60-second read timeout.
#[test]
fn s3_that_stops_answering_mid_push() {
    if !enabled() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (s3, server) = on_s3s_fs(dir.path());
    push_through_an_outage(
        &server,
        &mut || s3.freeze(true),
        &mut || s3.freeze(false),
        Duration::from_secs(15),
    );
}

#[test]
fn postgres_outage_mid_push() {
    if !enabled() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pg = Postgres::start(&dir.path().join("postgres"));
    let server = Server::start_with(
        &dir.path().join("registry"),
        &["--no-auth", "--database-url", &pg.url()],
    );
    push_through_an_outage(
        &server,
        &mut || pg.pg_ctl("stop"),
        &mut || pg.pg_ctl("start"),
        Duration::from_secs(30),
    );
}
