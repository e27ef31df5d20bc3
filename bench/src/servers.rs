//! Starts the registries under test on loopback and reads their resource use from `/proc`.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// A registry process under test.
pub struct Registry {
    pub name: &'static str,
    pub url: String,
    child: Child,
    /// From the process's start to its first answer (depot: `/readyz` 200).
    pub ready_after: Duration,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Waits for `url + path` to answer `200` (any answer when `any`); how long it took since
/// `started`, polled every 5 ms.
fn wait_ready(url: &str, path: &str, any: bool, started: Instant) -> anyhow::Result<Duration> {
    let deadline = started + Duration::from_secs(30);
    let client = reqwest::blocking::Client::new();
    while Instant::now() < deadline {
        if let Ok(r) = client.get(format!("{url}{path}")).send() {
            if any || r.status().is_success() {
                return Ok(started.elapsed());
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    bail!("{url} did not come up")
}

/// Credentials of the bench's S3 server (loopback only).
/// (Garage wants `GK` + 24 hex digits and 64 hex digits.)
pub const S3_ACCESS_KEY: &str = "GK0123456789abcdef01234567";
pub const S3_SECRET_KEY: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// A real S3 server for the S3 mode: Garage, single node on loopback. (s3s-fs, used by the
/// tests, cannot serve distribution: its s3 driver needs `ListMultipartUploads`.) Requests are
/// counted from Garage's own metrics.
pub struct S3Server {
    pub endpoint: String,
    admin: String,
    child: Child,
}

/// The `garage` binary: on the PATH, or where `.ci/setup --garage` / the README install it.
fn garage_binary() -> anyhow::Result<std::path::PathBuf> {
    let cached = std::path::PathBuf::from(std::env::var("HOME").unwrap_or_default())
        .join(".cache/garage-install/bin/garage");
    if cached.exists() {
        return Ok(cached);
    }
    let found = Command::new("sh")
        .args(["-c", "command -v garage"])
        .output()?;
    if found.status.success() {
        return Ok(String::from_utf8(found.stdout)?.trim().into());
    }
    bail!("S3 mode needs Garage: cargo install garage --locked --root ~/.cache/garage-install")
}

impl S3Server {
    /// Starts a one-node Garage under `root` with the buckets `buckets`, writable with the
    /// bench's key.
    pub fn start(root: &Path, buckets: &[&str]) -> anyhow::Result<Self> {
        let garage = garage_binary()?;
        std::fs::create_dir_all(root)?;
        let (s3_port, rpc_port, admin_port) = (free_port()?, free_port()?, free_port()?);
        let config = root.join("garage.toml");
        std::fs::write(
            &config,
            format!(
                "metadata_dir = \"{root}/meta\"\ndata_dir = \"{root}/data\"\ndb_engine = \"sqlite\"\n\
                 replication_factor = 1\nrpc_bind_addr = \"127.0.0.1:{rpc_port}\"\n\
                 rpc_public_addr = \"127.0.0.1:{rpc_port}\"\nrpc_secret = \"{secret}\"\n\
                 [s3_api]\ns3_region = \"us-east-1\"\napi_bind_addr = \"127.0.0.1:{s3_port}\"\n\
                 root_domain = \".s3.localhost\"\n[admin]\napi_bind_addr = \"127.0.0.1:{admin_port}\"\n",
                root = root.display(),
                secret = "0".repeat(64),
            ),
        )?;
        let child = Command::new(&garage)
            .arg("-c")
            .arg(&config)
            .arg("server")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(root.join("garage.log"))?)
            .spawn()
            .context("starting garage")?;
        // From here on, dropping `server` stops Garage, whatever fails.
        let server = S3Server {
            endpoint: format!("http://127.0.0.1:{s3_port}"),
            admin: format!("http://127.0.0.1:{admin_port}"),
            child,
        };
        let cli = |args: &[&str]| -> anyhow::Result<String> {
            let out = Command::new(&garage)
                .arg("-c")
                .arg(&config)
                .args(args)
                .output()?;
            if !out.status.success() {
                bail!("garage {args:?}: {}", String::from_utf8_lossy(&out.stderr));
            }
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        };
        // The node answers its RPC port a moment after it writes its id: retry until it does.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let attempt = cli(&["node", "id", "-q"]).and_then(|id| {
                let node = id.trim().split('@').next().unwrap_or("").to_owned();
                cli(&["layout", "assign", "-z", "dc1", "-c", "10G", &node])
            });
            match attempt {
                Ok(_) => break,
                Err(e) if Instant::now() > deadline => {
                    return Err(e.context(format!("see {}", root.join("garage.log").display())))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
        cli(&["layout", "apply", "--version", "1"])?;
        cli(&[
            "key",
            "import",
            "--yes",
            "-n",
            "bench",
            S3_ACCESS_KEY,
            S3_SECRET_KEY,
        ])?;
        for b in buckets {
            cli(&["bucket", "create", b])?;
            cli(&[
                "bucket",
                "allow",
                "--read",
                "--write",
                "--owner",
                b,
                "--key",
                S3_ACCESS_KEY,
            ])?;
        }
        Ok(server)
    }

    /// S3 API requests served so far (Garage's `api_s3_request_counter`, all endpoints).
    pub async fn requests(&self) -> anyhow::Result<u64> {
        let text = reqwest::get(format!("{}/metrics", self.admin))
            .await?
            .text()
            .await?;
        Ok(text
            .lines()
            .filter(|l| l.starts_with("api_s3_request_counter"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64)
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Registry {
    /// Our registry, embedded default, from the binary at `bin` (a release build), without
    /// authentication: distribution runs without it too, so both are measured alike.
    pub fn depot(bin: &Path, data: &Path) -> anyhow::Result<Self> {
        Self::start_depot(bin, data, &["--no-auth"])
    }

    /// Our registry with token authentication on (its default), for the cost of auth.
    pub fn depot_with_auth(bin: &Path, data: &Path) -> anyhow::Result<Self> {
        Self::start_depot(bin, data, &[])
    }

    fn start_depot(bin: &Path, data: &Path, extra: &[&str]) -> anyhow::Result<Self> {
        let port = free_port()?;
        let started = Instant::now();
        let child = Command::new(bin)
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--data-dir",
            ])
            .arg(data)
            .args(extra)
            .env("DEPOT_LOG", "warn")
            .env("AWS_ACCESS_KEY_ID", S3_ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", S3_SECRET_KEY)
            .stdout(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let url = format!("http://127.0.0.1:{port}");
        let mut r = Registry {
            name: "depot",
            url,
            child,
            ready_after: Duration::ZERO,
        };
        r.ready_after = wait_ready(&r.url, "/readyz", false, started)?;
        Ok(r)
    }

    /// Our registry storing blobs in `bucket` on the S3 server at `endpoint` (streaming reads,
    /// no redirects: distribution is configured alike), metadata in SQLite.
    pub fn depot_s3(bin: &Path, data: &Path, endpoint: &str, bucket: &str) -> anyhow::Result<Self> {
        let storage = format!("s3://{bucket}/registry");
        Self::start_depot(
            bin,
            data,
            &[
                "--no-auth",
                "--storage",
                &storage,
                "--s3-endpoint",
                endpoint,
                "--s3-region",
                "us-east-1",
                "--s3-force-path-style",
                "--s3-redirect",
                "off",
            ],
        )
    }

    /// CNCF distribution 2.8 (`docker-registry`), filesystem driver.
    pub fn distribution(data: &Path) -> anyhow::Result<Self> {
        let storage = format!(
            "  filesystem: {{ rootdirectory: {} }}\n",
            data.join("root").display()
        );
        Self::start_distribution(data, &storage)
    }

    /// CNCF distribution 2.8 with its `s3` driver on `bucket` at `endpoint`, 16 MiB chunks (our
    /// part size), redirects off.
    pub fn distribution_s3(data: &Path, endpoint: &str, bucket: &str) -> anyhow::Result<Self> {
        let storage = format!(
            "  s3: {{ accesskey: {S3_ACCESS_KEY}, secretkey: {S3_SECRET_KEY}, region: us-east-1, regionendpoint: \"{endpoint}\", bucket: {bucket}, secure: false, v4auth: true, chunksize: 16777216, rootdirectory: /registry }}\n  redirect: {{ disable: true }}\n"
        );
        Self::start_distribution(data, &storage)
    }

    fn start_distribution(data: &Path, storage: &str) -> anyhow::Result<Self> {
        let port = free_port()?;
        let config = data.join("config.yml");
        std::fs::create_dir_all(data)?;
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog: {{ level: error, accesslog: {{ disabled: true }} }}\nstorage:\n{storage}  delete: {{ enabled: true }}\nhttp: {{ addr: 127.0.0.1:{port} }}\n"
            ),
        )?;
        let started = Instant::now();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            // Go's AWS SDK refuses to start when a CA bundle is set but unusable by its
            // transport; the S3 server here is plain HTTP on loopback anyway.
            .env_remove("AWS_CA_BUNDLE")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting docker-registry (bash .ci/setup installs it)")?;
        let url = format!("http://127.0.0.1:{port}");
        let mut r = Registry {
            name: "distribution",
            url,
            child,
            ready_after: Duration::ZERO,
        };
        // distribution has no readiness probe: its first answer to `/v2/`.
        r.ready_after = wait_ready(&r.url, "/v2/", true, started)?;
        Ok(r)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resets the peak resident set size the kernel tracks (`VmHWM`).
    pub fn reset_peak_rss(&self) -> anyhow::Result<()> {
        std::fs::write(format!("/proc/{}/clear_refs", self.pid()), "5")?;
        Ok(())
    }

    /// Peak resident set size since the last reset, in bytes.
    pub fn peak_rss(&self) -> anyhow::Result<u64> {
        self.status_bytes("VmHWM:")
    }

    /// Resident set size now, in bytes.
    pub fn rss(&self) -> anyhow::Result<u64> {
        self.status_bytes("VmRSS:")
    }

    /// A `kB` line of `/proc/<pid>/status`, in bytes.
    fn status_bytes(&self, field: &str) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))?;
        let line = status
            .lines()
            .find(|l| l.starts_with(field))
            .with_context(|| format!("no {field}"))?;
        let kib: u64 = line
            .split_whitespace()
            .nth(1)
            .with_context(|| format!("{field} value"))?
            .parse()?;
        Ok(kib * 1024)
    }

    /// User + system CPU time consumed so far, in seconds.
    pub fn cpu_seconds(&self) -> anyhow::Result<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()))?;
        // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
        let rest = stat.rsplit_once(')').context("stat format")?.1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
        Ok(ticks / clock_ticks())
    }
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
