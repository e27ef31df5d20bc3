//! The actions' installer (`cli/actions/lib/install.sh`) on a stock runner, without depot on
//! PATH: the release asset downloaded from a local server that serves assets this test built,
//! checked against SHA256SUMS (a wrong checksum fails and installs nothing), cached in the tool
//! cache for the next job; and `cargo install` from the checkout as the fallback.

use std::path::Path;
use std::process::Command;

use depot_testkit::files::FileServer;

use crate::runner::{text, Job, STOCK_PATH};

/// The version the actions install by default: the checkout's.
fn version() -> String {
    env!("CARGO_PKG_VERSION").to_owned()
}

/// A release directory `v<version>/` with the CLI's asset and SHA256SUMS; `corrupt` changes
/// one byte of the asset after its checksum was taken.
fn release(root: &Path, corrupt: bool) {
    let dir = root.join(format!("v{}", version()));
    std::fs::create_dir_all(&dir).unwrap();
    let staging = root.join("staging");
    std::fs::create_dir_all(&staging).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_depot"), staging.join("depot")).unwrap();
    let asset = format!("depot-{}-linux-amd64.tar.gz", version());
    let status = Command::new("tar")
        .arg("-czf")
        .arg(dir.join(&asset))
        .arg("-C")
        .arg(&staging)
        .arg("depot")
        .status()
        .unwrap();
    assert!(status.success());
    let bytes = std::fs::read(dir.join(&asset)).unwrap();
    let sum = depot_testkit::sha256(&bytes);
    let sum = sum.trim_start_matches("sha256:");
    std::fs::write(dir.join("SHA256SUMS"), format!("{sum}  {asset}\n")).unwrap();
    if corrupt {
        let mut bytes = bytes;
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(dir.join(&asset), bytes).unwrap();
    }
}

fn stock_job(work: &Path, releases: &str) -> Job {
    let home = work.join("home");
    Job::new(
        work,
        &[
            ("PATH", STOCK_PATH),
            ("HOME", home.to_str().unwrap()),
            ("DEPOT_RELEASES_URL", releases),
            ("GITHUB_ACTION_REPOSITORY", "acme/depot-registry"),
        ],
    )
}

#[test]
fn downloads_the_release_checks_it_and_caches_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("releases");
    release(&root, false);
    let server = FileServer::start(root);
    let work = dir.path().join("runner");
    let mut job = stock_job(&work, &server.base);
    let run = job.action("setup", &[]);
    assert!(run.ok(), "{}", run.log());
    let log = text(&run.steps[0].1);
    assert!(log.contains("Downloaded the depot CLI"), "{log}");
    let want = work.join(format!("tool-cache/depot/{}/amd64/bin/depot", version()));
    assert_eq!(run.outputs["path"], want.display().to_string());
    assert_eq!(run.outputs["version"], version());
    // The setup action put it on PATH for the job's later steps.
    let out = job.run("depot --version");
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).starts_with("depot "), "{}", text(&out));
    assert_eq!(server.fetched(), 2, "SHA256SUMS and the asset");

    // The next job on this runner finds it in the tool cache and downloads nothing.
    let mut next = stock_job(&work, &server.base);
    let run = next.action("setup", &[]);
    assert!(run.ok(), "{}", run.log());
    assert!(text(&run.steps[0].1).contains("cached at"), "{}", run.log());
    assert_eq!(server.fetched(), 2);
}

#[test]
fn a_wrong_checksum_fails_and_installs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("releases");
    release(&root, true);
    let server = FileServer::start(root);
    let work = dir.path().join("runner");
    let mut job = stock_job(&work, &server.base);
    let run = job.action("setup", &[]);
    assert!(!run.ok());
    let log = run.log();
    assert!(log.contains("does not match its SHA256SUMS entry"), "{log}");
    assert!(log.contains("refusing to install it"), "{log}");
    assert!(!work
        .join(format!("tool-cache/depot/{}", version()))
        .join("amd64/bin/depot")
        .exists());
    // A version the release does not have, on a runner without cargo: the error says what to do.
    let run = job.action("setup", &[("version", "v9.9.9")]);
    assert!(!run.ok());
    assert!(
        run.log().contains("no release asset for 9.9.9"),
        "{}",
        run.log()
    );
}

#[test]
fn installs_the_cli_from_its_own_checkout_when_there_is_no_release() {
    // No depot on PATH and no release to download: the action builds it from the repository
    // it lives in, into the tool cache, once; the build shares this workspace's target
    // directory to stay quick.
    let work = tempfile::tempdir().unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| env!("CARGO").to_owned());
    let cargo_bin = Path::new(&cargo).parent().unwrap();
    let path = format!("{}:{STOCK_PATH}", cargo_bin.display());
    let home = std::env::var("HOME").unwrap();
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target");
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| target.display().to_string());
    let rustup = std::env::var("RUSTUP_HOME").unwrap_or_else(|_| format!("{home}/.rustup"));
    let cargo_home = std::env::var("CARGO_HOME").unwrap_or_else(|_| format!("{home}/.cargo"));
    let env = [
        ("PATH", path.as_str()),
        ("HOME", home.as_str()),
        ("CARGO_TARGET_DIR", target.as_str()),
        ("RUSTUP_HOME", rustup.as_str()),
        ("CARGO_HOME", cargo_home.as_str()),
    ];
    let mut job = Job::new(work.path(), &env);
    let run = job.action("pull", &[("build-id", "x")]);
    let (step, out) = &run.steps[0];
    assert_eq!(step, "cli");
    assert!(out.status.success(), "{}", text(out));
    assert!(
        text(out).contains("Installing the depot CLI"),
        "{}",
        text(out)
    );
    // The second job finds it in the tool cache.
    let mut job = Job::new(work.path(), &env);
    let run = job.action("pull", &[("build-id", "x")]);
    let out = &run.steps[0].1;
    assert!(text(out).contains("cached at"), "{}", text(out));
    let dir = std::fs::read_dir(work.path().join("tool-cache/depot"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let version = Command::new(dir.join("amd64/bin/depot"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("depot "));
}
