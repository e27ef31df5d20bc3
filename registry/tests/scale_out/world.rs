//! The production shape on loopback, started for each test: PostgreSQL, a three-node Garage
//! cluster behind an nginx, three replicas behind the README's nginx; and the helpers every
//! test of the suite uses (one test at a time, metrics, skopeo).

use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use depot_testkit::backends::Postgres;
use depot_testkit::garage::{self, GarageCluster};
use depot_testkit::nginx::{readme_site, Nginx};
use depot_testkit::registry::workspace_bin;
use depot_testkit::Server;
use reqwest::blocking::Client;

/// One test at a time: each starts a dozen processes and several measure.
pub static SERIAL: Mutex<()> = Mutex::new(());

pub const BUCKET: &str = "depot";
pub const ADMIN: &str = "depot_admin_scaleoutscaleoutscaleoutscaleout";

pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn http() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(300))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

/// The S3 credentials of the Garage cluster, for every process that talks to it.
pub fn s3_env() -> [(&'static str, &'static str); 3] {
    [
        ("AWS_ACCESS_KEY_ID", garage::ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", garage::SECRET_KEY),
        ("AWS_REGION", "us-east-1"),
    ]
}

/// nginx in front of the Garage nodes: S3 clients see one endpoint, and a node that is gone is
/// skipped (the production shape: an S3 endpoint behind a load balancer).
pub fn s3_site(port: u16, nodes: &[String]) -> String {
    let servers: String = nodes.iter().map(|n| format!("    server {n};\n")).collect();
    format!(
        "upstream garage {{\n{servers}    keepalive 32;\n}}\nserver {{\n    listen 127.0.0.1:{port};\n\
         client_max_body_size 0;\n    proxy_request_buffering off;\n    proxy_buffering off;\n\
         proxy_http_version 1.1;\n    proxy_set_header Connection \"\";\n\
         proxy_set_header Host $http_host;\n    proxy_connect_timeout 2s;\n\
         proxy_read_timeout 60s;\n    proxy_send_timeout 60s;\n\
         proxy_next_upstream error timeout http_502 http_503;\n\
         location / {{ proxy_pass http://garage; }}\n}}\n"
    )
}

/// The whole production shape on loopback.
pub struct World {
    pub dir: tempfile::TempDir,
    pub garage: GarageCluster,
    /// nginx in front of the Garage nodes.
    pub s3_lb: Nginx,
    pub pg: Postgres,
    pub replicas: Vec<Server>,
    /// nginx in front of the replicas, as the README configures it (started once they are).
    pub lb: Option<Nginx>,
}

impl World {
    /// `extra`: more `serve` flags for every replica; `pg_options`: PostgreSQL server options.
    pub fn start(extra: &[&str], pg_options: &str) -> World {
        let dir = tempfile::tempdir().unwrap();
        let garage = GarageCluster::start(&dir.path().join("garage"), 3, &[BUCKET, "distribution"]);
        let nodes: Vec<String> = (0..garage.len()).map(|i| garage.s3_host(i)).collect();
        let s3_lb = Nginx::start(&dir.path().join("s3-lb"), &[&|port| s3_site(port, &nodes)]);
        let pg = Postgres::start_with(&dir.path().join("postgres"), pg_options);
        let mut w = World {
            dir,
            garage,
            s3_lb,
            pg,
            replicas: Vec::new(),
            lb: None,
        };
        for i in 0..3 {
            let r = w.replica(i, extra);
            w.replicas.push(r);
        }
        let hosts: Vec<String> = w.replicas.iter().map(Server::host).collect();
        w.lb = Some(Nginx::start(
            &w.dir.path().join("lb"),
            &[&|port| readme_site(port, &hosts)],
        ));
        w
    }

    pub fn s3_endpoint(&self) -> String {
        format!("http://{}", self.s3_lb.hosts[0])
    }

    /// The flags that put a process on this world's database and bucket (`depot-gc` too).
    pub fn backend_flags(&self, name: &str) -> Vec<String> {
        self.backend_flags_at(name, &self.s3_endpoint())
    }

    /// [`Self::backend_flags`] with S3 requests sent to `endpoint` (one Garage node, say).
    pub fn backend_flags_at(&self, name: &str, endpoint: &str) -> Vec<String> {
        [
            "--database-url",
            &format!("{}?application_name={name}", self.pg.url()),
            "--storage",
            &format!("s3://{BUCKET}/registry"),
            "--s3-endpoint",
            endpoint,
            "--s3-region",
            "us-east-1",
            "--s3-force-path-style",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    pub fn replica(&self, i: usize, extra: &[&str]) -> Server {
        let mut flags = self.backend_flags(&format!("replica-{i}"));
        flags.extend(
            [
                "--s3-redirect",
                "off",
                "--admin-token",
                ADMIN,
                "--trust-proxy",
                "--cache-ttl-secs",
                "600",
            ]
            .iter()
            .map(|s| s.to_string()),
        );
        flags.extend(extra.iter().map(|s| s.to_string()));
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        Server::start_with_env(
            &self.dir.path().join(format!("replica-{i}")),
            &flags,
            &s3_env(),
        )
    }

    /// What clients talk to.
    pub fn lb_url(&self) -> String {
        format!("http://{}", self.lb_host())
    }

    pub fn lb_host(&self) -> String {
        self.lb.as_ref().expect("started").hosts[0].clone()
    }

    /// `depot-gc <args>` on this world's backends: its standard output (it must succeed).
    pub fn depot_gc(&self, args: &[&str]) -> String {
        self.depot_gc_at(&self.s3_endpoint(), args)
    }

    /// [`Self::depot_gc`] with S3 requests sent to `endpoint`.
    pub fn depot_gc_at(&self, endpoint: &str, args: &[&str]) -> String {
        let out = Command::new(workspace_bin("depot-gc"))
            .args(self.backend_flags_at("depot-gc", endpoint))
            .args(args)
            .envs(s3_env())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "depot-gc {args:?}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    /// `reconcile --dry-run` with no grace period: how many objects nothing refers to.
    pub fn orphans(&self) -> (u64, String) {
        let out = self.depot_gc(&["--gc-grace", "0", "reconcile", "--dry-run"]);
        let orphans = out
            .split("would remove ")
            .nth(1)
            .and_then(|s| s.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no orphan count in {out:?}"));
        (orphans, out)
    }

    /// A query on the registry's database (as the superuser, from the `postgres` database, so
    /// it is not counted among the registry's statements).
    pub fn sql(&self, query: &str) -> Vec<sqlx::postgres::PgRow> {
        self.sql_on("postgres", query)
    }

    /// A query on database `db` of the registry's cluster.
    pub fn sql_on(&self, db: &str, query: &str) -> Vec<sqlx::postgres::PgRow> {
        let url = self.pg.url().replace("/depot", &format!("/{db}"));
        let query = query.to_owned();
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async {
                    use sqlx::Connection;
                    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
                    sqlx::query(&query).fetch_all(&mut conn).await.unwrap()
                })
        })
        .join()
        .unwrap()
    }

    /// The replica whose session holds the collection's advisory lock now, if any.
    pub fn gc_lock_holder(&self) -> Option<usize> {
        use sqlx::Row;
        let rows = self.sql(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
             WHERE l.locktype = 'advisory' AND l.granted",
        );
        let name: String = rows.first()?.get(0);
        name.strip_prefix("replica-")?.parse().ok()
    }
}

/// One replica's counter `name` with labels containing `labels`, summed.
pub fn metric(url: &str, name: &str, labels: &str) -> f64 {
    let text = http()
        .get(format!("{url}/metrics"))
        .send()
        .and_then(|r| r.text())
        .unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with(name) && l.contains(labels))
        .filter(|l| l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

pub fn skopeo(args: &[&str]) -> Result<(), String> {
    let out = Command::new("skopeo")
        .args(["--insecure-policy"])
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}
