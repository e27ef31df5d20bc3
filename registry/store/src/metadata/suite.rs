//! The shared test suite every metadata backend must pass (SQLite always, PostgreSQL when
//! `DEPOT_TEST_POSTGRES_URL` names a scratch database).

use super::*;
use crate::digest::Algorithm;
use crate::model::{Build, BuildSpec, BuildState, KeepPolicy, Project};
use crate::names::Tag;

fn repo(s: &str) -> RepoName {
    s.parse().unwrap()
}

pub async fn run(db: &Metadata) {
    let now = db.clock().now_ms();
    let a = repo("team/a");
    let b = repo("team/b");
    let d1 = Digest::of(Algorithm::Sha256, b"one");
    let d2 = Digest::of(Algorithm::Sha256, b"two");

    // Blobs are per repository. A new blob is a candidate for collection until a manifest
    // references it.
    let mut stored = StoredBlob::new(3, "loc-1".into());
    stored.candidate = true;
    let linked = db.link_blob(&a, &d1, Link::New(stored.clone()), now);
    assert_eq!(linked.await.unwrap(), Some(stored.clone()));
    // A second link with another location (a lost race) keeps, and returns, the first.
    let loser = Link::New(StoredBlob::new(3, "loc-2".into()));
    let linked = db.link_blob(&a, &d1, loser, now).await.unwrap();
    assert_eq!(linked, Some(stored.clone()));
    assert_eq!(db.repo_blob(&a, &d1).await.unwrap(), Some(stored.clone()));
    assert_eq!(db.repo_blob(&b, &d1).await.unwrap(), None);
    assert_eq!(db.mount_blob(&b, &a, &d2, now).await.unwrap(), None);
    assert_eq!(
        db.mount_blob(&b, &a, &d1, now).await.unwrap(),
        Some(stored.clone())
    );
    // Linking an existing blob that is not stored (collected) links nothing.
    let gone = Digest::of(Algorithm::Sha256, b"gone");
    assert_eq!(
        db.link_blob(&b, &gone, Link::Existing, now).await.unwrap(),
        None
    );
    assert_eq!(db.repo_blob(&b, &gone).await.unwrap(), None);
    assert!(db.touch_blob(&d1, now).await.unwrap());
    assert!(!db.touch_blob(&gone, now).await.unwrap());
    assert_eq!(
        db.repos_with_blob(&d1, 10).await.unwrap(),
        vec!["team/a", "team/b"]
    );
    assert!(db.unlink_blob(&b, &d1, now).await.unwrap());
    assert!(!db.unlink_blob(&b, &d1, now).await.unwrap());
    assert_eq!(db.blob(&d1).await.unwrap(), Some(stored.clone()));

    // Uploads get a row with their first chunk and move forward only from where they stand.
    assert!(db.upload("u1").await.unwrap().is_none());
    assert!(db
        .advance_upload("u1", &a, 0, 10, b"s1", b"t1")
        .await
        .unwrap());
    assert!(!db
        .advance_upload("u1", &a, 0, 20, b"s2", b"t2")
        .await
        .unwrap());
    assert!(db
        .advance_upload("u1", &a, 10, 15, b"s3", b"t3")
        .await
        .unwrap());
    let up = db.upload("u1").await.unwrap().unwrap();
    assert_eq!(
        (
            up.size,
            up.hash_state.as_slice(),
            up.store_state.as_slice(),
            up.repo.as_str(),
            up.closed
        ),
        (15, &b"s3"[..], &b"t3"[..], "team/a", false)
    );
    db.close_upload("u1", &a).await.unwrap();
    assert!(db.upload("u1").await.unwrap().unwrap().closed);
    assert!(!db
        .advance_upload("u1", &a, 15, 20, b"s4", b"t4")
        .await
        .unwrap());
    db.close_upload("u2", &a).await.unwrap();
    assert!(db.upload("u2").await.unwrap().unwrap().closed);
    assert!(db.delete_upload("u1").await.unwrap());
    assert!(db.upload("u1").await.unwrap().is_none());
    let key = db.upload_key().await.unwrap();
    assert_eq!(key.len(), 32);
    assert_eq!(db.upload_key().await.unwrap(), key);

    // Manifests, tags, ordering and referrers.
    let m = NewManifest {
        digest: d2.clone(),
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        content: b"two".to_vec(),
        subject: Some(d1.clone()),
        artifact_type: Some("application/x-sbom".into()),
        annotations: Some(r#"{"k":"v"}"#.into()),
        blobs: vec![d1.clone()],
        manifests: vec![],
    };
    for t in ["b", "A", "a", "C", "_z"] {
        db.put_manifest(&a, &m, &[t.parse().unwrap()], None)
            .await
            .unwrap();
    }
    assert_eq!(
        db.list_tags(&a, 100, None, now).await.unwrap(),
        vec!["_z", "A", "a", "b", "C"]
    );
    assert_eq!(
        db.list_tags(&a, 2, Some("A"), now).await.unwrap(),
        vec!["a", "b"]
    );
    let got = db
        .manifest_by_tag(&a, &"b".parse().unwrap(), now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((got.digest, &got.content[..]), (d2.clone(), &b"two"[..]));
    assert!(db.manifest_by_digest(&b, &d2, now).await.unwrap().is_none());
    let refs = db.referrers(&a, &d1, None, now).await.unwrap();
    assert_eq!(refs.len(), 1);
    assert_eq!(refs[0].size, 3);
    assert!(db
        .referrers(&a, &d1, Some("other"), now)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        db.referrers(&a, &d1, Some("application/x-sbom"), now)
            .await
            .unwrap()
            .len(),
        1
    );

    assert!(db.delete_tag(&a, &"b".parse().unwrap()).await.unwrap());
    assert!(!db.delete_tag(&a, &"b".parse().unwrap()).await.unwrap());
    // A manifest referencing the blob takes it out of the candidates; deleting the
    // manifest puts it back.
    assert!(!db.blob(&d1).await.unwrap().unwrap().candidate);
    let mut removed = db.delete_manifest(&a, &d2, now).await.unwrap().unwrap();
    removed.sort();
    assert_eq!(removed, vec!["A", "C", "_z", "a"]);
    assert!(db.delete_manifest(&a, &d2, now).await.unwrap().is_none());
    assert!(db.blob(&d1).await.unwrap().unwrap().candidate);
    // A manifest whose blob the repository does not hold is refused in its transaction.
    let mut orphan = manifest(b"orphan");
    orphan.blobs = vec![gone.clone()];
    let err = db.put_manifest(&a, &orphan, &[], None).await.unwrap_err();
    assert!(matches!(err, Error::BlobUnknown { .. }), "{err:?}");
    assert!(db.list_tags(&a, 10, None, now).await.unwrap().is_empty());

    assert!(db.repository_exists(&a).await.unwrap());
    assert!(!db.repository_exists(&repo("nope")).await.unwrap());
    assert_eq!(db.list_repositories(1, None).await.unwrap(), vec!["team/a"]);
    assert_eq!(
        db.list_repositories(10, Some("team/a")).await.unwrap(),
        vec!["team/b"]
    );

    builds_and_expiry(db).await;
    keep_policies_and_deleted_projects(db).await;
    dashboard(db).await;
    trust_policies(db).await;
    super::gc::suite::run(db).await;
    usage_follows_links(db).await;
    usage_matches_a_recount(db).await;
}

/// A saved build of `project` at `at` (created a little earlier), expiring at `expires_at`.
async fn saved(db: &Metadata, id: &str, project: &str, at: i64, expires_at: i64) {
    db.create_build(&build(id, project, at - 5, expires_at))
        .await
        .unwrap();
    let tag = id.parse::<Tag>().unwrap();
    let m = manifest(id.as_bytes());
    let owner = Owner {
        build_id: id.into(),
        expires_at,
    };
    db.put_manifest(&repo(project), &m, &[tag], Some(&owner))
        .await
        .unwrap();
    assert!(db
        .transition_build(id, BuildState::Building, BuildState::Saved, None, at)
        .await
        .unwrap());
}

/// Count policies keep the most recently saved builds (and, with days, the young ones), expire
/// the rest exactly (their tags vanish at once), never lengthen an expiry, and ignore builds
/// still building or failed. A deleted project's builds, tokens and policies all end at once,
/// its name is free, and another project is untouched.
async fn keep_policies_and_deleted_projects(db: &Metadata) {
    const DAY: i64 = 24 * 3600 * 1000;
    let t0 = 1_000 * DAY;
    let mut p = Project {
        id: "keepy".into(),
        name: "keepy".into(),
        retention_secs: 30 * 24 * 3600,
        created_at: t0,
        keep: None,
    };
    assert!(db.create_project(&p).await.unwrap());
    let far = t0 + 30 * DAY;
    // Saved in the order k1, k2, k3, k4 (k1 created last: saved order is what counts).
    saved(db, "k2", "keepy", t0 + 20, far).await;
    saved(db, "k3", "keepy", t0 + 30, far).await;
    saved(db, "k4", "keepy", t0 + 40, far).await;
    db.create_build(&build("k1", "keepy", t0 + 5, far))
        .await
        .unwrap();
    db.put_manifest(
        &repo("keepy"),
        &manifest(b"k1"),
        &["k1".parse().unwrap()],
        Some(&Owner {
            build_id: "k1".into(),
            expires_at: far,
        }),
    )
    .await
    .unwrap();
    assert!(db
        .transition_build("k1", BuildState::Building, BuildState::Saved, None, t0 + 50)
        .await
        .unwrap());
    // Still building, and failed: never counted, never expired by the policy.
    db.create_build(&build("kb", "keepy", t0 + 60, far))
        .await
        .unwrap();
    db.create_build(&build("kf", "keepy", t0 + 61, far))
        .await
        .unwrap();
    assert!(db
        .transition_build(
            "kf",
            BuildState::Building,
            BuildState::Failed,
            Some("x"),
            t0 + 62
        )
        .await
        .unwrap());

    // No policy: nothing moves.
    let now = t0 + 100;
    assert!(db
        .enforce_keep_policy(&p, now, false)
        .await
        .unwrap()
        .is_empty());
    p.keep = Some(KeepPolicy {
        builds: 2,
        days: None,
    });
    assert!(db.update_project(&p).await.unwrap());
    assert_eq!(db.project("keepy").await.unwrap().unwrap().keep, p.keep);
    assert_eq!(
        db.projects_with_keep_policy().await.unwrap(),
        vec![p.clone()]
    );
    // A dry run says which, and changes nothing.
    let mut would = db.enforce_keep_policy(&p, now, true).await.unwrap();
    would.sort();
    assert_eq!(would, vec!["k2", "k3"]);
    assert_eq!(db.build("k2").await.unwrap().unwrap().expires_at, far);
    let mut moved = db.enforce_keep_policy(&p, now, false).await.unwrap();
    moved.sort();
    assert_eq!(moved, vec!["k2", "k3"]);
    let r = repo("keepy");
    let live = |t: &'static str| async move {
        db.manifest_by_tag(&repo("keepy"), &t.parse().unwrap(), now)
            .await
            .unwrap()
            .is_some()
    };
    assert!(
        !live("k2").await && !live("k3").await,
        "beyond the policy: gone at once"
    );
    assert!(
        live("k4").await && live("k1").await,
        "the two most recently saved stay"
    );
    assert_eq!(db.build("k1").await.unwrap().unwrap().expires_at, far);
    assert_eq!(db.build("kb").await.unwrap().unwrap().expires_at, far);
    assert_eq!(db.build("kf").await.unwrap().unwrap().expires_at, far);
    assert_eq!(db.build("k2").await.unwrap().unwrap().expires_at, now);
    // Idempotent: applying it again moves nothing.
    assert!(db
        .enforce_keep_policy(&p, now + 1, false)
        .await
        .unwrap()
        .is_empty());
    let due = db.gc_expired_builds(now, 100).await.unwrap();
    assert!(due.contains(&"k2".to_owned()) && due.contains(&"k3".to_owned()));
    assert!(!due.contains(&"k1".to_owned()) && !due.contains(&"k4".to_owned()));

    // A build saved later pushes the oldest kept one out. With days, a young build beyond the
    // count keeps until it is that old, and an expiry is never lengthened.
    saved(db, "k5", "keepy", t0 + 200, far).await;
    p.keep = Some(KeepPolicy {
        builds: 1,
        days: Some(2),
    });
    assert!(db.update_project(&p).await.unwrap());
    let later = t0 + DAY;
    let mut moved = db.enforce_keep_policy(&p, later, false).await.unwrap();
    moved.sort();
    assert_eq!(moved, vec!["k1", "k4"]);
    let k4 = db.build("k4").await.unwrap().unwrap();
    assert_eq!(k4.expires_at, k4.created_at + 2 * DAY);
    assert!(db
        .manifest_by_tag(&r, &"k4".parse().unwrap(), later)
        .await
        .unwrap()
        .is_some());
    assert!(db
        .manifest_by_tag(&r, &"k4".parse().unwrap(), k4.created_at + 2 * DAY)
        .await
        .unwrap()
        .is_none());
    assert_eq!(db.build("k5").await.unwrap().unwrap().expires_at, far);

    // Deleting the project: every live build expires now, its tokens are revoked, its trust
    // policies end; it is gone from lookups and its name can be taken again.
    let other = Project {
        id: "bystander".into(),
        name: "bystander".into(),
        keep: None,
        ..p.clone()
    };
    assert!(db.create_project(&other).await.unwrap());
    saved(db, "o1", "bystander", t0 + 10, far).await;
    db.create_project_token(
        &TokenInfo {
            id: "kt".into(),
            project: "keepy".into(),
            name: "ci".into(),
            created_at: t0,
            revoked_at: None,
        },
        "keepy-hash",
    )
    .await
    .unwrap();
    db.create_trust_policy(&StoredPolicy {
        id: "kp".into(),
        project: "keepy".into(),
        provider: "github".into(),
        access: "build".into(),
        rules: "{}".into(),
        created_at: t0,
        deleted_at: None,
    })
    .await
    .unwrap();
    let at = later + 10;
    let done = db.delete_project("keepy", at).await.unwrap().unwrap();
    // k5, k1 and k4 (young, expiring later), kb and kf (live, whatever their state).
    assert_eq!(done.builds_expired, 5);
    assert_eq!(done.tokens_revoked, 1);
    assert_eq!(done.policies_removed, 1);
    assert!(db.delete_project("keepy", at).await.unwrap().is_none());
    assert!(db.project("keepy").await.unwrap().is_none());
    assert!(!db
        .list_projects()
        .await
        .unwrap()
        .iter()
        .any(|p| p.id == "keepy"));
    assert!(db.projects_with_keep_policy().await.unwrap().is_empty());
    assert!(!db.project_token_live("kt").await.unwrap());
    assert!(!db.trust_policy_live("kp").await.unwrap());
    assert!(db
        .manifest_by_tag(&r, &"k5".parse().unwrap(), at)
        .await
        .unwrap()
        .is_none());
    assert!(db
        .manifest_by_digest(&r, &manifest(b"k5").digest, at)
        .await
        .unwrap()
        .is_none());
    assert!(db
        .manifest_by_tag(&repo("bystander"), &"o1".parse().unwrap(), at)
        .await
        .unwrap()
        .is_some());
    assert_eq!(db.build("o1").await.unwrap().unwrap().expires_at, far);
    let again = Project {
        id: "keepy2".into(),
        ..p.clone()
    };
    assert!(
        db.create_project(&again).await.unwrap(),
        "the name is free again"
    );
}

/// What the dashboard reads: sessions (found until they end or are deleted), builds filtered
/// by state and save tag, layers shared between builds, totals and hourly usage.
async fn dashboard(db: &Metadata) {
    const HOUR: i64 = 3_600_000;
    let now = 5_000 * HOUR + 123;
    let session = UiSession {
        id_hash: "h1".into(),
        kind: "project".into(),
        project: Some("dash".into()),
        token_id: "t9".into(),
        csrf: "c1".into(),
        created_at: now,
        expires_at: now + HOUR,
    };
    db.create_ui_session(&session, now).await.unwrap();
    assert_eq!(
        db.ui_session("h1", now).await.unwrap(),
        Some(session.clone())
    );
    assert_eq!(
        db.ui_session("h1", now + HOUR).await.unwrap(),
        None,
        "ended"
    );
    assert_eq!(db.ui_session("h2", now).await.unwrap(), None);
    // A new session sweeps out the ended ones.
    let later = UiSession {
        id_hash: "h2".into(),
        ..session.clone()
    };
    db.create_ui_session(&later, now + 2 * HOUR).await.unwrap();
    assert!(!db.delete_ui_session("h1").await.unwrap(), "swept already");
    assert!(db.delete_ui_session("h2").await.unwrap());
    assert_eq!(db.ui_session("h2", now).await.unwrap(), None, "signed out");

    let p = Project {
        id: "dash".into(),
        name: "dash".into(),
        retention_secs: 60,
        created_at: 1,
        keep: None,
    };
    assert!(db.create_project(&p).await.unwrap());
    let far = now + 100 * HOUR;
    let spec = |tags: &[&str]| BuildSpec {
        save_tags: tags.iter().map(|t| t.to_string()).collect(),
        ..BuildSpec::default()
    };
    let mut b1 = build("d1", "dash", now - 30, far);
    b1.spec = spec(&["latest"]);
    db.create_build(&b1).await.unwrap();
    let m1 = manifest(b"d1-image");
    let layer = Digest::of(Algorithm::Sha256, b"shared layer");
    let link = Link::New(StoredBlob::new(12, "loc-shared".into()));
    db.link_blob(&repo("dash"), &layer, link, now)
        .await
        .unwrap();
    let with_layer = |m: NewManifest| NewManifest {
        blobs: vec![layer.clone()],
        ..m
    };
    let owner = |id: &str, expires_at: i64| Owner {
        build_id: id.into(),
        expires_at,
    };
    db.put_manifest(&repo("dash"), &with_layer(m1), &[], Some(&owner("d1", far)))
        .await
        .unwrap();
    db.transition_build(
        "d1",
        BuildState::Building,
        BuildState::Saved,
        None,
        now - 20,
    )
    .await
    .unwrap();
    let mut b2 = build("d2", "dash", now - 10, far);
    b2.spec = spec(&["latest_x"]);
    db.create_build(&b2).await.unwrap();
    db.create_build(&build("d3", "dash", now - 5, now - 1))
        .await
        .unwrap();
    assert!(!db
        .blob_shared_with_other_builds(&repo("dash"), layer.as_str(), "d1", now)
        .await
        .unwrap());
    db.put_manifest(
        &repo("dash"),
        &with_layer(manifest(b"d2-image")),
        &[],
        Some(&owner("d2", far)),
    )
    .await
    .unwrap();
    assert!(db
        .blob_shared_with_other_builds(&repo("dash"), layer.as_str(), "d1", now)
        .await
        .unwrap());
    let ids = |builds: Vec<Build>| builds.into_iter().map(|b| b.id).collect::<Vec<_>>();
    let list = |filter, tag| db.list_builds_where("dash", filter, tag, now, 10, None);
    assert_eq!(
        ids(list(BuildFilter::All, None).await.unwrap()),
        ["d3", "d2", "d1"]
    );
    assert_eq!(
        ids(list(BuildFilter::Live(BuildState::Saved), None)
            .await
            .unwrap()),
        ["d1"]
    );
    assert_eq!(
        ids(list(BuildFilter::Live(BuildState::Building), None)
            .await
            .unwrap()),
        ["d2"]
    );
    assert_eq!(ids(list(BuildFilter::Expired, None).await.unwrap()), ["d3"]);
    // A superset by the spec's text (`_` matches any character): the caller checks exactly.
    assert_eq!(
        ids(list(BuildFilter::All, Some("latest")).await.unwrap()),
        ["d1"]
    );
    assert_eq!(
        ids(list(BuildFilter::All, Some("latest_x")).await.unwrap()),
        ["d2"]
    );
    let page = db
        .list_builds_where(
            "dash",
            BuildFilter::All,
            None,
            now,
            1,
            Some((now - 10, "d2")),
        )
        .await
        .unwrap();
    assert_eq!(ids(page), ["d1"]);

    let totals = db.project_totals("dash", now).await.unwrap();
    assert_eq!((totals.builds, totals.live_saved), (3, 1));
    assert_eq!(totals.storage_bytes, 12);
    db.record_usage("dash", now, 12, 1, 3).await.unwrap();
    db.record_usage("dash", now + 60_000, 24, 2, 2)
        .await
        .unwrap();
    db.record_usage("dash", now + HOUR, 24, 2, 1).await.unwrap();
    let points = db.usage_since("dash", now - HOUR).await.unwrap();
    assert_eq!(points.len(), 2);
    assert_eq!(points[0].at, hour_of(now));
    assert_eq!(
        (
            points[0].storage_bytes,
            points[0].builds_saved,
            points[0].pulls
        ),
        (24, 2, 5),
        "the latest storage, pulls added up"
    );
    assert_eq!(points[1].pulls, 1);
    assert!(db
        .usage_since("dash", now + 2 * HOUR)
        .await
        .unwrap()
        .is_empty());
}

/// Trust policies: created, listed per project, deleted once, and dead from then on.
async fn trust_policies(db: &Metadata) {
    let policy = |id: &str, provider: &str, at: i64| StoredPolicy {
        id: id.into(),
        project: "proj1".into(),
        provider: provider.into(),
        access: "build".into(),
        rules: r#"{"owner":"acme","repository":"app"}"#.into(),
        created_at: at,
        deleted_at: None,
    };
    db.create_trust_policy(&policy("tp2", "gitlab", 2))
        .await
        .unwrap();
    db.create_trust_policy(&policy("tp1", "github", 1))
        .await
        .unwrap();
    let ids = |v: Vec<StoredPolicy>| v.into_iter().map(|p| p.id).collect::<Vec<_>>();
    assert_eq!(
        ids(db.trust_policies("proj1").await.unwrap()),
        ["tp1", "tp2"]
    );
    assert_eq!(
        db.trust_policies("proj1").await.unwrap()[0],
        policy("tp1", "github", 1)
    );
    assert_eq!(
        ids(db.trust_policies_of_provider("gitlab").await.unwrap()),
        ["tp2"]
    );
    assert!(db.trust_policy_live("tp1").await.unwrap());
    assert!(!db.delete_trust_policy("other", "tp1", 5).await.unwrap());
    assert!(db.delete_trust_policy("proj1", "tp1", 5).await.unwrap());
    assert!(!db.delete_trust_policy("proj1", "tp1", 6).await.unwrap());
    assert!(!db.trust_policy_live("tp1").await.unwrap());
    assert!(!db.trust_policy_live("nope").await.unwrap());
    assert_eq!(ids(db.trust_policies("proj1").await.unwrap()), ["tp2"]);
    assert!(db
        .trust_policies_of_provider("github")
        .await
        .unwrap()
        .is_empty());
}

/// After everything the suite did, what `repo_usage` says each repository holds is what a
/// full count of the links says.
async fn usage_matches_a_recount(db: &Metadata) {
    let counted: Vec<(String, u64, u64)> = sqlx::query(
        "SELECT r.repo AS repo, CAST(SUM(b.size) AS BIGINT) AS bytes, COUNT(*) AS blobs FROM repo_blobs r \
         JOIN blobs b ON b.digest = r.digest GROUP BY r.repo ORDER BY r.repo",
    )
    .fetch_all(&db.read)
    .await
    .unwrap()
    .iter()
    .map(|r| {
        (
            r.try_get("repo").unwrap(),
            r.try_get::<i64, _>("bytes").unwrap() as u64,
            r.try_get::<i64, _>("blobs").unwrap() as u64,
        )
    })
    .collect();
    let kept: Vec<_> = db
        .stats()
        .await
        .unwrap()
        .usage
        .into_iter()
        .filter(|(_, _, blobs)| *blobs > 0)
        .collect();
    assert_eq!(kept, counted);
}

fn manifest(content: &[u8]) -> NewManifest {
    NewManifest {
        digest: Digest::of(Algorithm::Sha256, content),
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        content: content.to_vec(),
        subject: None,
        artifact_type: None,
        annotations: None,
        blobs: vec![],
        manifests: vec![],
    }
}

/// What each repository holds (`repo_usage`, the storage gauge) follows every link, mount,
/// unlink and collection, counting a blob once per repository however often it is linked.
async fn usage_follows_links(db: &Metadata) {
    let now = db.clock().now_ms();
    let x = repo("usage/x");
    let y = repo("usage/y");
    let held = |name: &'static str| async move {
        let stats = db.stats().await.unwrap();
        stats
            .usage
            .iter()
            .find(|(r, _, _)| r == name)
            .map(|(_, bytes, blobs)| (*bytes, *blobs))
    };
    let big = Digest::of(Algorithm::Sha256, b"usage-big");
    let small = Digest::of(Algorithm::Sha256, b"usage-small");
    let mut blob = StoredBlob::new(1000, "usage-big".into());
    blob.candidate = true;
    db.link_blob(&x, &big, Link::New(blob.clone()), now)
        .await
        .unwrap();
    // Linked again (a second push of the same layer): counted once.
    db.link_blob(&x, &big, Link::New(blob), now).await.unwrap();
    let mut tiny = StoredBlob::new(7, "usage-small".into());
    tiny.candidate = true;
    db.link_blob(&x, &small, Link::New(tiny), now)
        .await
        .unwrap();
    assert_eq!(held("usage/x").await, Some((1007, 2)));
    assert!(db.mount_blob(&y, &x, &big, now).await.unwrap().is_some());
    assert_eq!(held("usage/y").await, Some((1000, 1)));
    assert!(db.unlink_blob(&y, &big, now).await.unwrap());
    assert!(!db.unlink_blob(&y, &big, now).await.unwrap());
    assert_eq!(held("usage/y").await, Some((0, 0)));
    // Collected (unreferenced past the cutoff): x no longer holds them.
    let candidates = db.gc_blob_candidates(now + 1, 100).await.unwrap();
    let ours: Vec<_> = candidates
        .into_iter()
        .filter(|c| c.digest == big.as_str() || c.digest == small.as_str())
        .collect();
    assert_eq!(ours.len(), 2);
    let dry = db.gc_sweep_blobs(&ours, now + 1, true).await.unwrap();
    assert_eq!(dry.digests.len(), 2);
    assert_eq!(
        held("usage/x").await,
        Some((1007, 2)),
        "a dry run changes nothing"
    );
    let swept = db.gc_sweep_blobs(&ours, now + 1, false).await.unwrap();
    assert_eq!(swept.digests.len(), 2);
    assert_eq!(held("usage/x").await, Some((0, 0)));
    // The collected locations go to the trash; empty it so the rest of the suite starts clean.
    let trash: Vec<String> = db
        .gc_trash(100)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.location)
        .collect();
    db.gc_empty_trash(&trash).await.unwrap();
}

fn build(id: &str, project: &str, created_at: i64, expires_at: i64) -> Build {
    Build {
        id: id.into(),
        project: project.into(),
        state: BuildState::Building,
        spec: BuildSpec::default(),
        failure: None,
        created_at,
        updated_at: created_at,
        lease_expires_at: created_at + 1000,
        expires_at,
    }
}

/// Projects, tokens, builds, and the exact expiry of what builds own.
async fn builds_and_expiry(db: &Metadata) {
    let p = Project {
        id: "proj1".into(),
        name: "one".into(),
        retention_secs: 60,
        created_at: 1,
        keep: None,
    };
    assert!(db.create_project(&p).await.unwrap());
    assert_eq!(db.project("proj1").await.unwrap(), Some(p.clone()));
    assert!(db.project("nope").await.unwrap().is_none());
    let renamed = |id: &str, name: &str, retention_secs: i64| Project {
        id: id.into(),
        name: name.into(),
        retention_secs,
        ..p.clone()
    };
    assert!(db
        .update_project(&renamed("proj1", "uno", 120))
        .await
        .unwrap());
    assert_eq!(db.list_projects().await.unwrap()[0].retention_secs, 120);
    // Names are unique: neither a new project nor a rename may take one in use.
    let twin = Project {
        id: "proj2".into(),
        name: "uno".into(),
        ..p.clone()
    };
    assert!(!db.create_project(&twin).await.unwrap());
    let other = Project {
        id: "proj3".into(),
        name: "tres".into(),
        ..p.clone()
    };
    assert!(db.create_project(&other).await.unwrap());
    assert!(!db
        .update_project(&renamed("proj3", "uno", 60))
        .await
        .unwrap());
    // Renaming to its own name (only the retention changes) is fine.
    assert!(db
        .update_project(&renamed("proj3", "tres", 90))
        .await
        .unwrap());
    assert_eq!(db.list_projects().await.unwrap().len(), 2);

    let t = TokenInfo {
        id: "t1".into(),
        project: "proj1".into(),
        name: "ci".into(),
        created_at: 1,
        revoked_at: None,
    };
    db.create_project_token(&t, "hash1").await.unwrap();
    assert_eq!(
        db.project_token_by_hash("hash1").await.unwrap().unwrap().id,
        "t1"
    );
    assert!(db.revoke_project_token("proj1", "t1", 5).await.unwrap());
    assert!(!db.revoke_project_token("proj1", "t1", 6).await.unwrap());
    // A revoked token is still found, with its revocation, so it can be told from a wrong one.
    assert_eq!(
        db.project_token_by_hash("hash1")
            .await
            .unwrap()
            .unwrap()
            .revoked_at,
        Some(5)
    );
    assert!(db.project_token_by_hash("hash2").await.unwrap().is_none());
    assert_eq!(
        db.list_project_tokens("proj1").await.unwrap()[0].revoked_at,
        Some(5)
    );

    // Two builds share one manifest; each has its own tag.
    let r = repo("proj1");
    let (b1, b2) = (
        build("b1", "proj1", 10, 1_000),
        build("b2", "proj1", 20, 2_000),
    );
    db.create_build(&b1).await.unwrap();
    db.create_build(&b2).await.unwrap();
    let shared = manifest(b"shared");
    let only1 = manifest(b"only-in-b1");
    let o1 = Owner {
        build_id: "b1".into(),
        expires_at: 1_000,
    };
    let o2 = Owner {
        build_id: "b2".into(),
        expires_at: 2_000,
    };
    db.put_manifest(&r, &shared, &["b1".parse().unwrap()], Some(&o1))
        .await
        .unwrap();
    db.put_manifest(&r, &only1, &[], Some(&o1)).await.unwrap();
    db.put_manifest(&r, &shared, &["b2".parse().unwrap()], Some(&o2))
        .await
        .unwrap();
    let tag = |t: &str| t.parse::<Tag>().unwrap();
    let by_tag = |t: &'static str, at: i64| async move {
        db.manifest_by_tag(&r_static(), &tag(t), at).await.unwrap()
    };
    assert_eq!(by_tag("b1", 999).await.unwrap().expires_at, Some(1_000));
    assert!(
        by_tag("b1", 1_000).await.is_none(),
        "expired exactly at expires_at"
    );
    assert!(by_tag("b2", 1_500).await.is_some());
    assert!(db
        .manifest_by_digest(&r, &shared.digest, 1_500)
        .await
        .unwrap()
        .is_some());
    assert!(db
        .manifest_by_digest(&r, &only1.digest, 1_500)
        .await
        .unwrap()
        .is_none());
    assert_eq!(db.list_tags(&r, 10, None, 1_500).await.unwrap(), vec!["b2"]);
    assert_eq!(db.tag_owner(&r, "b1").await.unwrap().as_deref(), Some("b1"));
    assert_eq!(db.image_size(&r, shared.digest.as_str()).await.unwrap(), 6);
    assert!(db
        .build_has_manifest("b1", &r, shared.digest.as_str())
        .await
        .unwrap());
    assert!(!db
        .build_has_manifest("b2", &r, only1.digest.as_str())
        .await
        .unwrap());

    // Extending brings b1 back; deleting b2 leaves the shared manifest to b1.
    assert!(db.set_build_expiry("b1", 5_000, 1_500).await.unwrap());
    assert!(by_tag("b1", 4_000).await.is_some());
    assert!(db
        .manifest_by_digest(&r, &only1.digest, 4_000)
        .await
        .unwrap()
        .is_some());
    let removed = db.delete_build("b2", 1_600).await.unwrap().unwrap();
    assert_eq!(removed, vec!["b2"]);
    assert!(db.delete_build("b2", 1_600).await.unwrap().is_none());
    assert!(by_tag("b2", 1_700).await.is_none());
    assert!(db
        .manifest_by_digest(&r, &shared.digest, 4_000)
        .await
        .unwrap()
        .is_some());
    assert!(db.delete_build("b1", 1_800).await.unwrap().is_some());
    assert!(db
        .manifest_by_digest(&r, &shared.digest, 1_900)
        .await
        .unwrap()
        .is_none());

    // A manifest pushed again by a new build lives again.
    let b3 = build("b3", "proj1", 30, 9_000);
    db.create_build(&b3).await.unwrap();
    let o3 = Owner {
        build_id: "b3".into(),
        expires_at: 9_000,
    };
    db.put_manifest(&r, &shared, &[], Some(&o3)).await.unwrap();
    assert!(db
        .manifest_by_digest(&r, &shared.digest, 8_000)
        .await
        .unwrap()
        .is_some());
    db.tag_manifest(&r, &tag("latest"), &shared.digest, &o3)
        .await
        .unwrap();
    assert_eq!(
        db.tag_owner(&r, "latest").await.unwrap().as_deref(),
        Some("b3")
    );

    // State transitions happen once; images are recorded per target and platform.
    assert!(db
        .transition_build(
            "b3",
            BuildState::Building,
            BuildState::Failed,
            Some("x"),
            40
        )
        .await
        .unwrap());
    assert!(!db
        .transition_build("b3", BuildState::Building, BuildState::Saved, None, 41)
        .await
        .unwrap());
    assert_eq!(
        db.build("b3").await.unwrap().unwrap().failure.as_deref(),
        Some("x")
    );
    let img = BuildImage {
        target: String::new(),
        platform: "linux/amd64".into(),
        digest: shared.digest.to_string(),
        media_type: shared.media_type.clone(),
        size: 6,
    };
    db.record_build_image("b3", &img, 50).await.unwrap();
    db.record_build_image("b3", &img, 51).await.unwrap();
    assert_eq!(db.build_images("b3").await.unwrap(), vec![img]);

    // Newest first, paginated by (created_at, id).
    for (i, id) in ["c1", "c2", "c3"].iter().enumerate() {
        db.create_build(&build(id, "proj1", 100 + i as i64, 10_000))
            .await
            .unwrap();
    }
    let first = db.list_builds("proj1", 2, None).await.unwrap();
    let ids: Vec<_> = first.iter().map(|b| b.id.as_str()).collect();
    assert_eq!(ids, vec!["c3", "c2"]);
    let last = first.last().unwrap();
    let rest = db
        .list_builds("proj1", 10, Some((last.created_at, &last.id)))
        .await
        .unwrap();
    let ids: Vec<_> = rest.iter().map(|b| b.id.as_str()).collect();
    assert_eq!(ids, vec!["c1", "b3"]);

    fn r_static() -> RepoName {
        "proj1".parse().unwrap()
    }
}

/// A database migrated by a newer release (a migration this build does not know) still opens:
/// a replica of the previous release restarting mid-rollout, or after a rollback, must start.
async fn a_newer_schema_still_opens(url: &str) {
    let db = Metadata::connect(url).await.unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (99991231000001, 'from a newer release', TRUE, $1, 0)",
    )
    .bind(vec![0u8; 48])
    .execute(&db.write)
    .await
    .unwrap();
    db.close().await;
    let again = Metadata::connect(url).await.unwrap();
    again.readiness().await.unwrap();
}

#[tokio::test]
async fn sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}?mode=rwc", dir.path().join("m.db").display());
    let db = Metadata::connect(&url).await.unwrap();
    run(&db).await;
    db.close().await;
    a_newer_schema_still_opens(&url).await;
}

/// Runs against PostgreSQL when `DEPOT_TEST_POSTGRES_URL` names a server (a new database on it).
#[tokio::test]
async fn postgres() {
    let Ok(url) = std::env::var("DEPOT_TEST_POSTGRES_URL") else {
        eprintln!("DEPOT_TEST_POSTGRES_URL not set; the PostgreSQL backend is covered by .ci/run");
        return;
    };
    // A database of its own, so a run never sees what an earlier one left.
    let name = format!("suite_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(&url).await.unwrap();
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .unwrap();
    }
    let base = url.rsplit_once('/').unwrap().0;
    let db = Metadata::connect(&format!("{base}/{name}")).await.unwrap();
    run(&db).await;
    db.close().await;
    a_newer_schema_still_opens(&format!("{base}/{name}")).await;
}
