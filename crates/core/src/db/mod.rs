//! The database: one connection type for SQLite and PostgreSQL, a bounded pool, migrations, and
//! the one way request handlers reach it (`Database::run`, on the executor's database lane).
//!
//! Repository functions in `repo` are plain `fn(&mut DbConnection, …) -> QueryResult<T>`;
//! whatever the backends say differently lives in `dialect`.

mod breaker;
mod conn;
pub mod dialect;
mod error;
pub mod executor;
mod migrate;
pub mod models;
pub mod repo;
mod retry;
pub mod schema;
mod sqlite;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use breaker::Breaker;
pub use conn::{
    ConnectError, ConnectionManager, DatabaseTarget, DbConnection, DbError, Pool, PooledConnection,
};
pub use dialect::run_migrations;
use executor::{Executor, Lane, Refused, Scheduling};
use retry::Conflict;

/// The pool, and the executor lane that hands database work to the threads that own its
/// connections.
#[derive(Clone)]
pub struct Database {
    pool: Pool,
    jobs: Executor<Jobs>,
    breaker: Arc<Breaker>,
    retries: Arc<AtomicU64>,
    target: DatabaseTarget,
    /// The checkpointer thread runs while any clone of this handle lives.
    _alive: Arc<()>,
}

/// Database work waiting beyond this is refused with 503 rather than queued without bound.
const QUEUE_CAPACITY: usize = 4096;

/// What every database thread holds: the pool, the breaker, the count of jobs run again.
#[derive(Clone)]
struct Jobs {
    pool: Pool,
    breaker: Arc<Breaker>,
    retries: Arc<AtomicU64>,
}

impl Database {
    /// Connects once directly (so a bad URL or a down server reports its real error), applies
    /// pending migrations, then builds the pool. Blocking: call before the server starts.
    pub fn connect(settings: &crate::config::DatabaseSettings) -> Result<Database, DbError> {
        let target = DatabaseTarget::parse(&settings.url).map_err(DbError::InvalidUrl)?;
        let opened = conn::open(&target, settings, |first| run_migrations(first).map(drop))?;
        let breaker = Arc::new(Breaker::new(dialect::breaker_probe(&target, settings)));
        breaker::start_prober(
            breaker.clone(),
            opened.pool.clone(),
            Arc::downgrade(&opened.alive),
        )
        .map_err(|e| DbError::Task(e.to_string()))?;
        let retries = Arc::new(AtomicU64::new(0));
        // The threads are as many as the connections. A lone thread (SQLite's) is a batch
        // thread: it takes every job queued while the HTTP worker ran, in one go.
        let jobs = Executor::start(
            Lane {
                name: "db",
                threads: opened.threads,
                capacity: QUEUE_CAPACITY,
                scheduling: if opened.threads == 1 {
                    Scheduling::Batch
                } else {
                    Scheduling::Normal
                },
            },
            Jobs {
                pool: opened.pool.clone(),
                breaker: breaker.clone(),
                retries: retries.clone(),
            },
        )
        .map_err(|e| DbError::Task(e.to_string()))?;
        Ok(Database {
            pool: opened.pool,
            jobs,
            breaker,
            retries,
            target,
            _alive: opened.alive,
        })
    }

    pub fn backend_name(&self) -> &'static str {
        self.target.backend_name()
    }

    /// A connection for blocking callers (the CLI, start-up).
    pub fn get(&self) -> Result<PooledConnection, DbError> {
        Ok(self.pool.get()?)
    }

    /// Runs `work` with a pooled connection on one of the database threads, in the caller's
    /// tracing span. Work beyond the threads waits in the queue, never on a blocked async
    /// worker. While the breaker is open (PostgreSQL unreachable) it fails at once with
    /// `DbError::Down`.
    ///
    /// `work` may run more than once: a job that fails after a serialization failure
    /// (SQLSTATE 40001) with nothing of it committed yet runs again, up to `retry::RETRIES`
    /// times, then fails with `DbError::Conflict`. Hence `FnMut`: a job's effects outside the
    /// database (a count, a log line) may repeat, its database effects do not (the failed run
    /// was rolled back whole).
    pub async fn run<T, E, F>(&self, work: F) -> Result<T, E>
    where
        F: FnMut(&mut DbConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        if self.breaker.is_open() {
            return Err(DbError::Down.into());
        }
        match self.jobs.run(move |jobs| with_connection(jobs, work)).await {
            Ok(outcome) => outcome,
            Err(Refused::Busy) => Err(DbError::Busy.into()),
            Err(Refused::Gone) => Err(DbError::Task("the database threads are gone".into()).into()),
            Err(Refused::Ended) => Err(DbError::Task("a database task ended early".into()).into()),
        }
    }

    /// Pooled connections (in use, idle) and jobs waiting for a database thread.
    pub fn load(&self) -> (u32, u32, usize) {
        let state = self.pool.state();
        (
            state.connections.saturating_sub(state.idle_connections),
            state.idle_connections,
            self.jobs.depth(),
        )
    }

    /// Whether the breaker is open (the database is unreachable, work is refused), how many
    /// times it opened, and how many job runs were repeats after a serialization failure.
    pub fn health(&self) -> (bool, u64, u64) {
        (
            self.breaker.is_open(),
            self.breaker.trips(),
            self.retries.load(Relaxed),
        )
    }

    /// True if a connection can be had and answers a trivial query.
    pub async fn is_ready(&self) -> bool {
        use diesel::connection::SimpleConnection;
        self.run(|conn| conn.batch_execute("SELECT 1").map_err(DbError::from))
            .await
            .is_ok()
    }
}

/// One database job, on a database thread: a pooled connection for `work`, run again after a
/// serialization failure, and a connection that a failure or a panic may have left unfit is
/// closed rather than handed out again; one that died takes the breaker's check with it.
fn with_connection<T, E, F>(jobs: &Jobs, mut work: F) -> Result<T, E>
where
    F: FnMut(&mut DbConnection) -> Result<T, E>,
    E: From<DbError>,
{
    // Queued before the breaker opened.
    if jobs.breaker.is_open() {
        return Err(DbError::Down.into());
    }
    let mut conn = match jobs.pool.get() {
        Ok(conn) => conn,
        Err(e) => {
            jobs.breaker.trip(&e);
            return Err(DbError::from(e).into());
        }
    };
    let mut attempt = 0;
    loop {
        retry::begin();
        let run = std::panic::AssertUnwindSafe(|| work(&mut conn));
        match std::panic::catch_unwind(run) {
            Ok(Ok(done)) => return Ok(done),
            Ok(Err(failed)) => {
                // Read before the check below, whose own statement would count as committed.
                let conflict = retry::conflict();
                if dialect::connection_is_dead(&mut conn) {
                    conn::discard_connection();
                    drop(conn);
                    jobs.breaker.connection_died();
                    return Err(failed);
                }
                match conflict {
                    Conflict::None => return Err(failed),
                    Conflict::Retryable if attempt < retry::RETRIES => {
                        attempt += 1;
                        jobs.retries.fetch_add(1, Relaxed);
                        tracing::debug!(attempt, "serialization failure: running the job again");
                        std::thread::sleep(retry::backoff(attempt));
                    }
                    conflict => {
                        tracing::warn!(
                            attempts = attempt + 1,
                            after_commit = conflict == Conflict::AfterCommit,
                            "serialization failure: the job is not run again"
                        );
                        return Err(DbError::Conflict.into());
                    }
                }
            }
            // A bug, not input: it fails this request only. The thread lives on (SQLite has
            // just the one), and the connection, which may be left inside a transaction nothing
            // will commit, is closed, not reused.
            Err(_) => {
                conn::discard_connection();
                tracing::error!("a database job panicked");
                return Err(DbError::Task("a database job failed".into()).into());
            }
        }
    }
}

/// Seconds since the Unix epoch: the one time representation both backends store alike.
pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A new time-ordered id (UUID v7), as stored in every `id` column.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use diesel::connection::SimpleConnection;
    use diesel::prelude::*;

    use super::*;

    /// A job that panics inside a transaction fails alone: the next job runs on the same (only)
    /// SQLite thread, and its writes commit rather than landing in the abandoned transaction.
    #[test]
    fn a_panicking_job_leaves_no_open_transaction_behind() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut settings = crate::config::Settings::defaults().expect("defaults");
        settings.database.url = format!("sqlite://{}", dir.path().join("t.db").display());
        let db = Database::connect(&settings.database).expect("connect");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        fn within<T>(runtime: &tokio::runtime::Runtime, job: impl Future<Output = T>) -> T {
            runtime
                .block_on(async { tokio::time::timeout(Duration::from_secs(10), job).await })
                .expect("the database thread answers")
        }
        within(
            &runtime,
            db.run(|conn| {
                conn.batch_execute("CREATE TABLE t (n INTEGER)")
                    .map_err(DbError::from)
            }),
        )
        .expect("create");
        let panicked = within(
            &runtime,
            db.run(|conn: &mut DbConnection| {
                conn.transaction(|conn| {
                    conn.batch_execute("INSERT INTO t VALUES (1)")?;
                    #[allow(clippy::panic)]
                    if conn.batch_execute("SELECT 1").is_ok() {
                        panic!("a bug in a job");
                    }
                    Ok::<_, DbError>(())
                })
            }),
        );
        assert!(matches!(panicked, Err(DbError::Task(_))));
        within(
            &runtime,
            db.run(|conn| {
                conn.transaction(|conn| conn.batch_execute("INSERT INTO t VALUES (2)"))
                    .map_err(DbError::from)
            }),
        )
        .expect("a later job runs");
        let mut fresh =
            diesel::SqliteConnection::establish(&dir.path().join("t.db").to_string_lossy())
                .expect("open");
        #[derive(QueryableByName)]
        struct Row {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let rows: Vec<Row> = diesel::sql_query("SELECT n FROM t ORDER BY n")
            .load(&mut fresh)
            .expect("read");
        assert_eq!(rows.iter().map(|r| r.n).collect::<Vec<_>>(), vec![2]);
    }
}
