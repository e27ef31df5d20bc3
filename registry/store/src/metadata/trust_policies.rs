//! Trust policies in SQL: which CI identities may exchange their OIDC tokens for credentials on
//! a project. The store keeps each policy's provider-specific rules as opaque JSON; what they
//! mean is the registry's `oidc` module's business.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::Metadata;
use crate::error::Result;

/// A trust policy as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPolicy {
    pub id: String,
    pub project: String,
    /// `github`, `gitlab`, `circleci` or `buildkite`.
    pub provider: String,
    /// `build` or `pull`.
    pub access: String,
    /// The provider-specific rules, as JSON.
    pub rules: String,
    pub created_at: i64,
    pub deleted_at: Option<i64>,
}

fn policy_row(r: &AnyRow) -> Result<StoredPolicy> {
    Ok(StoredPolicy {
        id: r.try_get("id")?,
        project: r.try_get("project")?,
        provider: r.try_get("provider")?,
        access: r.try_get("access")?,
        rules: r.try_get("rules")?,
        created_at: r.try_get("created_at")?,
        deleted_at: r.try_get("deleted_at")?,
    })
}

const COLUMNS: &str = "id, project, provider, access, rules, created_at, deleted_at";

impl Metadata {
    pub async fn create_trust_policy(&self, p: &StoredPolicy) -> Result<()> {
        sqlx::query(
            "INSERT INTO trust_policies (id, project, provider, access, rules, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&p.id)
        .bind(&p.project)
        .bind(&p.provider)
        .bind(&p.access)
        .bind(&p.rules)
        .bind(p.created_at)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// The project's live policies, oldest first. Read through the writer pool, like every
    /// revocation check: a deleted policy must stop matching from the moment its deletion
    /// committed.
    pub async fn trust_policies(&self, project: &str) -> Result<Vec<StoredPolicy>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM trust_policies WHERE project = $1 AND deleted_at IS NULL \
             ORDER BY created_at, id"
        ))
        .bind(project)
        .fetch_all(&self.write)
        .await?;
        rows.iter().map(policy_row).collect()
    }

    /// Every project's live policies for `provider` (a registry token request names no project
    /// until its scope does; `docker login` sends none).
    pub async fn trust_policies_of_provider(&self, provider: &str) -> Result<Vec<StoredPolicy>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM trust_policies WHERE provider = $1 AND deleted_at IS NULL \
             ORDER BY created_at, id"
        ))
        .bind(provider)
        .fetch_all(&self.write)
        .await?;
        rows.iter().map(policy_row).collect()
    }

    /// Whether the policy `id` exists and is not deleted (what its credentials hang on).
    pub async fn trust_policy_live(&self, id: &str) -> Result<bool> {
        let row = sqlx::query("SELECT 1 FROM trust_policies WHERE id = $1 AND deleted_at IS NULL")
            .bind(id)
            .fetch_optional(&self.write)
            .await?;
        Ok(row.is_some())
    }

    /// Deletes a policy; false if the project has no such live policy.
    pub async fn delete_trust_policy(&self, project: &str, id: &str, now: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE trust_policies SET deleted_at = $1 \
             WHERE project = $2 AND id = $3 AND deleted_at IS NULL",
        )
        .bind(now)
        .bind(project)
        .bind(id)
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected() > 0)
    }
}
