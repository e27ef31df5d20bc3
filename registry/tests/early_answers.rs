//! Every answer the registry gives before it has read a request's body reaches the client: the
//! out-of-order chunk's `416`, an unknown session's `404`, a missing token's `401`, an oversized
//! manifest's `413`. The client here is the least forgiving kind: it writes the whole request
//! before it reads a byte of the answer (as Python's `http.client` and many scripts do), on
//! hundreds of fresh connections and on kept-alive ones, so a connection reset by a server that
//! closed with the body unread shows up as a transport error. The count of those must be zero.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use depot_testkit::Server;

/// One answer read off a connection: status, headers (lower-case names), body.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

impl Answer {
    fn closes(&self) -> bool {
        self.headers
            .get("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }

    fn code(&self) -> String {
        let v: serde_json::Value = serde_json::from_slice(&self.body).unwrap_or_default();
        v["errors"][0]["code"].as_str().unwrap_or("").to_owned()
    }
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

/// Writes `head` and then all of `body`, and only then reads one answer.
fn exchange(reader: &mut BufReader<TcpStream>, head: &str, body: &[u8]) -> std::io::Result<Answer> {
    let s = reader.get_mut();
    s.write_all(head.as_bytes())?;
    s.write_all(body)?;
    read_answer(reader)
}

fn read_answer(reader: &mut BufReader<TcpStream>) -> std::io::Result<Answer> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    let status = line
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP answer: {line:?}")))?;
    let mut headers = BTreeMap::new();
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    let length: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    Ok(Answer {
        status,
        headers,
        body,
    })
}

fn open_session(addr: SocketAddr, repo: &str, auth: &str) -> String {
    let mut r = BufReader::new(connect(addr));
    let a = exchange(
        &mut r,
        &format!(
            "POST /v2/{repo}/blobs/uploads/ HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: 0\r\n\r\n"
        ),
        b"",
    )
    .unwrap();
    assert_eq!(a.status, 202, "{a:?}");
    a.headers["location"].clone()
}

fn patch_head(location: &str, start: u64, len: usize, extra: &str) -> String {
    format!(
        "PATCH {location} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n\
         Content-Range: {start}-{}\r\nContent-Length: {len}\r\n{extra}\r\n",
        start + len as u64 - 1
    )
}

/// Runs `n` exchanges, each on a fresh connection; tallies answers by status and transport
/// errors by kind.
fn on_fresh_connections(
    addr: SocketAddr,
    n: usize,
    head: &str,
    body: &[u8],
) -> (BTreeMap<u16, usize>, BTreeMap<String, usize>) {
    let mut statuses = BTreeMap::new();
    let mut errors = BTreeMap::new();
    for _ in 0..n {
        let mut r = BufReader::new(connect(addr));
        match exchange(&mut r, head, body) {
            Ok(a) => *statuses.entry(a.status).or_default() += 1,
            Err(e) => *errors.entry(format!("{:?}", e.kind())).or_default() += 1,
        }
    }
    (statuses, errors)
}

#[test]
fn early_answers_reach_a_client_that_sends_everything_first() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let addr = server.addr;
    let location = open_session(addr, "team/early", "");
    let mib: Vec<u8> = (0..1024 * 1024u32).map(|i| (i % 251) as u8).collect();

    // Out of order (the session holds nothing, the chunk claims to start at 5): 416 each time,
    // on 200 fresh connections each with 1 MiB and with 4 MiB (more than the socket buffers
    // take, so a server that closes early is caught in the middle of the client's write).
    for size in [1 << 20, 4 << 20] {
        let body: Vec<u8> = mib.iter().copied().cycle().take(size).collect();
        let head = patch_head(&location, 5, size, "");
        let (statuses, errors) = on_fresh_connections(addr, 200, &head, &body);
        assert!(
            errors.is_empty(),
            "{size} bytes: transport errors: {errors:?}"
        );
        assert_eq!(statuses, BTreeMap::from([(416, 200)]), "{size} bytes");
    }
    let head = patch_head(&location, 5, mib.len(), "");

    // Kept alive: the early answer, then the next request on the same connection, 50 times.
    let mut r = BufReader::new(connect(addr));
    for i in 0..50 {
        let a = exchange(&mut r, &head, &mib).unwrap_or_else(|e| panic!("round {i}: {e}"));
        assert_eq!((a.status, a.closes()), (416, false), "{a:?}");
        assert_eq!(a.headers["range"], "0-0", "{a:?}");
        let status = exchange(
            &mut r,
            &format!("GET {location} HTTP/1.1\r\nHost: x\r\n\r\n"),
            b"",
        )
        .unwrap_or_else(|e| panic!("round {i}, next request: {e}"));
        assert_eq!(status.status, 204, "{status:?}");
    }

    // An unknown session (a well-formed id the registry never issued): 404.
    let unknown = "/v2/team/early/blobs/uploads/00000000-0000-0000-0000-000000000000";
    let (statuses, errors) =
        on_fresh_connections(addr, 100, &patch_head(unknown, 0, mib.len(), ""), &mib);
    assert!(errors.is_empty(), "transport errors: {errors:?}");
    assert_eq!(statuses, BTreeMap::from([(404, 100)]));

    // A manifest over the 4 MiB limit: 413, refused by its declared length.
    let big = vec![b' '; 5 * 1024 * 1024];
    let head = format!(
        "PUT /v2/team/early/manifests/latest HTTP/1.1\r\nHost: x\r\n\
         Content-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: {}\r\n\r\n",
        big.len()
    );
    let (statuses, errors) = on_fresh_connections(addr, 50, &head, &big);
    assert!(errors.is_empty(), "transport errors: {errors:?}");
    assert_eq!(statuses, BTreeMap::from([(413, 50)]));

    // Beyond the drain bound (40 MiB): still answered, with `Connection: close`, and the bytes
    // the client goes on sending are taken and dropped rather than reset.
    let huge = vec![7u8; 40 * 1024 * 1024];
    for _ in 0..5 {
        let mut r = BufReader::new(connect(addr));
        let a = exchange(&mut r, &patch_head(&location, 5, huge.len(), ""), &huge).unwrap();
        assert_eq!((a.status, a.closes()), (416, true), "{a:?}");
        assert_eq!(a.code(), "BLOB_UPLOAD_INVALID");
    }

    // The session is untouched by all of it.
    let mut r = BufReader::new(connect(addr));
    let a = exchange(&mut r, &patch_head(&location, 0, mib.len(), ""), &mib).unwrap();
    assert_eq!(a.status, 202, "{a:?}");
    assert_eq!(a.headers["range"], format!("0-{}", mib.len() - 1));
}

#[test]
fn expect_continue_gets_the_answer_without_sending_the_body() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let location = open_session(server.addr, "team/expect", "");
    // The client asks first and waits: the answer comes at once (no `100 Continue`, no body
    // read), and the connection closes, since the body the head announced never came.
    let mut r = BufReader::new(connect(server.addr));
    let started = Instant::now();
    r.get_mut()
        .write_all(patch_head(&location, 5, 8 << 20, "Expect: 100-continue\r\n").as_bytes())
        .unwrap();
    let a = read_answer(&mut r).unwrap();
    assert_eq!((a.status, a.closes()), (416, true), "{a:?}");
    assert!(started.elapsed() < Duration::from_secs(2));

    // Accepted, the same client gets `100 Continue` and then the 202.
    let mut r = BufReader::new(connect(server.addr));
    let body = vec![1u8; 4096];
    r.get_mut()
        .write_all(patch_head(&location, 0, body.len(), "Expect: 100-continue\r\n").as_bytes())
        .unwrap();
    let go = read_answer(&mut r).unwrap();
    assert_eq!(go.status, 100, "{go:?}");
    r.get_mut().write_all(&body).unwrap();
    let a = read_answer(&mut r).unwrap();
    assert_eq!((a.status, a.closes()), (202, false), "{a:?}");
}

#[test]
fn a_refused_token_is_an_answer_too() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_authed(dir.path());
    let mib = vec![3u8; 4 << 20];
    // No credentials on a push: 401 with a challenge, delivered on every fresh connection.
    let head = format!(
        "POST /v2/team/app/blobs/uploads/?digest=sha256:{} HTTP/1.1\r\nHost: x\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        "0".repeat(64),
        mib.len()
    );
    let (statuses, errors) = on_fresh_connections(server.addr, 200, &head, &mib);
    assert!(errors.is_empty(), "transport errors: {errors:?}");
    assert_eq!(statuses, BTreeMap::from([(401, 200)]));
}
