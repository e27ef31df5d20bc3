//! The error envelope every failed `/api/v1` (and `/v2/`) request answers with.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `{"errors":[{"code","message","detail"}]}`, as the distribution spec defines it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub errors: Vec<ErrorEntry>,
}

/// One error: a code from the distribution spec or the control plane's own
/// (`INVALID_REQUEST`, `NOT_FOUND`, `CONFLICT`), and what went wrong.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorEntry {
    #[schema(example = "NOT_FOUND")]
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub detail: Option<serde_json::Value>,
}

impl ErrorBody {
    /// The first error's message (what a CLI shows), if there is one.
    pub fn message(&self) -> Option<&str> {
        self.errors.first().map(|e| e.message.as_str())
    }
}
