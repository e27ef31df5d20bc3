//! In-process caches in front of the metadata database, so hot manifest GETs and blob existence
//! checks cost no SQL query.
//!
//! Manifests by digest never change, only disappear, so those entries live until evicted or
//! invalidated by a delete in this process. Tags move, so tag entries also expire after a short
//! time-to-live: that bounds how long another process sharing the database can serve an old tag
//! target (the production backends issue replaces this with explicit cross-replica invalidation).

use std::time::Duration;

use moka::future::Cache;

use crate::digest::Digest;
use crate::metadata::{StoredBlob, StoredManifest};
use crate::names::{Reference, RepoName};

#[derive(Clone)]
pub struct Caches {
    /// `(repo, reference)` -> manifest.
    pub manifests: Cache<(RepoName, Reference), StoredManifest>,
    /// `(repo, digest)` -> the stored blob, for blobs the repository may read.
    pub repo_blobs: Cache<(RepoName, Digest), StoredBlob>,
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
            repo_blobs: Cache::builder().max_capacity(1_000_000).build(),
        }
    }
}
