//! Scale-out on a real distributed store: three registry replicas on one PostgreSQL cluster and a
//! three-node Garage cluster (one zone per node, replication factor 3, behind an nginx that
//! balances S3 requests over the nodes), with the README's nginx configuration balancing clients
//! over the replicas request by request.
//!
//! - Faults under load: 8 clients (our CLI with chunked uploads, skopeo) push while a replica is
//!   killed and restarted, a Garage node is lost and comes back, and PostgreSQL restarts; every
//!   acknowledged image then pulls back by digest, no partial blob is visible and
//!   `depot-gc reconcile` finds nothing inconsistent.
//! - The replica holding the collection lock is killed in the middle of a collection: another
//!   takes over within one interval and nothing live is lost.
//! - A thundering herd of 50 pulls of a 512 MiB image, counted in Garage's S3 GETs, beside the
//!   same pulls from distribution 2.8 on the same Garage cluster.
//! - The cost of each operation in database statements (`pg_stat_statements`) and S3 requests
//!   (Garage's counters), as `docs/scaling.md` reports them.
//! - Cache coherence between replicas while a tag moves every few milliseconds.
//!
//! The tests run one at a time (they measure; two at once would share two cores). Needs
//! `garage` and `nginx`, which `.ci/setup` installs.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use depot_testkit::backends::Postgres;
use depot_testkit::garage::{self, GarageCluster};
use depot_testkit::nginx::{readme_site, Nginx};
use depot_testkit::registry::workspace_bin;
use depot_testkit::{random_bytes, sha256, ApiClient, Server};
use reqwest::blocking::Client;
use serde_json::{json, Value};
use sha2::Digest as _;

/// One test at a time: each starts a dozen processes and several measure.
static SERIAL: Mutex<()> = Mutex::new(());

const BUCKET: &str = "depot";
const ADMIN: &str = "depot_admin_scaleoutscaleoutscaleoutscaleout";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn http() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(300))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

/// The S3 credentials of the Garage cluster, for every process that talks to it.
fn s3_env() -> [(&'static str, &'static str); 3] {
    [
        ("AWS_ACCESS_KEY_ID", garage::ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", garage::SECRET_KEY),
        ("AWS_REGION", "us-east-1"),
    ]
}

/// nginx in front of the Garage nodes: S3 clients see one endpoint, and a node that is gone is
/// skipped (the production shape: an S3 endpoint behind a load balancer).
fn s3_site(port: u16, nodes: &[String]) -> String {
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
struct World {
    dir: tempfile::TempDir,
    garage: GarageCluster,
    /// nginx in front of the Garage nodes.
    s3_lb: Nginx,
    pg: Postgres,
    replicas: Vec<Server>,
    /// nginx in front of the replicas, as the README configures it (started once they are).
    lb: Option<Nginx>,
}

impl World {
    /// `extra`: more `serve` flags for every replica; `pg_options`: PostgreSQL server options.
    fn start(extra: &[&str], pg_options: &str) -> World {
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

    fn s3_endpoint(&self) -> String {
        format!("http://{}", self.s3_lb.hosts[0])
    }

    /// The flags that put a process on this world's database and bucket (`depot-gc` too).
    fn backend_flags(&self, name: &str) -> Vec<String> {
        [
            "--database-url",
            &format!("{}?application_name={name}", self.pg.url()),
            "--storage",
            &format!("s3://{BUCKET}/registry"),
            "--s3-endpoint",
            &self.s3_endpoint(),
            "--s3-region",
            "us-east-1",
            "--s3-force-path-style",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    fn replica(&self, i: usize, extra: &[&str]) -> Server {
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
    fn lb_url(&self) -> String {
        format!("http://{}", self.lb_host())
    }

    fn lb_host(&self) -> String {
        self.lb.as_ref().expect("started").hosts[0].clone()
    }

    /// `depot-gc <args>` on this world's backends: its standard output (it must succeed).
    fn depot_gc(&self, args: &[&str]) -> String {
        let out = Command::new(workspace_bin("depot-gc"))
            .args(self.backend_flags("depot-gc"))
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
    fn orphans(&self) -> (u64, String) {
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
    fn sql(&self, query: &str) -> Vec<sqlx::postgres::PgRow> {
        self.sql_on("postgres", query)
    }

    /// A query on database `db` of the registry's cluster.
    fn sql_on(&self, db: &str, query: &str) -> Vec<sqlx::postgres::PgRow> {
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
    fn gc_lock_holder(&self) -> Option<usize> {
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
fn metric(url: &str, name: &str, labels: &str) -> f64 {
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

/// An image whose blobs are pushed: its manifest and every blob (config and layers).
#[derive(Clone)]
struct Image {
    manifest: Vec<u8>,
    blobs: Vec<(String, u64)>,
}

impl Image {
    fn digest(&self) -> String {
        sha256(&self.manifest)
    }
}

fn manifest_of(config: &[u8], layers: &[(String, u64)]) -> Vec<u8> {
    let layers: Vec<Value> = layers
        .iter()
        .map(|(d, s)| json!({ "mediaType": OCI_LAYER, "digest": d, "size": s }))
        .collect();
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": { "mediaType": OCI_CONFIG, "digest": sha256(config), "size": config.len() },
        "layers": layers,
    }))
    .unwrap()
}

/// An OCI layout at `dir` holding one image (tag `latest`) of a config and `layers`.
fn write_layout(dir: &Path, layers: &[Vec<u8>]) -> Image {
    let blobs_dir = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs_dir).unwrap();
    let put = |bytes: &[u8]| {
        let d = sha256(bytes);
        std::fs::write(blobs_dir.join(d.trim_start_matches("sha256:")), bytes).unwrap();
        (d, bytes.len() as u64)
    };
    let layer_refs: Vec<(String, u64)> = layers.iter().map(|l| put(l)).collect();
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": { "type": "layers", "diff_ids": layer_refs.iter().map(|l| l.0.clone()).collect::<Vec<_>>() },
    }))
    .unwrap();
    let config_ref = put(&config);
    let manifest = manifest_of(&config, &layer_refs);
    let m = put(&manifest);
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    std::fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "manifests": [{ "mediaType": OCI_MANIFEST, "digest": m.0, "size": m.1,
                            "annotations": { "org.opencontainers.image.ref.name": "latest" } }],
        }))
        .unwrap(),
    )
    .unwrap();
    let mut blobs = vec![config_ref];
    blobs.extend(layer_refs);
    Image { manifest, blobs }
}

/// Pulls `repo@digest` from `base` and checks the manifest and every blob it names (config
/// and layers) by digest and size; `Err` says what did not verify.
fn pull_verify(
    http: &Client,
    base: &str,
    repo: &str,
    digest: &str,
    bearer: Option<&str>,
) -> Result<(), String> {
    let get = |path: String| {
        let mut req = http
            .get(format!("{base}/v2/{repo}/{path}"))
            .header("accept", OCI_MANIFEST);
        if let Some(b) = bearer {
            req = req.bearer_auth(b);
        }
        req.send()
    };
    let resp = get(format!("manifests/{digest}")).map_err(|e| e.to_string())?;
    let status = resp.status();
    let body = resp.bytes().map_err(|e| e.to_string())?;
    if status != 200 || sha256(&body) != digest {
        return Err(format!("manifest {repo}@{digest}: {status}"));
    }
    let manifest: Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
    let named = std::iter::once(&manifest["config"]).chain(manifest["layers"].as_array().unwrap());
    for blob in named {
        let (d, size) = (
            blob["digest"].as_str().unwrap(),
            blob["size"].as_u64().unwrap(),
        );
        let resp = get(format!("blobs/{d}")).map_err(|e| e.to_string())?;
        let status = resp.status();
        let body = resp.bytes().map_err(|e| e.to_string())?;
        if status != 200 || body.len() as u64 != size || sha256(&body) != d {
            return Err(format!(
                "blob {d} of {repo}: {status}, {} of {size} bytes",
                body.len()
            ));
        }
    }
    Ok(())
}

fn skopeo(args: &[&str]) -> Result<(), String> {
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

// ---- faults under load ---------------------------------------------------------------------

/// What one push attempt series ended with.
struct Pushed {
    repo: String,
    tag: String,
    /// The manifest digest the client says it pushed (skopeo compresses layers on the way, so
    /// it is not the layout's).
    digest: String,
    acknowledged: bool,
    attempts: usize,
    error: String,
}

#[test]
fn pushes_through_lost_replicas_storage_nodes_and_database_lose_nothing() {
    let _serial = serial();
    let started = Instant::now();
    let mut world = World::start(&["--no-auth", "--gc-interval", "0"], "");
    eprintln!("world up in {:.1} s", started.elapsed().as_secs_f64());
    let lb = world.lb_url();
    let lb_host = world.lb_host();
    let layouts = world.dir.path().join("layouts");

    // The CLI pushes from a depot registry of its own (a build saved there), the way
    // `depot push` promotes a build; skopeo pushes from OCI layouts.
    let source = depot_testkit::cli::Fixture::new();
    let faults_done = AtomicBool::new(false);
    let images_made = AtomicUsize::new(0);
    let pushed: Mutex<Vec<Pushed>> = Mutex::new(Vec::new());
    const CLIENTS: usize = 8;
    const MIN_IMAGES: usize = 2;
    const SIZES: [usize; 3] = [1500, 2 << 20, 17 << 20];

    std::thread::scope(|s| {
        for c in 0..CLIENTS {
            let (source, faults_done, images_made, pushed) =
                (&source, &faults_done, &images_made, &pushed);
            let (lb_host, layouts) = (lb_host.clone(), layouts.clone());
            s.spawn(move || {
                let mut n = 0;
                while n < MIN_IMAGES || !faults_done.load(Ordering::SeqCst) {
                    images_made.fetch_add(1, Ordering::SeqCst);
                    let layers: Vec<Vec<u8>> = SIZES.iter().map(|&n| random_bytes(n)).collect();
                    let repo = format!("fleet/client-{c}");
                    let tag = format!("v{n}");
                    let dest = format!("{lb_host}/{repo}:{tag}");
                    let digest_file = layouts.join(format!("c{c}-{n}.digest"));
                    let (image, push): (Image, Box<dyn Fn() -> Result<(), String>>) = if c % 2 == 0
                    {
                        // Our CLI: a build in the source registry, promoted in 1 MiB chunks.
                        let (build, image) = source_build(source, &layers);
                        let lb_host = lb_host.clone();
                        let cmd = move || {
                            let out = source
                                .depot()
                                .args(["push", "--quiet", "--chunk-mib", "1"])
                                .args(["--insecure-registry", &lb_host])
                                .args(["-t", &dest, &build])
                                .output()
                                .map_err(|e| e.to_string())?;
                            if out.status.success() {
                                Ok(())
                            } else {
                                Err(String::from_utf8_lossy(&out.stderr).into_owned())
                            }
                        };
                        (image, Box::new(cmd))
                    } else {
                        let dir = layouts.join(format!("c{c}-{n}"));
                        let image = write_layout(&dir, &layers);
                        let src = format!("oci:{}:latest", dir.display());
                        let digest_file = digest_file.to_str().unwrap().to_owned();
                        let cmd = move || {
                            skopeo(&[
                                "copy",
                                "--retry-times",
                                "3",
                                "--dest-tls-verify=false",
                                "--preserve-digests",
                                "--digestfile",
                                &digest_file,
                                &src,
                                &format!("docker://{dest}"),
                            ])
                        };
                        (image, Box::new(cmd))
                    };
                    // A CI job whose push fails is run again; three tries.
                    let mut attempts = 0;
                    let mut error = String::new();
                    let mut acknowledged = false;
                    while attempts < 3 && !acknowledged {
                        attempts += 1;
                        match push() {
                            Ok(()) => acknowledged = true,
                            Err(e) => error = e,
                        }
                    }
                    let digest =
                        std::fs::read_to_string(&digest_file).unwrap_or_else(|_| image.digest());
                    pushed.lock().unwrap().push(Pushed {
                        repo,
                        tag,
                        digest,
                        acknowledged,
                        attempts,
                        error,
                    });
                    n += 1;
                }
            });
        }
        // The faults, one after another while the pushes go on.
        let pause = |secs: f64| std::thread::sleep(Duration::from_secs_f64(secs));
        pause(3.0);
        let t = Instant::now();
        world.replicas[1].kill();
        eprintln!("fault: replica 1 killed (SIGKILL)");
        pause(3.0);
        world.replicas[1].restart();
        eprintln!(
            "fault: replica 1 back after {:.1} s",
            t.elapsed().as_secs_f64()
        );
        pause(2.0);
        let t = Instant::now();
        world.garage.stop_node(2);
        eprintln!("fault: Garage node 2 killed");
        pause(5.0);
        world.garage.start_node(2);
        eprintln!(
            "fault: Garage node 2 back after {:.1} s",
            t.elapsed().as_secs_f64()
        );
        pause(2.0);
        let t = Instant::now();
        world.pg.pg_ctl("restart");
        eprintln!(
            "fault: PostgreSQL restarted (immediate) in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        pause(2.0);
        faults_done.store(true, Ordering::SeqCst);
    });
    let pushed = pushed.into_inner().unwrap();
    let push_secs = started.elapsed().as_secs_f64();

    // Every acknowledged image pulls back through the balancer, verified by digest, by tag
    // and by digest.
    let http = http();
    let mut failures = Vec::new();
    let acknowledged: Vec<&Pushed> = pushed.iter().filter(|p| p.acknowledged).collect();
    for p in &acknowledged {
        let resp = http
            .head(format!("{lb}/v2/{}/manifests/{}", p.repo, p.tag))
            .header("accept", OCI_MANIFEST)
            .send()
            .unwrap();
        let served = resp
            .headers()
            .get("docker-content-digest")
            .map(|v| v.to_str().unwrap().to_owned());
        if served.as_deref() != Some(&p.digest) {
            failures.push(format!(
                "{}:{} is {served:?}, pushed {}",
                p.repo, p.tag, p.digest
            ));
        }
        if let Err(e) = pull_verify(&http, &lb, &p.repo, &p.digest, None) {
            failures.push(e);
        }
    }
    // No partial blob: every blob the registry knows of, acknowledged or not, is whole.
    let blobs = world.sql_on(
        "depot",
        "SELECT DISTINCT ON (b.digest) r.repo, b.digest, b.size FROM blobs b \
         JOIN repo_blobs r ON r.digest = b.digest ORDER BY b.digest",
    );
    let checked = blobs.len();
    for row in &blobs {
        use sqlx::Row;
        let (repo, d, size): (String, String, i64) = (row.get(0), row.get(1), row.get(2));
        let resp = http
            .get(format!("{lb}/v2/{repo}/blobs/{d}"))
            .send()
            .unwrap();
        let status = resp.status();
        let body = resp.bytes().unwrap();
        if status != 200 || body.len() as i64 != size || sha256(&body) != d {
            failures.push(format!(
                "blob {d} in {repo}: {status}, {} of {size} bytes",
                body.len()
            ));
        }
    }
    // Staged objects whose removal the store refused for a moment (a quorum lost while a node
    // rejoined) are removed by the registry's retries within a minute.
    let settle = Instant::now();
    let (mut orphans, mut reconciled) = world.orphans();
    while orphans > 0 && settle.elapsed() < Duration::from_secs(70) {
        std::thread::sleep(Duration::from_secs(2));
        (orphans, reconciled) = world.orphans();
    }
    eprintln!(
        "reconcile clean {:.1} s after the pushes ended",
        settle.elapsed().as_secs_f64()
    );
    // Consecutive requests of one upload landed on different replicas.
    let patches: Vec<f64> = world
        .replicas
        .iter()
        .map(|r| metric(&r.url(), "depot_http_requests_total", "method=\"PATCH\""))
        .collect();
    let retried = pushed.iter().filter(|p| p.attempts > 1).count();
    eprintln!(
        "faults under load: {} pushes by {CLIENTS} clients in {push_secs:.1} s ({} acknowledged, \
         {retried} needed another try); {} blobs checked; PATCHes per replica {patches:?}; {}",
        pushed.len(),
        acknowledged.len(),
        checked,
        reconciled.trim()
    );
    for p in pushed.iter().filter(|p| !p.acknowledged) {
        failures.push(format!(
            "{}:{} never acknowledged in {} tries: {}",
            p.repo, p.tag, p.attempts, p.error
        ));
    }
    let warnings: Vec<String> = world
        .replicas
        .iter()
        .enumerate()
        .flat_map(|(i, r)| {
            r.logs()
                .lines()
                .filter(|l| l.contains("WARN") || l.contains("ERROR"))
                .map(|l| format!("[replica {i}] {l}"))
                .collect::<Vec<_>>()
        })
        .collect();
    eprintln!("{} warnings in the replicas' logs", warnings.len());
    let lb_errors = world.lb.as_ref().unwrap().errors();
    let warnings = format!(
        "{}\nnginx (replicas):\n{lb_errors}\nnginx (S3):\n{}",
        warnings.join("\n"),
        world.s3_lb.errors()
    );
    assert!(failures.is_empty(), "{}\n{warnings}", failures.join("\n"));
    assert_eq!(orphans, 0, "{reconciled}\n{warnings}");
    assert!(images_made.load(Ordering::SeqCst) >= CLIENTS * MIN_IMAGES);
    // Replica 1 lost its counters when it was killed; the other two must have taken PATCHes.
    assert!(patches[0] > 0.0 && patches[2] > 0.0, "{patches:?}");
}

/// A saved build in `source` of these layers (and a config); the build id and its image.
fn source_build(source: &depot_testkit::cli::Fixture, layers: &[Vec<u8>]) -> (String, Image) {
    let (id, push) = source.build(json!({}));
    let http = http();
    let base = source.server.url();
    let repo = &source.project;
    let bearer = depot_testkit::api::access_token(
        &http,
        &base,
        &push,
        &format!("repository:{repo}:pull,push"),
    );
    let mut refs = Vec::new();
    for l in layers {
        depot_testkit::oci::push_blob(&http, &base, repo, Some(&bearer), l);
        refs.push((sha256(l), l.len() as u64));
    }
    let config = serde_json::to_vec(
        &json!({ "architecture": "amd64", "os": "linux", "n": rand::random::<u64>() }),
    )
    .unwrap();
    depot_testkit::oci::push_blob(&http, &base, repo, Some(&bearer), &config);
    let manifest = manifest_of(&config, &refs);
    let resp = depot_testkit::oci::put_manifest(&http, &base, repo, &id, Some(&bearer), &manifest);
    assert_eq!(resp.status(), 201);
    let mut blobs = vec![(sha256(&config), config.len() as u64)];
    blobs.extend(refs);
    (id, Image { manifest, blobs })
}

// ---- the collection lock's holder killed ---------------------------------------------------

#[test]
fn killing_the_collector_mid_collection_hands_over_within_one_interval() {
    let _serial = serial();
    const INTERVAL: u64 = 2;
    let interval = INTERVAL.to_string();
    let mut world = World::start(
        &[
            "--test-clock",
            "--gc-interval",
            &interval,
            // Ten minutes of grace (test clock): blobs pushed while a collection runs are
            // protected until their manifests arrive; the garbage, last used two hours
            // earlier once the clock moves, is not.
            "--gc-grace",
            "600",
            // Small batches: the collection takes long enough to be killed in the middle.
            "--gc-batch",
            "5",
        ],
        "",
    );
    let urls: Vec<String> = world.replicas.iter().map(Server::url).collect();
    let admin = ApiClient::new(&urls[0], ADMIN);
    let project = admin.create_project("gc").id;
    let token = admin.create_token(&project, "ci").token.unwrap();
    let http = http();

    // Shared layers every build uses; each build adds a layer of its own.
    let shared: Vec<Vec<u8>> = (0..4).map(|_| random_bytes(64 << 10)).collect();
    // `own`: the build's own layer (fresh, or one a collection is about to delete).
    let push_build = |base: &str, retention: i64, own: &[u8]| -> (String, Image) {
        let spec = depot_api_types::CreateBuild {
            retention_secs: Some(retention),
            ..serde_json::from_value(json!({})).unwrap()
        };
        let b = ApiClient::new(base, &token).create_build(&project, &spec);
        let bearer = depot_testkit::api::access_token(
            &http,
            base,
            b.push_token.as_deref().unwrap(),
            &format!("repository:{project}:pull,push"),
        );
        let mut refs = Vec::new();
        for l in shared.iter().map(Vec::as_slice).chain([own]) {
            depot_testkit::oci::push_blob(&http, base, &project, Some(&bearer), l);
            refs.push((sha256(l), l.len() as u64));
        }
        let config =
            serde_json::to_vec(&json!({ "os": "linux", "architecture": "amd64", "id": b.id }))
                .unwrap();
        depot_testkit::oci::push_blob(&http, base, &project, Some(&bearer), &config);
        let manifest = manifest_of(&config, &refs);
        let resp = depot_testkit::oci::put_manifest(
            &http,
            base,
            &project,
            &b.id,
            Some(&bearer),
            &manifest,
        );
        assert_eq!(resp.status(), 201, "{}", resp.text().unwrap_or_default());
        let mut blobs = vec![(sha256(&config), config.len() as u64)];
        blobs.extend(refs);
        (b.id, Image { manifest, blobs })
    };
    // Garbage: 150 builds kept one hour; live: builds kept a week, made before and during.
    let mut live: Vec<(String, Image)> = (0..10)
        .map(|_| push_build(&urls[0], 7 * 86400, &random_bytes(48 << 10)))
        .collect();
    let doomed: Vec<Vec<u8>> = (0..150).map(|_| random_bytes(48 << 10)).collect();
    for (i, own) in doomed.iter().enumerate() {
        push_build(&urls[i % 3], 3600, own);
    }
    let advance = |secs: u64| {
        for url in &urls {
            ApiClient::new(url, ADMIN).ok::<Value>(
                reqwest::Method::POST,
                "/admin/clock",
                Some(&json!({ "advance_secs": secs })),
            );
        }
    };
    // What is left to collect, as the replicas' clocks (two hours ahead) see it: expired
    // builds not reaped, expired manifests, candidate blobs, trash entries (`depot-gc status` judges by the
    // system clock).
    let garbage = |world: &World| -> [i64; 4] {
        use sqlx::Row;
        let ahead = "(extract(epoch from now()) * 1000)::bigint + 7200000";
        let row = &world.sql_on(
            "depot",
            &format!(
                "SELECT (SELECT count(*) FROM builds WHERE reaped_at IS NULL AND expires_at <= {ahead}), \
                 (SELECT count(*) FROM manifests WHERE expires_at IS NOT NULL AND expires_at <= {ahead}), \
                 (SELECT count(*) FROM blobs WHERE unreferenced_at IS NOT NULL), \
                 (SELECT count(*) FROM gc_trash)"
            ),
        )[0];
        [row.get(0), row.get(1), row.get(2), row.get(3)]
    };
    // The garbage expires: a collection reaps it, and its blobs become candidates.
    advance(7200);
    let deadline = Instant::now() + Duration::from_secs(INTERVAL * 3 + 20);
    while garbage(&world)[..2] != [0, 0] {
        assert!(
            Instant::now() < deadline,
            "the expired builds were not reaped"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let candidates = garbage(&world)[2];
    assert!(candidates >= 300, "{candidates} candidates");
    // Past the grace period: the next collection sweeps them, in batches. Its replica is
    // killed while it holds the lock.
    advance(3600);
    let deadline = Instant::now() + Duration::from_secs(INTERVAL * 3 + 5);
    let holder = loop {
        if let Some(h) = world.gc_lock_holder() {
            break h;
        }
        assert!(Instant::now() < deadline, "no collection took the lock");
        std::thread::sleep(Duration::from_millis(2));
    };
    let killed_at = Instant::now();
    world.replicas[holder].kill();
    // Another replica takes the lock and finishes: every expired build reaped.
    let survivors: Vec<usize> = (0..3).filter(|&i| i != holder).collect();
    let runs_before: f64 = survivors
        .iter()
        .map(|&i| metric(&urls[i], "depot_gc_runs_total", ""))
        .sum();
    // Pushes go on meanwhile, reusing the shared layers the collection looks at.
    let mut taken_over = None;
    let deadline = Instant::now() + Duration::from_secs(INTERVAL * 4 + 10);
    while Instant::now() < deadline {
        let next = &urls[survivors[live.len() % 2]];
        // Each new build reuses a layer of the garbage being swept: it must survive, whether
        // the push or the collection gets to that blob first.
        let reused = &doomed[live.len() % doomed.len()];
        live.push(push_build(next, 7 * 86400, reused));
        if taken_over.is_none() {
            if let Some(h) = world.gc_lock_holder() {
                assert_ne!(h, holder, "the killed replica cannot hold the lock");
                taken_over = Some(killed_at.elapsed());
            }
            let runs: f64 = survivors
                .iter()
                .map(|&i| metric(&urls[i], "depot_gc_runs_total", ""))
                .sum();
            if runs > runs_before {
                taken_over.get_or_insert(killed_at.elapsed());
            }
        }
        if taken_over.is_some() && garbage(&world) == [0; 4] {
            break;
        }
    }
    let taken_over = taken_over.expect("no other replica collected after the holder was killed");
    let pending = garbage(&world);
    let deleted: f64 = survivors
        .iter()
        .map(|&i| metric(&urls[i], "depot_gc_blobs_deleted_total", ""))
        .sum();
    eprintln!(
        "collection lock: replica {holder} killed sweeping {candidates} candidate blobs; another \
         collected {:.2} s later (interval {INTERVAL} s) and deleted {deleted}; {} live builds \
         pushed meanwhile; left (expired builds, expired manifests, candidate blobs, trash) {pending:?}",
        taken_over.as_secs_f64(),
        live.len()
    );
    assert!(
        taken_over <= Duration::from_secs(INTERVAL) + Duration::from_millis(1500),
        "took {taken_over:?} with a {INTERVAL} s interval"
    );
    assert_eq!(
        pending, [0; 4],
        "expired builds, manifests, candidate blobs, trash left"
    );
    assert!(deleted > 0.0, "the survivors deleted nothing");
    // Nothing live lost: every live build pulls whole through a survivor.
    let pull = depot_testkit::api::access_token(
        &http,
        &urls[survivors[0]],
        &token,
        &format!("repository:{project}:pull"),
    );
    let failures: Vec<String> = live
        .iter()
        .filter_map(|(_, image)| {
            pull_verify(
                &http,
                &urls[survivors[0]],
                &project,
                &image.digest(),
                Some(&pull),
            )
            .err()
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let (orphans, reconciled) = world.orphans();
    assert_eq!(orphans, 0, "{reconciled}");
}

// ---- thundering herd -----------------------------------------------------------------------

/// 50 pullers at once: the manifest, then every blob streamed and hashed. The time until the
/// last finished, and any failure.
fn herd(base: &str, repo: &str, image: &Image, pullers: usize) -> Duration {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(600))
            .build()
            .unwrap();
        let started = Instant::now();
        let tasks: Vec<_> = (0..pullers)
            .map(|_| {
                let (client, base, repo, image) = (
                    client.clone(),
                    base.to_owned(),
                    repo.to_owned(),
                    image.clone(),
                );
                tokio::spawn(async move {
                    let m = client
                        .get(format!("{base}/v2/{repo}/manifests/{}", image.digest()))
                        .header("accept", OCI_MANIFEST)
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(m.status(), 200);
                    assert_eq!(sha256(&m.bytes().await.unwrap()), image.digest());
                    for (d, size) in &image.blobs {
                        let mut resp = client
                            .get(format!("{base}/v2/{repo}/blobs/{d}"))
                            .send()
                            .await
                            .unwrap();
                        assert_eq!(resp.status(), 200, "{d}");
                        let mut h = sha2::Sha256::new();
                        let mut n = 0u64;
                        while let Some(c) = resp.chunk().await.unwrap() {
                            n += c.len() as u64;
                            h.update(&c);
                        }
                        assert_eq!(n, *size);
                        assert_eq!(format!("sha256:{}", hex::encode(h.finalize())), *d);
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        started.elapsed()
    })
}

/// Pushes `image`'s manifest and blobs (`blobs` holds their bytes) to `base` with the plain
/// two-step upload every registry takes (POST, then PUT with the body).
fn push_plain(
    http: &Client,
    base: &str,
    repo: &str,
    image: &Image,
    blobs: &HashMap<String, Vec<u8>>,
) {
    for (d, _) in &image.blobs {
        let resp = http
            .post(format!("{base}/v2/{repo}/blobs/uploads/"))
            .send()
            .unwrap();
        assert_eq!(resp.status(), 202);
        let location = resp.headers()["location"].to_str().unwrap().to_owned();
        let url = if location.starts_with("http") {
            location
        } else {
            format!("{base}{location}")
        };
        let sep = if url.contains('?') { '&' } else { '?' };
        let resp = http
            .put(format!("{url}{sep}digest={d}"))
            .header("content-type", "application/octet-stream")
            .body(blobs[d].clone())
            .send()
            .unwrap();
        assert_eq!(
            resp.status(),
            201,
            "{d}: {}",
            resp.text().unwrap_or_default()
        );
    }
    let resp = depot_testkit::oci::put_manifest(http, base, repo, "herd", None, &image.manifest);
    assert_eq!(resp.status(), 201);
}

fn s3_gets(garage: &GarageCluster) -> u64 {
    garage.s3_requests().get("GetObject").copied().unwrap_or(0)
}

#[test]
fn fifty_pulls_of_a_fresh_512_mib_image_cost_one_s3_get_per_chunk_per_replica() {
    let _serial = serial();
    // A read cache that holds the whole image (512 MiB in 129 chunks of 4 MiB): the sizing
    // rule docs/scaling.md gives. With the default 256 MiB the pullers drift further apart
    // than the cache holds and the slow ones fetch again (1502 GETs instead of 387, measured).
    let world = World::start(
        &[
            "--no-auth",
            "--gc-interval",
            "0",
            "--s3-read-cache-mib",
            "768",
        ],
        "",
    );
    const PULLERS: usize = 50;
    const LAYER: usize = 128 << 20;
    let layers: Vec<Vec<u8>> = (0..4).map(|_| random_bytes(LAYER)).collect();
    let config = serde_json::to_vec(&json!({ "architecture": "amd64", "os": "linux" })).unwrap();
    let refs: Vec<(String, u64)> = layers.iter().map(|l| (sha256(l), l.len() as u64)).collect();
    let manifest = manifest_of(&config, &refs);
    let mut blobs: HashMap<String, Vec<u8>> = layers.into_iter().map(|l| (sha256(&l), l)).collect();
    blobs.insert(sha256(&config), config.clone());
    let mut all = vec![(sha256(&config), config.len() as u64)];
    all.extend(refs);
    let image = Image {
        manifest,
        blobs: all,
    };
    let http = http();

    // Distribution 2.8, three replicas on a bucket of the same Garage cluster behind the same
    // nginx configuration.
    let storage = format!(
        "  s3:\n    accesskey: {}\n    secretkey: {}\n    region: us-east-1\n    regionendpoint: \"{}\"\n    bucket: distribution\n    secure: false\n    v4auth: true\n    chunksize: 16777216\n    rootdirectory: /registry\n  redirect:\n    disable: true\n",
        garage::ACCESS_KEY,
        garage::SECRET_KEY,
        world.s3_endpoint()
    );
    let distributions: Vec<_> = (0..3)
        .map(|i| {
            depot_testkit::distribution::Distribution::start_with_storage(
                &world.dir.path().join(format!("distribution-{i}")),
                &storage,
            )
        })
        .collect();
    let dhosts: Vec<String> = distributions.iter().map(|d| d.host()).collect();
    let dlb = Nginx::start(
        &world.dir.path().join("distribution-lb"),
        &[&|port| readme_site(port, &dhosts)],
    );
    let dist_url = format!("http://{}", dlb.hosts[0]);

    push_plain(&http, &world.lb_url(), "herd/app", &image, &blobs);
    push_plain(&http, &dist_url, "herd/app", &image, &blobs);
    // The machine's ceiling for these pulls: nginx serving the same files from the page cache
    // (the same client, hashing everything), through the same nginx hop in front.
    let files = world.dir.path().join("static");
    let v2 = files.join("v2/herd/app");
    std::fs::create_dir_all(v2.join("blobs")).unwrap();
    std::fs::create_dir_all(v2.join("manifests")).unwrap();
    for (d, bytes) in &blobs {
        std::fs::write(v2.join("blobs").join(d), bytes).unwrap();
    }
    std::fs::write(v2.join("manifests").join(image.digest()), &image.manifest).unwrap();
    drop(blobs);
    let root = files.display().to_string();
    let origin = Nginx::start(
        &world.dir.path().join("static-origin"),
        &[&|port| format!("server {{ listen 127.0.0.1:{port}; root {root}; }}\n")],
    );
    let slb = Nginx::start(
        &world.dir.path().join("static-lb"),
        &[&|port| readme_site(port, &origin.hosts)],
    );
    let static_url = format!("http://{}", slb.hosts[0]);

    let chunk = 4u64 << 20;
    let chunks: u64 = image.blobs.iter().map(|(_, s)| s.div_ceil(chunk)).sum();
    let before = s3_gets(&world.garage);
    let depot_time = herd(&world.lb_url(), "herd/app", &image, PULLERS);
    let depot_gets = s3_gets(&world.garage) - before;
    let before = s3_gets(&world.garage);
    let dist_time = herd(&dist_url, "herd/app", &image, PULLERS);
    let dist_gets = s3_gets(&world.garage) - before;
    let ceiling = herd(&static_url, "herd/app", &image, PULLERS);
    let gib =
        (PULLERS as f64 * image.blobs.iter().map(|b| b.1).sum::<u64>() as f64) / f64::from(1 << 30);
    eprintln!(
        "thundering herd, {PULLERS} pulls of 512 MiB ({gib:.1} GiB served) through nginx: depot {:.1} s \
         with {depot_gets} S3 GETs ({chunks} chunks × 3 replicas = {} at most); distribution 2.8 {:.1} s \
         with {dist_gets} S3 GETs; time ratio distribution/depot {:.2}; the machine's ceiling \
         (nginx serving the files, same client) {:.1} s: depot at {:.0}% of it, distribution at {:.0}%",
        depot_time.as_secs_f64(),
        chunks * 3,
        dist_time.as_secs_f64(),
        dist_time.as_secs_f64() / depot_time.as_secs_f64(),
        ceiling.as_secs_f64(),
        100.0 * ceiling.as_secs_f64() / depot_time.as_secs_f64(),
        100.0 * ceiling.as_secs_f64() / dist_time.as_secs_f64(),
    );
    assert!(
        depot_gets <= chunks * 3,
        "{depot_gets} GETs for {chunks} chunks on 3 replicas"
    );
}

// ---- cost per operation --------------------------------------------------------------------

/// Statements the registry's sessions ran on its database, and S3 requests by endpoint, since
/// the last [`Costs::reset`].
struct Costs<'a> {
    world: &'a World,
    s3: BTreeMap<String, u64>,
}

impl<'a> Costs<'a> {
    fn new(world: &'a World) -> Self {
        world.sql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements");
        let mut c = Costs {
            world,
            s3: BTreeMap::new(),
        };
        c.reset();
        c
    }

    fn reset(&mut self) {
        self.world.sql("SELECT pg_stat_statements_reset()");
        self.s3 = self.world.garage.s3_requests();
    }

    /// (statements, S3 requests, the S3 requests by endpoint), then resets.
    fn take(&mut self) -> (i64, u64, String) {
        use sqlx::Row;
        // Statistics reach the view when a statement ends: the last ones are in.
        let rows = self.world.sql(
            "SELECT coalesce(sum(calls), 0)::bigint FROM pg_stat_statements s \
             JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = 'depot'",
        );
        let statements: i64 = rows[0].get(0);
        // Where they went, most frequent first (printed: docs/scaling.md reads from it).
        let top = self.world.sql(
            "SELECT s.calls::bigint, left(regexp_replace(s.query, '\\s+', ' ', 'g'), 90) \
             FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid \
             WHERE d.datname = 'depot' ORDER BY s.calls DESC LIMIT 8",
        );
        for r in &top {
            eprintln!("    {:>4}  {}", r.get::<i64, _>(0), r.get::<String, _>(1));
        }
        let now = self.world.garage.s3_requests();
        let mut by = Vec::new();
        let mut total = 0;
        for (k, v) in &now {
            let d = v - self.s3.get(k).copied().unwrap_or(0);
            if d > 0 {
                total += d;
                by.push(format!("{k} {d}"));
            }
        }
        self.reset();
        (statements, total, by.join(", "))
    }
}

#[test]
fn the_cost_of_each_operation_in_statements_and_s3_requests() {
    let _serial = serial();
    let world = World::start(
        &["--gc-interval", "0"],
        "-c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all",
    );
    let urls: Vec<String> = world.replicas.iter().map(Server::url).collect();
    let hosts: Vec<String> = world.replicas.iter().map(Server::host).collect();
    let admin = ApiClient::new(&urls[0], ADMIN);
    let project = admin.create_project("cost").id;
    let token = admin.create_token(&project, "ci").token.unwrap();
    let ci = ApiClient::new(&urls[0], &token);
    // Five layers, one of them larger than an S3 part (16 MiB): a multipart upload.
    let layers: Vec<Vec<u8>> = [1 << 20, 2 << 20, 3 << 20, 4 << 20, 20 << 20]
        .iter()
        .map(|&n| random_bytes(n))
        .collect();
    let layout = world.dir.path().join("layout");
    write_layout(&layout, &layers);
    let src = format!("oci:{}:latest", layout.display());
    let http = http();
    let mut costs = Costs::new(&world);
    let mut rows: Vec<(String, i64, u64, String)> = Vec::new();
    let mut record = |what: &str, costs: &mut Costs| {
        let (statements, s3, by) = costs.take();
        rows.push((what.to_owned(), statements, s3, by));
    };

    let build = |retention: Option<i64>| {
        let spec = depot_api_types::CreateBuild {
            retention_secs: retention,
            ..serde_json::from_value(json!({})).unwrap()
        };
        ci.create_build(&project, &spec)
    };
    let digest_file = world.dir.path().join("pushed.digest");
    let push = |host: &str, b: &depot_api_types::Build| -> String {
        skopeo(&[
            "copy",
            "--dest-tls-verify=false",
            "--preserve-digests",
            "--dest-creds",
            &format!("x-token:{}", b.push_token.as_deref().unwrap()),
            "--digestfile",
            digest_file.to_str().unwrap(),
            &src,
            &format!("docker://{host}/{project}:{}", b.id),
        ])
        .unwrap();
        std::fs::read_to_string(&digest_file).unwrap()
    };
    let first = build(None);
    costs.reset();
    let pushed = push(&hosts[0], &first);
    record(
        "push of a 5-layer image (30 MiB), first time (skopeo, token included)",
        &mut costs,
    );
    let second = build(None);
    costs.reset();
    push(&hosts[1], &second);
    record("push of the same layers from another build", &mut costs);
    let pull_out = world.dir.path().join("pulled");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        "--src-creds",
        &format!("x-token:{token}"),
        &format!("docker://{}/{project}:{}", hosts[2], first.id),
        &format!("oci:{}:x", pull_out.display()),
    ])
    .unwrap();
    record(
        "pull of the image (skopeo, token included; replica had not served it)",
        &mut costs,
    );
    let bearer = depot_testkit::api::access_token(
        &http,
        &urls[1],
        &token,
        &format!("repository:{project}:pull"),
    );
    costs.reset();
    let get_manifest = |url: &str| {
        let r = http
            .get(format!("{url}/v2/{project}/manifests/{}", first.id))
            .header("accept", OCI_MANIFEST)
            .bearer_auth(&bearer)
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(sha256(&r.bytes().unwrap()), pushed);
    };
    get_manifest(&urls[1]);
    record(
        "manifest GET by tag, cold (first on this replica)",
        &mut costs,
    );
    get_manifest(&urls[1]);
    record("manifest GET by tag, hot", &mut costs);
    // One expired build of its own layers, collected by `depot-gc run --once`.
    let gc_layout = world.dir.path().join("gc-layout");
    let gc_layers: Vec<Vec<u8>> = (0..5).map(|_| random_bytes(256 << 10)).collect();
    write_layout(&gc_layout, &gc_layers);
    let doomed = build(Some(1));
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        "--preserve-digests",
        "--dest-creds",
        &format!("x-token:{}", doomed.push_token.as_deref().unwrap()),
        &format!("oci:{}:latest", gc_layout.display()),
        &format!("docker://{}/{project}:{}", hosts[0], doomed.id),
    ])
    .unwrap();
    std::thread::sleep(Duration::from_millis(2100));
    costs.reset();
    let out = world.depot_gc(&["--gc-grace", "0", "run", "--once"]);
    record(
        "collection of one expired build (5 blobs of its own; depot-gc run --once)",
        &mut costs,
    );
    assert!(out.contains("collection"), "{out}");

    {
        use sqlx::Row;
        let conns = world.sql(
            "SELECT application_name || ' ' || count(*) FROM pg_stat_activity \
             WHERE datname = 'depot' GROUP BY application_name ORDER BY 1",
        );
        let conns: Vec<String> = conns.iter().map(|r| r.get(0)).collect();
        eprintln!("database connections open afterwards, per process: {conns:?}");
    }
    eprintln!("cost per operation (statements on PostgreSQL, S3 requests on Garage):");
    eprintln!("| operation | SQL statements | S3 requests | S3 requests by operation |");
    eprintln!("|---|---:|---:|---|");
    for (what, statements, s3, by) in &rows {
        eprintln!("| {what} | {statements} | {s3} | {by} |");
    }
    let hot = &rows[4];
    assert_eq!(
        (hot.1, hot.2),
        (0, 0),
        "a hot manifest GET costs nothing: {hot:?}"
    );
    let cold = &rows[3];
    assert_eq!(cold.2, 0, "a manifest GET never touches S3: {cold:?}");
    let repush = &rows[1];
    assert!(
        !repush.3.contains("PutObject") && !repush.3.contains("UploadPart"),
        "a re-push stores nothing: {repush:?}"
    );
    assert!(
        rows[5].3.contains("DeleteObjects"),
        "the collection deleted: {:?}",
        rows[5]
    );
}

// ---- cache coherence -----------------------------------------------------------------------

#[test]
fn replicas_serve_a_moved_tag_within_milliseconds_and_never_a_deleted_manifest() {
    let _serial = serial();
    let world = World::start(&["--no-auth", "--gc-interval", "0"], "");
    let urls: Vec<String> = world.replicas.iter().map(Server::url).collect();
    let http = http();
    const MOVES: usize = 300;
    let repo = "coherence/app";
    // Every move points the tag at a manifest of its own, pushed beforehand by digest.
    let layer = random_bytes(1000);
    depot_testkit::oci::push_blob(&http, &urls[0], repo, None, &layer);
    let manifests: Vec<Vec<u8>> = (0..MOVES + 20)
        .map(|i| {
            let config =
                serde_json::to_vec(&json!({ "os": "linux", "architecture": "amd64", "n": i }))
                    .unwrap();
            depot_testkit::oci::push_blob(&http, &urls[0], repo, None, &config);
            let m = manifest_of(&config, &[(sha256(&layer), layer.len() as u64)]);
            let r = depot_testkit::oci::put_manifest(&http, &urls[0], repo, &sha256(&m), None, &m);
            assert_eq!(r.status(), 201);
            m
        })
        .collect();
    let index: HashMap<String, usize> = manifests
        .iter()
        .enumerate()
        .map(|(i, m)| (sha256(m), i))
        .collect();
    let head = |client: &Client, url: &str, reference: &str| -> (u16, Option<String>) {
        let r = client
            .head(format!("{url}/v2/{repo}/manifests/{reference}"))
            .header("accept", OCI_MANIFEST)
            .send()
            .unwrap();
        let d = r
            .headers()
            .get("docker-content-digest")
            .map(|v| v.to_str().unwrap().to_owned());
        (r.status().as_u16(), d)
    };
    let r = depot_testkit::oci::put_manifest(&http, &urls[0], repo, "moving", None, &manifests[0]);
    assert_eq!(r.status(), 201);

    // One replica moves the tag every few milliseconds; the two others are watched.
    let epoch = Instant::now();
    let stop = AtomicBool::new(false);
    let acks: Mutex<Vec<Duration>> = Mutex::new(vec![Duration::ZERO]);
    let seen: Vec<Mutex<Vec<(Duration, Duration, usize)>>> =
        (0..2).map(|_| Mutex::new(Vec::new())).collect();
    std::thread::scope(|s| {
        for (w, url) in urls[1..].iter().enumerate() {
            let (seen, stop, index, head) = (&seen[w], &stop, &index, &head);
            s.spawn(move || {
                let client = Client::new();
                while !stop.load(Ordering::SeqCst) {
                    let start = epoch.elapsed();
                    let (_, d) = head(&client, url, "moving");
                    let i = index[&d.unwrap()];
                    seen.lock().unwrap().push((start, epoch.elapsed(), i));
                }
            });
        }
        let client = Client::new();
        for m in &manifests[1..MOVES] {
            let r = depot_testkit::oci::put_manifest(&client, &urls[0], repo, "moving", None, m);
            assert_eq!(r.status(), 201);
            acks.lock().unwrap().push(epoch.elapsed());
            std::thread::sleep(Duration::from_millis(3));
        }
        std::thread::sleep(Duration::from_millis(500));
        stop.store(true, Ordering::SeqCst);
    });
    let acks = acks.into_inner().unwrap();
    let mut delays = Vec::new();
    for seen in &seen {
        let seen = seen.lock().unwrap();
        for (k, &ack) in acks.iter().enumerate().skip(1) {
            // The first request that started after the move was acknowledged and served that
            // move or a later one: the move had reached this replica by the time it answered.
            let caught = seen
                .iter()
                .find(|&&(start, _, i)| start >= ack && i >= k)
                .unwrap_or_else(|| panic!("move {k} never reached a replica"));
            delays.push(caught.1 - ack);
        }
    }
    delays.sort();
    let pct = |p: f64| delays[((delays.len() - 1) as f64 * p) as usize];
    let (p50, p99, max) = (pct(0.5), pct(0.99), *delays.last().unwrap());
    eprintln!(
        "cache coherence: {} tag moves seen by 2 replicas; delay p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        acks.len() - 1,
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3
    );
    assert!(p99 < Duration::from_millis(500), "p99 {p99:?}");

    // Deletions: manifests the watched replicas have cached are deleted through the first; no
    // request to them that starts later than the acknowledgement plus the largest delay seen
    // is answered with the manifest.
    let bound = max;
    let mut violations = Vec::new();
    for m in &manifests[MOVES..] {
        let digest = sha256(m);
        for url in &urls[1..] {
            assert_eq!(head(&http, url, &digest).0, 200);
        }
        let r = http
            .delete(format!("{}/v2/{repo}/manifests/{digest}", urls[0]))
            .send()
            .unwrap();
        assert_eq!(r.status(), 202);
        let acked = Instant::now();
        for url in &urls[1..] {
            loop {
                let start = acked.elapsed();
                let (status, _) = head(&http, url, &digest);
                if status == 404 {
                    break;
                }
                if start > bound {
                    violations.push(format!(
                        "{url} served deleted {digest} {start:?} after the delete"
                    ));
                    break;
                }
            }
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}
