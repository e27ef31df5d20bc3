//! Nothing the registry's own maintenance does may destroy a stored blob: every shape a blob
//! can be stored in (tiny, exactly one part, many parts, chunked with and without a final chunk,
//! the empty blob, mounted, pushed twice) survives `depot-gc reconcile` and a zero-grace
//! `depot-gc run`, on the embedded default (SQLite + files) and on PostgreSQL + S3, and pulls
//! back intact afterwards.

use std::process::Command;
use std::time::Duration;

use depot_testkit::{random_bytes, sha256, Server};
use reqwest::blocking::Client;
use serde_json::json;

const MIB: usize = 1024 * 1024;
/// The S3 part size the registry runs with here (`--s3-part-size-mib`), so "one part" and
/// "many parts" stay small.
const PART: usize = 5 * MIB;

struct Pusher {
    http: Client,
    base: String,
}

impl Pusher {
    /// `POST ?digest=`: the whole blob in one request.
    fn monolithic(&self, repo: &str, blob: &[u8]) {
        let resp = self
            .http
            .post(format!(
                "{}/v2/{repo}/blobs/uploads/?digest={}",
                self.base,
                sha256(blob)
            ))
            .header("content-type", "application/octet-stream")
            .body(blob.to_vec())
            .send()
            .unwrap();
        assert_eq!(resp.status(), 201, "{}", resp.text().unwrap());
    }

    /// `POST`, a `PATCH` per entry of `chunks` (lengths), then the closing `PUT` carrying
    /// `last` more bytes (0: an empty closing PUT).
    fn chunked(&self, repo: &str, blob: &[u8], chunks: &[usize], last: usize) {
        let resp = self
            .http
            .post(format!("{}/v2/{repo}/blobs/uploads/", self.base))
            .send()
            .unwrap();
        assert_eq!(resp.status(), 202);
        let mut location = self.absolute(resp.headers()["location"].to_str().unwrap());
        let mut offset = 0;
        for &len in chunks {
            let resp = self
                .http
                .patch(&location)
                .header("content-type", "application/octet-stream")
                .header("content-range", format!("{offset}-{}", offset + len - 1))
                .body(blob[offset..offset + len].to_vec())
                .send()
                .unwrap();
            assert_eq!(resp.status(), 202, "{}", resp.text().unwrap());
            location = self.absolute(resp.headers()["location"].to_str().unwrap());
            offset += len;
        }
        assert_eq!(offset + last, blob.len());
        let sep = if location.contains('?') { '&' } else { '?' };
        let resp = self
            .http
            .put(format!("{location}{sep}digest={}", sha256(blob)))
            .header("content-type", "application/octet-stream")
            .body(blob[offset..].to_vec())
            .send()
            .unwrap();
        assert_eq!(resp.status(), 201, "{}", resp.text().unwrap());
    }

    fn mount(&self, repo: &str, from: &str, blob: &[u8]) {
        let resp = self
            .http
            .post(format!(
                "{}/v2/{repo}/blobs/uploads/?mount={}&from={from}",
                self.base,
                sha256(blob)
            ))
            .send()
            .unwrap();
        assert_eq!(resp.status(), 201);
    }

    fn absolute(&self, location: &str) -> String {
        if location.starts_with("http") {
            location.to_owned()
        } else {
            format!("{}{location}", self.base)
        }
    }

    /// Tags an image in `repo` whose layers are `blobs` (the first is its config).
    fn manifest(&self, repo: &str, tag: &str, blobs: &[&[u8]]) {
        let descriptor = |b: &[u8], media: &str| json!({ "mediaType": media, "digest": sha256(b), "size": b.len() });
        let layers: Vec<_> = blobs[1..]
            .iter()
            .map(|b| descriptor(b, "application/vnd.oci.image.layer.v1.tar"))
            .collect();
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": descriptor(blobs[0], "application/vnd.oci.image.config.v1+json"),
            "layers": layers,
        });
        let resp = self
            .http
            .put(format!("{}/v2/{repo}/manifests/{tag}", self.base))
            .header("content-type", "application/vnd.oci.image.manifest.v1+json")
            .body(manifest.to_string())
            .send()
            .unwrap();
        assert_eq!(resp.status(), 201, "{}", resp.text().unwrap());
    }

    fn pulls_back(&self, repo: &str, blob: &[u8], what: &str) {
        let resp = self
            .http
            .get(format!("{}/v2/{repo}/blobs/{}", self.base, sha256(blob)))
            .send()
            .unwrap();
        assert_eq!(resp.status(), 200, "{what} in {repo} after maintenance");
        let body = resp.bytes().unwrap();
        assert!(
            sha256(&body) == sha256(blob),
            "{what} in {repo} came back different"
        );
    }
}

/// `depot-gc` on `backend` (its flags) with a zero grace period.
fn depot_gc(backend: &[String], args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_depot-gc"))
        .args(backend)
        .args(["--gc-grace", "0"])
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "depot-gc {args:?}: {text}");
    text
}

/// Pushes every shape into a registry serving on `backend`, runs the maintenance commands and
/// checks that every blob is still there.
fn every_shape_survives(backend: &[String], data_dir: &std::path::Path) {
    let mut flags = vec!["--no-auth", "--gc-interval", "0"];
    flags.extend(backend.iter().map(String::as_str));
    let server = Server::start_with(data_dir, &flags);
    let mut gc_flags = vec!["--data-dir".to_owned(), data_dir.display().to_string()];
    gc_flags.extend(backend.iter().cloned());
    let backend = &gc_flags[..];
    let p = Pusher {
        http: Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .unwrap(),
        base: server.url(),
    };
    let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
    let tiny = random_bytes(100);
    let tiny_staged = random_bytes(333);
    let one_part = random_bytes(PART);
    let many_with_final = random_bytes(3 * PART + 12_345);
    let many_staged = random_bytes(2 * PART + MIB + 7);
    let empty: Vec<u8> = Vec::new();
    let twice = random_bytes(4096);

    let shapes: Vec<(&str, &[u8])> = vec![
        ("config (monolithic)", &config),
        ("tiny blob (monolithic)", &tiny),
        ("tiny blob, chunked, empty closing PUT", &tiny_staged),
        ("exactly one part, chunked", &one_part),
        (
            "many parts, chunked, bytes in the closing PUT",
            &many_with_final,
        ),
        ("many parts, chunked, empty closing PUT", &many_staged),
        ("empty blob", &empty),
        ("pushed twice", &twice),
    ];
    p.monolithic("team/a", &config);
    p.monolithic("team/a", &tiny);
    p.chunked("team/a", &tiny_staged, &[333], 0);
    p.chunked("team/a", &one_part, &[PART], 0);
    p.chunked(
        "team/a",
        &many_with_final,
        &[2 * MIB, 4 * MIB, 5 * MIB],
        4 * MIB + 12_345,
    );
    p.chunked("team/a", &many_staged, &[3 * MIB, 4 * MIB, 4 * MIB + 7], 0);
    p.chunked("team/a", &empty, &[], 0);
    p.monolithic("team/a", &twice);
    let all: Vec<&[u8]> = shapes.iter().map(|(_, b)| *b).collect();
    p.manifest("team/a", "v1", &all);

    // Another repository mounts some, and pushes others again (stored once, linked twice:
    // the second upload's bytes are dropped, by chunked and monolithic pushes alike).
    p.monolithic("team/b", &config);
    p.mount("team/b", "team/a", &tiny_staged);
    p.mount("team/b", "team/a", &many_staged);
    p.chunked("team/b", &twice, &[1000], 3096);
    p.chunked("team/b", &tiny, &[100], 0);
    p.monolithic("team/b", &one_part);
    let mounted: Vec<&[u8]> = vec![
        &config,
        &tiny_staged,
        &many_staged,
        &twice,
        &tiny,
        &one_part,
    ];
    p.manifest("team/b", "v1", &mounted);

    // Everything is older than the (zero) grace period.
    std::thread::sleep(Duration::from_millis(1500));
    let out = depot_gc(backend, &["reconcile", "--dry-run"]);
    assert!(out.contains("would remove 0 orphans"), "{out}");
    let out = depot_gc(backend, &["reconcile"]);
    assert!(out.contains("removed 0 orphans"), "{out}");
    let out = depot_gc(backend, &["run", "--once"]);
    assert!(out.contains("collection:"), "{out}");

    for (what, blob) in &shapes {
        p.pulls_back("team/a", blob, what);
    }
    for blob in &mounted {
        p.pulls_back("team/b", blob, "a mounted or re-pushed blob");
    }
    // The server logged no missing bytes.
    assert!(!server.logs().contains("missing"), "{}", server.logs());
}

#[test]
fn every_shape_survives_on_the_embedded_default() {
    let dir = tempfile::tempdir().unwrap();
    every_shape_survives(&[], dir.path());
}

#[test]
fn every_shape_survives_on_postgres_and_s3() {
    let Some(b) = depot_testkit::backends::fresh("keepslive") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let backend: Vec<String> = [
        "--database-url",
        &b.database_url,
        "--storage",
        &format!("s3://{}/registry", b.bucket),
        "--s3-endpoint",
        &b.endpoint,
        "--s3-region",
        "us-east-1",
        "--s3-force-path-style",
        "--s3-part-size-mib",
        "5",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    every_shape_survives(&backend, dir.path());
}
