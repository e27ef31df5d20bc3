//! Registry metadata in SQL: one implementation over sqlx's `Any` driver for SQLite (embedded
//! default) and PostgreSQL, with migrations per dialect under `migrations/`.
//!
//! All SQL lives here, one file per question: repositories and blobs ([`blobs`]), upload
//! sessions ([`uploads`]), manifests, tags and referrers ([`manifests`]), projects and builds
//! ([`builds`]), shared settings ([`settings`]), CI trust policies ([`trust_policies`]), garbage collection ([`gc`]), the gauges' counts ([`stats`]), dashboard sessions ([`sessions`]) and usage ([`usage`]); every difference
//! between the two databases is in [`Dialect`]. Callers use these methods. Queries use `$N` placeholders and only syntax
//! both dialects share (`ON CONFLICT`, `lower()`), so there is a single code path.
//!
//! SQLite allows one writer at a time; a deferred transaction that upgrades to a write while
//! another connection writes fails with `SQLITE_BUSY`. Writes therefore go through a pool of one
//! connection on SQLite (reads use many), which serializes them without busy errors.

mod blobs;
mod builds;
mod dialect;
mod gc;
mod manifests;
mod sessions;
mod settings;
mod stats;
#[cfg(test)]
mod suite;
mod trust_policies;
mod uploads;
mod usage;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};
use tokio::sync::mpsc;

use crate::clock::Clock;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::names::RepoName;

pub use blobs::{Link, StoredBlob};
pub use builds::{BuildFilter, BuildImage, ProjectDeleted, TagEntry, TokenInfo};
pub use dialect::Dialect;
pub use manifests::{NewManifest, Owner, Referrer, StoredManifest};
pub use sessions::UiSession;
pub use stats::{PoolUse, Stats};
pub use trust_policies::StoredPolicy;
pub use uploads::Upload;
pub use usage::{hour_of, ProjectTotals, UsagePoint};

/// Pooled access to the metadata database.
#[derive(Clone)]
pub struct Metadata {
    read: AnyPool,
    write: AnyPool,
    links: mpsc::Sender<blobs::LinkRequest>,
    dialect: Dialect,
    /// The database's URL (a replica listens on it for the others' changes).
    url: std::sync::Arc<str>,
    /// The connection holding the garbage-collection advisory lock (PostgreSQL), while held.
    gc_lock: std::sync::Arc<tokio::sync::Mutex<Option<sqlx::pool::PoolConnection<sqlx::Any>>>>,
    /// The process's clock: every timestamp written and every expiry judged reads it.
    clock: Clock,
}

#[async_trait::async_trait]
impl crate::storage::Referenced for Metadata {
    async fn referenced(&self, locations: &[String]) -> Result<std::collections::HashSet<String>> {
        self.referenced_locations(locations).await
    }
}

/// The PostgreSQL channel on which replicas announce repositories whose tags or manifests
/// changed, so every other replica drops its cached lookups for them.
pub const CACHE_CHANNEL: &str = "depot_cache";

/// A [`CACHE_CHANNEL`] payload announcing a blob garbage collection deleted: the prefix, then
/// the digest (other payloads are repository names, which cannot contain `:`).
pub const BLOB_GONE_PREFIX: &str = "blob-gone:";

pub(super) fn digest_col(row: &AnyRow, col: &str) -> Result<Digest> {
    let s: String = row.try_get(col)?;
    s.parse()
        .map_err(|_| Error::corrupt(format!("digest {s:?} in database")))
}

impl Metadata {
    /// Connects to `url` (`sqlite:...` or `postgres://...`) and brings the schema up to date.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        sqlx::any::install_default_drivers();
        let dialect = Dialect::of(url)?;
        // A database that stops answering turns into a 503 within this bound, never a hang.
        let acquire = std::time::Duration::from_secs(5);
        let options = || {
            AnyPoolOptions::new()
                .acquire_timeout(acquire)
                .after_connect(move |conn, _| {
                    Box::pin(async move {
                        for statement in dialect.on_connect() {
                            sqlx::query(statement).execute(&mut *conn).await?;
                        }
                        Ok(())
                    })
                })
        };
        let read = options()
            .max_connections(dialect.read_connections())
            .connect(url)
            .await?;
        let write = if dialect.single_writer() {
            options().max_connections(1).connect(url).await?
        } else {
            read.clone()
        };
        for statement in dialect.on_open() {
            sqlx::query(statement).execute(&write).await?;
        }
        dialect.migrations().run(&write).await?;
        let (links, queue) = mpsc::channel(4 * blobs::MAX_LINK_BATCH);
        tokio::spawn(blobs::group_commit_links(write.clone(), queue));
        Ok(Metadata {
            read,
            write,
            links,
            dialect,
            url: url.into(),
            gc_lock: Default::default(),
            clock: Clock::default(),
        })
    }

    /// Whether the database answers and holds every migration this build knows (a readiness
    /// probe): `Unavailable` naming what is missing otherwise.
    pub async fn readiness(&self) -> Result<()> {
        let applied: Vec<i64> =
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
                .fetch_all(&self.read)
                .await?;
        let missing: Vec<i64> = self
            .dialect
            .migrations()
            .iter()
            .map(|m| m.version)
            .filter(|v| !applied.contains(v))
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(Error::unavailable(format!(
                "migrations not applied: {missing:?}"
            )))
        }
    }

    /// The clock this database's timestamps are written by (the process's one clock: a test
    /// moves it forward through the admin API).
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The database's URL, when other replicas may share it (they announce their changes on
    /// it); `None` for a database one process owns.
    pub fn shared_url(&self) -> Option<&str> {
        self.dialect.shared().then_some(&*self.url)
    }

    /// Tells the other replicas that `repo`'s tags, manifests or blob links changed (after the
    /// change committed). Nothing to do on SQLite, which one process owns.
    pub async fn notify_changed(&self, repo: &RepoName) -> Result<()> {
        if let Some(notify) = self.dialect.notify() {
            sqlx::query(notify)
                .bind(CACHE_CHANNEL)
                .bind(repo.as_str())
                .execute(&self.write)
                .await?;
        }
        Ok(())
    }

    /// Folds SQLite's write-ahead log into the database file (a no-op on PostgreSQL): after a
    /// bulk load, so the next transaction does not pay for it.
    pub async fn checkpoint(&self) -> Result<()> {
        if let Some(statement) = self.dialect.checkpoint() {
            sqlx::query(statement).execute(&self.write).await?;
        }
        Ok(())
    }

    pub async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
    }
}
