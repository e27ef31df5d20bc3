//! What a project holds and how it is used, for the dashboard: per-project counts and storage
//! now, and the hourly samples of storage, saved builds and pulls that draw its usage over time.

use sqlx::Row;

use super::Metadata;
use crate::error::Result;
use crate::model::cache_repository;

/// One project's builds and storage now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProjectTotals {
    /// Every build the project has (not yet reaped).
    pub builds: i64,
    /// Saved builds that have not expired.
    pub live_saved: i64,
    /// Bytes of the blobs linked into its repositories (its own and its build cache).
    pub storage_bytes: i64,
}

/// One sample of a project's usage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsagePoint {
    /// The start of the hour it stands for (Unix milliseconds).
    pub at: i64,
    pub storage_bytes: i64,
    pub builds_saved: i64,
    pub pulls: i64,
}

/// The hour `ms` falls in.
pub fn hour_of(ms: i64) -> i64 {
    ms - ms.rem_euclid(3_600_000)
}

impl Metadata {
    /// Builds and storage of `project` now.
    pub async fn project_totals(&self, project: &str, now: i64) -> Result<ProjectTotals> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS builds, \
                    CAST(COALESCE(SUM(CASE WHEN state = 'saved' AND expires_at > $2 THEN 1 ELSE 0 END), 0) AS BIGINT) AS live \
             FROM builds WHERE project = $1 AND reaped_at IS NULL",
        )
        .bind(project)
        .bind(now)
        .fetch_one(&self.read)
        .await?;
        let storage = sqlx::query(
            // SUM of a BIGINT is a NUMERIC on PostgreSQL: cast back.
            "SELECT CAST(COALESCE(SUM(bytes), 0) AS BIGINT) AS bytes FROM repo_usage WHERE repo = $1 OR repo = $2",
        )
        .bind(project)
        .bind(cache_repository(project))
        .fetch_one(&self.read)
        .await?;
        Ok(ProjectTotals {
            builds: row.try_get("builds")?,
            live_saved: row.try_get("live")?,
            storage_bytes: storage.try_get("bytes")?,
        })
    }

    /// Records a sample in `at`'s hour: storage and saved builds as they are now, and `pulls`
    /// more manifest requests (added to what other replicas counted in that hour).
    pub async fn record_usage(
        &self,
        project: &str,
        at: i64,
        storage_bytes: i64,
        builds_saved: i64,
        pulls: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO project_usage (project, at, storage_bytes, builds_saved, pulls) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (project, at) DO UPDATE SET storage_bytes = excluded.storage_bytes, \
             builds_saved = excluded.builds_saved, pulls = project_usage.pulls + excluded.pulls",
        )
        .bind(project)
        .bind(hour_of(at))
        .bind(storage_bytes)
        .bind(builds_saved)
        .bind(pulls)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// The samples of `project` since `since`, oldest first.
    pub async fn usage_since(&self, project: &str, since: i64) -> Result<Vec<UsagePoint>> {
        let rows = sqlx::query(
            "SELECT at, storage_bytes, builds_saved, pulls FROM project_usage \
             WHERE project = $1 AND at >= $2 ORDER BY at",
        )
        .bind(project)
        .bind(hour_of(since))
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(UsagePoint {
                    at: r.try_get("at")?,
                    storage_bytes: r.try_get("storage_bytes")?,
                    builds_saved: r.try_get("builds_saved")?,
                    pulls: r.try_get("pulls")?,
                })
            })
            .collect()
    }
}
