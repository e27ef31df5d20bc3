//! Expiry and garbage collection for the depot registry, safe while pushes go on.
//!
//! One collection ([`collect::Collector::run`]) does, in order, each step idempotent and safe to
//! interrupt anywhere:
//!
//! 0. **Count policies**: each project's saved builds beyond its count policy (keep the newest
//!    N, optionally everything younger than D days) get their expiry brought forward. A save
//!    applies its project's policy at once; this step catches whatever a crash in between left.
//! 1. **Expire builds** whose `expires_at` passed (their tags and bookkeeping), then delete
//!    **expired manifests** (images, indexes, referrers) that no live tag or live index still
//!    references; the blobs they referenced become candidates.
//! 2. **Abandoned upload sessions** (idle longer than the upload timeout) are deleted and their
//!    bytes discarded (S3 multipart uploads aborted).
//! 3. **Unreferenced blobs**: candidates unreferenced and unused for longer than the grace period
//!    are deleted in batches, metadata first (moved to a trash list in the same transaction),
//!    then the bytes (`DeleteObjects` on S3), then the trash entries.
//!
//! Every query is driven by an index over what may be garbage (expired builds, expiring
//! manifests, candidate blobs, idle sessions), so a collection costs in proportion to the
//! garbage, not to the size of the store. Only [`reconcile`] lists the store.
//!
//! Safety against concurrent pushes is the backend's part of the contract ([`Catalog`]): every
//! deletion is conditional on the row still being garbage *at that moment*, and every push that
//! reuses a blob or manifest touches that row in the statement that checks it exists.
//!
//! The registry implements [`Catalog`] and [`Objects`] over its database and blob store; the
//! `depot-gc` binary (in `gc/cli`) and the registry's own interval runner ([`schedule`]) drive
//! the same [`collect::Collector`].

pub mod collect;
pub mod reconcile;
pub mod report;
pub mod schedule;

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use collect::Collector;
pub use report::{Metrics, Report, METRICS};

/// How a collection behaves.
#[derive(Debug, Clone)]
pub struct Config {
    /// How long a blob must have been unreferenced and unused before it is deleted.
    pub grace: Duration,
    /// How long an upload session may sit idle before it is abandoned.
    pub upload_timeout: Duration,
    /// Rows handled per transaction.
    pub batch: usize,
    /// Report what would go; delete nothing.
    pub dry_run: bool,
}

/// Seconds a blob must be unreferenced and unused before it is collected, unless configured.
pub const DEFAULT_GRACE_SECS: u64 = 3600;
/// Rows handled per transaction, unless configured.
pub const DEFAULT_BATCH: u32 = 1000;
/// Seconds an upload session may sit idle before it is collected, unless configured.
pub const DEFAULT_UPLOAD_TIMEOUT_SECS: u64 = 24 * 3600;

impl Default for Config {
    fn default() -> Self {
        Config {
            grace: Duration::from_secs(DEFAULT_GRACE_SECS),
            upload_timeout: Duration::from_secs(DEFAULT_UPLOAD_TIMEOUT_SECS),
            batch: DEFAULT_BATCH as usize,
            dry_run: false,
        }
    }
}

/// A manifest, by repository and digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ManifestKey {
    pub repo: String,
    pub digest: String,
}

/// What reaping one expired build removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reaped {
    /// `false` if the build was reaped already, or is no longer expired.
    pub reaped: bool,
    /// Repositories whose tags went (for cache invalidation).
    pub repos: Vec<String>,
    pub tags: u64,
}

/// The outcome of trying to delete one expired manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestOutcome {
    /// Deleted, with the number of blob references it dropped.
    Deleted { blobs: u64 },
    /// Still referenced by a live tag or a live index (its expiry was moved to theirs), or no
    /// longer expired, or gone.
    Kept,
}

/// An upload session idle past the timeout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleUpload {
    pub id: String,
    /// The blob store's state for the session (its multipart upload, staged pieces).
    pub store_state: Vec<u8>,
    /// `false` for a finished or cancelled session's tombstone (no bytes).
    pub open: bool,
}

/// A blob that may be garbage: unreferenced (or unused) since `since`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Candidate {
    pub digest: String,
    pub since: i64,
    pub size: u64,
}

/// Bytes whose metadata is gone and that the store must delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trashed {
    pub location: String,
    pub size: u64,
}

/// What deleting a batch of candidate blobs did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Swept {
    /// Moved to the trash list (their metadata is gone).
    pub trashed: Vec<Trashed>,
    /// Digests deleted (for cache invalidation), with the repositories that linked them.
    pub digests: Vec<String>,
    pub repos: Vec<String>,
    /// Candidates found referenced after all (no longer candidates).
    pub referenced: u64,
}

/// An object the store holds, for [`reconcile`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub location: String,
    /// For an upload's leftover (not a committed blob): the upload session it belongs to.
    pub upload: Option<String>,
    pub size: u64,
    pub modified_ms: i64,
}

/// What is waiting to be collected, for `depot-gc status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Pending {
    pub expired_builds: u64,
    pub expired_manifests: u64,
    pub candidate_blobs: u64,
    pub collectable_blobs: u64,
    pub collectable_bytes: u64,
    pub stale_uploads: u64,
    pub trash: u64,
}

/// The metadata side of garbage collection: the registry's database. Every deleting method must
/// re-check, in the statement that deletes, that the row is still garbage.
#[async_trait]
pub trait Catalog: Send + Sync {
    /// Takes (or renews) the right to collect for `holder` for `ttl`; `false` if another holder
    /// has it. With several replicas exactly one collects at a time.
    async fn try_lock(&self, holder: &str, ttl: Duration) -> anyhow::Result<bool>;
    async fn unlock(&self, holder: &str) -> anyhow::Result<()>;

    /// Brings forward the expiry of every saved build beyond its project's count policy
    /// (`dry_run`: only says which it would); returns `(repository, build)` pairs.
    async fn enforce_keep_policies(
        &self,
        now: i64,
        dry_run: bool,
    ) -> anyhow::Result<Vec<(String, String)>>;
    /// Builds whose expiry passed and which are not reaped yet, oldest first.
    async fn expired_builds(&self, now: i64, limit: usize) -> anyhow::Result<Vec<String>>;
    /// Removes an expired build's tags and bookkeeping, if it is still expired and unreaped
    /// (`dry_run`: only says whether it would).
    async fn reap_build(&self, id: &str, now: i64, dry_run: bool) -> anyhow::Result<Reaped>;
    /// Manifests whose expiry passed, oldest first.
    async fn expired_manifests(&self, now: i64, limit: usize) -> anyhow::Result<Vec<ManifestKey>>;
    /// Deletes expired manifests (in one transaction) unless a live tag or live index
    /// references them; the blobs they referenced become candidates (unreferenced since
    /// `now`). `dry_run`: only says which it would delete.
    async fn delete_expired_manifests(
        &self,
        keys: &[ManifestKey],
        now: i64,
        dry_run: bool,
    ) -> anyhow::Result<Vec<ManifestOutcome>>;

    /// Upload sessions not touched since `before`.
    async fn stale_uploads(&self, before: i64, limit: usize) -> anyhow::Result<Vec<StaleUpload>>;
    /// Deletes a session's row if it is still untouched since `before`; `true` if deleted.
    async fn forget_upload(&self, id: &str, before: i64) -> anyhow::Result<bool>;

    /// Blobs that have been candidates since before `cutoff`, oldest first.
    async fn blob_candidates(&self, cutoff: i64, limit: usize) -> anyhow::Result<Vec<Candidate>>;
    /// Deletes those candidates still unreferenced and unused since before `cutoff`, moving
    /// their locations to the trash list in the same transaction; clears the candidacy of those
    /// found referenced. `dry_run`: only reports what it would delete.
    async fn sweep_blobs(
        &self,
        candidates: &[Candidate],
        cutoff: i64,
        dry_run: bool,
    ) -> anyhow::Result<Swept>;

    /// Trash entries, oldest first.
    async fn trash(&self, limit: usize) -> anyhow::Result<Vec<Trashed>>;
    async fn empty_trash(&self, locations: &[String]) -> anyhow::Result<()>;

    /// Tells every replica that these repositories and blobs changed (cache invalidation).
    async fn announce(&self, repos: &[String], digests: &[String]) -> anyhow::Result<()>;

    /// Records a collection; the most recent ones, newest first.
    async fn record_run(&self, report: &Report) -> anyhow::Result<()>;
    async fn recent_runs(&self, limit: usize) -> anyhow::Result<Vec<Report>>;
    /// What is waiting to be collected.
    async fn pending(&self, now: i64, cutoff: i64, uploads_before: i64) -> anyhow::Result<Pending>;

    /// Of `locations`, those some blob (or trash entry) refers to.
    async fn known_locations(&self, locations: &[String]) -> anyhow::Result<Vec<String>>;
    /// Of `ids`, the upload sessions that are open.
    async fn open_uploads(&self, ids: &[String]) -> anyhow::Result<Vec<String>>;
}

/// The byte side: the registry's blob store.
#[async_trait]
pub trait Objects: Send + Sync {
    /// Deletes committed blobs' bytes (missing ones are fine): a batch, one request on S3.
    async fn delete_many(&self, locations: &[String]) -> anyhow::Result<()>;
    /// Forgets an upload session's bytes (aborting its multipart upload).
    async fn discard_upload(&self, id: &str, store_state: &[u8]) -> anyhow::Result<()>;
    /// One page of what the store holds, after `cursor`; the next cursor, if there is more.
    async fn list(&self, cursor: Option<String>) -> anyhow::Result<(Vec<Listed>, Option<String>)>;
    /// Of `locations`, those a read finds. A listing is not proof that an object is there: a
    /// distributed store's listing can name objects deleted while one of its nodes was away
    /// (Garage, until its anti-entropy sync reaches that node) while every read says they are
    /// gone.
    async fn present(&self, locations: &[String]) -> anyhow::Result<Vec<String>>;
}

/// The time a collection judges by (the registry's clock, movable in tests).
pub trait Clock: Send + Sync {
    fn now_ms(&self) -> i64;

    /// Wall-clock time, which upload sessions are stamped with (a test clock moved forward to
    /// expire builds must not abandon uploads in progress).
    fn wall_ms(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64)
    }
}
