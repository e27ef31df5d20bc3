//! What a registry holds, as every request path sees it: the metadata database, the blob store,
//! the caches in front of them and the clock, behind one service.
//!
//! It owns the rules that must hold on every path, so no handler has to remember them: which
//! blobs a repository sees (a garbage-collection candidate is kept, never cached), where a
//! digest is stored, which manifest a reference names (never past its build's expiry), and that
//! every change is forgotten by this process's caches *and* announced to the other replicas
//! ([`Content::changed`]). A new write path calls a method here, never the caches directly.

use std::ops::Range;
use std::sync::Arc;

use crate::cache::Caches;
use crate::clock::Clock;
use futures::StreamExt;

use crate::digest::{Algorithm, Digest, ResumableHasher};
use crate::error::{Error, Result};
use crate::metadata::{
    Link, Metadata, NewManifest, Owner, ProjectDeleted, StoredBlob, StoredManifest,
};
use crate::model::{cache_repository, Project};
use crate::names::{Reference, RepoName, Tag};
use crate::storage::coalesce::Coalescer;
use crate::storage::{BlobStore, ByteStream};

/// One thing a write changed in a repository.
#[derive(Debug, Clone)]
pub enum Change<'a> {
    /// What a manifest reference (a tag or a digest) names.
    Manifest(Reference),
    /// A blob link of the repository.
    Blob(&'a Digest),
    /// Anything in it (a build's lifetime moved: every tag and manifest it owns).
    Everything,
}

/// The registry's content: cheap to clone.
#[derive(Clone)]
pub struct Content {
    pub meta: Metadata,
    pub store: Arc<dyn BlobStore>,
    /// Coalesced, cached reads in front of an object store (`None` for files, which the page
    /// cache already serves).
    pub reads: Option<Coalescer>,
    pub caches: Caches,
    pub clock: Clock,
}

impl Content {
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// The blob `digest` as seen from `repo`, through the cache. A candidate for garbage
    /// collection is not cached: looking at it keeps it for another grace period (a client
    /// that sees it here may push a manifest referencing it next).
    pub async fn visible_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<Option<StoredBlob>> {
        let key = (repo.clone(), digest.clone());
        let cached = self.caches.repo_blobs.get(&key).await;
        crate::metrics::cache_lookup("repo_blobs", cached.is_some());
        if let Some(blob) = cached {
            return Ok(Some(blob));
        }
        let Some(blob) = self.meta.repo_blob(repo, digest).await? else {
            return Ok(None);
        };
        if blob.candidate {
            let kept = self.meta.touch_blob(digest, self.now_ms()).await?;
            return Ok(kept.then_some(blob));
        }
        self.caches.repo_blobs.insert(key, blob.clone()).await;
        Ok(Some(blob))
    }

    /// Where `digest` is stored, if anywhere (any repository), through the cache; a candidate
    /// for collection is kept for another grace period, as in [`Content::visible_blob`].
    pub async fn stored_blob(&self, digest: &Digest) -> Result<Option<StoredBlob>> {
        let cached = self.caches.stored.get(digest).await;
        crate::metrics::cache_lookup("stored", cached.is_some());
        if let Some(blob) = cached {
            return Ok(Some(blob));
        }
        let Some(blob) = self.meta.blob(digest).await? else {
            return Ok(None);
        };
        if blob.candidate {
            let kept = self.meta.touch_blob(digest, self.now_ms()).await?;
            return Ok(kept.then_some(blob));
        }
        self.caches
            .stored
            .insert(digest.clone(), blob.clone())
            .await;
        Ok(Some(blob))
    }

    /// Keeps `digest` from collection for another grace period, if it is still stored.
    pub async fn touch_blob(&self, digest: &Digest) -> Result<bool> {
        self.meta.touch_blob(digest, self.now_ms()).await
    }

    /// Links `digest` into `repo` (an existing blob, or one just stored) and remembers the link.
    /// `None` if an existing blob was collected meanwhile.
    pub async fn link_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
        link: Link,
    ) -> Result<Option<StoredBlob>> {
        let linked = self
            .meta
            .link_blob(repo, digest, link, self.now_ms())
            .await?;
        if let Some(blob) = &linked {
            self.remember(repo, digest, blob).await;
        }
        Ok(linked)
    }

    /// Links `digest` into `repo` from `from`, if `from` holds it.
    pub async fn mount_blob(
        &self,
        repo: &RepoName,
        from: &RepoName,
        digest: &Digest,
    ) -> Result<Option<StoredBlob>> {
        let linked = self
            .meta
            .mount_blob(repo, from, digest, self.now_ms())
            .await?;
        if let Some(blob) = &linked {
            self.remember(repo, digest, blob).await;
        }
        Ok(linked)
    }

    /// Caches a link just made (never a collection candidate's: see [`Content::visible_blob`]).
    async fn remember(&self, repo: &RepoName, digest: &Digest, blob: &StoredBlob) {
        if blob.candidate {
            return;
        }
        self.caches
            .stored
            .insert(digest.clone(), blob.clone())
            .await;
        self.caches
            .repo_blobs
            .insert((repo.clone(), digest.clone()), blob.clone())
            .await;
    }

    /// Removes `digest`'s link from `repo`; `false` if there was none.
    pub async fn unlink_blob(&self, repo: &RepoName, digest: &Digest) -> Result<bool> {
        let unlinked = self.meta.unlink_blob(repo, digest, self.now_ms()).await?;
        if unlinked {
            self.changed(repo, &[Change::Blob(digest)]).await;
        }
        Ok(unlinked)
    }

    /// Streams `range` of a stored blob (through the read cache in front of an object store).
    /// Bytes found missing from the store are logged once per digest (an incident: data lost
    /// outside the registry, or a bug), then reported as [`crate::Error::DataMissing`].
    pub async fn read_blob(
        &self,
        digest: &Digest,
        blob: &StoredBlob,
        range: Range<u64>,
    ) -> Result<ByteStream> {
        let read = match &self.reads {
            Some(reads) => {
                reads
                    .read(self.store.clone(), &blob.location, blob.size, range)
                    .await
            }
            None => self.store.read(&blob.location, range).await,
        };
        if let Err(e) = &read {
            if e.is_data_missing() {
                let entry = self
                    .caches
                    .missing_reported
                    .entry(digest.clone())
                    .or_insert(())
                    .await;
                if entry.is_fresh() {
                    tracing::error!(%digest, location = %blob.location, "a stored blob's bytes are missing from the blob store: its data is lost; pulls of it fail with 500");
                }
            }
        }
        read
    }

    /// The `algorithm` digest of the `size` bytes stored at `location`, read back from the blob
    /// store itself (never through a cache: the bytes are not yet known to be any digest's).
    /// For an upload that ends with a digest of another algorithm than the one it was hashed
    /// with as it arrived: the cost of that rare case falls on it alone.
    pub async fn digest_stored(
        &self,
        location: &str,
        size: u64,
        algorithm: Algorithm,
    ) -> Result<Digest> {
        /// Bytes hashed per job on the blocking pool.
        const BATCH: usize = 4 * 1024 * 1024;
        async fn hash(
            mut hasher: ResumableHasher,
            batch: Vec<bytes::Bytes>,
        ) -> Result<ResumableHasher> {
            tokio::task::spawn_blocking(move || {
                for chunk in &batch {
                    hasher.update(chunk);
                }
                hasher
            })
            .await
            .map_err(|e| Error::Internal(format!("hashing job: {e}")))
        }
        let mut stream = self.store.read(location, 0..size).await?;
        let mut hasher = ResumableHasher::new(algorithm);
        let (mut batch, mut batch_len, mut read) = (Vec::new(), 0usize, 0u64);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            read += chunk.len() as u64;
            batch_len += chunk.len();
            batch.push(chunk);
            if batch_len >= BATCH {
                hasher = hash(hasher, std::mem::take(&mut batch)).await?;
                batch_len = 0;
            }
        }
        if read != size {
            return Err(Error::Corrupt(format!(
                "{location} holds {read} bytes, expected {size}"
            )));
        }
        Ok(hash(hasher, batch).await?.finish())
    }

    /// The manifest `reference` names in `repo`, through the cache. A cached entry past its
    /// build's expiry is not served: the database decides (the build may have been extended,
    /// or it is gone).
    pub async fn manifest(
        &self,
        repo: &RepoName,
        reference: &Reference,
    ) -> Result<Option<StoredManifest>> {
        let key = (repo.clone(), reference.clone());
        let now = self.now_ms();
        let cached = self.caches.manifests.get(&key).await;
        let live = cached.filter(|m| m.is_live(now));
        crate::metrics::cache_lookup("manifests", live.is_some());
        if let Some(m) = live {
            return Ok(Some(m));
        }
        let found = match reference {
            Reference::Digest(d) => self.meta.manifest_by_digest(repo, d, now).await?,
            Reference::Tag(t) => self.meta.manifest_by_tag(repo, t, now).await?,
        };
        if let Some(m) = &found {
            self.caches.manifests.insert(key, m.clone()).await;
        }
        Ok(found)
    }

    /// Stores a manifest (and points each of `tags` at it), owned by a build when `owner` is given.
    pub async fn put_manifest(
        &self,
        repo: &RepoName,
        record: &NewManifest,
        tags: &[Tag],
        owner: Option<&Owner>,
    ) -> Result<()> {
        self.meta.put_manifest(repo, record, tags, owner).await?;
        let mut changes: Vec<Change> = tags
            .iter()
            .map(|t| Change::Manifest(Reference::Tag(t.clone())))
            .collect();
        if owner.is_some() {
            // The digest entry may hold an earlier (expired) lifetime of the same bytes.
            changes.push(Change::Manifest(Reference::Digest(record.digest.clone())));
        }
        if !changes.is_empty() {
            self.changed(repo, &changes).await;
        }
        Ok(())
    }

    /// Points `tag` at an already stored manifest, as `owner`'s tag.
    pub async fn tag_manifest(
        &self,
        repo: &RepoName,
        tag: &Tag,
        digest: &Digest,
        owner: &Owner,
    ) -> Result<()> {
        self.meta.tag_manifest(repo, tag, digest, owner).await?;
        self.changed(repo, &[Change::Manifest(Reference::Tag(tag.clone()))])
            .await;
        Ok(())
    }

    /// Removes a tag; `false` if there was none.
    pub async fn delete_tag(&self, repo: &RepoName, tag: &Tag) -> Result<bool> {
        let deleted = self.meta.delete_tag(repo, tag).await?;
        if deleted {
            self.changed(repo, &[Change::Manifest(Reference::Tag(tag.clone()))])
                .await;
        }
        Ok(deleted)
    }

    /// Removes a manifest and the tags that pointed at it; `false` if there was none.
    pub async fn delete_manifest(&self, repo: &RepoName, digest: &Digest) -> Result<bool> {
        let Some(tags) = self
            .meta
            .delete_manifest(repo, digest, self.now_ms())
            .await?
        else {
            return Ok(false);
        };
        let mut changes = vec![Change::Manifest(Reference::Digest(digest.clone()))];
        changes.extend(
            tags.iter()
                .filter_map(|t| t.parse().ok())
                .map(|t| Change::Manifest(Reference::Tag(t))),
        );
        self.changed(repo, &changes).await;
        Ok(true)
    }

    /// Brings forward the expiry of `project`'s saved builds beyond its count policy (see
    /// [`Metadata::enforce_keep_policy`]), visible at once here and on every replica; how many
    /// builds it expired.
    pub async fn apply_keep_policy(&self, project: &Project) -> Result<usize> {
        let moved = self
            .meta
            .enforce_keep_policy(project, self.now_ms(), false)
            .await?;
        if !moved.is_empty() {
            self.project_changed(&project.id).await;
        }
        Ok(moved.len())
    }

    /// Deletes a project (see [`Metadata::delete_project`]), visible at once here and on every
    /// replica; `None` if there was none.
    pub async fn delete_project(&self, id: &str) -> Result<Option<ProjectDeleted>> {
        let done = self.meta.delete_project(id, self.now_ms()).await?;
        if done.is_some() {
            self.project_changed(id).await;
        }
        Ok(done)
    }

    /// Everything in a project's repositories (its own and its build cache) changed: both
    /// hold tags and manifests its builds own.
    async fn project_changed(&self, project: &str) {
        for name in [project.to_owned(), cache_repository(project)] {
            if let Ok(repo) = name.parse::<RepoName>() {
                self.changed(&repo, &[Change::Everything]).await;
            }
        }
    }

    /// The one place a change to `repo` is made visible: this process's cached lookups of what
    /// changed are dropped, and the other replicas are told (after the change committed), so
    /// none serves a stale lookup. A failed announcement is logged, not returned: the change
    /// itself is done, and the caches' short lifetime bounds the staleness.
    pub async fn changed(&self, repo: &RepoName, changes: &[Change<'_>]) {
        for change in changes {
            match change {
                Change::Manifest(reference) => {
                    self.caches
                        .manifests
                        .invalidate(&(repo.clone(), reference.clone()))
                        .await
                }
                Change::Blob(digest) => {
                    self.caches
                        .repo_blobs
                        .invalidate(&(repo.clone(), (*digest).clone()))
                        .await
                }
                Change::Everything => self.caches.forget_repo(repo.as_str()),
            }
        }
        if let Err(e) = self.meta.notify_changed(repo).await {
            tracing::warn!(%repo, cause = %e, "announcing a change to other replicas failed");
        }
    }
}
