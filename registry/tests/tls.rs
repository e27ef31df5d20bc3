//! TLS without a proxy, with the real binary: the registry serves its certificate (HTTP/1.1 and
//! HTTP/2 by ALPN), its token challenges point at `https://`, a push and a pull go through, a
//! certificate rotated on disk is served to new connections without a restart, a broken pair
//! written over it keeps the previous one in service, and a pair that does not load stops the
//! start with a clear message. The dashboard's cookies are `Secure` there.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use depot_testkit::api::access_token;
use depot_testkit::oci::push_blob;
use depot_testkit::registry::registry_bin;
use depot_testkit::{random_bytes, sha256, Server};
use reqwest::blocking::Client;

/// A certificate for 127.0.0.1 signed by a CA of its own: `<dir>/<name>.crt|.key` (the leaf)
/// and `<dir>/<name>-ca.crt`; returns the CA certificate, the leaf and its key (PEM).
fn certificate(dir: &Path, name: &str) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let file = |suffix: &str| dir.join(format!("{name}{suffix}"));
    let openssl = |args: &[&str]| {
        let status = Command::new("openssl")
            .args(args)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("run openssl (bash .ci/setup installs it)");
        assert!(status.success(), "openssl {args:?}");
    };
    let p = |suffix: &str| file(suffix).display().to_string();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "2",
    ];
    let ca_subject = format!("/CN=depot-test-ca-{name}");
    let mut args = vec!["req", "-x509"];
    args.extend(ec);
    args.extend(["-subj", &ca_subject, "-keyout"]);
    let (ca_key, ca_crt) = (p("-ca.key"), p("-ca.crt"));
    args.extend([ca_key.as_str(), "-out", ca_crt.as_str()]);
    openssl(&args);
    let (key, crt) = (p(".key"), p(".crt"));
    let mut args = vec!["req", "-x509"];
    args.extend(ec);
    args.extend(["-subj", "/CN=127.0.0.1", "-CA", &ca_crt, "-CAkey", &ca_key]);
    args.extend(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"]);
    args.extend(["-addext", "basicConstraints=critical,CA:FALSE"]);
    args.extend(["-keyout", key.as_str(), "-out", crt.as_str()]);
    openssl(&args);
    (
        std::fs::read(file("-ca.crt")).unwrap(),
        std::fs::read(file(".crt")).unwrap(),
        std::fs::read(file(".key")).unwrap(),
    )
}

/// A client that trusts only `ca`, on fresh connections each time.
fn trusting(ca: &[u8]) -> Client {
    Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca).unwrap())
        .tls_built_in_root_certs(false)
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// Replaces a file the way a Kubernetes Secret volume does: written aside, then renamed over.
fn replace(path: &Path, bytes: &[u8]) {
    let aside = path.with_extension("new");
    std::fs::write(&aside, bytes).unwrap();
    std::fs::rename(aside, path).unwrap();
}

#[test]
fn serves_tls_and_picks_up_a_rotated_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live");
    std::fs::create_dir_all(&live).unwrap();
    let (a_ca, a_crt, a_key) = certificate(dir.path(), "a");
    let (b_ca, b_crt, b_key) = certificate(dir.path(), "b");
    let (crt, key) = (live.join("tls.crt"), live.join("tls.key"));
    std::fs::write(&crt, &a_crt).unwrap();
    std::fs::write(&key, &a_key).unwrap();
    let server = Server::start_tls(
        &dir.path().join("data"),
        &[
            "--test-clock",
            "--tls-cert-file",
            crt.to_str().unwrap(),
            "--tls-key-file",
            key.to_str().unwrap(),
        ],
    );
    let base = server.url();
    assert!(base.starts_with("https://"), "{base}");
    let a = trusting(&a_ca);

    // The challenge's realm is the https address; a token, a push and a pull over TLS.
    let resp = a.get(format!("{base}/v2/")).send().unwrap();
    assert_eq!(resp.status(), 401);
    let challenge = resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.contains(&format!("realm=\"{base}/token\"")),
        "{challenge}"
    );
    let token = access_token(
        &a,
        &base,
        &server.admin_token(),
        "repository:team/app:pull,push",
    );
    let blob = random_bytes(100_000);
    push_blob(&a, &base, "team/app", Some(&token), &blob);
    let back = a
        .get(format!("{base}/v2/team/app/blobs/{}", sha256(&blob)))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(back.status(), 200);
    assert!(back.bytes().unwrap() == blob);

    // Over TLS the dashboard's cookies are `Secure` (and never readable by scripts).
    let login = a.get(format!("{base}/ui/login")).send().unwrap();
    assert_eq!(login.status(), 200);
    let cookie = login.headers()["set-cookie"].to_str().unwrap();
    for attribute in ["; Secure", "; HttpOnly", "; SameSite=Strict"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }

    // HTTP/2 is offered by ALPN.
    let ca = dir.path().join("a-ca.crt");
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_version}",
            "--http2",
            "--cacert",
        ])
        .arg(&ca)
        .arg(format!("{base}/livez"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "2");

    // Rotated on disk: new connections get the new certificate within the reload interval.
    replace(&key, &b_key);
    replace(&crt, &b_crt);
    let b = trusting(&b_ca);
    let deadline = Instant::now() + Duration::from_secs(30);
    while b.get(format!("{base}/livez")).send().is_err() {
        assert!(
            Instant::now() < deadline,
            "the rotated certificate was not picked up"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // (A new client: one that resumes its earlier TLS session is not shown a certificate.)
    let a_again = trusting(&a_ca);
    assert!(
        a_again.get(format!("{base}/livez")).send().is_err(),
        "the old certificate is still served"
    );
    assert!(server.logs().contains("TLS certificate reloaded"));

    // A broken pair written over it: the previous certificate stays in service.
    replace(&key, b"not a key");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !server.logs().contains("do not load") {
        assert!(Instant::now() < deadline, "the broken pair was not noticed");
        std::thread::sleep(Duration::from_millis(200));
    }
    let b_again = trusting(&b_ca);
    assert_eq!(
        b_again
            .get(format!("{base}/livez"))
            .send()
            .unwrap()
            .status(),
        200
    );
}

#[test]
fn a_pair_that_does_not_load_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    certificate(dir.path(), "a");
    certificate(dir.path(), "b");
    // a's certificate with b's key.
    let out = Command::new(registry_bin())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--no-auth",
            "--data-dir",
        ])
        .arg(dir.path().join("data"))
        .arg("--tls-cert-file")
        .arg(dir.path().join("a.crt"))
        .arg("--tls-key-file")
        .arg(dir.path().join("b.key"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("does not belong"), "{stderr}");
    // Only one of the two flags is a usage error.
    let out = Command::new(registry_bin())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--no-auth",
            "--tls-cert-file",
        ])
        .arg(dir.path().join("a.crt"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tls-key-file"));
}
