//! Garbage collection under load, with no read-only mode: writers push builds that share
//! layers (and push again layers collection is about to remove) while builds expire under the
//! controlled clock and the registry collects every second. Afterwards every build that has
//! not expired must pull completely, verified by digest, and no valid request may have been
//! answered `BLOB_UNKNOWN` or `MANIFEST_BLOB_UNKNOWN`.
//!
//! Runs for `DEPOT_SOAK_SECS` (default 60) against the embedded default, and against two
//! replicas on PostgreSQL + S3 when `DEPOT_TEST_POSTGRES_URL` and `DEPOT_TEST_S3_ENDPOINT` are
//! set (as in `.ci/run`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use depot_testkit::{sha256, ApiClient, Server};
use rand::{Rng, SeedableRng};
use reqwest::blocking::Client;
use serde_json::{json, Value};

/// Test-clock seconds the clock moves every tick (100 ms): time runs ten times faster.
const TICK_SECS: u64 = 1;
/// The collection's grace period, in test-clock seconds (3 s of real time).
const GRACE: &str = "30";

fn soak_secs() -> u64 {
    std::env::var("DEPOT_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60)
}

/// Collection every second, a grace period the writers' check-then-push never comes near, and
/// a short cache so the replicas see each other's pushes quickly.
const GC_FLAGS: [&str; 7] = [
    "--test-clock",
    "--gc-interval",
    "1",
    "--gc-grace",
    GRACE,
    "--cache-ttl-secs",
    "1",
];

#[derive(Default)]
struct Tally {
    pushed: AtomicU64,
    uploaded: AtomicU64,
    reused: AtomicU64,
    /// Builds that expired before their push finished.
    late: AtomicU64,
    /// Answers `BLOB_UNKNOWN` / `MANIFEST_BLOB_UNKNOWN` to valid requests.
    unknown: AtomicU64,
    /// Any other unexpected answer.
    other: AtomicU64,
    failures: Mutex<Vec<String>>,
}

impl Tally {
    fn fail(&self, unknown: bool, what: String) {
        if unknown {
            self.unknown.fetch_add(1, Ordering::Relaxed);
        } else {
            self.other.fetch_add(1, Ordering::Relaxed);
        }
        let mut f = self.failures.lock().unwrap();
        if f.len() < 20 {
            f.push(what);
        }
    }
}

/// A build pushed during the soak.
struct Pushed {
    id: String,
    manifest: String,
    blobs: Vec<String>,
}

struct World {
    urls: Vec<String>,
    admin: String,
    project: String,
    token: String,
    http: Client,
}

impl World {
    fn api(
        &self,
        url: &str,
        method: reqwest::Method,
        path: &str,
        secret: &str,
        body: Value,
    ) -> Value {
        ApiClient::new(url, secret).ok(method, path, Some(&body))
    }

    fn bearer(&self, url: &str, secret: &str, actions: &str) -> String {
        let scope = format!("repository:{}:{actions}", self.project);
        depot_testkit::api::access_token(&self.http, url, secret, &scope)
    }
}

/// Whether an error body names one of the two codes that must never answer a valid request.
fn is_unknown(body: &str) -> bool {
    body.contains("BLOB_UNKNOWN")
}

/// One writer: builds, each with a few layers from the shared pool, one of its own and a config.
fn writer(
    world: &World,
    pool: &[Vec<u8>],
    seed: u64,
    stop: &AtomicBool,
    tally: &Tally,
    out: &Mutex<Vec<Pushed>>,
) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let url = &world.urls[(seed + n) as usize % world.urls.len()];
        // Most builds are short-lived; every fifth lives past the end of the soak.
        let retention = if n.is_multiple_of(5) {
            1_000_000
        } else {
            rng.gen_range(20..80)
        };
        let b = world.api(
            url,
            reqwest::Method::POST,
            &format!("/projects/{}/builds", world.project),
            &world.token,
            json!({ "retention_secs": retention }),
        );
        let id = b["id"].as_str().unwrap().to_owned();
        let bearer = world.bearer(url, b["push_token"].as_str().unwrap(), "push,pull");
        let mut blobs: Vec<Vec<u8>> = (0..3)
            .map(|_| pool[rng.gen_range(0..pool.len())].clone())
            .collect();
        let mut own = vec![0u8; 4096];
        rng.fill(&mut own[..]);
        blobs.push(own);
        let config = serde_json::to_vec(&json!({
            "architecture": "amd64", "os": "linux", "config": { "Labels": { "build": id } },
            "rootfs": { "type": "layers", "diff_ids": [] }
        }))
        .unwrap();
        let mut ok = true;
        for blob in blobs.iter().chain(std::iter::once(&config)) {
            let digest = sha256(blob);
            let base = format!("{url}/v2/{}/blobs", world.project);
            let head = world
                .http
                .head(format!("{base}/{digest}"))
                .bearer_auth(&bearer)
                .send()
                .unwrap();
            if head.status() == 200 {
                tally.reused.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let put = world
                .http
                .post(format!("{base}/uploads/?digest={digest}"))
                .bearer_auth(&bearer)
                .body(blob.clone())
                .send()
                .unwrap();
            if put.status() != 201 {
                let status = put.status();
                let body = put.text().unwrap_or_default();
                tally.fail(
                    is_unknown(&body),
                    format!("upload {digest}: {status} {body}"),
                );
                ok = false;
                break;
            }
            tally.uploaded.fetch_add(1, Ordering::Relaxed);
        }
        if !ok {
            continue;
        }
        let layers: Vec<Value> = blobs[..4]
            .iter()
            .map(|b| json!({ "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha256(b), "size": b.len() }))
            .collect();
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(&config), "size": config.len() },
            "layers": layers,
        }))
        .unwrap();
        let resp = world
            .http
            .put(format!("{url}/v2/{}/manifests/{id}", world.project))
            .bearer_auth(&bearer)
            .header("content-type", "application/vnd.oci.image.manifest.v1+json")
            .body(manifest.clone())
            .send()
            .unwrap();
        if resp.status() != 201 {
            let status = resp.status();
            let body = resp.text().unwrap_or_default();
            // A short build can expire (at ten times real speed) before a slow push ends: the
            // registry rightly refuses it; that is not collection's doing.
            if status == 403 && body.contains("no longer accepts pushes") {
                tally.late.fetch_add(1, Ordering::Relaxed);
            } else {
                tally.fail(
                    is_unknown(&body),
                    format!("manifest of {id}: {status} {body}"),
                );
            }
            continue;
        }
        tally.pushed.fetch_add(1, Ordering::Relaxed);
        let mut digests: Vec<String> = blobs.iter().map(|b| sha256(b)).collect();
        digests.push(sha256(&config));
        out.lock().unwrap().push(Pushed {
            id,
            manifest: sha256(&manifest),
            blobs: digests,
        });
    }
}

/// Pulls every build that has not expired, verifying each manifest and blob by digest.
fn verify(world: &World, pushed: &[Pushed], tally: &Tally) -> u64 {
    let mut verified = 0;
    let url = &world.urls[0];
    let bearer = world.bearer(url, &world.admin, "pull");
    let expired = |id: &str| {
        world.api(
            url,
            reqwest::Method::GET,
            &format!("/builds/{id}"),
            &world.token,
            Value::Null,
        )["expired"]
            .as_bool()
            .unwrap()
    };
    for p in pushed {
        if expired(&p.id) {
            continue;
        }
        let resp = world
            .http
            .get(format!("{url}/v2/{}/manifests/{}", world.project, p.id))
            .bearer_auth(&bearer)
            .header("accept", "application/vnd.oci.image.manifest.v1+json")
            .send()
            .unwrap();
        let status = resp.status();
        let body = resp.bytes().unwrap();
        if status != 200 || sha256(&body) != p.manifest {
            // Expiring while we looked is not a failure.
            if !expired(&p.id) {
                tally.fail(status == 404, format!("pull {}: {status}", p.id));
            }
            continue;
        }
        for d in &p.blobs {
            let resp = world
                .http
                .get(format!("{url}/v2/{}/blobs/{d}", world.project))
                .bearer_auth(&bearer)
                .send()
                .unwrap();
            let status = resp.status();
            let bytes = resp.bytes().unwrap();
            if status != 200 || &sha256(&bytes) != d {
                tally.fail(true, format!("blob {d} of live build {}: {status}", p.id));
            }
        }
        verified += 1;
    }
    verified
}

fn metric(url: &str, name: &str) -> u64 {
    let text = Client::new()
        .get(format!("{url}/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

fn soak(servers: &[&Server], admin: &str) {
    let urls: Vec<String> = servers.iter().map(|s| s.url()).collect();
    let http = Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let mut world = World {
        urls: urls.clone(),
        admin: admin.to_owned(),
        project: String::new(),
        token: String::new(),
        http,
    };
    let p = world.api(
        &urls[0],
        reqwest::Method::POST,
        "/projects",
        admin,
        json!({ "name": "soak" }),
    );
    world.project = p["id"].as_str().unwrap().to_owned();
    let t = world.api(
        &urls[0],
        reqwest::Method::POST,
        &format!("/projects/{}/tokens", world.project),
        admin,
        json!({ "name": "soak" }),
    );
    world.token = t["token"].as_str().unwrap().to_owned();

    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let pool: Vec<Vec<u8>> = (0..16)
        .map(|_| {
            let mut b = vec![0u8; 32 * 1024];
            rng.fill(&mut b[..]);
            b
        })
        .collect();
    let stop = AtomicBool::new(false);
    let tally = Tally::default();
    let pushed = Mutex::new(Vec::new());
    let deadline = Instant::now() + Duration::from_secs(soak_secs());
    std::thread::scope(|s| {
        // The controlled clock: every replica moves one second forward every 100 ms.
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                for url in &urls {
                    world.api(
                        url,
                        reqwest::Method::POST,
                        "/admin/clock",
                        admin,
                        json!({ "advance_secs": TICK_SECS }),
                    );
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        for seed in 0..4u64 {
            let (world, pool, stop, tally, pushed) = (&world, &pool, &stop, &tally, &pushed);
            s.spawn(move || writer(world, pool, seed, stop, tally, pushed));
        }
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(200));
        }
        stop.store(true, Ordering::Relaxed);
    });
    let pushed = pushed.into_inner().unwrap();
    let verified = verify(&world, &pushed, &tally);
    let expired: u64 = urls
        .iter()
        .map(|u| metric(u, "depot_gc_builds_expired_total"))
        .sum();
    let deleted: u64 = urls
        .iter()
        .map(|u| metric(u, "depot_gc_blobs_deleted_total"))
        .sum();
    let runs: u64 = urls.iter().map(|u| metric(u, "depot_gc_runs_total")).sum();
    eprintln!(
        "soak: {} builds pushed ({} expired before their push ended), {} blobs uploaded, {} reused; \
         {verified} live builds verified; GC: {runs} runs, {expired} builds expired, {deleted} blobs deleted",
        tally.pushed.load(Ordering::Relaxed),
        tally.late.load(Ordering::Relaxed),
        tally.uploaded.load(Ordering::Relaxed),
        tally.reused.load(Ordering::Relaxed),
    );
    let mut failures = tally.failures.lock().unwrap().join("\n");
    for s in servers {
        for line in s
            .logs()
            .lines()
            .filter(|l| l.contains("request failed") || l.contains("WARN"))
        {
            failures.push_str(&format!("\n[{}] {line}", s.host()));
        }
    }
    assert_eq!(
        tally.unknown.load(Ordering::Relaxed),
        0,
        "BLOB_UNKNOWN answers:\n{failures}"
    );
    assert_eq!(
        tally.other.load(Ordering::Relaxed),
        0,
        "unexpected answers:\n{failures}"
    );
    assert!(verified > 0, "no live build to verify");
    // The collection really ran and removed things while the writers pushed.
    assert!(
        expired > 0 && deleted > 0,
        "expired {expired}, deleted {deleted}"
    );
}

#[test]
fn pushes_and_collection_together_lose_nothing_embedded() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(&dir.path().join("data"), &GC_FLAGS);
    let admin = server.admin_token();
    soak(&[&server], &admin);
}

#[test]
fn pushes_and_collection_together_lose_nothing_on_postgres_and_s3() {
    let Some(b) = depot_testkit::backends::fresh("soak") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let replica = |name: &str| {
        let mut flags = b.flags();
        flags.extend(GC_FLAGS.iter().map(|f| f.to_string()));
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        Server::start_with(&dir.path().join(name), &flags)
    };
    let (one, two) = (replica("one"), replica("two"));
    soak(&[&one, &two], &b.admin);
}
