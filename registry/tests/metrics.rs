//! `/metrics` with the real binary: every metric the registry can show is shown and counts what
//! happened (requests, bytes both ways, caches, storage per repository through a link, a
//! mount, a deletion and a collection, open uploads, builds, the pools, garbage collection),
//! on the embedded default and on PostgreSQL + S3 (where the S3 requests and the chunk cache
//! are counted too); `--metrics-listen` moves it off the public port; the README lists every
//! name.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use depot_registry::metrics::all;
use depot_testkit::oci::{image_manifest, push_blob, put_manifest};
use depot_testkit::{random_bytes, Server};
use reqwest::blocking::Client;

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// The samples of a scrape: `name{labels}` → value.
fn scrape(url: &str) -> BTreeMap<String, f64> {
    let resp = client().get(format!("{url}/metrics")).send().unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// The value of one series (0 if absent).
fn value(samples: &BTreeMap<String, f64>, series: &str) -> f64 {
    samples.get(series).copied().unwrap_or(0.0)
}

/// Whether any series of the metric `name` (a histogram: its `_count`) is shown.
fn shown(samples: &BTreeMap<String, f64>, name: &str) -> bool {
    samples.keys().any(|k| {
        let base = k.split('{').next().unwrap();
        base == name || base == format!("{name}_count")
    })
}

/// Scrapes until `check` holds (the database gauges are read at most every 10 s).
fn scrape_until(
    url: &str,
    limit: Duration,
    check: impl Fn(&BTreeMap<String, f64>) -> bool,
) -> BTreeMap<String, f64> {
    let started = Instant::now();
    loop {
        let samples = scrape(url);
        if check(&samples) || started.elapsed() > limit {
            return samples;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Pushes an image of a config and one layer of `layer` bytes as `repo:v1`; returns the
/// layer's digest and the two blobs' total size.
fn push_image(url: &str, repo: &str, layer: usize) -> (String, u64) {
    let http = client();
    let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
    let layer = random_bytes(layer);
    push_blob(&http, url, repo, None, &config);
    let digest = push_blob(&http, url, repo, None, &layer);
    let manifest = image_manifest(&config, &[&layer]);
    assert_eq!(
        put_manifest(&http, url, repo, "v1", None, &manifest).status(),
        201
    );
    (digest, (config.len() + layer.len()) as u64)
}

#[test]
fn every_metric_counts_what_happened_on_the_embedded_default() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        dir.path(),
        &["--no-auth", "--gc-interval", "1", "--gc-grace", "0"],
    );
    let url = server.url();
    let http = client();
    let (layer, held) = push_image(&url, "team/app", 100_000);
    for _ in 0..2 {
        let r = http
            .get(format!("{url}/v2/team/app/manifests/v1"))
            .header("accept", "application/vnd.oci.image.manifest.v1+json")
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let pulled = http
        .get(format!("{url}/v2/team/app/blobs/{layer}"))
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    assert_eq!(pulled.len(), 100_000);
    // Mounted into a second repository: it holds the layer too.
    let r = http
        .post(format!(
            "{url}/v2/team/other/blobs/uploads/?mount={layer}&from=team/app"
        ))
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    // An upload left open after its first chunk (opening a session alone writes nothing).
    let r = http
        .post(format!("{url}/v2/team/app/blobs/uploads/"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 202);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let location = if location.starts_with('/') {
        format!("{url}{location}")
    } else {
        location
    };
    let r = http
        .patch(location)
        .header("content-type", "application/octet-stream")
        .body(vec![7u8; 1000])
        .send()
        .unwrap();
    assert_eq!(r.status(), 202);

    let s = scrape(&url);
    for (name, _, _, _) in all() {
        if name.starts_with("depot_s3_") || name.starts_with("depot_gc_last_") {
            continue; // S3 only; set by the first collection (checked below)
        }
        assert!(shown(&s, name), "{name} is not shown");
    }
    assert_eq!(
        value(
            &s,
            r#"depot_http_requests_total{class="manifest",method="GET",status="200"}"#
        ),
        2.0
    );
    assert_eq!(
        value(
            &s,
            r#"depot_http_request_duration_seconds_count{class="manifest",method="GET"}"#
        ),
        2.0
    );
    assert!(value(&s, r#"depot_http_sent_bytes_total{class="blob"}"#) >= 100_000.0);
    assert!(value(&s, r#"depot_http_received_bytes_total{class="upload"}"#) >= held as f64);
    assert!(
        value(
            &s,
            r#"depot_cache_requests_total{cache="manifests",result="hit"}"#
        ) >= 1.0,
        "the second manifest GET is served from the cache"
    );
    assert_eq!(
        value(&s, r#"depot_storage_bytes{repository="team/app"}"#),
        held as f64
    );
    assert_eq!(
        value(&s, r#"depot_storage_blobs{repository="team/app"}"#),
        2.0
    );
    assert_eq!(
        value(&s, r#"depot_storage_bytes{repository="team/other"}"#),
        100_000.0
    );
    assert_eq!(value(&s, "depot_uploads_in_progress"), 1.0);
    assert_eq!(
        value(&s, r#"depot_http_requests_in_flight{class="blob"}"#),
        0.0
    );
    assert!(value(&s, "depot_http_connections") >= 1.0);
    assert!(value(&s, r#"depot_db_connections_max{pool="write"}"#) >= 1.0);

    // The mounted copy deleted, the image's manifest deleted: collected, nothing held.
    let r = http
        .delete(format!("{url}/v2/team/other/blobs/{layer}"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 202);
    let digest = http
        .head(format!("{url}/v2/team/app/manifests/v1"))
        .header("accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .unwrap()
        .headers()["docker-content-digest"]
        .to_str()
        .unwrap()
        .to_owned();
    let r = http
        .delete(format!("{url}/v2/team/app/manifests/{digest}"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 202);
    let s = scrape_until(&url, Duration::from_secs(30), |s| {
        value(s, r#"depot_storage_bytes{repository="team/app"}"#) == 0.0
    });
    assert_eq!(
        value(&s, r#"depot_storage_bytes{repository="team/app"}"#),
        0.0,
        "the collected blobs are still counted"
    );
    assert_eq!(
        value(&s, r#"depot_storage_bytes{repository="team/other"}"#),
        0.0
    );
    assert!(value(&s, "depot_gc_runs_total") >= 1.0);
    assert!(value(&s, "depot_gc_blobs_deleted_total") >= 2.0);
    assert!(shown(&s, "depot_gc_last_run_timestamp_seconds"));
}

#[test]
fn metrics_listen_moves_metrics_off_the_public_port() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        dir.path(),
        &["--no-auth", "--metrics-listen", "127.0.0.1:0"],
    );
    let logs = server.logs();
    let at = logs
        .split("metrics on http://")
        .nth(1)
        .and_then(|rest| rest.split("/metrics").next())
        .unwrap_or_else(|| panic!("no metrics address logged: {logs}"));
    let metrics_url = format!("http://{at}");
    let http = client();
    assert_eq!(
        http.get(format!("{}/v2/", server.url()))
            .send()
            .unwrap()
            .status(),
        200
    );
    let public = http
        .get(format!("{}/metrics", server.url()))
        .send()
        .unwrap();
    assert_eq!(public.status(), 404, "metrics are still on the public port");
    let s = scrape(&metrics_url);
    assert_eq!(
        value(
            &s,
            r#"depot_http_requests_total{class="base",method="GET",status="200"}"#
        ),
        1.0
    );
    // The metrics port serves nothing else.
    let other = http.get(format!("{metrics_url}/v2/")).send().unwrap();
    assert_eq!(other.status(), 404);
}

#[test]
fn s3_requests_and_the_chunk_cache_are_counted_on_postgres_and_s3() {
    let Some(b) = depot_testkit::backends::fresh("metrics") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let flags = b.flags();
    let mut flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    flags.extend(["--s3-redirect", "off"]);
    let server = Server::start_with(&dir.path().join("data"), &flags);
    let url = server.url();
    let token = depot_testkit::api::access_token(
        &client(),
        &url,
        &b.admin,
        "repository:team/app:push,pull",
    );
    let http = client();
    let layer = random_bytes(300_000);
    let digest = depot_testkit::oci::push_blob(&http, &url, "team/app", Some(&token), &layer);
    for _ in 0..2 {
        let got = http
            .get(format!("{url}/v2/team/app/blobs/{digest}"))
            .bearer_auth(&token)
            .send()
            .unwrap()
            .bytes()
            .unwrap();
        assert_eq!(got.len(), layer.len());
    }
    let s = scrape(&url);
    let ok = |op: &str| {
        value(
            &s,
            &format!(r#"depot_s3_requests_total{{operation="{op}",outcome="ok"}}"#),
        )
    };
    assert!(
        ok("PutObject") + ok("CompleteMultipartUpload") >= 1.0,
        "{s:?}"
    );
    assert!(ok("GetObject") >= 1.0, "{s:?}");
    assert!(shown(&s, "depot_s3_request_duration_seconds"));
    assert_eq!(
        value(
            &s,
            r#"depot_cache_requests_total{cache="chunks",result="miss"}"#
        ),
        1.0,
        "one S3 read for two pulls"
    );
    assert!(
        value(
            &s,
            r#"depot_cache_requests_total{cache="chunks",result="hit"}"#
        ) >= 1.0
    );
    assert_eq!(
        value(&s, r#"depot_storage_bytes{repository="team/app"}"#),
        300_000.0
    );
    assert!(value(&s, r#"depot_db_connections_max{pool="read"}"#) >= 1.0);
}

#[test]
fn the_readme_lists_every_metric() {
    let rows: Vec<String> = all()
        .into_iter()
        .map(|(name, kind, labels, help)| {
            let kind = format!("{kind:?}").to_lowercase();
            format!("| `{name}` | {labels} | {kind} | {help} |")
        })
        .collect();
    depot_testkit::readme::assert_lists(
        "metrics",
        "| Metric | Labels | Type | Meaning |\n|---|---|---|---|",
        &rows,
    );
}
