//! Faults under load: a replica, a storage node and the database lost while 8 clients push.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use depot_testkit::oci::{manifest_of, OCI_MANIFEST};
use depot_testkit::{random_bytes, sha256};
use serde_json::json;

use crate::images::{pull_verify, write_layout, Image};
use crate::world::{http, metric, serial, skopeo, World};

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
    // rejoined) are removed by the registry's retries within a minute; what a fault cut off
    // from the database is left to reconcile (below).
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
    // What a killed replica or a restarted database cut between the store and the database (an
    // upload's first staged tail before its session row existed, a closing write whose
    // acknowledgement was lost) no metadata names: removing such leftovers is what `depot-gc
    // reconcile` is for. A few may remain (at most one per client: each had one request cut);
    // reconcile must then remove them all and nothing live.
    assert!(
        orphans <= CLIENTS as u64,
        "{orphans} orphans: more than the faults can leave\n{reconciled}\n{}\n{warnings}",
        orphan_history(&world, &reconciled)
    );
    if orphans > 0 {
        let out = world.depot_gc(&["--gc-grace", "0", "reconcile"]);
        assert!(out.contains("removed "), "{out}");
        let (left, listed) = world.orphans();
        assert_eq!(left, 0, "{listed}");
        for p in &acknowledged {
            pull_verify(&http, &lb, &p.repo, &p.digest, None)
                .unwrap_or_else(|e| panic!("after reconcile: {e}"));
        }
    }
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

/// For each upload session that left orphans: its row (or that it has none) and every replica
/// log line naming it, so a failure says how the session ended.
fn orphan_history(world: &World, reconciled: &str) -> String {
    let mut ids: Vec<&str> = reconciled
        .lines()
        .filter_map(|l| l.trim().strip_prefix("orphan "))
        .filter_map(|l| l.split_once(".tail-").map(|(key, _)| key))
        .filter_map(|key| key.rsplit('/').next())
        .collect();
    ids.dedup();
    let mut out = String::new();
    for id in ids {
        use sqlx::Row;
        let rows = world.sql_on(
            "depot",
            &format!(
                "SELECT size, length(store_state), created_at, updated_at FROM uploads \
                 WHERE id = '{id}'"
            ),
        );
        let row = rows.first().map_or("no row".to_owned(), |r| {
            let (size, state, created, updated): (i64, Option<i32>, i64, i64) =
                (r.get(0), r.get(1), r.get(2), r.get(3));
            format!("size {size}, state {state:?} bytes, created {created}, updated {updated}")
        });
        out.push_str(&format!("upload {id}: {row}\n"));
        for (i, r) in world.replicas.iter().enumerate() {
            for l in r.logs().lines().filter(|l| l.contains(id)) {
                out.push_str(&format!("  [replica {i}] {l}\n"));
            }
        }
    }
    out
}
