//! `kill -9` at random points while clients push chunked uploads, on the embedded default and
//! on PostgreSQL + S3. The guarantee under test (README, "Durability"): a chunk is acknowledged
//! only once its bytes are durable, so after any kill
//! - every session the registry still knows reports an offset (`Range`) at least the one it
//!   acknowledged last and at most what the client sent, and resumes from there;
//! - a session it no longer knows is one whose closing `PUT` was sent, and its blob is stored;
//! - every blob whose upload finishes reads back byte for byte.
//!
//! Blob shapes: tiny (one request), about one S3 part, many parts with a staged tail; chunk
//! sizes random, the last chunk sometimes carried by the closing `PUT`. The seed is printed
//! (`KILL_SEED=<n>` replays it).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use depot_testkit::{sha256, Server};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::blocking::Client;

/// Sessions pushing at once, and kills per backend.
const CONCURRENT: usize = 6;
const KILLS: usize = 6;

/// One chunked upload, as its client knows it.
struct Session {
    location: String,
    data: Vec<u8>,
    digest: String,
    /// The offset the registry acknowledged last (a `202` for a chunk).
    acked: u64,
    /// The end of the furthest chunk any request carried, acknowledged or not.
    sent: u64,
    /// Where the next chunk starts.
    offset: u64,
    /// A closing `PUT` went out (its answer may have been lost to the kill).
    put_sent: bool,
    /// The closing `PUT` was answered `201`.
    done: bool,
    /// Why the last request failed (the kill, as a rule).
    failed: String,
    /// Times the registry no longer knew the session and the client started again.
    restarts: usize,
}

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(20))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

/// A blob of one of the shapes, from `rng`.
fn blob(rng: &mut StdRng) -> Vec<u8> {
    let len = match rng.gen_range(0..3) {
        0 => rng.gen_range(1..4096),
        1 => rng.gen_range(4_500_000..6_000_000),
        _ => rng.gen_range(10_000_000..13_000_000),
    };
    let mut data = vec![0u8; len];
    rng.fill(&mut data[..]);
    data
}

fn open(c: &Client, base: &str, repo: &str, data: Vec<u8>) -> Session {
    try_open(c, base, repo, data).expect("POST to open an upload")
}

/// [`open`], or `None` if the `POST` got no answer (the server killed meanwhile).
fn try_open(c: &Client, base: &str, repo: &str, data: Vec<u8>) -> Option<Session> {
    let r = c
        .post(format!("{base}/v2/{repo}/blobs/uploads/"))
        .send()
        .ok()?;
    assert_eq!(r.status(), 202);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    Some(Session {
        location,
        digest: sha256(&data),
        data,
        acked: 0,
        sent: 0,
        offset: 0,
        put_sent: false,
        done: false,
        failed: String::new(),
        restarts: 0,
    })
}

/// Pushes `s` until it is done, `stop` is set, or a request fails (the server was killed);
/// adds the bytes of each request to `progress` as it goes out.
fn drive(
    c: &Client,
    (base, repo): (&str, &str),
    s: &Mutex<Session>,
    (stop, progress): (&AtomicBool, &AtomicU64),
    rng: &mut StdRng,
) {
    loop {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let mut s = s.lock().unwrap();
        if s.done {
            return;
        }
        let len = s.data.len() as u64;
        let chunk = rng.gen_range(64 * 1024..1_500_000u64).min(len - s.offset);
        // The last chunk travels with the closing PUT half of the time.
        let closing = s.offset + chunk == len && (chunk == 0 || rng.gen_bool(0.5));
        let (start, end) = (s.offset, s.offset + chunk);
        let body = s.data[start as usize..end as usize].to_vec();
        s.sent = s.sent.max(end);
        progress.fetch_add(chunk, Ordering::SeqCst);
        let (method, sent) = if closing {
            s.put_sent = true;
            let mut req = c
                .put(format!("{base}{}?digest={}", s.location, s.digest))
                .body(body);
            if chunk > 0 {
                req = req.header("content-range", format!("{start}-{}", end - 1));
            }
            ("PUT", req.send())
        } else {
            let req = c
                .patch(format!("{base}{}", s.location))
                .header("content-range", format!("{start}-{}", end - 1))
                .body(body);
            ("PATCH", req.send())
        };
        let r = match sent {
            Ok(r) => r,
            Err(e) => {
                s.failed = format!("{method} at {start}: {e:?}");
                return;
            }
        };
        match r.status().as_u16() {
            201 if closing => {
                s.done = true;
                return;
            }
            202 if !closing => {
                let range = r.headers()["range"].to_str().unwrap().to_owned();
                assert_eq!(range, format!("0-{}", end - 1), "{}", s.location);
                s.acked = end;
                s.offset = end;
            }
            // An earlier closing PUT committed the bytes and its answer was lost before the
            // blob was linked: the session is over, and the client starts again.
            404 if s.put_sent => {
                if !restart(c, base, repo, &mut s) {
                    s.failed = format!("{method} at {start}: 404, and no new session");
                    return;
                }
            }
            // A 5xx while the process dies.
            status if status >= 500 => {
                s.failed = format!("{method} at {start}: {status}");
                return;
            }
            status => panic!(
                "{method} at {start} of {}: {status} {}",
                s.location,
                r.text().unwrap()
            ),
        }
    }
}

/// A new session for the same bytes, as a client does when the registry no longer knows its
/// upload.
/// `false` if the `POST` got no answer (the server killed meanwhile): the session stays as it
/// was, unknown to the registry, and is started again after the restart.
fn restart(c: &Client, base: &str, repo: &str, s: &mut Session) -> bool {
    let Some(fresh) = try_open(c, base, repo, s.data.clone()) else {
        return false;
    };
    *s = Session {
        restarts: s.restarts + 1,
        ..fresh
    };
    true
}

/// After a restart: where each unfinished session stands, checked against what its client saw.
/// Returns how many sessions the kill caught unfinished, and how many of those with a request
/// in flight (bytes sent past the last acknowledgement).
fn check_after_kill(
    c: &Client,
    base: &str,
    repo: &str,
    sessions: &[Mutex<Session>],
) -> (usize, usize) {
    let (mut caught, mut in_flight) = (0, 0);
    for s in sessions {
        let mut s = s.lock().unwrap();
        if s.done {
            continue;
        }
        caught += 1;
        if s.sent > s.acked || s.put_sent {
            in_flight += 1;
        }
        let r = c.get(format!("{base}{}", s.location)).send().unwrap();
        match r.status().as_u16() {
            204 => {
                let range = r.headers()["range"].to_str().unwrap();
                let end: u64 = range.trim_start_matches("0-").parse().unwrap();
                let held = if end == 0 { 0 } else { end + 1 };
                // `0-0` is also one byte held: sending that byte again is what any client does.
                assert!(
                    held >= s.acked || (held == 0 && s.acked == 1),
                    "{}: holds {held}, acknowledged {}",
                    s.location,
                    s.acked
                );
                assert!(
                    held <= s.sent,
                    "{}: holds {held}, sent {}",
                    s.location,
                    s.sent
                );
                s.offset = held;
            }
            404 => {
                // Unknown: only a session whose closing PUT went out. Its blob is stored whole,
                // or (the commit's answer lost before the blob was linked) the client starts
                // again.
                assert!(
                    s.put_sent,
                    "{}: unknown, but never closed (acknowledged {})",
                    s.location, s.acked
                );
                let r = c
                    .head(format!("{base}/v2/{repo}/blobs/{}", s.digest))
                    .send()
                    .unwrap();
                if r.status() == 200 {
                    verify(c, base, repo, &s);
                    s.done = true;
                } else {
                    assert!(restart(c, base, repo, &mut s), "no new session");
                }
            }
            other => panic!("{}: status {other}", s.location),
        }
    }
    (caught, in_flight)
}

fn verify(c: &Client, base: &str, repo: &str, s: &Session) {
    let r = c
        .get(format!("{base}/v2/{repo}/blobs/{}", s.digest))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "{} of {}", s.digest, s.location);
    let body = r.bytes().unwrap();
    assert!(
        body.len() == s.data.len() && sha256(&body) == s.digest,
        "{}: {} bytes read back, not its {}",
        s.digest,
        body.len(),
        s.data.len()
    );
}

fn kill_at_random(server: &mut Server, label: &str) {
    let seed = std::env::var("KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    eprintln!("{label}: KILL_SEED={seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let c = client();
    let repo = "ci/killed";
    let mut sessions: Vec<Mutex<Session>> = Vec::new();
    let (mut caught, mut in_flight) = (0, 0);
    for kill in 0..=KILLS {
        let base = server.url();
        // Keep CONCURRENT sessions open.
        let open_now = sessions.iter().filter(|s| !s.lock().unwrap().done).count();
        for _ in open_now..CONCURRENT {
            let data = blob(&mut rng);
            sessions.push(Mutex::new(open(&c, &base, repo, data)));
        }
        // The kill comes once a random share (10-80%) of the bytes still to send went out:
        // sessions are caught mid-upload however fast this machine pushes.
        let remaining: u64 = sessions
            .iter()
            .map(|s| s.lock().unwrap())
            .filter(|s| !s.done)
            .map(|s| s.data.len() as u64 - s.offset)
            .sum();
        let kill_at = (remaining as f64 * rng.gen_range(0.1..0.8)) as u64;
        let (stop, progress) = (AtomicBool::new(false), AtomicU64::new(0));
        let seeds: Vec<u64> = sessions.iter().map(|_| rng.gen()).collect();
        std::thread::scope(|scope| {
            let drivers: Vec<_> = sessions
                .iter()
                .zip(&seeds)
                .map(|(s, seed)| {
                    let (c, base, shared) = (&c, (base.as_str(), repo), (&stop, &progress));
                    scope
                        .spawn(move || drive(c, base, s, shared, &mut StdRng::seed_from_u64(*seed)))
                })
                .collect();
            if kill < KILLS {
                while progress.load(Ordering::SeqCst) < kill_at
                    && !drivers.iter().all(|d| d.is_finished())
                {
                    std::thread::sleep(Duration::from_millis(1));
                }
                // SIGKILL mid-request, and the same binary back on the same data and address.
                stop.store(true, Ordering::SeqCst);
                server.restart();
            }
        });
        if kill < KILLS {
            let (c, f) = check_after_kill(&c, &server.url(), repo, &sessions);
            caught += c;
            in_flight += f;
        }
    }
    // Else the kills only ever fell between uploads, and nothing above was tested.
    assert!(
        caught >= KILLS && in_flight > 0,
        "the kills caught {caught} sessions unfinished, {in_flight} with a request in flight"
    );
    // The last round ran without a kill: every session finished. Each blob reads back whole.
    let base = server.url();
    for s in &sessions {
        let s = s.lock().unwrap();
        if !s.done {
            let id = s.location.rsplit('/').next().unwrap();
            let logs = server.logs();
            let about: Vec<&str> = logs.lines().filter(|l| l.contains(id)).collect();
            panic!(
                "{} never finished: {}\n{}",
                s.location,
                s.failed,
                about.join("\n")
            );
        }
        verify(&c, &base, repo, &s);
    }
    let restarts: usize = sessions.iter().map(|s| s.lock().unwrap().restarts).sum();
    eprintln!(
        "{label}: {} blobs through {KILLS} kills (which caught {caught} uploads unfinished, \
         {in_flight} with a request in flight; {restarts} started again), every one intact",
        sessions.len()
    );
}

#[test]
fn kill_at_random_points_on_the_embedded_default() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_with(dir.path(), &["--no-auth", "--gc-interval", "0"]);
    kill_at_random(&mut server, "files + SQLite");
}

#[test]
fn kill_at_random_points_on_postgres_and_s3() {
    let Some(b) = depot_testkit::backends::fresh("killrandom") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let flags = b.test_flags();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let mut server = Server::start_with(dir.path(), &flags);
    kill_at_random(&mut server, "PostgreSQL + S3");
}
