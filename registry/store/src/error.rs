//! The store's one error type: what went wrong below HTTP, in the store's own terms.
//!
//! It says *what* failed (a backend unreachable, a transaction lost a race, a manifest that
//! does not validate, bytes missing from storage), never how a client is told: the registry maps
//! each variant once into its HTTP error (status, OCI code, envelope), as Garage maps its helper
//! errors into its API errors. Causes are kept as text for the log; a client never sees them.

/// A failure of the metadata database, the blob store or the content they hold.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A backend (database, object store) could not be reached or gave up: retrying may succeed.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// Two transactions waited for each other and the database gave up on this one: the work
    /// may simply be done again.
    #[error("transaction conflict: {0}")]
    Conflict(String),
    /// The request conflicts with what is stored (e.g. saving a build that has no image).
    #[error("{0}")]
    StateConflict(String),
    /// A manifest refers to a blob or child manifest the repository does not hold.
    #[error("blob unknown: {digest}")]
    BlobUnknown { digest: String },
    /// A manifest that does not validate (the detail says why; it is sent to the client).
    #[error("invalid manifest: {0}")]
    InvalidManifest(String),
    /// Another request is writing to the same upload.
    #[error("another request is writing to this upload")]
    UploadBusy,
    /// An upload's stored bytes are gone, so it cannot go on: its commit moved them away and
    /// the answer was lost (the process killed before the session was closed), or they were
    /// removed. Only a new upload helps.
    #[error("the bytes of upload {upload} are gone: {why}")]
    UploadLost { upload: String, why: String },
    /// The bytes of a stored blob are gone from storage (deleted outside the registry, or
    /// lost): no retry mends it.
    #[error("blob data missing at {location}")]
    DataMissing { location: String },
    /// The disk (or quota) is full: what was sent is not kept; a retry may succeed once space
    /// is freed.
    #[error("storage full: {0}")]
    StorageFull(String),
    /// Stored data the store cannot read back (a corrupt row, state or key).
    #[error("corrupt: {0}")]
    Corrupt(String),
    /// Any other fault of the store.
    #[error("internal: {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        Error::Internal(cause.to_string())
    }

    pub fn unavailable(cause: impl std::fmt::Display) -> Self {
        Error::Unavailable(cause.to_string())
    }

    pub fn corrupt(what: impl std::fmt::Display) -> Self {
        Error::Corrupt(what.to_string())
    }

    pub fn manifest_invalid(detail: impl Into<String>) -> Self {
        Error::InvalidManifest(detail.into())
    }

    pub fn blob_unknown(digest: impl std::fmt::Display) -> Self {
        Error::BlobUnknown {
            digest: digest.to_string(),
        }
    }

    pub fn data_missing(location: &str) -> Self {
        Error::DataMissing {
            location: location.to_owned(),
        }
    }

    pub fn upload_lost(upload: &str, why: impl std::fmt::Display) -> Self {
        Error::UploadLost {
            upload: upload.to_owned(),
            why: why.to_string(),
        }
    }

    pub fn is_data_missing(&self) -> bool {
        matches!(self, Error::DataMissing { .. })
    }

    /// A deadlock or serialization failure between concurrent transactions: retry.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Conflict(_))
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Tls(_) => Error::Unavailable(format!("database: {e}")),
            sqlx::Error::Database(ref db) if db.message().contains("database is locked") => {
                Error::Unavailable(format!("database: {e}"))
            }
            // PostgreSQL gave up on one of two transactions waiting for each other.
            sqlx::Error::Database(ref db)
                if matches!(db.code().as_deref(), Some("40P01") | Some("40001")) =>
            {
                Error::Conflict(format!("database: {e}"))
            }
            other => Error::Internal(format!("database: {other}")),
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        // ENOSPC, EDQUOT: the disk (or the quota) is full.
        let full = e.kind() == std::io::ErrorKind::StorageFull
            || e.kind() == std::io::ErrorKind::QuotaExceeded
            || matches!(e.raw_os_error(), Some(28 | 122));
        if full {
            return Error::StorageFull(format!("storage: {e}"));
        }
        Error::Internal(format!("storage: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_disk_is_its_own_kind() {
        let e = Error::from(std::io::Error::from_raw_os_error(28));
        assert!(matches!(e, Error::StorageFull(_)), "{e:?}");
        let e = Error::from(std::io::Error::other("x"));
        assert!(matches!(e, Error::Internal(_)), "{e:?}");
    }
}
