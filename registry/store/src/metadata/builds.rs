//! Projects, project tokens and builds in SQL, and the expiry bookkeeping that makes a build's
//! tags and manifests vanish the moment it expires.
//!
//! Tags carry the build that owns them and its `expires_at`; manifests carry the latest
//! `expires_at` of the builds that pushed them (a manifest shared by two builds lives as long as
//! the longer-lived one). Reads filter on those columns, so expiry needs no background job.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::Metadata;
use crate::error::{Error, Result};
use crate::model::{Build, BuildSpec, BuildState, KeepPolicy, Project};
use crate::names::RepoName;

/// A project token as listed (never with its secret).
#[derive(Debug, Clone, serde::Serialize)]
pub struct TokenInfo {
    pub id: String,
    pub project: String,
    pub name: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

/// Which of a project's builds a listing shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildFilter {
    All,
    /// In this state and not expired.
    Live(BuildState),
    /// Past its expiry, whatever its state.
    Expired,
}

impl BuildFilter {
    fn sql(self) -> &'static str {
        match self {
            BuildFilter::All => "all",
            BuildFilter::Live(s) => s.as_str(),
            BuildFilter::Expired => "expired",
        }
    }
}

/// A live tag of a repository, as a project's image list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagEntry {
    pub name: String,
    pub digest: String,
    /// The build that owns it (its output, platform or save tag), if any.
    pub build_id: Option<String>,
    /// When it was last pointed (pushed).
    pub updated_at: i64,
}

fn tag_entry(r: &AnyRow) -> Result<TagEntry> {
    Ok(TagEntry {
        name: r.try_get("name")?,
        digest: r.try_get("digest")?,
        build_id: r.try_get("build_id")?,
        updated_at: r.try_get("updated_at")?,
    })
}

/// An image a builder pushed for one target and platform of a build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildImage {
    pub target: String,
    /// `os/arch[/variant]`, or empty for an image that stands for the whole target (the only
    /// image of a single-platform target, or an index a builder pushed itself).
    pub platform: String,
    pub digest: String,
    pub media_type: String,
    pub size: u64,
}

fn project_row(r: &AnyRow) -> Result<Project> {
    let builds: Option<i64> = r.try_get("keep_builds")?;
    let days: Option<i64> = r.try_get("keep_days")?;
    Ok(Project {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        retention_secs: r.try_get("retention_secs")?,
        created_at: r.try_get("created_at")?,
        keep: builds.map(|builds| KeepPolicy { builds, days }),
    })
}

const PROJECT_COLUMNS: &str = "id, name, retention_secs, created_at, keep_builds, keep_days";

/// What deleting a project did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProjectDeleted {
    /// Its builds that were live and expire now.
    pub builds_expired: u64,
    /// Its project tokens revoked (and with them every token they minted).
    pub tokens_revoked: u64,
    /// Its trust policies removed (and with them every credential they admitted).
    pub policies_removed: u64,
}

/// The most builds one enforcement of a count policy looks at beyond the kept ones: the rest
/// wait for the next save or collection.
const KEEP_BATCH: i64 = 10_000;

fn build_row(r: &AnyRow) -> Result<Build> {
    let state: String = r.try_get("state")?;
    let spec: String = r.try_get("spec")?;
    Ok(Build {
        id: r.try_get("id")?,
        project: r.try_get("project")?,
        state: BuildState::parse(&state)
            .ok_or_else(|| Error::corrupt(format!("build state {state:?}")))?,
        spec: serde_json::from_str::<BuildSpec>(&spec)
            .map_err(|e| Error::corrupt(format!("build spec: {e}")))?,
        failure: r.try_get("failure")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        lease_expires_at: r.try_get("lease_expires_at")?,
        expires_at: r.try_get("expires_at")?,
    })
}

const BUILD_COLUMNS: &str =
    "id, project, state, spec, failure, created_at, updated_at, lease_expires_at, expires_at";

/// Sets each manifest of `build_id` to expire with the longest-lived build that holds it, or at
/// `floor` when none is left. Manifests not owned by any build (`expires_at IS NULL`) are left be.
const RECOMPUTE_MANIFEST_EXPIRY: &str = "UPDATE manifests SET expires_at = ( \
        SELECT COALESCE(MAX(b.expires_at), $2) FROM build_manifests bm JOIN builds b ON b.id = bm.build_id \
        WHERE bm.repo = manifests.repo AND bm.digest = manifests.digest) \
     WHERE expires_at IS NOT NULL AND EXISTS ( \
        SELECT 1 FROM build_manifests own WHERE own.build_id = $1 AND own.repo = manifests.repo AND own.digest = manifests.digest)";

impl Metadata {
    // ---- projects --------------------------------------------------------------------------

    /// Creates the project; `false` when another project has its name (names are unique).
    pub async fn create_project(&self, p: &Project) -> Result<bool> {
        let keep = p.keep.as_ref();
        let done = sqlx::query(
            "INSERT INTO projects (id, name, retention_secs, created_at, keep_builds, keep_days) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (name) WHERE deleted_at IS NULL DO NOTHING",
        )
        .bind(&p.id)
        .bind(&p.name)
        .bind(p.retention_secs)
        .bind(p.created_at)
        .bind(keep.map(|k| k.builds))
        .bind(keep.and_then(|k| k.days))
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// A project that has not been deleted.
    pub async fn project(&self, id: &str) -> Result<Option<Project>> {
        let row = sqlx::query(&format!(
            "SELECT {PROJECT_COLUMNS} FROM projects WHERE id = $1 AND deleted_at IS NULL"
        ))
        .bind(id)
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(project_row).transpose()
    }

    /// The projects that have not been deleted, oldest first.
    pub async fn list_projects(&self) -> Result<Vec<Project>> {
        let rows = sqlx::query(&format!(
            "SELECT {PROJECT_COLUMNS} FROM projects WHERE deleted_at IS NULL ORDER BY created_at, id"
        ))
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(project_row).collect()
    }

    /// Renames the project and sets its retention and count policy; `false` when there is no
    /// such project or another one has the name.
    pub async fn update_project(&self, p: &Project) -> Result<bool> {
        let keep = p.keep.as_ref();
        let done = sqlx::query(
            "UPDATE projects SET name = $1, retention_secs = $2, keep_builds = $3, keep_days = $4 \
             WHERE id = $5 AND deleted_at IS NULL \
             AND NOT EXISTS (SELECT 1 FROM projects other \
                             WHERE other.name = $1 AND other.id <> $5 AND other.deleted_at IS NULL)",
        )
        .bind(&p.name)
        .bind(p.retention_secs)
        .bind(keep.map(|k| k.builds))
        .bind(keep.and_then(|k| k.days))
        .bind(&p.id)
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Deletes a project in one transaction: every build of it expires now (its tags and the
    /// manifests only it holds vanish at once; collection reclaims them as any expired build),
    /// the other manifests and tags of its repository go with them, its tokens are revoked and
    /// its trust policies removed (so every credential rooted in them stops at once), and its
    /// name is free again. `None` if there is no such project (or it was deleted already).
    pub async fn delete_project(&self, id: &str, now: i64) -> Result<Option<ProjectDeleted>> {
        let mut tx = self.begin_write().await?;
        let done =
            sqlx::query("UPDATE projects SET deleted_at = $1 WHERE id = $2 AND deleted_at IS NULL")
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        let builds = sqlx::query(
            "UPDATE builds SET expires_at = $1, updated_at = $1 \
             WHERE project = $2 AND reaped_at IS NULL AND expires_at > $1",
        )
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        // Its repositories: the one named by its id and those under it (its build cache). Its
        // builds' tags expire (collection reaps them with their build); a tag no build owns has
        // nobody to reap it, so it goes now.
        let under = format!("{id}/%");
        sqlx::query(
            "UPDATE tags SET expires_at = $1 \
             WHERE build_id IN (SELECT b.id FROM builds b WHERE b.project = $2) AND expires_at > $1",
        )
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM tags WHERE (repo = $1 OR repo LIKE $2) AND build_id IS NULL")
            .bind(id)
            .bind(&under)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE manifests SET expires_at = $1 WHERE (repo = $2 OR repo LIKE $3) \
             AND (expires_at IS NULL OR expires_at > $1)",
        )
        .bind(now)
        .bind(id)
        .bind(&under)
        .execute(&mut *tx)
        .await?;
        let tokens = sqlx::query(
            "UPDATE project_tokens SET revoked_at = $1 WHERE project = $2 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let policies = sqlx::query(
            "UPDATE trust_policies SET deleted_at = $1 WHERE project = $2 AND deleted_at IS NULL",
        )
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(Some(ProjectDeleted {
            builds_expired: builds,
            tokens_revoked: tokens,
            policies_removed: policies,
        }))
    }

    /// Applies `project`'s count policy: every live saved build beyond the `keep.builds` most
    /// recently saved expires now, or when it turns `keep.days` old if that is later (never
    /// later than it would have). Returns the builds whose expiry moved (with `dry_run`: would
    /// move). Idempotent, so concurrent saves on several replicas converge: the last to look
    /// sees every save.
    pub async fn enforce_keep_policy(
        &self,
        project: &Project,
        now: i64,
        dry_run: bool,
    ) -> Result<Vec<String>> {
        let Some(keep) = project.keep else {
            return Ok(Vec::new());
        };
        let rows = sqlx::query(
            "SELECT id, created_at, expires_at FROM builds \
             WHERE project = $1 AND state = 'saved' AND reaped_at IS NULL AND expires_at > $2 \
             ORDER BY saved_at DESC, id DESC LIMIT $3 OFFSET $4",
        )
        .bind(&project.id)
        .bind(now)
        .bind(KEEP_BATCH)
        .bind(keep.builds)
        .fetch_all(&self.write)
        .await?;
        let mut moved = Vec::new();
        for r in &rows {
            let id: String = r.try_get("id")?;
            let Some(at) = keep.expiry(r.try_get("created_at")?, r.try_get("expires_at")?, now)
            else {
                continue;
            };
            if dry_run || self.set_build_expiry(&id, at, now).await? {
                tracing::info!(build = %id, project = %project.id, keep_builds = keep.builds,
                    keep_days = ?keep.days, expires_at = at, dry_run, "build beyond its project's count policy");
                moved.push(id);
            }
        }
        Ok(moved)
    }

    /// The projects that have a count policy.
    pub async fn projects_with_keep_policy(&self) -> Result<Vec<Project>> {
        let rows = sqlx::query(&format!(
            "SELECT {PROJECT_COLUMNS} FROM projects \
             WHERE keep_builds IS NOT NULL AND deleted_at IS NULL ORDER BY id"
        ))
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(project_row).collect()
    }

    // ---- project tokens --------------------------------------------------------------------

    pub async fn create_project_token(&self, t: &TokenInfo, secret_hash: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO project_tokens (id, project, name, secret_hash, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&t.id)
        .bind(&t.project)
        .bind(&t.name)
        .bind(secret_hash)
        .bind(t.created_at)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// The token whose secret hashes to `secret_hash`, revoked or not (`revoked_at` says).
    pub async fn project_token_by_hash(&self, secret_hash: &str) -> Result<Option<TokenInfo>> {
        let row = sqlx::query(
            "SELECT id, project, name, created_at, revoked_at FROM project_tokens \
             WHERE secret_hash = $1",
        )
        .bind(secret_hash)
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(token_row).transpose()
    }

    /// Whether the project token `id` exists and is not revoked. Read through the writer
    /// pool: a revocation must count from the moment it committed.
    pub async fn project_token_live(&self, id: &str) -> Result<bool> {
        let row = sqlx::query("SELECT 1 FROM project_tokens WHERE id = $1 AND revoked_at IS NULL")
            .bind(id)
            .fetch_optional(&self.write)
            .await?;
        Ok(row.is_some())
    }

    pub async fn list_project_tokens(&self, project: &str) -> Result<Vec<TokenInfo>> {
        let rows = sqlx::query(
            "SELECT id, project, name, created_at, revoked_at FROM project_tokens WHERE project = $1 ORDER BY created_at, id",
        )
        .bind(project)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(token_row).collect()
    }

    /// Revokes a token; false if the project has no such live token.
    pub async fn revoke_project_token(&self, project: &str, id: &str, now: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE project_tokens SET revoked_at = $1 WHERE project = $2 AND id = $3 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(project)
        .bind(id)
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    // ---- builds ----------------------------------------------------------------------------

    pub async fn create_build(&self, b: &Build) -> Result<()> {
        let spec = serde_json::to_string(&b.spec).map_err(Error::internal)?;
        sqlx::query(
            "INSERT INTO builds (id, project, state, spec, failure, created_at, updated_at, lease_expires_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&b.id)
        .bind(&b.project)
        .bind(b.state.as_str())
        .bind(spec)
        .bind(b.failure.clone())
        .bind(b.created_at)
        .bind(b.updated_at)
        .bind(b.lease_expires_at)
        .bind(b.expires_at)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// A build by id, read through the writer so a state change is seen at once.
    pub async fn build(&self, id: &str) -> Result<Option<Build>> {
        let row = sqlx::query(&format!("SELECT {BUILD_COLUMNS} FROM builds WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.write)
            .await?;
        row.as_ref().map(build_row).transpose()
    }

    /// Up to `limit` builds of `project`, newest first, starting after the `(created_at, id)`
    /// of the last build of the previous page.
    pub async fn list_builds(
        &self,
        project: &str,
        limit: i64,
        after: Option<(i64, &str)>,
    ) -> Result<Vec<Build>> {
        let (at, id) = after.unwrap_or((i64::MAX, ""));
        let rows = sqlx::query(&format!(
            "SELECT {BUILD_COLUMNS} FROM builds WHERE project = $1 \
             AND (created_at < $2 OR (created_at = $2 AND id < $3)) \
             ORDER BY created_at DESC, id DESC LIMIT $4"
        ))
        .bind(project)
        .bind(at)
        .bind(id)
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(build_row).collect()
    }

    /// [`Metadata::list_builds`] narrowed by `filter` and to builds whose spec mentions
    /// `save_tag` (a superset of those carrying it: the caller checks the spec).
    pub async fn list_builds_where(
        &self,
        project: &str,
        filter: BuildFilter,
        save_tag: Option<&str>,
        now: i64,
        limit: i64,
        after: Option<(i64, &str)>,
    ) -> Result<Vec<Build>> {
        let (at, id) = after.unwrap_or((i64::MAX, ""));
        // The spec is JSON: a save tag stands in it quoted. `_` may match more: fine.
        let mentions = save_tag.map_or_else(String::new, |t| format!("%\"{t}\"%"));
        let rows = sqlx::query(&format!(
            "SELECT {BUILD_COLUMNS} FROM builds WHERE project = $1 \
             AND (created_at < $2 OR (created_at = $2 AND id < $3)) \
             AND ($4 = 'all' OR ($4 = 'expired' AND expires_at <= $5) \
                  OR (state = $4 AND expires_at > $5)) \
             AND ($6 = '' OR spec LIKE $6) \
             ORDER BY created_at DESC, id DESC LIMIT $7"
        ))
        .bind(project)
        .bind(at)
        .bind(id)
        .bind(filter.sql())
        .bind(now)
        .bind(mentions)
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(build_row).collect()
    }

    /// Whether a live build other than `build_id` holds a manifest of `repo` that references
    /// `blob` (a layer two builds share).
    pub async fn blob_shared_with_other_builds(
        &self,
        repo: &RepoName,
        blob: &str,
        build_id: &str,
        now: i64,
    ) -> Result<bool> {
        let row = sqlx::query(
            "SELECT 1 FROM manifest_refs r \
             JOIN build_manifests bm ON bm.repo = r.repo AND bm.digest = r.manifest \
             JOIN builds b ON b.id = bm.build_id \
             WHERE r.repo = $1 AND r.child = $2 AND bm.build_id <> $3 AND b.expires_at > $4 LIMIT 1",
        )
        .bind(repo.as_str())
        .bind(blob)
        .bind(build_id)
        .bind(now)
        .fetch_optional(&self.read)
        .await?;
        Ok(row.is_some())
    }

    /// Moves a build from `from` to `to` (recording a failure reason); false if it was not in
    /// `from` any more.
    pub async fn transition_build(
        &self,
        id: &str,
        from: BuildState,
        to: BuildState,
        failure: Option<&str>,
        now: i64,
    ) -> Result<bool> {
        // `saved_at` ranks builds for count policies.
        let done = sqlx::query(
            "UPDATE builds SET state = $1, failure = $2, updated_at = $3, \
             saved_at = CASE WHEN $1 = 'saved' THEN $3 ELSE saved_at END \
             WHERE id = $4 AND state = $5",
        )
        .bind(to.as_str())
        .bind(failure.map(str::to_owned))
        .bind(now)
        .bind(id)
        .bind(from.as_str())
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Sets when a build expires, and with it its tags and the manifests only it holds; false if
    /// there is no such build, or collection has reaped it.
    pub async fn set_build_expiry(&self, id: &str, expires_at: i64, now: i64) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        // A build garbage collection has reaped cannot come back: its tags are gone.
        let done = sqlx::query(
            "UPDATE builds SET expires_at = $1, updated_at = $2 WHERE id = $3 AND reaped_at IS NULL",
        )
            .bind(expires_at)
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query("UPDATE tags SET expires_at = $1 WHERE build_id = $2")
            .bind(expires_at)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(RECOMPUTE_MANIFEST_EXPIRY)
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Deletes a build: its tags go, and its manifests expire now unless another live build holds
    /// them. Returns the tags removed (for cache invalidation); `None` if there was no build.
    pub async fn delete_build(&self, id: &str, now: i64) -> Result<Option<Vec<String>>> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("DELETE FROM builds WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        let tags = sqlx::query("SELECT name FROM tags WHERE build_id = $1")
            .bind(id)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r| r.try_get::<String, _>("name"))
            .collect::<Result<Vec<_>, _>>()?;
        sqlx::query("DELETE FROM tags WHERE build_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        // The build row is gone, so the recompute sees only the other builds holding each
        // manifest; the ownership rows are removed after it.
        sqlx::query(RECOMPUTE_MANIFEST_EXPIRY)
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM build_manifests WHERE build_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM build_images WHERE build_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(tags))
    }

    // ---- a project's images (its repository's live tags) -----------------------------------

    /// Up to `limit` live tags of `repo`, most recently pushed first, after the
    /// `(updated_at, name)` of the last tag of the previous page.
    pub async fn live_tags(
        &self,
        repo: &RepoName,
        now: i64,
        limit: i64,
        after: Option<(i64, &str)>,
    ) -> Result<Vec<TagEntry>> {
        let (at, name) = after.unwrap_or((i64::MAX, ""));
        let rows = sqlx::query(
            "SELECT name, digest, build_id, updated_at FROM tags \
             WHERE repo = $1 AND (expires_at IS NULL OR expires_at > $2) \
             AND (updated_at < $3 OR (updated_at = $3 AND name < $4)) \
             ORDER BY updated_at DESC, name DESC LIMIT $5",
        )
        .bind(repo.as_str())
        .bind(now)
        .bind(at)
        .bind(name)
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(tag_entry).collect()
    }

    /// One live tag of `repo`.
    pub async fn live_tag(
        &self,
        repo: &RepoName,
        name: &str,
        now: i64,
    ) -> Result<Option<TagEntry>> {
        let row = sqlx::query(
            "SELECT name, digest, build_id, updated_at FROM tags \
             WHERE repo = $1 AND name = $2 AND (expires_at IS NULL OR expires_at > $3)",
        )
        .bind(repo.as_str())
        .bind(name)
        .bind(now)
        .fetch_optional(&self.write)
        .await?;
        row.as_ref().map(tag_entry).transpose()
    }

    /// Records the image a builder pushed for one target and platform (the latest push wins).
    pub async fn record_build_image(
        &self,
        build_id: &str,
        image: &BuildImage,
        now: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO build_images (build_id, target, platform, digest, media_type, size, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (build_id, target, platform) DO UPDATE SET \
             digest = excluded.digest, media_type = excluded.media_type, size = excluded.size, created_at = excluded.created_at",
        )
        .bind(build_id)
        .bind(&image.target)
        .bind(&image.platform)
        .bind(&image.digest)
        .bind(&image.media_type)
        .bind(image.size as i64)
        .bind(now)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// The images of a build, read through the writer so the latest arrival is seen.
    pub async fn build_images(&self, build_id: &str) -> Result<Vec<BuildImage>> {
        let rows = sqlx::query(
            "SELECT target, platform, digest, media_type, size FROM build_images WHERE build_id = $1 ORDER BY target, platform",
        )
        .bind(build_id)
        .fetch_all(&self.write)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(BuildImage {
                    target: r.try_get("target")?,
                    platform: r.try_get("platform")?,
                    digest: r.try_get("digest")?,
                    media_type: r.try_get("media_type")?,
                    size: r.try_get::<i64, _>("size")? as u64,
                })
            })
            .collect()
    }

    /// Total bytes of a manifest and everything it references (children of an index included).
    pub async fn image_size(&self, repo: &RepoName, digest: &str) -> Result<u64> {
        let row = sqlx::query(
            // SUM of BIGINT is NUMERIC on PostgreSQL: cast back so both dialects return BIGINT.
            "SELECT CAST(COALESCE((SELECT size FROM manifests WHERE repo = $1 AND digest = $2), 0) \
              + COALESCE((SELECT SUM(b.size) FROM manifest_refs r JOIN blobs b ON b.digest = r.child \
                          WHERE r.repo = $1 AND r.kind = 'blob' AND (r.manifest = $2 OR r.manifest IN \
                          (SELECT child FROM manifest_refs WHERE repo = $1 AND manifest = $2 AND kind = 'manifest'))), 0) \
              + COALESCE((SELECT SUM(m.size) FROM manifest_refs r JOIN manifests m ON m.repo = r.repo AND m.digest = r.child \
                          WHERE r.repo = $1 AND r.manifest = $2 AND r.kind = 'manifest'), 0) AS BIGINT) AS total",
        )
        .bind(repo.as_str())
        .bind(digest)
        .fetch_one(&self.read)
        .await?;
        Ok(row.try_get::<i64, _>("total")?.max(0) as u64)
    }

    /// Points `tag` at the stored manifest `digest` as a tag of `owner`'s build.
    pub async fn tag_manifest(
        &self,
        repo: &RepoName,
        tag: &crate::names::Tag,
        digest: &crate::digest::Digest,
        owner: &super::Owner,
    ) -> Result<()> {
        sqlx::query(super::manifests::UPSERT_TAG)
            .bind(repo.as_str())
            .bind(tag.as_str())
            .bind(digest.as_str())
            .bind(self.clock.now_ms())
            .bind(&owner.build_id)
            .bind(owner.expires_at)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    // ---- what a build-scoped credential may read -------------------------------------------

    /// The build that owns `tag` in `repo`, if any.
    pub async fn tag_owner(&self, repo: &RepoName, tag: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT build_id FROM tags WHERE repo = $1 AND name = $2")
            .bind(repo.as_str())
            .bind(tag)
            .fetch_optional(&self.read)
            .await?;
        Ok(row
            .map(|r| r.try_get::<Option<String>, _>("build_id"))
            .transpose()?
            .flatten())
    }

    pub async fn build_has_manifest(
        &self,
        build_id: &str,
        repo: &RepoName,
        digest: &str,
    ) -> Result<bool> {
        let row = sqlx::query(
            "SELECT 1 FROM build_manifests WHERE build_id = $1 AND repo = $2 AND digest = $3",
        )
        .bind(build_id)
        .bind(repo.as_str())
        .bind(digest)
        .fetch_optional(&self.read)
        .await?;
        Ok(row.is_some())
    }

    /// Whether one of the build's manifests references blob `digest`.
    pub async fn build_references_blob(
        &self,
        build_id: &str,
        repo: &RepoName,
        digest: &str,
    ) -> Result<bool> {
        let row = sqlx::query(
            "SELECT 1 FROM build_manifests bm JOIN manifest_refs r ON r.repo = bm.repo AND r.manifest = bm.digest \
             WHERE bm.build_id = $1 AND bm.repo = $2 AND r.child = $3 LIMIT 1",
        )
        .bind(build_id)
        .bind(repo.as_str())
        .bind(digest)
        .fetch_optional(&self.read)
        .await?;
        Ok(row.is_some())
    }
}

fn token_row(r: &AnyRow) -> Result<TokenInfo> {
    Ok(TokenInfo {
        id: r.try_get("id")?,
        project: r.try_get("project")?,
        name: r.try_get("name")?,
        created_at: r.try_get("created_at")?,
        revoked_at: r.try_get("revoked_at")?,
    })
}
