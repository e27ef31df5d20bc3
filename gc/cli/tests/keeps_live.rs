//! Nothing the registry's own maintenance does may destroy a stored blob: every shape a blob
//! can be stored in (tiny, exactly one part, many parts, chunked with and without a final chunk,
//! the empty blob, mounted, pushed twice) survives `depot-gc reconcile` and a zero-grace
//! `depot-gc run`, on the embedded default (SQLite + files) and on PostgreSQL + S3, and pulls
//! back intact afterwards.

use std::time::Duration;

use depot_testkit::shapes::{Pusher, Shapes};
use depot_testkit::Server;

const MIB: usize = 1024 * 1024;
/// The S3 part size the registry runs with here (`--s3-part-size-mib`), so "one part" and
/// "many parts" stay small.
const PART: usize = 5 * MIB;

/// `depot-gc` on `backend` (its flags) with a zero grace period.
fn depot_gc(backend: &[String], args: &[&str]) -> String {
    let mut all: Vec<&str> = vec!["--gc-grace", "0"];
    all.extend(args);
    depot_testkit::tools::depot_gc(backend, &all)
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
    let p = Pusher::new(&server.url());
    let blobs = Shapes::new(PART);
    let shapes = blobs.all();
    blobs.push(&p, "team/a");
    let all: Vec<&[u8]> = shapes.iter().map(|(_, b)| *b).collect();
    p.manifest("team/a", "v1", &all, None);

    // Another repository mounts some, and pushes others again.
    let mounted = blobs.share(&p, "team/b", "team/a");
    p.manifest("team/b", "v1", &mounted, None);

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
    // Small S3 parts, so that "one part" and "many parts" stay small.
    let mut backend = b.store_flags();
    backend.extend(["--s3-part-size-mib".to_owned(), "5".to_owned()]);
    every_shape_survives(&backend, dir.path());
}
