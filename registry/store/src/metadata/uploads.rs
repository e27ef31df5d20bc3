//! Upload sessions: a session's row is created by its first chunk and moved forward by each
//! next one with a compare-and-set, so whichever request wins a race decides what it holds.

use sqlx::Row;

use super::Metadata;
use crate::error::Result;
use crate::names::RepoName;

/// An upload session's row (created by its first chunk).
#[derive(Debug, Clone)]
pub struct Upload {
    pub repo: String,
    pub size: u64,
    pub hash_state: Vec<u8>,
    /// The blob store's state for the session (see [`crate::storage::Written`]).
    pub store_state: Vec<u8>,
    /// Finished or cancelled: the id no longer names a session.
    pub closed: bool,
}

impl Metadata {
    // ---- uploads ---------------------------------------------------------------------------

    pub async fn upload(&self, id: &str) -> Result<Option<Upload>> {
        // Read through the writer pool: a session is read right after its last write, possibly
        // by a request that raced with it, and must see the latest size.
        let row =
            sqlx::query("SELECT repo, size, hash_state, store_state FROM uploads WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.write)
                .await?;
        let Some(row) = row else { return Ok(None) };
        let size: i64 = row.try_get("size")?;
        Ok(Some(Upload {
            repo: row.try_get("repo")?,
            size: size.max(0) as u64,
            hash_state: row.try_get("hash_state")?,
            store_state: row.try_get("store_state")?,
            closed: size < 0,
        }))
    }

    /// Moves an upload from `old_size` to `new_size`, creating its row on the first chunk;
    /// false if another request moved it first.
    pub async fn advance_upload(
        &self,
        id: &str,
        repo: &RepoName,
        old_size: u64,
        new_size: u64,
        hash_state: &[u8],
        store_state: &[u8],
    ) -> Result<bool> {
        // Upload sessions live by the wall clock (see `Clock::wall_ms`).
        let now = self.clock.wall_ms();
        if old_size == 0 {
            let created = sqlx::query(
                "INSERT INTO uploads (id, repo, size, hash_state, store_state, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT DO NOTHING",
            )
            .bind(id)
            .bind(repo.as_str())
            .bind(new_size as i64)
            .bind(hash_state.to_vec())
            .bind(store_state.to_vec())
            .bind(now)
            .execute(&self.write)
            .await?;
            if created.rows_affected() == 1 {
                return Ok(true);
            }
        }
        let done = sqlx::query(
            "UPDATE uploads SET size = $1, hash_state = $2, store_state = $3, updated_at = $4 WHERE id = $5 AND size = $6",
        )
        .bind(new_size as i64)
        .bind(hash_state.to_vec())
        .bind(store_state.to_vec())
        .bind(now)
        .bind(id)
        .bind(old_size as i64)
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Marks a session finished or cancelled, so its id is unknown from now on (GC removes the
    /// row once the id has expired anyway).
    pub async fn close_upload(&self, id: &str, repo: &RepoName) -> Result<()> {
        let now = self.clock.wall_ms();
        sqlx::query(
            "INSERT INTO uploads (id, repo, size, hash_state, created_at, updated_at) VALUES ($1, $2, -1, $3, $4, $4) \
             ON CONFLICT (id) DO UPDATE SET size = -1, hash_state = excluded.hash_state, updated_at = excluded.updated_at",
        )
        .bind(id)
        .bind(repo.as_str())
        .bind(Vec::<u8>::new())
        .bind(now)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    pub async fn delete_upload(&self, id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM uploads WHERE id = $1")
            .bind(id)
            .execute(&self.write)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}
