//! Dashboard sessions in SQL: what a signed-in browser's cookie stands for. Only the SHA-256 of
//! the cookie's value is stored; a session ends at its `expires_at`, when it is deleted
//! (signing out), or when the project token it was opened with is revoked.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::Metadata;
use crate::error::Result;

/// A session as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UiSession {
    pub id_hash: String,
    /// `admin` or `project`.
    pub kind: String,
    /// The project of a project token's session.
    pub project: Option<String>,
    /// The project token's id, or the admin token's hash (a new admin token ends the sessions
    /// of the old one).
    pub token_id: String,
    /// The token every form of this session carries.
    pub csrf: String,
    pub created_at: i64,
    pub expires_at: i64,
}

fn session_row(r: &AnyRow) -> Result<UiSession> {
    Ok(UiSession {
        id_hash: r.try_get("id_hash")?,
        kind: r.try_get("kind")?,
        project: r.try_get("project")?,
        token_id: r.try_get("token_id")?,
        csrf: r.try_get("csrf")?,
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
    })
}

impl Metadata {
    /// Stores a new session, first forgetting those that ended before `now`.
    pub async fn create_ui_session(&self, s: &UiSession, now: i64) -> Result<()> {
        sqlx::query("DELETE FROM ui_sessions WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.write)
            .await?;
        sqlx::query(
            "INSERT INTO ui_sessions (id_hash, kind, project, token_id, csrf, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&s.id_hash)
        .bind(&s.kind)
        .bind(s.project.clone())
        .bind(&s.token_id)
        .bind(&s.csrf)
        .bind(s.created_at)
        .bind(s.expires_at)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// The session whose cookie hashes to `id_hash`, if it has not ended by `now`. Read through
    /// the writer, so a sign-out counts from the moment it committed.
    pub async fn ui_session(&self, id_hash: &str, now: i64) -> Result<Option<UiSession>> {
        let row = sqlx::query(
            "SELECT id_hash, kind, project, token_id, csrf, created_at, expires_at FROM ui_sessions \
             WHERE id_hash = $1 AND expires_at > $2",
        )
        .bind(id_hash)
        .bind(now)
        .fetch_optional(&self.write)
        .await?;
        row.as_ref().map(session_row).transpose()
    }

    /// Ends a session; false if there was none.
    pub async fn delete_ui_session(&self, id_hash: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM ui_sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(&self.write)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}
