//! The destructive paths of retention, on the embedded default (SQLite + files) and on
//! PostgreSQL + S3, with blobs of every storage shape shared between projects: a count policy
//! expires the build it pushes out at once (404), and collection then reclaims exactly what only
//! that build held; a deleted project's builds answer 404 at once, its tokens stop working,
//! and collection reclaims what only it held. Another project's build, which mounted or pushed
//! again the same blobs, pulls back intact after every step. A policy left unapplied (a crash
//! between a save and its enforcement) is applied, and reported, by the next collection.

use std::path::Path;

use depot_api_types as api;
use depot_testkit::shapes::{Pusher, Shapes};
use depot_testkit::{random_bytes, ApiClient, Server};
use reqwest::Method;
use serde_json::{json, Value};

const PART: usize = 5 * 1024 * 1024;

/// `depot-gc` on `backend` (its flags) with a zero grace period.
fn depot_gc(backend: &[String], args: &[&str]) -> String {
    let mut all: Vec<&str> = vec!["--gc-grace", "0"];
    all.extend(args);
    depot_testkit::tools::depot_gc(backend, &all)
}

/// A build of `project` whose image is `blobs`, pushed with its own push token (the blobs
/// already in the repository); saved by that push. Returns its id.
fn saved_build(admin: &ApiClient, p: &Pusher, project: &str, blobs: &[&[u8]]) -> String {
    let build = admin.create_build(project, &api::CreateBuild::default());
    p.manifest(
        project,
        &build.id,
        blobs,
        Some(build.push_token.as_deref().unwrap()),
    );
    let shown: api::Build = admin.ok(Method::GET, &format!("/builds/{}", build.id), None::<&()>);
    assert_eq!(shown.state, api::BuildState::Saved);
    build.id
}

/// Whether the build's image is served by its tag.
fn served(admin: &ApiClient, project: &str, build: &str) -> bool {
    let token = depot_testkit::api::access_token(
        &admin.http,
        &admin.base,
        &admin.secret,
        &format!("repository:{project}:pull"),
    );
    let status = admin
        .http
        .get(format!("{}/v2/{project}/manifests/{build}", admin.base))
        .header("accept", depot_testkit::oci::OCI_MANIFEST)
        .bearer_auth(token)
        .send()
        .unwrap()
        .status();
    status.as_u16() == 200
}

fn retention_keeps_what_is_live(backend: &[String], data_dir: &Path, database_url: &str) {
    let mut flags = vec!["--gc-interval", "0"];
    flags.extend(backend.iter().map(String::as_str));
    let server = Server::start_with(data_dir, &flags);
    let mut gc_flags = vec!["--data-dir".to_owned(), data_dir.display().to_string()];
    gc_flags.extend(backend.iter().cloned());
    let admin = ApiClient::new(&server.url(), &server.admin_token());
    let p = Pusher::with_secret(&server.url(), &server.admin_token());

    let keep: api::Project = admin.ok(
        Method::POST,
        "/projects",
        Some(&json!({ "name": "kept-by-count", "keep_builds": 1 })),
    );
    assert_eq!(keep.keep_builds, Some(1));
    let other = admin.create_project("bystander");
    let (k, o) = (keep.id.as_str(), other.id.as_str());
    let ci = admin.create_token(k, "ci").token.unwrap();

    // k1 holds every shape; the bystander's o1 mounts some and pushes others again.
    let blobs = Shapes::new(PART);
    let shapes = blobs.all();
    blobs.push(&p, k);
    let all: Vec<&[u8]> = shapes.iter().map(|(_, b)| *b).collect();
    let k1 = saved_build(&admin, &p, k, &all);
    let shared = blobs.share(&p, o, k);
    let o1 = saved_build(&admin, &p, o, &shared);

    // k2 is saved: k1 is beyond "keep 1" and answers 404 at once, before any collection.
    let fresh = random_bytes(2000);
    p.monolithic(k, &fresh);
    let k2_image: Vec<&[u8]> = vec![&blobs.config, &fresh, &blobs.twice];
    let k2 = saved_build(&admin, &p, k, &k2_image);
    assert!(!served(&admin, k, &k1), "k1 is beyond the count policy");
    assert!(served(&admin, k, &k2) && served(&admin, o, &o1));
    let shown: Value = admin.ok(Method::GET, &format!("/builds/{k1}"), None::<&()>);
    assert_eq!(shown["expired"], true, "{shown}");

    // Collection reclaims what only k1 held, and nothing live.
    let out = depot_gc(&gc_flags, &["run", "--once"]);
    assert!(out.contains("1 builds expired"), "{out}");
    for blob in &shared {
        p.pulls_back(o, blob, "a blob the bystander shares");
    }
    for blob in &k2_image {
        p.pulls_back(k, blob, "a blob of the kept build");
    }
    assert_eq!(
        p.fetch(k, &blobs.many_with_final).0,
        404,
        "a blob only k1 held is reclaimed"
    );

    // A policy the registry did not get to apply (a crash between a save and its enforcement,
    // made here by writing the policy straight into the database): the next collection applies
    // it, and says so.
    let k3 = saved_build(&admin, &p, k, &k2_image);
    assert!(!served(&admin, k, &k2), "k3 pushed k2 out");
    let keep_none: api::Project = admin.ok(
        Method::PATCH,
        &format!("/projects/{k}"),
        Some(&json!({ "keep_builds": null })),
    );
    assert_eq!((keep_none.keep_builds, keep_none.keep_days), (None, None));
    let k4 = saved_build(&admin, &p, k, &k2_image);
    assert!(served(&admin, k, &k3) && served(&admin, k, &k4));
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let meta = depot_store::metadata::Metadata::connect(database_url)
            .await
            .unwrap();
        let mut project = meta.project(k).await.unwrap().unwrap();
        project.keep = Some(depot_store::model::KeepPolicy {
            builds: 1,
            days: None,
        });
        assert!(meta.update_project(&project).await.unwrap());
        meta.close().await;
    });
    let out = depot_gc(&gc_flags, &["run", "--once", "--dry-run"]);
    assert!(
        out.contains("1 builds beyond their project's count policy"),
        "{out}"
    );
    assert!(served(&admin, k, &k3), "a dry run changes nothing");
    let out = depot_gc(&gc_flags, &["run", "--once"]);
    // k3 beyond the policy; k2 (pushed out by k3) and k3 reaped.
    assert!(
        out.contains("2 builds expired")
            && out.contains("1 builds beyond their project's count policy"),
        "{out}"
    );
    // depot-gc is another process: on PostgreSQL it tells the registry's cache at once; on
    // SQLite nothing can, and the cached lookup lives out --cache-ttl-secs (5 s).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(7);
    while served(&admin, k, &k3) {
        assert!(std::time::Instant::now() < deadline, "k3 still served");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(served(&admin, k, &k4));
    let status = depot_gc(&gc_flags, &["status"]);
    assert!(status.contains("1 builds beyond"), "{status}");
    for blob in &k2_image {
        p.pulls_back(k, blob, "a blob of the newest build");
    }

    // Deleting the project: its build answers 404 at once, its token stops, its name is free;
    // collection reclaims what only it held and leaves the bystander whole.
    let deleted: api::ProjectDeleted =
        admin.ok(Method::DELETE, &format!("/projects/{k}"), None::<&()>);
    assert_eq!(deleted.builds_expired, 1);
    assert_eq!(deleted.tokens_revoked, 1);
    assert!(!served(&admin, k, &k4));
    let (status, _) = ApiClient::new(&server.url(), &ci).call(
        Method::GET,
        &format!("/projects/{k}/builds"),
        None::<&()>,
    );
    assert_eq!(status, 401, "the deleted project's token");
    let (status, _) = admin.call(Method::GET, &format!("/projects/{k}"), None::<&()>);
    assert_eq!(status, 404);
    let again = admin.create_project("kept-by-count");
    assert_ne!(again.id, keep.id);
    let out = depot_gc(&gc_flags, &["run", "--once"]);
    assert!(out.contains("1 builds expired"), "{out}");
    assert_eq!(p.fetch(k, &fresh).0, 404, "the deleted project's own blob");
    for blob in &shared {
        p.pulls_back(o, blob, "a blob the bystander shares");
    }
    assert!(served(&admin, o, &o1));
    assert!(!server.logs().contains("missing"), "{}", server.logs());
}

#[test]
fn retention_keeps_what_is_live_on_the_embedded_default() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("metadata.db").display());
    retention_keeps_what_is_live(&[], dir.path(), &url);
}

#[test]
fn retention_keeps_what_is_live_on_postgres_and_s3() {
    let Some(b) = depot_testkit::backends::fresh("retention") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // Small S3 parts, so that "one part" and "many parts" stay small.
    let mut backend = b.store_flags();
    backend.extend(["--s3-part-size-mib".to_owned(), "5".to_owned()]);
    retention_keeps_what_is_live(&backend, dir.path(), &b.database_url);
}

/// Out-of-range and inconsistent policies are a 400 with the range; only an admin may set a
/// policy or delete a project; a project that is gone cannot be deleted again.
#[test]
fn retention_input_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &["--gc-interval", "0"]);
    let admin = ApiClient::new(&server.url(), &server.admin_token());
    let project = admin.create_project("checked");
    let path = format!("/projects/{}", project.id);
    for (body, says) in [
        (
            json!({ "keep_builds": 0 }),
            "keep_builds must be between 1 and 100000",
        ),
        (
            json!({ "keep_builds": 100_001 }),
            "keep_builds must be between 1 and 100000",
        ),
        (
            json!({ "keep_builds": -5 }),
            "keep_builds must be between 1 and 100000",
        ),
        (
            json!({ "keep_builds": 3, "keep_days": 0 }),
            "keep_days must be between 1 and 3650",
        ),
        (
            json!({ "keep_builds": 3, "keep_days": 3651 }),
            "keep_days must be between 1 and 3650",
        ),
        (json!({ "keep_days": 7 }), "give keep_builds too"),
        (json!({ "keep_builds": "many" }), "keep_builds"),
        (
            json!({ "keep_builds": 9_223_372_036_854_775_807u64 }),
            "keep_builds must be between",
        ),
    ] {
        let (status, v) = admin.call(Method::PATCH, &path, Some(&body));
        assert_eq!(status, 400, "{body}: {v}");
        assert!(v.to_string().contains(says), "{body}: {v}");
        let mut create = body.clone();
        create["name"] = json!(format!("x{}", rand_suffix()));
        let (status, v) = admin.call(Method::POST, "/projects", Some(&create));
        assert_eq!(status, 400, "{create}: {v}");
    }
    // Both fields, then the days alone change; null clears both.
    let set: api::Project = admin.ok(
        Method::PATCH,
        &path,
        Some(&json!({ "keep_builds": 3, "keep_days": 7 })),
    );
    assert_eq!((set.keep_builds, set.keep_days), (Some(3), Some(7)));
    let set: api::Project = admin.ok(Method::PATCH, &path, Some(&json!({ "keep_days": 9 })));
    assert_eq!((set.keep_builds, set.keep_days), (Some(3), Some(9)));
    let set: api::Project = admin.ok(Method::PATCH, &path, Some(&json!({ "keep_days": null })));
    assert_eq!((set.keep_builds, set.keep_days), (Some(3), None));
    let set: api::Project = admin.ok(Method::PATCH, &path, Some(&json!({ "keep_builds": null })));
    assert_eq!((set.keep_builds, set.keep_days), (None, None));

    let token = admin.create_token(&project.id, "ci").token.unwrap();
    let ci = ApiClient::new(&server.url(), &token);
    let (status, _) = ci.call(Method::PATCH, &path, Some(&json!({ "keep_builds": 1 })));
    assert_eq!(status, 403);
    let (status, _) = ci.call(Method::DELETE, &path, None::<&()>);
    assert_eq!(status, 403);
    let (status, _) = admin.call(Method::DELETE, &path, None::<&()>);
    assert_eq!(status, 200);
    let (status, _) = admin.call(Method::DELETE, &path, None::<&()>);
    assert_eq!(status, 404);
}

fn rand_suffix() -> String {
    depot_testkit::sha256(&random_bytes(8))[7..15].to_owned()
}
