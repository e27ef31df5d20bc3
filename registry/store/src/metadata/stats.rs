//! What the registry's gauges read from the database at a scrape: builds by state, open upload
//! sessions, what each repository holds (one row each in `repo_usage`, kept by the
//! transactions that link and unlink blobs, so no scan of the links), and the pools' use.

use sqlx::Row;

use super::Metadata;
use crate::error::Result;

/// Counts from the database, for the gauges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Builds not yet reaped by state; past their expiry as `expired`.
    pub builds: Vec<(String, u64)>,
    /// Upload sessions open.
    pub uploads: u64,
    /// Per repository: bytes and blobs linked into it.
    pub usage: Vec<(String, u64, u64)>,
}

/// One connection pool's use at this moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolUse {
    pub pool: &'static str,
    pub in_use: u64,
    pub idle: u64,
    pub max: u64,
}

impl Metadata {
    /// The counts behind the gauges (a few indexed queries; `repo_usage` has a row per
    /// repository).
    pub async fn stats(&self) -> Result<Stats> {
        let now = self.clock.now_ms();
        let builds = sqlx::query(
            "SELECT CASE WHEN expires_at <= $1 THEN 'expired' ELSE state END AS s, COUNT(*) AS n \
             FROM builds WHERE reaped_at IS NULL GROUP BY 1",
        )
        .bind(now)
        .fetch_all(&self.read)
        .await?
        .iter()
        .map(|r| Ok((r.try_get("s")?, r.try_get::<i64, _>("n")?.max(0) as u64)))
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
        let uploads: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM uploads")
            .fetch_one(&self.read)
            .await?;
        let usage = sqlx::query("SELECT repo, bytes, blobs FROM repo_usage ORDER BY repo")
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(|r| {
                Ok((
                    r.try_get("repo")?,
                    r.try_get::<i64, _>("bytes")?.max(0) as u64,
                    r.try_get::<i64, _>("blobs")?.max(0) as u64,
                ))
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        Ok(Stats {
            builds,
            uploads: uploads.max(0) as u64,
            usage,
        })
    }

    /// The connection pools' use (one pool serves both on PostgreSQL: reported once, as `read`).
    pub fn pools(&self) -> Vec<PoolUse> {
        let of = |pool: &'static str, p: &sqlx::AnyPool| {
            let size = u64::from(p.size());
            let idle = p.num_idle() as u64;
            PoolUse {
                pool,
                in_use: size.saturating_sub(idle),
                idle,
                max: u64::from(p.options().get_max_connections()),
            }
        };
        if self.dialect.single_writer() {
            vec![of("read", &self.read), of("write", &self.write)]
        } else {
            vec![of("read", &self.read)]
        }
    }

    /// Opens a write transaction, recording the wait for its connection.
    pub(super) async fn begin_write(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        let started = std::time::Instant::now();
        let tx = self.write.begin().await;
        crate::metrics::write_acquired(started.elapsed());
        tx
    }
}
