//! Crashes, kills, lost connections and concurrent pushes against the real binary: nothing
//! half-written becomes visible and nothing acknowledged is lost.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use depot_testkit::oci::{self, OCI_MANIFEST};
use depot_testkit::{random_bytes, sha256, Server};
use reqwest::blocking::Client;

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

fn push_blob(c: &Client, base: &str, repo: &str, data: &[u8]) -> String {
    oci::push_blob(c, base, repo, None, data)
}

/// A one-layer image tagged `tag`: its manifest and its layer's digest.
fn push_image(c: &Client, base: &str, repo: &str, tag: &str) -> (Vec<u8>, String) {
    let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
    let layer = random_bytes(100_000);
    push_blob(c, base, repo, &config);
    let ld = push_blob(c, base, repo, &layer);
    let manifest = oci::image_manifest(&config, &[&layer]);
    let r = oci::put_manifest(c, base, repo, tag, None, &manifest);
    assert_eq!(r.status(), 201);
    (manifest, ld)
}

/// Opens a raw connection and sends a request head announcing `length` body bytes, plus `sent`
/// of them, leaving the rest unsent: a push caught mid-body.
fn partial_request(addr: &str, method: &str, path: &str, length: usize, sent: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(s, "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/octet-stream\r\nContent-Length: {length}\r\n\r\n").unwrap();
    s.write_all(sent).unwrap();
    s.flush().unwrap();
    s
}

fn upload_offset(c: &Client, base: &str, location: &str) -> u64 {
    let r = c.get(format!("{base}{location}")).send().unwrap();
    assert_eq!(r.status(), 204);
    let range = r.headers()["range"].to_str().unwrap().to_owned();
    let end: u64 = range.trim_start_matches("0-").parse().unwrap();
    if end == 0 {
        0
    } else {
        end + 1
    }
}

#[test]
fn kill_mid_push_loses_nothing_and_shows_nothing_partial() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path());
    let c = client();
    let base = server.url();

    // Saved before the crash: an image and the first chunk of a chunked upload.
    let (manifest, layer) = push_image(&c, &base, "app/saved", "v1");
    let chunked = random_bytes(3_000_000);
    let r = c
        .post(format!("{base}/v2/app/chunked/blobs/uploads/"))
        .send()
        .unwrap();
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let r = c
        .patch(format!("{base}{location}"))
        .header("content-range", "0-1999999")
        .body(chunked[..2_000_000].to_vec())
        .send()
        .unwrap();
    assert_eq!(r.status(), 202);

    // In flight at the crash: a monolithic push and a second chunk, each half sent.
    let big = random_bytes(8_000_000);
    let big_digest = sha256(&big);
    let _mono = partial_request(
        &server.host(),
        "POST",
        &format!("/v2/app/partial/blobs/uploads/?digest={big_digest}"),
        big.len(),
        &big[..4_000_000],
    );
    let _chunk = partial_request(
        &server.host(),
        "PATCH",
        &location,
        1_000_000,
        &chunked[2_000_000..2_500_000],
    );
    std::thread::sleep(Duration::from_millis(300));
    server.kill();

    let server = Server::start(dir.path());
    let base = server.url();
    // Everything acknowledged is there, byte for byte.
    let r = c
        .get(format!("{base}/v2/app/saved/manifests/v1"))
        .header("accept", OCI_MANIFEST)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().unwrap().to_vec(), manifest);
    let r = c
        .get(format!("{base}/v2/app/saved/blobs/{layer}"))
        .send()
        .unwrap();
    assert_eq!(sha256(&r.bytes().unwrap()), layer);
    // The half-sent blob is not visible anywhere.
    let r = c
        .head(format!("{base}/v2/app/partial/blobs/{big_digest}"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 404);
    // The chunked upload resumes from its last acknowledged chunk and completes correctly.
    assert_eq!(upload_offset(&c, &base, &location), 2_000_000);
    let r = c
        .patch(format!("{base}{location}"))
        .header("content-range", "2000000-2999999")
        .body(chunked[2_000_000..].to_vec())
        .send()
        .unwrap();
    assert_eq!(r.status(), 202);
    let r = c
        .put(format!("{base}{location}?digest={}", sha256(&chunked)))
        .send()
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().unwrap());
    let r = c
        .get(format!("{base}/v2/app/chunked/blobs/{}", sha256(&chunked)))
        .send()
        .unwrap();
    assert_eq!(r.bytes().unwrap().to_vec(), chunked);
    // And new pushes work, including the blob that was cut off.
    push_blob(&c, &base, "app/partial", &big);
}

#[test]
fn lost_connection_mid_patch_keeps_the_session_usable() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let c = client();
    let base = server.url();
    let data = random_bytes(2_000_000);
    let r = c
        .post(format!("{base}/v2/lost/conn/blobs/uploads/"))
        .send()
        .unwrap();
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let r = c
        .patch(format!("{base}{location}"))
        .header("content-range", "0-999999")
        .body(data[..1_000_000].to_vec())
        .send()
        .unwrap();
    assert_eq!(r.status(), 202);

    let s = partial_request(
        &server.host(),
        "PATCH",
        &location,
        1_000_000,
        &data[1_000_000..1_400_000],
    );
    std::thread::sleep(Duration::from_millis(200));
    drop(s);
    std::thread::sleep(Duration::from_millis(200));

    assert_eq!(upload_offset(&c, &base, &location), 1_000_000);
    let r = c
        .put(format!("{base}{location}?digest={}", sha256(&data)))
        .header("content-range", "1000000-1999999")
        .body(data[1_000_000..].to_vec())
        .send()
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().unwrap());
    let r = c
        .get(format!("{base}/v2/lost/conn/blobs/{}", sha256(&data)))
        .send()
        .unwrap();
    assert_eq!(r.bytes().unwrap().to_vec(), data);
}

#[test]
fn concurrent_pushes_of_one_blob_all_succeed_and_store_one_copy() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let base = server.url();
    let data = random_bytes(3_000_000);
    let digest = sha256(&data);
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let (base, data) = (base.clone(), data.clone());
            std::thread::spawn(move || {
                let c = client();
                let repo = format!("same/r{}", i % 3);
                let d = sha256(&data);
                let r = c
                    .post(format!("{base}/v2/{repo}/blobs/uploads/?digest={d}"))
                    .body(data)
                    .send()
                    .unwrap();
                r.status().as_u16()
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), 201);
    }
    let c = client();
    for i in 0..3 {
        let r = c
            .get(format!("{base}/v2/same/r{i}/blobs/{digest}"))
            .send()
            .unwrap();
        assert_eq!(r.bytes().unwrap().to_vec(), data);
    }
    // One copy under blobs/ (`<hex>.<copy>`: the losers' copies were dropped), and no upload
    // left behind.
    let hex = digest.trim_start_matches("sha256:");
    let mut blob_files = 0;
    for entry in walk(&dir.path().join("blobs")) {
        if entry
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with(hex)
        {
            blob_files += 1;
        }
    }
    assert_eq!(blob_files, 1);
    assert_eq!(
        std::fs::read_dir(dir.path().join("uploads"))
            .unwrap()
            .count(),
        0
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn sigterm_lets_a_push_in_flight_finish_then_exits() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path());
    let data = random_bytes(4_000_000);
    let digest = sha256(&data);
    let mut s = partial_request(
        &server.host(),
        "POST",
        &format!("/v2/graceful/blobs/uploads/?digest={digest}"),
        data.len(),
        &data[..1_000_000],
    );
    std::thread::sleep(Duration::from_millis(200));
    server.terminate();
    std::thread::sleep(Duration::from_millis(300));
    // Still running: it waits for the request in flight.
    assert!(
        server.wait(Duration::from_millis(10)).is_none(),
        "exited with a request in flight"
    );
    s.write_all(&data[1_000_000..]).unwrap();
    let mut response = String::new();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 4096];
    let n = s.read(&mut buf).unwrap();
    response.push_str(&String::from_utf8_lossy(&buf[..n]));
    assert!(response.starts_with("HTTP/1.1 201"), "{response}");
    drop(s);
    let status = server
        .wait(Duration::from_secs(10))
        .expect("exited after the request finished");
    assert!(status.success(), "{status:?}");

    // The blob pushed during shutdown survived it.
    let server = Server::start(dir.path());
    let r = client()
        .get(format!("{}/v2/graceful/blobs/{digest}", server.url()))
        .send()
        .unwrap();
    assert_eq!(r.bytes().unwrap().to_vec(), data);
}

/// method, path, headers, body, expected status, expected error code.
type Case = (
    reqwest::Method,
    String,
    Vec<(&'static str, &'static str)>,
    Vec<u8>,
    u16,
    &'static str,
);

#[test]
fn hostile_input_gets_json_errors_not_crashes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let c = client();
    let base = server.url();
    let long = "a".repeat(5000);
    let cases: Vec<Case> = vec![
        (
            reqwest::Method::GET,
            format!("/v2/{long}/tags/list"),
            vec![],
            vec![],
            400,
            "NAME_INVALID",
        ),
        (
            reqwest::Method::GET,
            "/v2/x/blobs/sha256:..%2f..%2fetc%2fpasswd".into(),
            vec![],
            vec![],
            404,
            "BLOB_UNKNOWN",
        ),
        (
            reqwest::Method::GET,
            "/v2/x/manifests/-bad%20tag".into(),
            vec![],
            vec![],
            404,
            "MANIFEST_UNKNOWN",
        ),
        (
            reqwest::Method::PUT,
            "/v2/x/manifests/-bad%20tag".into(),
            vec![("content-type", OCI_MANIFEST)],
            b"{}".to_vec(),
            400,
            "MANIFEST_INVALID",
        ),
        (
            reqwest::Method::PATCH,
            "/v2/x/blobs/uploads/..%2F..%2Fetc".into(),
            vec![],
            b"x".to_vec(),
            404,
            "BLOB_UPLOAD_UNKNOWN",
        ),
        (
            reqwest::Method::POST,
            "/v2/x/blobs/uploads/?digest=md5:abc".into(),
            vec![],
            b"x".to_vec(),
            400,
            "DIGEST_INVALID",
        ),
        (
            reqwest::Method::POST,
            "/v2/x/blobs/uploads/?mount=nonsense".into(),
            vec![],
            vec![],
            400,
            "DIGEST_INVALID",
        ),
        (
            reqwest::Method::GET,
            "/v2/x/tags/list?n=-1".into(),
            vec![],
            vec![],
            400,
            "UNSUPPORTED",
        ),
        (
            reqwest::Method::PUT,
            "/v2/x/manifests/t".into(),
            vec![("content-type", OCI_MANIFEST)],
            b"\xff\xfe".to_vec(),
            400,
            "MANIFEST_INVALID",
        ),
        (
            reqwest::Method::PUT,
            "/v2/x/manifests/t".into(),
            vec![("content-type", "text/plain")],
            b"{\"schemaVersion\":2}".to_vec(),
            400,
            "MANIFEST_INVALID",
        ),
        (
            reqwest::Method::PUT,
            "/v2/x/manifests/t".into(),
            vec![("content-type", OCI_MANIFEST)],
            b"{\"schemaVersion\":2,\"config\":7,\"layers\":[]}".to_vec(),
            400,
            "MANIFEST_INVALID",
        ),
        (
            reqwest::Method::GET,
            "/v2/x/blobs/uploads/".into(),
            vec![],
            vec![],
            405,
            "UNSUPPORTED",
        ),
        (
            reqwest::Method::GET,
            "/v3/".into(),
            vec![],
            vec![],
            404,
            "UNSUPPORTED",
        ),
    ];
    for (method, path, headers, body, status, code) in cases {
        let mut req = c
            .request(method.clone(), format!("{base}{path}"))
            .body(body);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        let r = req.send().unwrap();
        assert_eq!(r.status().as_u16(), status, "{method} {path}");
        let json: serde_json::Value = r
            .json()
            .unwrap_or_else(|e| panic!("{method} {path}: not JSON: {e}"));
        assert_eq!(json["errors"][0]["code"], code, "{method} {path}: {json}");
    }
    // A bad Content-Range on a real session, and a chunk whose length lies.
    let r = c
        .post(format!("{base}/v2/x/blobs/uploads/"))
        .send()
        .unwrap();
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let r = c
        .patch(format!("{base}{location}"))
        .header("content-range", "zero-ten")
        .body("abc")
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = c
        .patch(format!("{base}{location}"))
        .header("content-range", "0-9")
        .body("abc")
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(upload_offset(&c, &base, &location), 0);
    // The server is still healthy.
    assert_eq!(c.get(format!("{base}/v2/")).send().unwrap().status(), 200);
}

#[test]
fn pushing_stored_content_again_writes_nothing_and_still_checks_the_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let (c, base) = (client(), server.url());
    let data = random_bytes(200_000);
    let digest = push_blob(&c, &base, "first/repo", &data);
    let files_before = walk(&dir.path().join("blobs")).len();

    // The same content into another repository: linked, readable there, no second file.
    assert_eq!(push_blob(&c, &base, "second/repo", &data), digest);
    let got = c
        .get(format!("{base}/v2/second/repo/blobs/{digest}"))
        .send()
        .unwrap();
    assert_eq!(got.status(), 200);
    assert!(got.bytes().unwrap() == data);
    assert_eq!(walk(&dir.path().join("blobs")).len(), files_before);
    assert_eq!(walk(&dir.path().join("uploads")).len(), 0);

    // Other bytes claiming that digest are refused, and link nothing.
    let mut forged = data.clone();
    forged[0] ^= 1;
    let resp = c
        .post(format!(
            "{base}/v2/third/repo/blobs/uploads/?digest={digest}"
        ))
        .body(forged)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: serde_json::Value = resp.json().unwrap();
    assert_eq!(body["errors"][0]["code"], "DIGEST_INVALID");
    let head = c
        .head(format!("{base}/v2/third/repo/blobs/{digest}"))
        .send()
        .unwrap();
    assert_eq!(head.status(), 404);
}

/// The page-cache acknowledgement (README, "Durability"): a chunk is acknowledged once written,
/// fsynced in the background. A process killed with `-9` loses nothing acknowledged; a machine
/// that goes down uncleanly (stood for here by another boot id, the one fault a test cannot
/// cause, and by the bytes past the last checkpoint cut short and zeroed as lost pages leave
/// them) rolls the session back to its last durable checkpoint, and the client resumes from the
/// `Range` it reads.
#[test]
fn an_os_crash_rolls_a_session_back_to_its_last_durable_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let boot = |id: &str| {
        Server::start_with_env(dir.path(), &["--no-auth"], &[("DEPOT_TEST_BOOT_ID", id)])
    };
    let mut server = boot("boot-a");
    let c = client();
    const MB: usize = 1_000_000;
    let data = random_bytes(6 * MB);
    let r = c
        .post(format!("{}/v2/os/crash/blobs/uploads/", server.url()))
        .send()
        .unwrap();
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let id = location.rsplit('/').next().unwrap().to_owned();
    let patch = |base: &str, from: usize, to: usize| {
        let r = c
            .patch(format!("{base}{location}"))
            .header("content-range", format!("{from}-{}", to - 1))
            .body(data[from..to].to_vec())
            .send()
            .unwrap();
        assert_eq!(r.status(), 202, "{}", r.text().unwrap());
    };
    // Four chunks with time for each background fsync, then two back to back.
    for k in 0..4 {
        patch(&server.url(), k * MB, (k + 1) * MB);
        std::thread::sleep(Duration::from_millis(300));
    }
    patch(&server.url(), 4 * MB, 5 * MB);
    patch(&server.url(), 5 * MB, 6 * MB);
    server.kill();

    // What the session row says was durable when the last chunk was acknowledged.
    let (size, durable) = upload_row(&dir.path().join("metadata.db"), &id);
    assert_eq!(size, 6 * MB as i64);
    assert!(
        (4 * MB as u64..6 * MB as u64).contains(&durable),
        "durable checkpoint {durable}: the chunks given time were fsynced, the last was not yet"
    );

    // The process died, the machine did not: everything acknowledged is there.
    let mut server = boot("boot-a");
    assert_eq!(upload_offset(&c, &server.url(), &location), 6 * MB as u64);
    server.kill();

    // The machine went down: past the checkpoint, pages were lost (the file cut short) or
    // never reached their blocks (zeros).
    let file = dir.path().join("uploads").join(&id);
    let cut = (durable + 6 * MB as u64) / 2;
    let mut bytes = std::fs::read(&file).unwrap();
    bytes.truncate(cut as usize);
    bytes[durable as usize..].fill(0);
    std::fs::write(&file, &bytes).unwrap();
    let server = boot("boot-b");
    let base = server.url();
    assert_eq!(upload_offset(&c, &base, &location), durable);
    // The log is read from the process's output as it comes.
    let logged = |line: &str| {
        (0..100).any(|_| {
            let found = server.logs().contains(line);
            if !found {
                std::thread::sleep(Duration::from_millis(50));
            }
            found
        })
    };
    assert!(
        logged("rolled back to its last durable checkpoint"),
        "{}",
        server.logs()
    );
    // A chunk sent from where the client last stood is refused: it must read `Range` first.
    let r = c
        .patch(format!("{base}{location}"))
        .header("content-range", format!("{}-{}", 6 * MB, 6 * MB))
        .body(vec![0u8])
        .send()
        .unwrap();
    assert_eq!(r.status(), 416);
    // Resumed from the checkpoint, the blob comes out whole.
    patch(&base, durable as usize, 6 * MB);
    let r = c
        .put(format!("{base}{location}?digest={}", sha256(&data)))
        .send()
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().unwrap());
    let r = c
        .get(format!("{base}/v2/os/crash/blobs/{}", sha256(&data)))
        .send()
        .unwrap();
    assert!(
        r.bytes().unwrap().to_vec() == data,
        "the blob read back differs"
    );
}

/// `(size, durable checkpoint)` of upload `id` in the embedded default's database.
fn upload_row(db: &std::path::Path, id: &str) -> (i64, u64) {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            use sqlx::{Connection, Row};
            let url = format!("sqlite:{}", db.display());
            let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
            let row = sqlx::query("SELECT size, store_state FROM uploads WHERE id = ?")
                .bind(id)
                .fetch_one(&mut conn)
                .await
                .unwrap();
            let state: Vec<u8> = row.get(1);
            let state: serde_json::Value = serde_json::from_slice(&state).unwrap();
            (row.get(0), state["durable"].as_u64().unwrap())
        })
}
