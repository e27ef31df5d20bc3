//! A thundering herd: 50 pulls of a fresh 512 MiB image, against distribution and the
//! machine's ceiling.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use depot_testkit::garage::{self, GarageCluster};
use depot_testkit::nginx::{readme_site, Nginx};
use depot_testkit::oci::{manifest_of, OCI_MANIFEST};
use depot_testkit::{random_bytes, sha256};
use reqwest::blocking::Client;
use serde_json::json;
use sha2::Digest as _;

use crate::images::Image;
use crate::world::{http, serial, World};

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
