//! Every difference between the two SQL databases, in one type. Queries elsewhere use only the
//! syntax both share (`$N` placeholders, `ON CONFLICT`, `lower()`); what cannot be shared
//! (pool shape, migrations, pragmas, the collection lock, change notifications) asks here.

use sqlx::migrate::Migrator;

// Migrations applied by a newer release are ignored, not refused: they only add, and during a
// rolling upgrade (or after a rollback) a replica of the previous release must still start on
// the database the new one migrated.
static SQLITE_MIGRATIONS: Migrator = Migrator {
    ignore_missing: true,
    ..sqlx::migrate!("../../migrations/sqlite")
};
#[cfg(feature = "postgres")]
static POSTGRES_MIGRATIONS: Migrator = Migrator {
    ignore_missing: true,
    ..sqlx::migrate!("../../migrations/postgres")
};

/// The statements of a session-level advisory lock: held by one connection, released with it
/// (or when its process dies).
#[derive(Debug, Clone, Copy)]
pub struct AdvisoryLock {
    /// Takes the lock on key `$1` if it is free: answers `locked` (a boolean).
    pub take: &'static str,
    /// Releases the lock on key `$1`.
    pub release: &'static str,
}

/// Which database the metadata lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// One process's file (the embedded default): one writer at a time, no other replica.
    Sqlite,
    /// Shared by replicas: many writers, changes announced with `NOTIFY`, the collection lock
    /// an advisory lock.
    #[cfg(feature = "postgres")]
    Postgres,
}

impl Dialect {
    /// The dialect a database URL names (`sqlite:...`, `postgres://...`).
    pub fn of(url: &str) -> anyhow::Result<Self> {
        if url.starts_with("sqlite:") {
            return Ok(Dialect::Sqlite);
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            #[cfg(feature = "postgres")]
            return Ok(Dialect::Postgres);
            #[cfg(not(feature = "postgres"))]
            anyhow::bail!("this build has no PostgreSQL support (the `postgres` feature)");
        }
        anyhow::bail!("the database URL must start with sqlite: or postgres://")
    }

    pub fn migrations(self) -> &'static Migrator {
        match self {
            Dialect::Sqlite => &SQLITE_MIGRATIONS,
            #[cfg(feature = "postgres")]
            Dialect::Postgres => &POSTGRES_MIGRATIONS,
        }
    }

    /// Connections the read pool keeps.
    pub fn read_connections(self) -> u32 {
        match self {
            Dialect::Sqlite => 8,
            #[cfg(feature = "postgres")]
            Dialect::Postgres => 16,
        }
    }

    /// Whether writes go through a pool of their own, of one connection. SQLite allows one
    /// writer at a time, and a deferred transaction that upgrades to a write while another
    /// connection writes fails with `SQLITE_BUSY`: one writer serializes them without errors.
    pub fn single_writer(self) -> bool {
        self == Dialect::Sqlite
    }

    /// Statements run on each new connection. SQLite's default page cache (2 MB) is small for
    /// indexes over hundreds of thousands of rows: 16 MB per connection (allocated only as
    /// pages are read).
    pub fn on_connect(self) -> &'static [&'static str] {
        match self {
            Dialect::Sqlite => &["PRAGMA cache_size = -16384"],
            #[cfg(feature = "postgres")]
            Dialect::Postgres => &[],
        }
    }

    /// Statements run once on the writer at start (WAL lets readers proceed while the writer
    /// commits; it persists in the file).
    pub fn on_open(self) -> &'static [&'static str] {
        match self {
            Dialect::Sqlite => &["PRAGMA journal_mode=WAL"],
            #[cfg(feature = "postgres")]
            Dialect::Postgres => &[],
        }
    }

    /// Whether other replicas may share the database, so changes must be announced to them.
    pub fn shared(self) -> bool {
        !self.single_writer()
    }

    /// The statement that announces `$2` on channel `$1` to the other replicas, where there
    /// can be any.
    pub fn notify(self) -> Option<&'static str> {
        match self {
            Dialect::Sqlite => None,
            #[cfg(feature = "postgres")]
            Dialect::Postgres => Some("SELECT pg_notify($1, $2)"),
        }
    }

    /// How one collector at a time is chosen: an advisory lock, or (`None`) a lease row, which
    /// the one process that owns an SQLite file does not need to survive.
    pub fn advisory_lock(self) -> Option<AdvisoryLock> {
        match self {
            Dialect::Sqlite => None,
            #[cfg(feature = "postgres")]
            Dialect::Postgres => Some(AdvisoryLock {
                take: "SELECT pg_try_advisory_lock($1) AS locked",
                release: "SELECT pg_advisory_unlock($1)",
            }),
        }
    }

    /// The statement that folds a write-ahead log into the database file, if there is one.
    pub fn checkpoint(self) -> Option<&'static str> {
        match self {
            Dialect::Sqlite => Some("PRAGMA wal_checkpoint(TRUNCATE)"),
            #[cfg(feature = "postgres")]
            Dialect::Postgres => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_urls() {
        assert_eq!(Dialect::of("sqlite:x.db").unwrap(), Dialect::Sqlite);
        assert!(Dialect::of("mysql://x").is_err());
        #[cfg(feature = "postgres")]
        assert_eq!(Dialect::of("postgres://u@h/db").unwrap(), Dialect::Postgres);
        #[cfg(not(feature = "postgres"))]
        assert!(Dialect::of("postgres://u@h/db").is_err());
    }
}
