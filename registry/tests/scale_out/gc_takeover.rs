//! The replica holding the collection lock killed in the middle of a sweep.

use std::time::{Duration, Instant};

use depot_testkit::oci::manifest_of;
use depot_testkit::{random_bytes, sha256, ApiClient, Server};
use serde_json::{json, Value};

use crate::images::{pull_verify, Image};
use crate::world::{http, metric, serial, World, ADMIN};

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
