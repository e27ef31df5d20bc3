//! Manifests, tags and referrers: lookups (never past the owning build's expiry), pushes that
//! check every referenced blob and child in the same transaction, deletes, listings.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::blobs::mark_candidates;
use super::{digest_col, Metadata};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::names::{RepoName, Tag};

/// Points a tag at a manifest, with its owning build and expiry (`NULL`: nobody's, never).
pub(super) const UPSERT_TAG: &str = "INSERT INTO tags (repo, name, digest, updated_at, build_id, expires_at) \
     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (repo, name) DO UPDATE SET digest = excluded.digest, \
     updated_at = excluded.updated_at, build_id = excluded.build_id, expires_at = excluded.expires_at";

/// A manifest as stored: its exact bytes and what was derived from them at push time.
#[derive(Debug, Clone)]
pub struct StoredManifest {
    pub digest: Digest,
    pub media_type: String,
    pub content: bytes::Bytes,
    /// When this lookup stops answering (the owning build's expiry); `None`: never.
    pub expires_at: Option<i64>,
}

impl StoredManifest {
    pub fn is_live(&self, now: i64) -> bool {
        self.expires_at.is_none_or(|t| t > now)
    }
}

/// The build a pushed manifest (and its tag) belongs to, and when that build expires.
#[derive(Debug, Clone)]
pub struct Owner {
    pub build_id: String,
    pub expires_at: i64,
}

/// What a manifest push writes.
#[derive(Debug, Clone)]
pub struct NewManifest {
    pub digest: Digest,
    pub media_type: String,
    pub content: Vec<u8>,
    pub subject: Option<Digest>,
    pub artifact_type: Option<String>,
    /// Annotations as a JSON object text, copied into referrers descriptors.
    pub annotations: Option<String>,
    /// Blobs (config, layers) the manifest references.
    pub blobs: Vec<Digest>,
    /// Child manifests (of an index).
    pub manifests: Vec<Digest>,
}

/// A descriptor in a referrers response.
#[derive(Debug, Clone)]
pub struct Referrer {
    pub digest: String,
    pub media_type: String,
    pub size: u64,
    pub artifact_type: Option<String>,
    pub annotations: Option<String>,
}

impl Metadata {
    // ---- manifests -------------------------------------------------------------------------

    /// Looks a manifest up by digest in `repo`.
    pub async fn manifest_by_digest(
        &self,
        repo: &RepoName,
        digest: &Digest,
        now: i64,
    ) -> Result<Option<StoredManifest>> {
        let row = sqlx::query(
            "SELECT digest, media_type, content, expires_at FROM manifests WHERE repo = $1 AND digest = $2 \
             AND (expires_at IS NULL OR expires_at > $3)",
        )
        .bind(repo.as_str())
        .bind(digest.as_str())
        .bind(now)
        .fetch_optional(&self.read)
        .await?;
        row.map(|r| manifest_from_row(&r)).transpose()
    }

    /// Looks a manifest up by tag in `repo`.
    pub async fn manifest_by_tag(
        &self,
        repo: &RepoName,
        tag: &Tag,
        now: i64,
    ) -> Result<Option<StoredManifest>> {
        // The lookup lives as long as both the tag and the manifest do.
        let row = sqlx::query(
            "SELECT m.digest, m.media_type, m.content, \
             CASE WHEN t.expires_at IS NULL THEN m.expires_at WHEN m.expires_at IS NULL THEN t.expires_at \
                  WHEN t.expires_at < m.expires_at THEN t.expires_at ELSE m.expires_at END AS expires_at \
             FROM tags t JOIN manifests m ON m.repo = t.repo AND m.digest = t.digest \
             WHERE t.repo = $1 AND t.name = $2 AND (t.expires_at IS NULL OR t.expires_at > $3) \
             AND (m.expires_at IS NULL OR m.expires_at > $3)",
        )
        .bind(repo.as_str())
        .bind(tag.as_str())
        .bind(now)
        .fetch_optional(&self.read)
        .await?;
        row.map(|r| manifest_from_row(&r)).transpose()
    }

    /// The size of manifest `digest` in `repo`, if it is stored there.
    pub async fn manifest_size(&self, repo: &RepoName, digest: &Digest) -> Result<Option<u64>> {
        let row = sqlx::query("SELECT size FROM manifests WHERE repo = $1 AND digest = $2")
            .bind(repo.as_str())
            .bind(digest.as_str())
            .fetch_optional(&self.read)
            .await?;
        row.map(|r| Ok(r.try_get::<i64, _>("size")?.max(0) as u64))
            .transpose()
    }

    /// Stores a manifest (idempotent for the same bytes) and points each of `tags` at it, in one
    /// transaction. With an owner, the manifest joins that build (living at least as long as
    /// it) and the tags become the build's; without one, they are nobody's and never expire.
    pub async fn put_manifest(
        &self,
        repo: &RepoName,
        m: &NewManifest,
        tags: &[Tag],
        owner: Option<&Owner>,
    ) -> Result<()> {
        // Rows are locked in one order (sorted digests), but a collection deleting the same
        // rows may still meet a push head-on on PostgreSQL; the loser is simply run again.
        let mut attempt = 0;
        loop {
            match self.put_manifest_once(repo, m, tags, owner).await {
                Err(e) if e.is_conflict() && attempt < 5 => {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(10 * attempt)).await;
                }
                other => return other,
            }
        }
    }

    async fn put_manifest_once(
        &self,
        repo: &RepoName,
        m: &NewManifest,
        tags: &[Tag],
        owner: Option<&Owner>,
    ) -> Result<()> {
        let now = self.clock.now_ms();
        let mut blobs: Vec<&Digest> = m.blobs.iter().collect();
        blobs.sort();
        blobs.dedup();
        let mut children: Vec<&Digest> = m.manifests.iter().collect();
        children.sort();
        children.dedup();
        let mut tx = self.begin_write().await?;
        // What the manifest references is checked again here, in the transaction that records
        // the references, and kept: a blob stops being a candidate for collection, a child
        // manifest lives at least as long as its new parent. On PostgreSQL these updates lock
        // rows a concurrent collection is deleting, so one of the two sees the other's result.
        for blob in blobs {
            sqlx::query(
                "UPDATE blobs SET unreferenced_at = NULL WHERE digest = $1 AND unreferenced_at IS NOT NULL",
            )
            .bind(blob.as_str())
            .execute(&mut *tx)
            .await?;
            let there = sqlx::query(
                "SELECT 1 FROM repo_blobs r JOIN blobs b ON b.digest = r.digest WHERE r.repo = $1 AND r.digest = $2",
            )
            .bind(repo.as_str())
            .bind(blob.as_str())
            .fetch_optional(&mut *tx)
            .await?;
            if there.is_none() {
                return Err(Error::blob_unknown(blob));
            }
        }
        for child in children {
            match owner {
                Some(o) => sqlx::query(
                    "UPDATE manifests SET expires_at = $3 WHERE repo = $1 AND digest = $2 AND expires_at < $3",
                )
                .bind(repo.as_str())
                .bind(child.as_str())
                .bind(o.expires_at),
                None => sqlx::query(
                    "UPDATE manifests SET expires_at = NULL WHERE repo = $1 AND digest = $2 AND expires_at IS NOT NULL",
                )
                .bind(repo.as_str())
                .bind(child.as_str()),
            }
            .execute(&mut *tx)
            .await?;
            let there = sqlx::query("SELECT 1 FROM manifests WHERE repo = $1 AND digest = $2")
                .bind(repo.as_str())
                .bind(child.as_str())
                .fetch_optional(&mut *tx)
                .await?;
            if there.is_none() {
                return Err(Error::blob_unknown(child));
            }
        }
        sqlx::query(
            "INSERT INTO repositories (name, created_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(repo.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let inserted = sqlx::query(
            "INSERT INTO manifests (repo, digest, media_type, content, size, subject, artifact_type, annotations, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING",
        )
        .bind(repo.as_str())
        .bind(m.digest.as_str())
        .bind(&m.media_type)
        .bind(m.content.clone())
        .bind(m.content.len() as i64)
        .bind(m.subject.as_ref().map(|d| d.to_string()))
        .bind(m.artifact_type.clone())
        .bind(m.annotations.clone())
        .bind(now)
        .bind(owner.map(|o| o.expires_at))
        .execute(&mut *tx)
        .await?;
        if let Some(owner) = owner {
            sqlx::query(
                "INSERT INTO build_manifests (build_id, repo, digest) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            )
            .bind(&owner.build_id)
            .bind(repo.as_str())
            .bind(m.digest.as_str())
            .execute(&mut *tx)
            .await?;
            // An existing (perhaps expired) copy lives on with this build.
            sqlx::query(
                "UPDATE manifests SET expires_at = $1 WHERE repo = $2 AND digest = $3 AND expires_at < $1",
            )
            .bind(owner.expires_at)
            .bind(repo.as_str())
            .bind(m.digest.as_str())
            .execute(&mut *tx)
            .await?;
        } else {
            // Pushed by nobody's build: it never expires, even if a build's copy had.
            sqlx::query(
                "UPDATE manifests SET expires_at = NULL WHERE repo = $1 AND digest = $2 AND expires_at IS NOT NULL",
            )
            .bind(repo.as_str())
            .bind(m.digest.as_str())
            .execute(&mut *tx)
            .await?;
        }
        if inserted.rows_affected() > 0 {
            let refs = m
                .blobs
                .iter()
                .map(|d| (d, "blob"))
                .chain(m.manifests.iter().map(|d| (d, "manifest")));
            for (child, kind) in refs {
                sqlx::query(
                    "INSERT INTO manifest_refs (repo, manifest, child, kind) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                )
                .bind(repo.as_str())
                .bind(m.digest.as_str())
                .bind(child.as_str())
                .bind(kind)
                .execute(&mut *tx)
                .await?;
            }
        }
        // Every tag in the same transaction: a push with several tags takes all or none.
        for tag in tags {
            sqlx::query(UPSERT_TAG)
                .bind(repo.as_str())
                .bind(tag.as_str())
                .bind(m.digest.as_str())
                .bind(now)
                .bind(owner.map(|o| o.build_id.clone()))
                .bind(owner.map(|o| o.expires_at))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Deletes a manifest and every tag pointing at it; the tags removed are returned
    /// (`None` if the manifest was not there).
    pub async fn delete_manifest(
        &self,
        repo: &RepoName,
        digest: &Digest,
        now: i64,
    ) -> Result<Option<Vec<String>>> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("DELETE FROM manifests WHERE repo = $1 AND digest = $2")
            .bind(repo.as_str())
            .bind(digest.as_str())
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        let tags = sqlx::query("SELECT name FROM tags WHERE repo = $1 AND digest = $2")
            .bind(repo.as_str())
            .bind(digest.as_str())
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r| r.try_get::<String, _>("name"))
            .collect::<Result<Vec<_>, _>>()?;
        sqlx::query("DELETE FROM tags WHERE repo = $1 AND digest = $2")
            .bind(repo.as_str())
            .bind(digest.as_str())
            .execute(&mut *tx)
            .await?;
        let blobs = referenced_blobs(&mut tx, repo.as_str(), digest.as_str()).await?;
        sqlx::query("DELETE FROM manifest_refs WHERE repo = $1 AND manifest = $2")
            .bind(repo.as_str())
            .bind(digest.as_str())
            .execute(&mut *tx)
            .await?;
        mark_candidates(&mut tx, &blobs, now).await?;
        tx.commit().await?;
        Ok(Some(tags))
    }

    /// Deletes a tag (not the manifest); false if it did not exist.
    pub async fn delete_tag(&self, repo: &RepoName, tag: &Tag) -> Result<bool> {
        let done = sqlx::query("DELETE FROM tags WHERE repo = $1 AND name = $2")
            .bind(repo.as_str())
            .bind(tag.as_str())
            .execute(&self.write)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Up to `n` tags after `last`, in case-insensitive order (ties broken by bytes).
    pub async fn list_tags(
        &self,
        repo: &RepoName,
        n: i64,
        last: Option<&str>,
        now: i64,
    ) -> Result<Vec<String>> {
        // Tags are never empty, so "after ''" is every tag: one query serves both cases.
        let rows = sqlx::query(
            "SELECT name FROM tags WHERE repo = $1 AND (lower(name) > lower($2) OR (lower(name) = lower($2) AND name > $2)) \
             AND (expires_at IS NULL OR expires_at > $4) ORDER BY lower(name), name LIMIT $3",
        )
        .bind(repo.as_str())
        .bind(last.unwrap_or(""))
        .bind(n)
        .bind(now)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| Ok(r.try_get::<String, _>("name")?))
            .collect()
    }

    /// Manifests in `repo` whose subject is `subject`, optionally of one artifact type.
    pub async fn referrers(
        &self,
        repo: &RepoName,
        subject: &Digest,
        artifact_type: Option<&str>,
        now: i64,
    ) -> Result<Vec<Referrer>> {
        let rows = sqlx::query(
            "SELECT digest, media_type, size, artifact_type, annotations FROM manifests \
             WHERE repo = $1 AND subject = $2 AND ($3 = '' OR artifact_type = $3) \
             AND (expires_at IS NULL OR expires_at > $4) ORDER BY created_at, digest",
        )
        .bind(repo.as_str())
        .bind(subject.as_str())
        .bind(artifact_type.unwrap_or(""))
        .bind(now)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Referrer {
                    digest: r.try_get("digest")?,
                    media_type: r.try_get("media_type")?,
                    size: r.try_get::<i64, _>("size")? as u64,
                    artifact_type: r.try_get("artifact_type")?,
                    annotations: r.try_get("annotations")?,
                })
            })
            .collect()
    }
}

/// The blobs a manifest references.
pub(super) async fn referenced_blobs(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    repo: &str,
    manifest: &str,
) -> Result<Vec<String>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT child FROM manifest_refs WHERE repo = $1 AND manifest = $2 AND kind = 'blob'",
    )
    .bind(repo)
    .bind(manifest)
    .fetch_all(&mut **tx)
    .await?;
    rows.iter()
        .map(|r| r.try_get::<String, _>("child"))
        .collect()
}

fn manifest_from_row(row: &AnyRow) -> Result<StoredManifest> {
    Ok(StoredManifest {
        digest: digest_col(row, "digest")?,
        media_type: row.try_get("media_type")?,
        content: bytes::Bytes::from(row.try_get::<Vec<u8>, _>("content")?),
        expires_at: row.try_get("expires_at")?,
    })
}
