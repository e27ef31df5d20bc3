//! The collection algorithm against a fake catalogue and store: an in-memory model of the
//! registry's metadata (builds, manifests with their tags and blob references, blob candidacy,
//! upload sessions, trash) and of its bytes, with no SQL. What it shows holds for any backend
//! that implements the traits as documented: what is live is never deleted, expired content is
//! collected only past the grace period, a dry run changes nothing, and the lock excludes a
//! second collector.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use depot_gc::{
    Candidate, Catalog, Clock, Collector, Config, Listed, ManifestKey, ManifestOutcome, Objects,
    Pending, Reaped, Report, StaleUpload, Swept, Trashed,
};

const SEC: i64 = 1000;

#[derive(Debug, Clone)]
struct Build {
    expires_at: i64,
    reaped: bool,
    /// Tags the build owns: (repo, tag) -> manifest digest.
    tags: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
struct Manifest {
    /// `None`: never expires.
    expires_at: Option<i64>,
    blobs: Vec<String>,
}

#[derive(Debug, Clone)]
struct Blob {
    location: String,
    size: u64,
    /// Unreferenced (or unused) since: a candidate.
    since: Option<i64>,
}

#[derive(Default)]
struct State {
    lock: Option<String>,
    builds: BTreeMap<String, Build>,
    /// (repo, digest) -> manifest.
    manifests: BTreeMap<(String, String), Manifest>,
    /// Live tags: (repo, tag) -> digest; nobody's tags never expire.
    tags: BTreeMap<(String, String), String>,
    blobs: BTreeMap<String, Blob>,
    /// id -> (updated_at, open).
    uploads: BTreeMap<String, (i64, bool)>,
    trash: Vec<Trashed>,
    /// The store's bytes: locations, and upload sessions holding bytes.
    objects: BTreeSet<String>,
    upload_bytes: BTreeSet<String>,
    runs: Vec<Report>,
}

impl State {
    fn referenced(&self, digest: &str) -> bool {
        self.manifests
            .values()
            .any(|m| m.blobs.iter().any(|b| b == digest))
    }

    fn tagged(&self, repo: &str, digest: &str) -> bool {
        self.tags.iter().any(|((r, _), d)| r == repo && d == digest)
    }
}

#[derive(Default)]
struct Fake(Mutex<State>);

struct FixedClock(i64);

impl Clock for FixedClock {
    fn now_ms(&self) -> i64 {
        self.0
    }
    fn wall_ms(&self) -> i64 {
        self.0
    }
}

#[async_trait]
impl Catalog for Fake {
    async fn try_lock(&self, holder: &str, _ttl: Duration) -> anyhow::Result<bool> {
        let mut s = self.0.lock().unwrap();
        match &s.lock {
            Some(h) if h != holder => Ok(false),
            _ => {
                s.lock = Some(holder.to_owned());
                Ok(true)
            }
        }
    }

    async fn unlock(&self, holder: &str) -> anyhow::Result<()> {
        let mut s = self.0.lock().unwrap();
        if s.lock.as_deref() == Some(holder) {
            s.lock = None;
        }
        Ok(())
    }

    /// The fake has no projects, so no count policies: those are tested on the real backends
    /// (`depot-store`'s metadata suite, `registry/tests/retention.rs`).
    async fn enforce_keep_policies(
        &self,
        _now: i64,
        _dry_run: bool,
    ) -> anyhow::Result<Vec<(String, String)>> {
        Ok(Vec::new())
    }

    async fn expired_builds(&self, now: i64, limit: usize) -> anyhow::Result<Vec<String>> {
        let s = self.0.lock().unwrap();
        Ok(s.builds
            .iter()
            .filter(|(_, b)| !b.reaped && b.expires_at <= now)
            .map(|(id, _)| id.clone())
            .take(limit)
            .collect())
    }

    async fn reap_build(&self, id: &str, now: i64, dry_run: bool) -> anyhow::Result<Reaped> {
        let mut s = self.0.lock().unwrap();
        let Some(b) = s.builds.get(id).cloned() else {
            return Ok(Reaped::default());
        };
        if b.reaped || b.expires_at > now {
            return Ok(Reaped::default());
        }
        let repos = b.tags.iter().map(|(r, _)| r.clone()).collect();
        if !dry_run {
            for key in &b.tags {
                s.tags.remove(key);
            }
            s.builds.get_mut(id).unwrap().reaped = true;
        }
        Ok(Reaped {
            reaped: true,
            repos,
            tags: b.tags.len() as u64,
        })
    }

    async fn expired_manifests(&self, now: i64, limit: usize) -> anyhow::Result<Vec<ManifestKey>> {
        let s = self.0.lock().unwrap();
        Ok(s.manifests
            .iter()
            .filter(|(_, m)| m.expires_at.is_some_and(|t| t <= now))
            .map(|((repo, digest), _)| ManifestKey {
                repo: repo.clone(),
                digest: digest.clone(),
            })
            .take(limit)
            .collect())
    }

    async fn delete_expired_manifests(
        &self,
        keys: &[ManifestKey],
        now: i64,
        dry_run: bool,
    ) -> anyhow::Result<Vec<ManifestOutcome>> {
        let mut s = self.0.lock().unwrap();
        let mut out = Vec::new();
        for k in keys {
            let key = (k.repo.clone(), k.digest.clone());
            let Some(m) = s.manifests.get(&key).cloned() else {
                out.push(ManifestOutcome::Kept);
                continue;
            };
            // Re-checked at the instant of deletion: a live tag keeps it (for ever, here).
            if m.expires_at.is_none_or(|t| t > now) || s.tagged(&k.repo, &k.digest) {
                if !dry_run {
                    s.manifests.get_mut(&key).unwrap().expires_at = None;
                }
                out.push(ManifestOutcome::Kept);
                continue;
            }
            if !dry_run {
                s.manifests.remove(&key);
                for b in &m.blobs {
                    if let Some(blob) = s.blobs.get_mut(b) {
                        blob.since = Some(now);
                    }
                }
            }
            out.push(ManifestOutcome::Deleted {
                blobs: m.blobs.len() as u64,
            });
        }
        Ok(out)
    }

    async fn stale_uploads(&self, before: i64, limit: usize) -> anyhow::Result<Vec<StaleUpload>> {
        let s = self.0.lock().unwrap();
        Ok(s.uploads
            .iter()
            .filter(|(_, (at, _))| *at < before)
            .map(|(id, (_, open))| StaleUpload {
                id: id.clone(),
                store_state: Vec::new(),
                open: *open,
            })
            .take(limit)
            .collect())
    }

    async fn forget_upload(&self, id: &str, before: i64) -> anyhow::Result<bool> {
        let mut s = self.0.lock().unwrap();
        match s.uploads.get(id) {
            Some((at, _)) if *at < before => {
                s.uploads.remove(id);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn blob_candidates(&self, cutoff: i64, limit: usize) -> anyhow::Result<Vec<Candidate>> {
        let s = self.0.lock().unwrap();
        Ok(s.blobs
            .iter()
            .filter_map(|(d, b)| {
                b.since.filter(|t| *t <= cutoff).map(|since| Candidate {
                    digest: d.clone(),
                    since,
                    size: b.size,
                })
            })
            .take(limit)
            .collect())
    }

    async fn sweep_blobs(
        &self,
        candidates: &[Candidate],
        cutoff: i64,
        dry_run: bool,
    ) -> anyhow::Result<Swept> {
        let mut s = self.0.lock().unwrap();
        let mut out = Swept::default();
        for c in candidates {
            let Some(blob) = s.blobs.get(&c.digest).cloned() else {
                continue;
            };
            if blob.since.is_none_or(|t| t > cutoff) {
                continue;
            }
            if s.referenced(&c.digest) {
                out.referenced += 1;
                if !dry_run {
                    s.blobs.get_mut(&c.digest).unwrap().since = None;
                }
                continue;
            }
            out.digests.push(c.digest.clone());
            let trashed = Trashed {
                location: blob.location.clone(),
                size: blob.size,
            };
            if !dry_run {
                s.blobs.remove(&c.digest);
                s.trash.push(trashed.clone());
            }
            out.trashed.push(trashed);
        }
        Ok(out)
    }

    async fn trash(&self, limit: usize) -> anyhow::Result<Vec<Trashed>> {
        let s = self.0.lock().unwrap();
        Ok(s.trash.iter().take(limit).cloned().collect())
    }

    async fn empty_trash(&self, locations: &[String]) -> anyhow::Result<()> {
        let mut s = self.0.lock().unwrap();
        s.trash.retain(|t| !locations.contains(&t.location));
        Ok(())
    }

    async fn announce(&self, _repos: &[String], _digests: &[String]) -> anyhow::Result<()> {
        Ok(())
    }

    async fn record_run(&self, report: &Report) -> anyhow::Result<()> {
        self.0.lock().unwrap().runs.push(report.clone());
        Ok(())
    }

    async fn recent_runs(&self, limit: usize) -> anyhow::Result<Vec<Report>> {
        let s = self.0.lock().unwrap();
        Ok(s.runs.iter().rev().take(limit).cloned().collect())
    }

    async fn pending(&self, _now: i64, _cutoff: i64, _before: i64) -> anyhow::Result<Pending> {
        Ok(Pending::default())
    }

    async fn known_locations(&self, locations: &[String]) -> anyhow::Result<Vec<String>> {
        let s = self.0.lock().unwrap();
        Ok(locations
            .iter()
            .filter(|l| {
                s.blobs.values().any(|b| &b.location == *l)
                    || s.trash.iter().any(|t| &t.location == *l)
            })
            .cloned()
            .collect())
    }

    async fn open_uploads(&self, ids: &[String]) -> anyhow::Result<Vec<String>> {
        let s = self.0.lock().unwrap();
        Ok(ids
            .iter()
            .filter(|id| s.uploads.get(*id).is_some_and(|(_, open)| *open))
            .cloned()
            .collect())
    }
}

#[async_trait]
impl Objects for Fake {
    async fn delete_many(&self, locations: &[String]) -> anyhow::Result<()> {
        let mut s = self.0.lock().unwrap();
        // A store deletes nothing a blob still points at (`storage::deletable`): the fake
        // fails loudly instead, so the algorithm is caught asking.
        for l in locations {
            assert!(
                !s.blobs.values().any(|b| &b.location == l),
                "asked to delete {l}, which a live blob points at"
            );
            s.objects.remove(l);
        }
        Ok(())
    }

    async fn discard_upload(&self, id: &str, _state: &[u8]) -> anyhow::Result<()> {
        self.0.lock().unwrap().upload_bytes.remove(id);
        Ok(())
    }

    async fn list(&self, _cursor: Option<String>) -> anyhow::Result<(Vec<Listed>, Option<String>)> {
        Ok((Vec::new(), None))
    }

    async fn present(&self, locations: &[String]) -> anyhow::Result<Vec<String>> {
        let s = self.0.lock().unwrap();
        Ok(locations
            .iter()
            .filter(|l| s.objects.contains(*l))
            .cloned()
            .collect())
    }
}

/// A registry holding: build `old` (expired at 100 s) with manifest `m-old` over blobs
/// `shared` and `only-old`; build `new` (live) with `m-new` over `shared` and `only-new`; a
/// manifest `m-tagged`, expired but kept by a tag nobody owns, over `tagged-blob`; an upload
/// idle since 0 and one active at 1000 s.
fn registry() -> Fake {
    let fake = Fake::default();
    {
        let mut s = fake.0.lock().unwrap();
        let repo = "p".to_owned();
        let manifest = |expires_at: Option<i64>, blobs: &[&str]| Manifest {
            expires_at,
            blobs: blobs.iter().map(|b| b.to_string()).collect(),
        };
        s.builds.insert(
            "old".into(),
            Build {
                expires_at: 100 * SEC,
                reaped: false,
                tags: vec![(repo.clone(), "old".into())],
            },
        );
        s.builds.insert(
            "new".into(),
            Build {
                expires_at: 10_000 * SEC,
                reaped: false,
                tags: vec![(repo.clone(), "new".into())],
            },
        );
        s.tags.insert((repo.clone(), "old".into()), "m-old".into());
        s.tags.insert((repo.clone(), "new".into()), "m-new".into());
        s.tags
            .insert((repo.clone(), "keep".into()), "m-tagged".into());
        s.manifests.insert(
            (repo.clone(), "m-old".into()),
            manifest(Some(100 * SEC), &["shared", "only-old"]),
        );
        s.manifests.insert(
            (repo.clone(), "m-new".into()),
            manifest(Some(10_000 * SEC), &["shared", "only-new"]),
        );
        s.manifests.insert(
            (repo.clone(), "m-tagged".into()),
            manifest(Some(100 * SEC), &["tagged-blob"]),
        );
        for d in ["shared", "only-old", "only-new", "tagged-blob"] {
            s.blobs.insert(
                d.into(),
                Blob {
                    location: format!("loc-{d}"),
                    size: 10,
                    since: None,
                },
            );
            s.objects.insert(format!("loc-{d}"));
        }
        s.uploads.insert("idle".into(), (0, true));
        s.uploads.insert("active".into(), (1000 * SEC, true));
        s.upload_bytes.insert("idle".into());
        s.upload_bytes.insert("active".into());
    }
    fake
}

fn config(dry_run: bool) -> Config {
    Config {
        grace: Duration::from_secs(60),
        upload_timeout: Duration::from_secs(3600),
        dry_run,
        ..Config::default()
    }
}

async fn collect(fake: &Fake, now_secs: i64, dry_run: bool) -> Option<Report> {
    let clock = FixedClock(now_secs * SEC);
    Collector {
        catalog: fake,
        objects: fake,
        clock: &clock,
        config: config(dry_run),
        holder: "test".into(),
        on_item: None,
    }
    .run()
    .await
    .unwrap()
}

fn blobs(fake: &Fake) -> Vec<String> {
    fake.0.lock().unwrap().blobs.keys().cloned().collect()
}

#[tokio::test]
async fn expired_content_goes_after_the_grace_period_and_live_content_stays() {
    let fake = registry();
    // At 1100 s: `old` expired; its manifest goes, its blobs become candidates (since now).
    let first = collect(&fake, 1100, false).await.unwrap();
    assert_eq!(first.builds_expired, 1);
    assert_eq!(first.manifests_deleted, 1, "{first:?}");
    assert_eq!(
        first.blobs_deleted, 0,
        "nothing is past the grace period yet"
    );
    assert_eq!(
        first.uploads_deleted, 0,
        "the idle upload is within its timeout"
    );
    assert_eq!(
        blobs(&fake),
        ["only-new", "only-old", "shared", "tagged-blob"]
    );

    // Within the grace period nothing more goes.
    let again = collect(&fake, 1150, false).await.unwrap();
    assert_eq!(again.blobs_deleted, 0);

    // Past it: only the blob nothing references any more; `shared` (still referenced by the
    // live build) stops being a candidate; the tagged manifest and its blob stay.
    let later = collect(&fake, 1200, false).await.unwrap();
    assert_eq!(later.blobs_deleted, 1, "{later:?}");
    assert_eq!(later.bytes_freed, 10);
    assert_eq!(blobs(&fake), ["only-new", "shared", "tagged-blob"]);
    let s = fake.0.lock().unwrap();
    assert!(!s.objects.contains("loc-only-old"));
    assert!(s.objects.contains("loc-shared") && s.objects.contains("loc-only-new"));
    assert!(
        s.blobs["shared"].since.is_none(),
        "referenced: no longer a candidate"
    );
    assert!(s.manifests.contains_key(&("p".into(), "m-new".into())));
    assert!(s.manifests.contains_key(&("p".into(), "m-tagged".into())));
    assert!(
        s.trash.is_empty(),
        "the trash is emptied once the bytes are gone"
    );
    assert_eq!(s.runs.len(), 3);
}

#[tokio::test]
async fn abandoned_uploads_go_with_their_bytes() {
    let fake = registry();
    let r = collect(&fake, 3700, false).await.unwrap();
    assert_eq!(r.uploads_deleted, 1, "{r:?}");
    let s = fake.0.lock().unwrap();
    assert!(!s.uploads.contains_key("idle") && !s.upload_bytes.contains("idle"));
    assert!(s.uploads.contains_key("active") && s.upload_bytes.contains("active"));
}

#[tokio::test]
async fn a_dry_run_reports_and_changes_nothing() {
    let fake = registry();
    collect(&fake, 1100, false).await.unwrap();
    let before = (blobs(&fake), fake.0.lock().unwrap().objects.clone());
    let dry = collect(&fake, 4000, true).await.unwrap();
    assert!(dry.dry_run);
    assert_eq!(dry.blobs_deleted, 1, "it says what would go: {dry:?}");
    assert_eq!(dry.uploads_deleted, 1);
    assert_eq!(
        (blobs(&fake), fake.0.lock().unwrap().objects.clone()),
        before
    );
    assert!(fake.0.lock().unwrap().uploads.contains_key("idle"));
}

#[tokio::test]
async fn a_second_collector_waits_for_the_lock() {
    let fake = registry();
    fake.0.lock().unwrap().lock = Some("another replica".into());
    assert!(collect(&fake, 5000, false).await.is_none());
    assert_eq!(blobs(&fake).len(), 4, "nothing collected without the lock");
}
