//! What can go wrong with the database, and which of it is the database being unavailable.

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot connect to the database: {0}")]
    Connect(#[from] ConnectError),
    #[error("no database connection available: {0}")]
    Unavailable(#[from] r2d2::Error),
    #[error("database query failed: {0}")]
    Query(#[from] diesel::result::Error),
    #[error("database.url: {0}")]
    InvalidUrl(String),
    #[error("database migration failed: {0}")]
    Migration(String),
    #[error("the database task did not finish: {0}")]
    Task(String),
    #[error("too much database work is waiting")]
    Busy,
    /// The breaker is open: the database was found unreachable and no probe has reached it
    /// since. Refused without trying, so it costs the request nothing.
    #[error("the database is unreachable (refused at once until a probe reaches it)")]
    Down,
    /// Serialization failures (SQLSTATE 40001) beyond the retries, or after part of the job
    /// had committed.
    #[error("the transaction kept conflicting with concurrent ones (serialization failure)")]
    Conflict,
}

impl DbError {
    /// True when the database cannot be reached at all, as opposed to a query going wrong: the
    /// HTTP layer answers these with 503 and `Retry-After`. A connection that died under a
    /// query (the server restarted, the network dropped) counts: the same request will work
    /// once the pool has reconnected. So does a serialization failure the retries did not
    /// get past: the same request is likely to pass a moment later.
    pub fn is_unavailable(&self) -> bool {
        use diesel::result::{DatabaseErrorKind, Error};
        match self {
            DbError::Connect(_)
            | DbError::Unavailable(_)
            | DbError::Busy
            | DbError::Down
            | DbError::Conflict => true,
            DbError::Query(Error::DatabaseError(
                DatabaseErrorKind::ClosedConnection
                | DatabaseErrorKind::UnableToSendCommand
                | DatabaseErrorKind::SerializationFailure,
                _,
            ))
            | DbError::Query(Error::BrokenTransactionManager) => true,
            // SQLite reports these as plain errors with the library's fixed messages.
            DbError::Query(Error::DatabaseError(DatabaseErrorKind::Unknown, info)) => {
                is_transient_sqlite_error(info.message())
            }
            _ => false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("{0}")]
    Connection(#[from] diesel::ConnectionError),
    #[error("{0}")]
    Setup(#[from] diesel::result::Error),
    #[error("cannot create the directory for {path}: {source}")]
    Directory {
        path: String,
        source: std::io::Error,
    },
}

/// sqlite3_errmsg texts of SQLITE_BUSY, SQLITE_LOCKED, SQLITE_FULL and SQLITE_READONLY, and
/// the ROLLBACK failure that follows when SQLite has already rolled the transaction back by
/// itself (it does so on exactly such errors: full, I/O, busy, out of memory).
const TRANSIENT: [&str; 5] = [
    "database is locked",
    "database table is locked",
    "database or disk is full",
    "attempt to write a readonly database",
    "cannot rollback - no transaction is active",
];

/// Whether an error SQLite reports with no kind of its own is one that can pass by itself:
/// another process holding the write lock past busy_timeout, a full disk, a file that has
/// become read-only. None is the client's doing.
fn is_transient_sqlite_error(message: &str) -> bool {
    TRANSIENT.iter().any(|m| message.starts_with(m))
}
