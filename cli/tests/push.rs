//! `depot push` to real registries: two CNCF distribution 2.8 instances (one open, one behind
//! htpasswd Basic auth) and a second depot registry behind token auth (credentials through a
//! `docker-credential-*` helper), all in one run; results checked with `skopeo inspect --raw`.
//! Then mounts, a destination that fails while the others succeed, and a destination killed
//! and restarted mid-push.

use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine;
use depot_testkit::cli::Fixture;
use depot_testkit::distribution::Distribution;
use depot_testkit::sha256;
use depot_testkit::tools::{fails, ok, remote_manifest};
use depot_testkit::Server;
use serde_json::{json, Value};

/// A Docker config with Basic credentials for `basic_host` and a credential helper for
/// `helper_host` answering `x-token` / `secret`.
fn docker_config(f: &Fixture, basic_host: &str, helper_host: &str, secret: &str) -> String {
    let bin = f.dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let helper = bin.join("docker-credential-depottest");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\nread server\nif [ \"$1\" = get ] && [ \"$server\" = \"{helper_host}\" ]; then\n  printf '{{\"ServerURL\":\"%s\",\"Username\":\"x-token\",\"Secret\":\"{secret}\"}}' \"$server\"\nelse\n  echo 'credentials not found in native keychain'; exit 1\nfi\n"
        ),
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::create_dir_all(f.docker_config()).unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
    std::fs::write(
        f.docker_config().join("config.json"),
        serde_json::to_vec(&json!({
            "auths": { basic_host: { "auth": auth } },
            "credHelpers": { helper_host: "depottest" },
        }))
        .unwrap(),
    )
    .unwrap();
    format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

fn summary(stdout: &str) -> Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn dest<'a>(s: &'a Value, name: &str) -> &'a Value {
    s["destinations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["destination"] == name)
        .unwrap_or_else(|| panic!("{name} not in {s}"))
}

#[test]
fn promotes_to_many_registries_at_once() {
    let f = Fixture::new();
    let (multi, index) = f.multi();
    let open = Distribution::start(&f.dir.path().join("open"), None);
    let basic = Distribution::start(&f.dir.path().join("basic"), Some(("alice", "s3cret")));
    let depot2 = Server::start_authed(&f.dir.path().join("depot2"));
    let admin2 = depot2.admin_token();
    let path = docker_config(&f, &basic.host(), &depot2.host(), &admin2);
    let insecure = format!("{},{},{}", open.host(), basic.host(), depot2.host());
    // `depot push --json` of the build to `dests`, which must succeed; its summary.
    let push = |dests: &[String]| -> Value {
        let mut cmd = f.depot();
        cmd.env("PATH", &path)
            .env("DEPOT_INSECURE_REGISTRIES", &insecure)
            .args(["push", "--json"]);
        for d in dests {
            cmd.args(["-t", d]);
        }
        summary(&ok(cmd.arg(&multi)).0)
    };

    let s = push(&[
        format!("{}/one/app:v1", open.host()),
        format!("{}/one/app:latest", open.host()),
        format!("{}/two/app:v1", open.host()),
        format!("{}/team/app:v1", basic.host()),
        format!("{}/promoted:v1", depot2.host()),
        format!("{}/promoted:stable", depot2.host()),
    ]);
    // Two tags on a depot registry: one multi-tag PUT after the two children. On distribution
    // 2.8 (no `?tag=`), the attempt stores by digest and each tag is pushed as usual.
    let promoted = dest(&s, &format!("{}/promoted", depot2.host()));
    assert_eq!(promoted["stats"]["manifest_puts"], 3, "{promoted}");
    let one = dest(&s, &format!("{}/one/app", open.host()));
    assert_eq!(one["stats"]["manifest_puts"], 5, "{one}");
    // Each source blob was read once, however many destinations took it.
    assert_eq!(s["source_bytes_read"], s["image_bytes"], "{s}");
    assert_eq!(s["digest"], index);
    // One registry, two repositories: one upload, one mount.
    let two = dest(&s, &format!("{}/two/app", open.host()));
    assert_eq!(two["stats"]["blobs_pushed"], 0, "{two}");
    assert!(
        two["stats"]["blobs_mounted"].as_u64().unwrap() >= 3,
        "{two}"
    );

    let basic_creds = "alice:s3cret";
    let depot_creds = format!("x-token:{admin2}");
    for (host, reference, creds) in [
        (open.host(), "one/app:v1", None),
        (open.host(), "one/app:latest", None),
        (open.host(), "two/app:v1", None),
        (basic.host(), "team/app:v1", Some(basic_creds)),
        (depot2.host(), "promoted:v1", Some(depot_creds.as_str())),
        (depot2.host(), "promoted:stable", Some(depot_creds.as_str())),
    ] {
        let raw = remote_manifest(&host, reference, creds);
        assert_eq!(sha256(&raw), index, "{host}/{reference}");
        let repo = reference.split(':').next().unwrap();
        for child in ["amd64", "arm64"] {
            let d = f.digests[child].as_str().unwrap();
            let raw = remote_manifest(&host, &format!("{repo}@{d}"), creds);
            assert_eq!(sha256(&raw), d, "{host}/{repo}@{d}");
        }
    }
    // skopeo can copy the whole thing back out (every blob is really there).
    depot_testkit::tools::skopeo(&[
        "copy",
        "--all",
        "--src-tls-verify=false",
        "--src-creds",
        basic_creds,
        &format!("docker://{}/team/app:v1", basic.host()),
        &format!("oci:{}/back:x", f.dir.path().display()),
    ]);

    // Again: everything is already there; nothing is read from the source.
    let s = push(&[format!("{}/team/app:v2", basic.host())]);
    assert_eq!(s["source_bytes_read"], 0, "{s}");
    assert_eq!(
        dest(&s, &format!("{}/team/app", basic.host()))["stats"]["blobs_pushed"],
        0
    );

    // A new repository of a registry that received the blobs before: mounted, from what the
    // CLI remembers of the last push.
    let s = push(&[format!("{}/three/app:v1", open.host())]);
    let three = dest(&s, &format!("{}/three/app", open.host()));
    assert_eq!(three["stats"]["blobs_pushed"], 0, "{three}");
    assert_eq!(s["source_bytes_read"], 0, "{s}");

    // One platform only, under its own tag.
    ok(f.depot().env("DEPOT_INSECURE_REGISTRIES", &insecure).args([
        "push",
        "-q",
        "--platform",
        "linux/arm64",
        "-t",
        &format!("{}/arm/app:v1", open.host()),
        &multi,
    ]));
    assert_eq!(
        sha256(&remote_manifest(&open.host(), "arm/app:v1", None)),
        f.digests["arm64"]
    );

    // A destination that cannot be reached fails, says so, and the others still get the image.
    let dead = "127.0.0.1:1".to_owned();
    let out = depot_testkit::tools::output(
        f.depot()
            .env("PATH", &path)
            .env("DEPOT_INSECURE_REGISTRIES", format!("{insecure},{dead}"))
            .args(["push", "--retries", "2"])
            .args(["-t", &format!("{dead}/x/app:v1")])
            .args(["-t", &format!("{}/four/app:v1", open.host())])
            .arg(&multi),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("FAILED {dead}/x/app")), "{err}");
    assert!(err.contains("1 of 2 destination(s) failed"), "{err}");
    assert_eq!(
        sha256(&remote_manifest(&open.host(), "four/app:v1", None)),
        index
    );

    // Wrong credentials are a clear failure, not a hang.
    let bad = f.dir.path().join("bad-docker-config");
    std::fs::create_dir_all(&bad).unwrap();
    let wrong = base64::engine::general_purpose::STANDARD.encode("alice:wrong");
    std::fs::write(
        bad.join("config.json"),
        json!({ "auths": { basic.host(): { "auth": wrong } } }).to_string(),
    )
    .unwrap();
    let err = fails(
        f.depot()
            .env("DOCKER_CONFIG", &bad)
            .env("DEPOT_INSECURE_REGISTRIES", &insecure)
            .args([
                "push",
                "-t",
                &format!("{}/team/app:v3", basic.host()),
                &multi,
            ]),
    );
    assert!(err.contains(&basic.host()) && err.contains("401"), "{err}");
    // Destinations must name their registry.
    let err = fails(f.depot().args(["push", "-t", "app:v1", &multi]));
    assert!(err.contains("name the registry"), "{err}");
}

#[test]
fn busy_registries_are_waited_for_as_they_ask() {
    let f = Fixture::new();
    let (multi, index) = f.multi();
    let upstream = Distribution::start(&f.dir.path().join("busy"), None);
    let proxy = depot_testkit::fault_proxy::FaultProxy::start(
        &upstream.host(),
        vec![
            ("HEAD", "/blobs/", 503),
            ("POST", "/blobs/uploads/", 429),
            ("PUT", "/blobs/uploads/", 429),
            ("PUT", "/manifests/", 503),
        ],
    );
    let (_, stderr) = ok(f
        .depot()
        .env("DEPOT_INSECURE_REGISTRIES", &proxy.host)
        .args(["push", "-t", &format!("{}/app:v1", proxy.host), &multi]));
    // Each setback was said, and waited for as long as `Retry-After` asked.
    assert!(
        stderr.contains("answered 503 Service Unavailable; retrying in 1.0s"),
        "{stderr}"
    );
    assert!(
        stderr.contains("answered 429 Too Many Requests; retrying in 1.0s"),
        "{stderr}"
    );
    assert!(
        stderr.contains("answered 429 Too Many Requests; asking where it stands in 1.0s"),
        "{stderr}"
    );
    assert_eq!(
        sha256(&remote_manifest(&upstream.host(), "app:v1", None)),
        index
    );
}

/// Bytes of upload data a distribution registry holds for `repo` right now.
fn upload_bytes(root: &Path, repo: &str) -> u64 {
    let dir = root.join(format!("docker/registry/v2/repositories/{repo}/_uploads"));
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::metadata(e.path().join("data")).ok())
        .map(|m| m.len())
        .sum()
}

#[test]
fn a_destination_restarted_mid_push_is_retried_to_the_end() {
    let f = Fixture::new();
    let (build, digest, _) = f.random_image(&[48 << 20, 1 << 20]);
    let mut flaky = Distribution::start(&f.dir.path().join("flaky"), None);
    let steady = Distribution::start(&f.dir.path().join("steady"), None);
    let insecure = format!("{},{}", flaky.host(), steady.host());
    let mut child = f
        .depot()
        .env("DEPOT_INSECURE_REGISTRIES", &insecure)
        .args(["push", "--json", "--chunk-mib", "1", "--parallel", "1"])
        .args(["-t", &format!("{}/app:v1", flaky.host())])
        .args(["-t", &format!("{}/app:v1", steady.host())])
        .arg(&build)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Kill the registry once the big layer is well on its way, then bring it back.
    let deadline = Instant::now() + Duration::from_secs(120);
    while upload_bytes(&flaky.root, "app") < 16 << 20 {
        assert!(
            Instant::now() < deadline,
            "the push never started uploading"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "push ended before the fault"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    flaky.kill();
    std::thread::sleep(Duration::from_millis(1500));
    flaky.restart();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("depot push said:\n{stderr}");
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("where it stands")
            || stderr.contains("retrying")
            || stderr.contains("again"),
        "the retry shows: {stderr}"
    );
    for host in [flaky.host(), steady.host()] {
        assert_eq!(
            sha256(&remote_manifest(&host, "app:v1", None)),
            digest,
            "{host}"
        );
    }
    // Every layer is whole on the restarted registry (skopeo verifies digests on copy).
    depot_testkit::tools::skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{}/app:v1", flaky.host()),
        &format!("oci:{}/back:x", f.dir.path().display()),
    ]);
    let s = summary(&String::from_utf8_lossy(&out.stdout));
    assert!(
        s["destinations"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["ok"] == true),
        "{s}"
    );
}
