//! Which backend a URL names, the one connection type over both, its errors, and the r2d2
//! manager and pool that open and hand out connections. Besides `dialect`, the only place that
//! looks at which backend it has: here the connection is established and the pool sized.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;

pub use super::error::{ConnectError, DbError};
use super::sqlite;

#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Postgres(diesel::PgConnection),
    Sqlite(diesel::SqliteConnection),
}

pub type Pool = r2d2::Pool<ConnectionManager>;
pub type PooledConnection = r2d2::PooledConnection<ConnectionManager>;

/// Which backend a `DATABASE_URL` names. The scheme decides, so a PostgreSQL URL that cannot
/// connect reports PostgreSQL's own error rather than falling through to SQLite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseTarget {
    Sqlite { path: PathBuf },
    Postgres { url: String },
}

impl DatabaseTarget {
    pub fn parse(url: &str) -> Result<DatabaseTarget, String> {
        if let Some(path) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            if path.is_empty() {
                return Err("sqlite:// needs a file path, e.g. sqlite://data/tessera.db".into());
            }
            return Ok(DatabaseTarget::Sqlite {
                path: PathBuf::from(path),
            });
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(DatabaseTarget::Postgres {
                url: url.to_string(),
            });
        }
        let scheme = url.split_once(':').map_or("none", |(s, _)| s);
        Err(format!(
            "unsupported scheme {scheme:?}: use sqlite://PATH or postgres://…"
        ))
    }

    pub fn backend_name(&self) -> &'static str {
        match self {
            DatabaseTarget::Sqlite { .. } => "sqlite",
            DatabaseTarget::Postgres { .. } => "postgres",
        }
    }
}

/// An r2d2 manager that opens the backend the URL names and prepares every SQLite connection.
#[derive(Debug)]
pub struct ConnectionManager {
    target: DatabaseTarget,
    sqlite_busy_timeout_ms: u32,
}

impl ConnectionManager {
    /// The PostgreSQL URL goes to libpq as it is (every `sslmode`, `sslrootcert` and other
    /// parameter is libpq's to read), with `connect_timeout` added unless it names its own:
    /// without one, a connection to an address that drops packets waits for TCP to give up
    /// (minutes), and so would the breaker's probe.
    pub fn new(target: DatabaseTarget, sqlite_busy_timeout_ms: u32) -> Self {
        ConnectionManager::with_connect_timeout(target, sqlite_busy_timeout_ms, 10)
    }

    pub fn with_connect_timeout(
        target: DatabaseTarget,
        sqlite_busy_timeout_ms: u32,
        connect_timeout_secs: u64,
    ) -> Self {
        let target = match target {
            DatabaseTarget::Postgres { url } => DatabaseTarget::Postgres {
                url: with_connect_timeout(&url, connect_timeout_secs.max(1)),
            },
            sqlite => sqlite,
        };
        ConnectionManager {
            target,
            sqlite_busy_timeout_ms,
        }
    }

    fn establish(&self) -> Result<DbConnection, ConnectError> {
        match &self.target {
            DatabaseTarget::Postgres { url } => {
                let mut pg = diesel::PgConnection::establish(url)?;
                // Tells `Database::run` whether a failed job met a serialization failure.
                pg.set_instrumentation(super::retry::observe);
                Ok(DbConnection::Postgres(pg))
            }
            DatabaseTarget::Sqlite { path } => Ok(DbConnection::Sqlite(sqlite::establish(
                path,
                self.sqlite_busy_timeout_ms,
            )?)),
        }
    }
}

impl r2d2::ManageConnection for ConnectionManager {
    type Connection = DbConnection;
    type Error = ConnectError;

    fn connect(&self) -> Result<DbConnection, ConnectError> {
        self.establish()
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), ConnectError> {
        Ok(conn.batch_execute("SELECT 1")?)
    }

    /// Only what the failed-job check found dead; a healthy connection costs nothing.
    fn has_broken(&self, _conn: &mut DbConnection) -> bool {
        CONNECTION_DEAD.replace(false)
    }
}

thread_local! {
    /// Set on a database thread when the connection its last job used no longer answers, read
    /// (and cleared) by `has_broken` as that connection goes back to the pool on the same
    /// thread, so the pool drops it and opens a fresh one.
    static CONNECTION_DEAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Has the pool drop, rather than reuse, the connection this thread's job holds.
pub(super) fn discard_connection() {
    CONNECTION_DEAD.set(true);
}

/// `url` with libpq's `connect_timeout` parameter, unless it has one.
fn with_connect_timeout(url: &str, secs: u64) -> String {
    let query = url.split_once('?').map_or("", |(_, q)| q);
    if query
        .split('&')
        .any(|pair| pair.split('=').next() == Some("connect_timeout"))
    {
        return url.to_string();
    }
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}connect_timeout={secs}")
}

#[derive(Debug)]
struct PoolErrorLogger;

impl r2d2::HandleError<ConnectError> for PoolErrorLogger {
    fn handle_error(&self, error: ConnectError) {
        tracing::warn!(%error, "database connection failed");
    }
}

/// A database ready to serve: its pool, how many threads should run its work, and what keeps
/// the SQLite checkpointer running.
pub(super) struct Opened {
    pub pool: Pool,
    pub threads: usize,
    pub alive: Arc<()>,
}

/// Connects once directly (so a bad URL or a down server reports its real error), runs
/// `prepare` (the migrations) on that connection, then builds the pool. Blocking.
pub(super) fn open(
    target: &DatabaseTarget,
    settings: &crate::config::DatabaseSettings,
    prepare: impl FnOnce(&mut DbConnection) -> Result<(), DbError>,
) -> Result<Opened, DbError> {
    // libpq speaks TLS through OpenSSL, which otherwise registers an exit handler that frees
    // its state while a pool thread may still be in a handshake: a command ending just then
    // crashed (SIGSEGV in r2d2-worker, seen under the PostgreSQL suite). Initialised here
    // first, without that handler. Not for SQLite: libpq is OpenSSL's only user in the
    // process (`cargo tree -i openssl-sys`), and initialising it anyway put its code into an
    // idle SQLite server's memory (issue 18).
    if matches!(target, DatabaseTarget::Postgres { .. }) {
        openssl::init();
    }
    let manager = ConnectionManager::with_connect_timeout(
        target.clone(),
        settings.sqlite_busy_timeout_ms,
        settings.connect_timeout_secs,
    );
    {
        // Processes starting together on one SQLite file take turns: switching a new file to
        // WAL and migrating it do not wait for each other on SQLite's own locks.
        let _turn = match target {
            DatabaseTarget::Sqlite { path } => Some(sqlite::lock_beside(path)?),
            DatabaseTarget::Postgres { .. } => None,
        };
        let mut first = manager.establish()?;
        prepare(&mut first)?;
    }
    // SQLite lets one writer in at a time, and a writer that finds the lock taken sleeps in
    // the busy handler (1 ms, 2 ms, 5 ms …) rather than queueing: under a write-heavy load that
    // idles the CPU. Statements take microseconds, so one thread running SQLite work in turn is
    // faster than letting them race, and one connection serves it all with its page cache
    // warm. PostgreSQL gets the configured pool and a thread per connection.
    let connections = match target {
        DatabaseTarget::Sqlite { .. } => 1,
        DatabaseTarget::Postgres { .. } => settings.max_connections,
    };
    let pool = r2d2::Pool::builder()
        .max_size(connections)
        .min_idle(Some(1))
        .connection_timeout(Duration::from_secs(settings.connect_timeout_secs.max(1)))
        .test_on_check_out(false)
        .error_handler(Box::new(PoolErrorLogger))
        .build_unchecked(manager);
    let alive = Arc::new(());
    if let DatabaseTarget::Sqlite { path } = target {
        sqlite::start_checkpointer(
            path.clone(),
            settings.sqlite_busy_timeout_ms,
            Arc::downgrade(&alive),
        )
        .map_err(|e| DbError::Task(e.to_string()))?;
    }
    Ok(Opened {
        pool,
        threads: connections as usize,
        alive,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scheme_picks_the_backend() {
        assert_eq!(
            DatabaseTarget::parse("sqlite://data/t.db"),
            Ok(DatabaseTarget::Sqlite {
                path: PathBuf::from("data/t.db")
            })
        );
        assert_eq!(
            DatabaseTarget::parse("sqlite:///tmp/t.db"),
            Ok(DatabaseTarget::Sqlite {
                path: PathBuf::from("/tmp/t.db")
            })
        );
        assert!(matches!(
            DatabaseTarget::parse("postgresql://u@h/db"),
            Ok(DatabaseTarget::Postgres { .. })
        ));
        assert!(DatabaseTarget::parse("mysql://x").is_err());
        assert!(DatabaseTarget::parse("data/t.db").is_err());
        assert!(DatabaseTarget::parse("sqlite://").is_err());
    }

    /// libpq reads every other parameter (sslmode, sslrootcert …) as given; only a missing
    /// connect_timeout is added.
    #[test]
    fn a_connect_timeout_is_added_and_nothing_else_changes() {
        assert_eq!(
            with_connect_timeout("postgres://u@h/db", 3),
            "postgres://u@h/db?connect_timeout=3"
        );
        assert_eq!(
            with_connect_timeout(
                "postgres://u@h/db?sslmode=verify-full&sslrootcert=/c.pem",
                3
            ),
            "postgres://u@h/db?sslmode=verify-full&sslrootcert=/c.pem&connect_timeout=3"
        );
        assert_eq!(
            with_connect_timeout("postgres://u@h/db?connect_timeout=7&sslmode=require", 3),
            "postgres://u@h/db?connect_timeout=7&sslmode=require"
        );
    }
}
