//! In-process caches in front of the metadata database, so hot manifest GETs and blob existence
//! checks cost no SQL query.
//!
//! Entries are dropped when this process changes what they describe. With several replicas on
//! one PostgreSQL database, each change is also announced with `NOTIFY` and every replica drops
//! its entries for that repository as the notification arrives ([`Caches::follow`]); the short
//! time-to-live is only a backstop. Expiry needs none of this: entries carry their build's
//! expiry and are not served past it.

use std::time::Duration;

use moka::future::Cache;

use crate::digest::Digest;
use crate::metadata::{StoredBlob, StoredManifest};
#[cfg(feature = "postgres")]
use crate::metadata::{BLOB_GONE_PREFIX, CACHE_CHANNEL};

/// How long a blob lookup is cached. Only garbage collection removes blobs, and it announces
/// what it removed; this bounds staleness when it cannot (a `depot-gc` run against SQLite
/// while the server runs), and is far below the collection's grace period.
const BLOB_TTL: Duration = Duration::from_secs(30);
use crate::names::{Reference, RepoName};

#[derive(Clone)]
pub struct Caches {
    /// `(repo, reference)` -> manifest.
    pub manifests: Cache<(RepoName, Reference), StoredManifest>,
    /// `(repo, digest)` -> the stored blob, for blobs the repository may read.
    pub repo_blobs: Cache<(RepoName, Digest), StoredBlob>,
    /// digest -> where it is stored, whichever repository holds it: lets a re-push of a common
    /// layer find it without a query. A stored blob's location never changes; only garbage
    /// collection removes blobs, and it must announce what it removed.
    pub stored: Cache<Digest, StoredBlob>,
    /// Digests whose bytes were found missing from the store and already logged as such: a
    /// lost blob is reported loudly once, not once per pull retry.
    pub missing_reported: Cache<Digest, ()>,
}

impl Caches {
    pub fn new(tag_ttl: Duration) -> Self {
        Caches {
            manifests: Cache::builder()
                .max_capacity(64 * 1024 * 1024)
                .weigher(|_k, v: &StoredManifest| {
                    v.content.len().min(u32::MAX as usize) as u32 + 200
                })
                .time_to_live(tag_ttl)
                .support_invalidation_closures()
                .build(),
            repo_blobs: Cache::builder()
                .max_capacity(1_000_000)
                .time_to_live(BLOB_TTL)
                .support_invalidation_closures()
                .build(),
            stored: Cache::builder()
                .max_capacity(1_000_000)
                .time_to_live(BLOB_TTL)
                .build(),
            missing_reported: Cache::builder().max_capacity(100_000).build(),
        }
    }

    /// Drops every cached lookup of `repo` (what another replica changed).
    pub fn forget_repo(&self, repo: &str) {
        let name = repo.to_owned();
        let _ = self
            .manifests
            .invalidate_entries_if(move |(r, _), _| r.as_str() == name);
        let name = repo.to_owned();
        let _ = self
            .repo_blobs
            .invalidate_entries_if(move |(r, _), _| r.as_str() == name);
    }

    /// Drops every cached lookup of a blob garbage collection deleted.
    pub async fn forget_blob(&self, digest: &str) {
        if let Ok(d) = digest.parse::<Digest>() {
            self.stored.invalidate(&d).await;
            let _ = self
                .repo_blobs
                .invalidate_entries_if(move |(_, k), _| *k == d);
        }
    }

    /// Drops everything (notifications may have been missed).
    pub fn forget_all(&self) {
        self.manifests.invalidate_all();
        self.repo_blobs.invalidate_all();
        self.stored.invalidate_all();
    }

    /// Keeps this replica's caches in step with the others: listens on PostgreSQL for the
    /// repositories other replicas changed and forgets their lookups. If the connection drops,
    /// notifications may be lost, so everything is forgotten once it is back.
    #[cfg(not(feature = "postgres"))]
    pub fn follow(&self, _postgres_url: &str) {}

    /// Keeps this replica's caches in step with the others (see above).
    #[cfg(feature = "postgres")]
    pub fn follow(&self, postgres_url: &str) {
        let caches = self.clone();
        let url = postgres_url.to_owned();
        tokio::spawn(async move {
            loop {
                match sqlx::postgres::PgListener::connect(&url).await {
                    Ok(mut listener) => {
                        if let Err(e) = listener.listen(CACHE_CHANNEL).await {
                            tracing::warn!(cause = %e, "cache invalidation: LISTEN failed");
                        } else {
                            caches.forget_all();
                            loop {
                                match listener.try_recv().await {
                                    Ok(Some(n)) => match n.payload().strip_prefix(BLOB_GONE_PREFIX)
                                    {
                                        Some(digest) => caches.forget_blob(digest).await,
                                        None => caches.forget_repo(n.payload()),
                                    },
                                    // The connection dropped and will be re-established: what
                                    // was announced meanwhile is unknown.
                                    Ok(None) => caches.forget_all(),
                                    Err(e) => {
                                        tracing::warn!(cause = %e, "cache invalidation: connection lost");
                                        break;
                                    }
                                }
                            }
                        }
                    }
                    Err(e) => tracing::warn!(cause = %e, "cache invalidation: cannot connect"),
                }
                caches.forget_all();
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        });
    }
}
