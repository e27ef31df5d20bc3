//! A real distributed S3 store: a Garage cluster of several nodes on loopback, one process each
//! with its own ports, data and metadata directories, one zone per node and a replication
//! factor of up to three. Nodes can be stopped and started again on the same data; requests
//! are counted from each node's own admin metrics.
//!
//! `.ci/setup` installs the `garage` binary once per machine.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::process::free_port;

/// The key every bucket is writable with (Garage wants `GK` + 24 hex digits and 64 hex digits).
pub const ACCESS_KEY: &str = "GK0123456789abcdef01234567";
pub const SECRET_KEY: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

struct Node {
    dir: PathBuf,
    config: PathBuf,
    s3_port: u16,
    admin_port: u16,
    child: Option<Child>,
}

pub struct GarageCluster {
    nodes: Vec<Node>,
}

impl GarageCluster {
    /// Starts `n` nodes under `root`, joins them into one layout (zone `dc<i>` each, replication
    /// factor `min(n, 3)`) and creates `buckets`, readable and writable with [`ACCESS_KEY`].
    pub fn start(root: &Path, n: usize, buckets: &[&str]) -> GarageCluster {
        let replication = n.min(3);
        let rpc_ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let mut nodes = Vec::new();
        for (i, rpc) in rpc_ports.iter().enumerate() {
            let dir = root.join(format!("node{i}"));
            std::fs::create_dir_all(&dir).unwrap();
            let (s3_port, admin_port) = (free_port(), free_port());
            let config = dir.join("garage.toml");
            std::fs::write(
                &config,
                format!(
                    "metadata_dir = \"{dir}/meta\"\ndata_dir = \"{dir}/data\"\ndb_engine = \"sqlite\"\n\
                     replication_factor = {replication}\nconsistency_mode = \"consistent\"\n\
                     rpc_bind_addr = \"127.0.0.1:{rpc}\"\nrpc_public_addr = \"127.0.0.1:{rpc}\"\n\
                     rpc_secret = \"{secret}\"\n\
                     [s3_api]\ns3_region = \"us-east-1\"\napi_bind_addr = \"127.0.0.1:{s3_port}\"\n\
                     root_domain = \".s3.localhost\"\n\
                     [admin]\napi_bind_addr = \"127.0.0.1:{admin_port}\"\n",
                    dir = dir.display(),
                    secret = "0".repeat(64),
                ),
            )
            .unwrap();
            nodes.push(Node {
                dir,
                config,
                s3_port,
                admin_port,
                child: None,
            });
        }
        let mut cluster = GarageCluster { nodes };
        for i in 0..n {
            cluster.start_node(i);
        }
        // Every node's id, once its RPC port answers; then the others connect to the first.
        let ids: Vec<String> = (0..n)
            .map(|i| {
                let id = cluster.retry(i, &["node", "id", "-q"]);
                id.trim().to_owned()
            })
            .collect();
        for id in &ids[1..] {
            cluster.retry(0, &["node", "connect", id]);
        }
        for (i, id) in ids.iter().enumerate() {
            let short = id.split('@').next().unwrap();
            let zone = format!("dc{i}");
            cluster.cli(0, &["layout", "assign", "-z", &zone, "-c", "10G", short]);
        }
        cluster.cli(0, &["layout", "apply", "--version", "1"]);
        cluster.cli(
            0,
            &[
                "key", "import", "--yes", "-n", "depot", ACCESS_KEY, SECRET_KEY,
            ],
        );
        for b in buckets {
            cluster.cli(0, &["bucket", "create", b]);
            let allow = ["bucket", "allow", "--read", "--write", "--owner", b];
            cluster.cli(0, &[&allow[..], &["--key", ACCESS_KEY]].concat());
        }
        // Every node must know the layout and the key before it serves requests.
        for i in 0..n {
            cluster.wait_serving(i);
        }
        cluster
    }

    /// `garage <args>` against node `i`, which must succeed; its standard output.
    fn cli(&self, i: usize, args: &[&str]) -> String {
        match self.try_cli(i, args) {
            Ok(out) => out,
            Err(e) => panic!("{e}"),
        }
    }

    fn try_cli(&self, i: usize, args: &[&str]) -> Result<String, String> {
        let out = Command::new("garage")
            .arg("-c")
            .arg(&self.nodes[i].config)
            .args(args)
            .output()
            .map_err(|e| format!("run garage (bash .ci/setup installs it): {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "garage {args:?} on node {i}: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// [`Self::cli`], tried again for up to 30 s while the node comes up.
    fn retry(&self, i: usize, args: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match self.try_cli(i, args) {
                Ok(out) => return out,
                Err(e) if Instant::now() > deadline => panic!("{e}; see {}", self.log(i).display()),
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    fn log(&self, i: usize) -> PathBuf {
        self.nodes[i].dir.join("garage.log")
    }

    /// Waits until node `i` knows the buckets and serves its admin API.
    fn wait_serving(&self, i: usize) {
        self.retry(i, &["bucket", "list"]);
        let deadline = Instant::now() + Duration::from_secs(30);
        let url = format!("{}/metrics", self.admin(i));
        while !reqwest::blocking::get(&url)
            .map(|r| r.status().is_success())
            .unwrap_or(false)
        {
            assert!(Instant::now() < deadline, "garage node {i} did not come up");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Starts node `i` (again, on its own data and ports).
    pub fn start_node(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        assert!(node.child.is_none(), "garage node {i} is running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(node.dir.join("garage.log"))
            .unwrap();
        let child = Command::new("garage")
            .arg("-c")
            .arg(&node.config)
            .arg("server")
            .env("RUST_LOG", "garage=warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start garage (bash .ci/setup installs it): {e}"));
        node.child = Some(child);
        let port = node.s3_port;
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "garage node {i} did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL to node `i`: a machine lost.
    pub fn stop_node(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Node `i`'s S3 endpoint.
    pub fn endpoint(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.nodes[i].s3_port)
    }

    /// `host:port` of node `i`'s S3 API.
    pub fn s3_host(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.nodes[i].s3_port)
    }

    /// Node `i`'s admin API (`/metrics`).
    pub fn admin(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.nodes[i].admin_port)
    }

    /// S3 requests served so far by every running node, by API endpoint (`GetObject`,
    /// `PutObject`, `UploadPart`, …), from Garage's `api_s3_request_counter`.
    pub fn s3_requests(&self) -> BTreeMap<String, u64> {
        let mut counts = BTreeMap::new();
        for (i, node) in self.nodes.iter().enumerate() {
            if node.child.is_none() {
                continue;
            }
            let text = reqwest::blocking::get(format!("{}/metrics", self.admin(i)))
                .and_then(|r| r.text())
                .unwrap_or_default();
            for line in text.lines() {
                let Some(rest) = line.strip_prefix("api_s3_request_counter{") else {
                    continue;
                };
                let endpoint = rest
                    .split("api_endpoint=\"")
                    .nth(1)
                    .and_then(|s| s.split('"').next())
                    .unwrap_or("?");
                let value = line
                    .rsplit(' ')
                    .next()
                    .and_then(|v| v.parse::<f64>().ok())
                    .unwrap_or(0.0);
                *counts.entry(endpoint.to_owned()).or_default() += value as u64;
            }
        }
        counts
    }
}

impl Drop for GarageCluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.stop_node(i);
        }
    }
}
