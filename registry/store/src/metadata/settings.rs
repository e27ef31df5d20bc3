//! Registry-wide settings shared by every replica (the upload-id key, the token signing key).

use sqlx::Row;

use super::Metadata;
use crate::error::{Error, Result};

impl Metadata {
    /// The key that signs upload session ids, created on first use and shared by all replicas.
    pub async fn upload_key(&self) -> Result<Vec<u8>> {
        let value = self
            .shared_setting("upload_key", || hex::encode(rand::random::<[u8; 32]>()))
            .await?;
        hex::decode(value).map_err(|_| Error::corrupt("upload key in settings"))
    }

    /// A registry-wide setting: the stored value, or `fresh()` stored now if there is none yet
    /// (when replicas start together, the first insert wins and all read the same value).
    pub async fn shared_setting(
        &self,
        name: &str,
        fresh: impl FnOnce() -> String,
    ) -> Result<String> {
        sqlx::query("INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(name)
            .bind(fresh())
            .execute(&self.write)
            .await?;
        let row = sqlx::query("SELECT value FROM settings WHERE name = $1")
            .bind(name)
            .fetch_one(&self.write)
            .await?;
        Ok(row.try_get("value")?)
    }
}
