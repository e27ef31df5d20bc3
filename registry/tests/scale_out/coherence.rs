//! Cache coherence between replicas while a tag moves every few milliseconds.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use depot_testkit::oci::{manifest_of, OCI_MANIFEST};
use depot_testkit::{random_bytes, sha256, Server};
use reqwest::blocking::Client;
use serde_json::json;

use crate::world::{http, serial, World};

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
        // The watchers stop whatever happens here: a failed move must fail the test, not
        // leave them spinning for ever.
        let moved = (|| {
            for m in &manifests[1..MOVES] {
                let r =
                    depot_testkit::oci::put_manifest(&client, &urls[0], repo, "moving", None, m);
                if r.status() != 201 {
                    return Err(format!(
                        "moving the tag: {} {}",
                        r.status(),
                        r.text().unwrap()
                    ));
                }
                acks.lock().unwrap().push(epoch.elapsed());
                std::thread::sleep(Duration::from_millis(3));
            }
            std::thread::sleep(Duration::from_millis(500));
            Ok(())
        })();
        stop.store(true, Ordering::SeqCst);
        moved.unwrap();
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
