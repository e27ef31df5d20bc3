//! Blobs of either registered algorithm, pushed every way a client may, on both backends. A
//! session opened without `?digest-algorithm=` (the spec's hint is a SHOULD) and closed with a
//! sha512 digest is verified and stored; a wrong one is refused as a mismatch naming both
//! digests and leaves nothing behind, neither visible nor in the store; the hint itself works.
//! Every storage shape is covered (tiny, one S3 part, many parts with and without bytes in the
//! closing `PUT`, a streamed `PATCH`, everything in the closing `PUT`).

use std::path::Path;
use std::time::Duration;

use depot_testkit::{random_bytes, sha512, Server};
use reqwest::blocking::Client;
use serde_json::Value;

const MIB: usize = 1024 * 1024;
/// The S3 part size the registry runs with here, so "one part" and "many parts" stay small.
const PART: usize = 5 * MIB;

struct Pusher {
    http: Client,
    base: String,
}

/// How the bytes of one upload travel.
struct Shape {
    what: &'static str,
    size: usize,
    /// `PATCH` lengths (`Content-Range` on each), then the rest in the closing `PUT`.
    chunks: &'static [usize],
    /// Send the chunks without `Content-Range` (streamed).
    streamed: bool,
}

const SHAPES: &[Shape] = &[
    Shape {
        what: "tiny, in one PATCH",
        size: 100,
        chunks: &[100],
        streamed: false,
    },
    Shape {
        what: "tiny, all in the closing PUT",
        size: 100,
        chunks: &[],
        streamed: false,
    },
    Shape {
        what: "exactly one part",
        size: PART,
        chunks: &[PART],
        streamed: false,
    },
    Shape {
        what: "many parts, bytes in the closing PUT",
        size: 2 * PART + 3 * MIB,
        chunks: &[PART, PART + MIB],
        streamed: false,
    },
    Shape {
        what: "many parts, a staged tail and an empty closing PUT",
        size: PART + 2 * MIB,
        chunks: &[PART, 2 * MIB],
        streamed: false,
    },
    Shape {
        what: "streamed PATCHes",
        size: PART + MIB,
        chunks: &[MIB, PART],
        streamed: true,
    },
];

impl Pusher {
    fn absolute(&self, location: &str) -> String {
        if location.starts_with("http") {
            location.to_owned()
        } else {
            format!("{}{location}", self.base)
        }
    }

    /// Pushes `blob` in `shape`, opening the session with `?digest-algorithm=` `hint`, closing
    /// it with `digest`: the closing answer's status and body.
    fn push(
        &self,
        repo: &str,
        blob: &[u8],
        shape: &Shape,
        hint: Option<&str>,
        digest: &str,
    ) -> (u16, Value) {
        let query = hint.map_or(String::new(), |h| format!("?digest-algorithm={h}"));
        let resp = self
            .http
            .post(format!("{}/v2/{repo}/blobs/uploads/{query}", self.base))
            .send()
            .unwrap();
        assert_eq!(resp.status(), 202, "{}", resp.text().unwrap());
        let mut location = self.absolute(resp.headers()["location"].to_str().unwrap());
        let mut offset = 0;
        for &len in shape.chunks {
            let mut req = self
                .http
                .patch(&location)
                .header("content-type", "application/octet-stream")
                .body(blob[offset..offset + len].to_vec());
            if !shape.streamed {
                req = req.header("content-range", format!("{offset}-{}", offset + len - 1));
            }
            let resp = req.send().unwrap();
            assert_eq!(resp.status(), 202, "{}", resp.text().unwrap());
            location = self.absolute(resp.headers()["location"].to_str().unwrap());
            offset += len;
        }
        let sep = if location.contains('?') { '&' } else { '?' };
        let resp = self
            .http
            .put(format!("{location}{sep}digest={digest}"))
            .header("content-type", "application/octet-stream")
            .body(blob[offset..].to_vec())
            .send()
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().unwrap_or(Value::Null))
    }

    fn pulls_back(&self, repo: &str, blob: &[u8], what: &str) {
        let resp = self
            .http
            .get(format!("{}/v2/{repo}/blobs/{}", self.base, sha512(blob)))
            .send()
            .unwrap();
        assert_eq!(resp.status(), 200, "{what}");
        assert_eq!(
            resp.headers()["docker-content-digest"],
            sha512(blob).as_str(),
            "{what}"
        );
        let body = resp.bytes().unwrap();
        assert!(sha512(&body) == sha512(blob), "{what} came back different");
    }

    fn status(&self, repo: &str, digest: &str) -> u16 {
        self.http
            .head(format!("{}/v2/{repo}/blobs/{digest}", self.base))
            .send()
            .unwrap()
            .status()
            .as_u16()
    }
}

/// Every file under the file store's folders.
fn stored_files(data_dir: &Path) -> usize {
    fn count(dir: &Path) -> usize {
        std::fs::read_dir(dir).map_or(0, |entries| {
            entries
                .flatten()
                .map(|e| {
                    let path = e.path();
                    if path.is_dir() {
                        count(&path)
                    } else {
                        1
                    }
                })
                .sum()
        })
    }
    count(&data_dir.join("blobs")) + count(&data_dir.join("uploads"))
}

fn every_way(server: &Server, stored: &dyn Fn() -> usize) {
    let p = Pusher {
        http: Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .unwrap(),
        base: server.url(),
    };
    for (i, shape) in SHAPES.iter().enumerate() {
        let repo = format!("team/shape{i}");
        let blob = random_bytes(shape.size);
        let what = shape.what;

        // No hint, and the right sha512: stored and served under it.
        let (status, body) = p.push(&repo, &blob, shape, None, &sha512(&blob));
        assert_eq!(status, 201, "{what}, no hint: {body}");
        p.pulls_back(&repo, &blob, what);

        // No hint, and a wrong sha512: a mismatch, saying both digests, and nothing kept.
        let other = random_bytes(shape.size);
        let before = stored();
        let wrong = sha512(b"not these bytes");
        let (status, body) = p.push(&repo, &other, shape, None, &wrong);
        assert_eq!(status, 400, "{what}, wrong digest: {body}");
        let error = &body["errors"][0];
        assert_eq!(error["code"], "DIGEST_INVALID", "{body}");
        assert_eq!(error["detail"]["expected"], wrong.as_str(), "{body}");
        assert_eq!(error["detail"]["actual"], sha512(&other).as_str(), "{body}");
        assert_eq!(p.status(&repo, &wrong), 404, "{what}");
        assert_eq!(p.status(&repo, &sha512(&other)), 404, "{what}");
        assert_eq!(
            stored(),
            before,
            "{what}: the refused bytes are still stored"
        );

        // With the hint: hashed as they arrive.
        let hinted = random_bytes(shape.size);
        let (status, body) = p.push(&repo, &hinted, shape, Some("sha512"), &sha512(&hinted));
        assert_eq!(status, 201, "{what}, hinted: {body}");
        p.pulls_back(&repo, &hinted, what);

        // The same content again without the hint, in another repository: stored once.
        let before = stored();
        let (status, body) = p.push("team/again", &blob, shape, None, &sha512(&blob));
        assert_eq!(status, 201, "{what}, again: {body}");
        p.pulls_back("team/again", &blob, what);
        assert_eq!(
            stored(),
            before,
            "{what}: the same content was stored twice"
        );
    }
    // An algorithm the registry does not know is refused when the session opens.
    let resp = p
        .http
        .post(format!(
            "{}/v2/team/x/blobs/uploads/?digest-algorithm=md5",
            p.base
        ))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().unwrap();
    assert_eq!(body["errors"][0]["code"], "DIGEST_INVALID", "{body}");
}

#[test]
fn sha512_uploads_with_and_without_the_hint_on_files() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data);
    every_way(&server, &|| stored_files(&data));
}

#[test]
fn sha512_uploads_with_and_without_the_hint_on_postgres_and_s3() {
    let Some(b) = depot_testkit::backends::fresh("digests") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let flags = b.test_flags();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let server = Server::start_with(&dir.path().join("data"), &flags);
    every_way(&server, &|| b.object_count());
}
