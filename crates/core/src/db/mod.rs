//! The database: one connection type for SQLite and PostgreSQL, a bounded pool, migrations, and
//! the one way request handlers reach it (`Database::run`, on the blocking pool).
//!
//! Repository functions in `repo` are plain `fn(&mut DbConnection, …) -> QueryResult<T>`.

pub mod models;
pub mod repo;
pub mod schema;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");
/// Arbitrary, fixed: the advisory lock id under which PostgreSQL migrations run.
const MIGRATION_LOCK: i64 = 0x0074_6573_7365_7261;

#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Postgres(diesel::PgConnection),
    Sqlite(diesel::SqliteConnection),
}

pub type Pool = r2d2::Pool<ConnectionManager>;
pub type PooledConnection = r2d2::PooledConnection<ConnectionManager>;

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
}

impl DbError {
    /// True when the database cannot be reached at all, as opposed to a query going wrong: the
    /// HTTP layer answers these with 503 and `Retry-After`. A connection that died under a
    /// query (the server restarted, the network dropped) counts: the same request will work
    /// once the pool has reconnected.
    pub fn is_unavailable(&self) -> bool {
        use diesel::result::{DatabaseErrorKind, Error};
        match self {
            DbError::Connect(_) | DbError::Unavailable(_) | DbError::Busy => true,
            DbError::Query(Error::DatabaseError(
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
                _,
            ))
            | DbError::Query(Error::BrokenTransactionManager) => true,
            // SQLite reports these as plain errors with the library's fixed messages: another
            // process holding the write lock past busy_timeout, a full disk, a file that has
            // become read-only. None is the client's doing, and each can pass.
            DbError::Query(Error::DatabaseError(DatabaseErrorKind::Unknown, info)) => {
                let message = info.message();
                SQLITE_TRANSIENT.iter().any(|m| message.starts_with(m))
            }
            _ => false,
        }
    }
}

/// sqlite3_errmsg texts of SQLITE_BUSY, SQLITE_LOCKED, SQLITE_FULL and SQLITE_READONLY, and
/// the ROLLBACK failure that follows when SQLite has already rolled the transaction back by
/// itself (it does so on exactly such errors: full, I/O, busy, out of memory).
const SQLITE_TRANSIENT: [&str; 5] = [
    "database is locked",
    "database table is locked",
    "database or disk is full",
    "attempt to write a readonly database",
    "cannot rollback - no transaction is active",
];

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

/// An r2d2 manager that opens the backend the URL names and prepares every SQLite connection.
#[derive(Debug)]
pub struct ConnectionManager {
    target: DatabaseTarget,
    sqlite_busy_timeout_ms: u32,
}

impl ConnectionManager {
    pub fn new(target: DatabaseTarget, sqlite_busy_timeout_ms: u32) -> Self {
        ConnectionManager {
            target,
            sqlite_busy_timeout_ms,
        }
    }

    fn establish(&self) -> Result<DbConnection, ConnectError> {
        match &self.target {
            DatabaseTarget::Postgres { url } => Ok(DbConnection::Postgres(
                diesel::PgConnection::establish(url)?,
            )),
            DatabaseTarget::Sqlite { path } => {
                configure_sqlite_library();
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|source| ConnectError::Directory {
                        path: path.display().to_string(),
                        source,
                    })?;
                }
                let mut conn = diesel::SqliteConnection::establish(&path.to_string_lossy())?;
                // WAL lets readers run beside the one writer; NORMAL sync in WAL mode loses no
                // committed transaction when the process dies (only on power loss). No
                // checkpoint runs inside a commit: a background thread does them (see
                // `start_checkpointer`), so no request waits for a checkpoint's fsync. The file
                // is read through mmap; the page cache holds only pages read from the WAL and
                // pages being written, and every write commit walks it, so it is kept small:
                // 1 MiB instead of 8 made a refresh's commit ≈ 7 µs (a third) cheaper.
                conn.batch_execute(&format!(
                    "PRAGMA busy_timeout = {};
                     PRAGMA journal_mode = WAL;
                     PRAGMA synchronous = NORMAL;
                     PRAGMA foreign_keys = ON;
                     PRAGMA wal_autocheckpoint = 0;
                     PRAGMA mmap_size = 268435456;
                     PRAGMA cache_size = -1000;",
                    self.sqlite_busy_timeout_ms
                ))?;
                Ok(DbConnection::Sqlite(conn))
            }
        }
    }
}

/// An exclusive lock on `<database>.lock`, held until the returned file is dropped.
fn lock_beside(path: &std::path::Path) -> Result<std::fs::File, DbError> {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    let failed = |source: std::io::Error| {
        DbError::Connect(ConnectError::Directory {
            path: path.display().to_string(),
            source,
        })
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(failed)?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(std::path::PathBuf::from(name))
        .map_err(failed)?;
    file.lock().map_err(failed)?;
    Ok(file)
}

/// Process-wide SQLite settings, applied once before the first connection opens the library:
/// - multi-thread mode: a connection is only ever used by one thread at a time (the pool hands
///   it out exclusively), so SQLite's per-connection mutex is pure cost;
/// - no memory statistics: with them on, every sqlite3_malloc and sqlite3_free takes a global
///   mutex (measured: 8% of a refresh grant's CPU time).
fn configure_sqlite_library() {
    static CONFIGURED: std::sync::Once = std::sync::Once::new();
    CONFIGURED.call_once(|| {
        // SAFETY: sqlite3_config is called before any other SQLite call in this process (the
        // Once runs ahead of the first connection), which is what the API requires; if the
        // library was already initialised it returns SQLITE_MISUSE and changes nothing.
        unsafe {
            libsqlite3_sys::sqlite3_config(libsqlite3_sys::SQLITE_CONFIG_MULTITHREAD);
            libsqlite3_sys::sqlite3_config(
                libsqlite3_sys::SQLITE_CONFIG_MEMSTATUS,
                0 as std::ffi::c_int,
            );
        }
    });
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

    /// Only what the failed-job check below found dead; a healthy connection costs nothing.
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

/// After a failed job: is its connection still fit to use? A transaction whose rollback
/// failed leaves diesel's transaction manager broken, and a PostgreSQL connection cut by a
/// server restart no longer answers (one round trip, on error paths only). Either would go
/// back to the pool and fail every job that drew it until the process restarted.
fn check_after_failure(conn: &mut DbConnection) {
    use diesel::r2d2::R2D2Connection;
    let dead = match conn {
        DbConnection::Sqlite(c) => c.is_broken(),
        DbConnection::Postgres(c) => c.is_broken() || c.batch_execute("SELECT 1").is_err(),
    };
    if dead {
        CONNECTION_DEAD.set(true);
    }
}

/// The pool, and the queue that hands database work to the threads that own its connections.
#[derive(Clone)]
pub struct Database {
    pool: Pool,
    jobs: Arc<JobSender>,
    target: DatabaseTarget,
    /// Jobs queued and not yet started, for the metrics.
    waiting: Arc<std::sync::atomic::AtomicUsize>,
    /// The checkpointer thread runs while any clone of this handle lives.
    _alive: Arc<()>,
}

/// A unit of database work waiting for a database thread.
type Job = Box<dyn FnOnce(&Pool) + Send>;

/// Database work waiting beyond this is refused with 503 rather than queued without bound.
const QUEUE_CAPACITY: usize = 4096;

impl Database {
    /// Connects once directly (so a bad URL or a down server reports its real error), applies
    /// pending migrations, then builds the pool. Blocking: call before the server starts.
    pub fn connect(settings: &crate::config::DatabaseSettings) -> Result<Database, DbError> {
        let target = DatabaseTarget::parse(&settings.url).map_err(DbError::InvalidUrl)?;
        let manager = ConnectionManager::new(target.clone(), settings.sqlite_busy_timeout_ms);
        {
            // Processes starting together on one SQLite file take turns: switching a new file
            // to WAL and migrating it do not wait for each other on SQLite's own locks.
            let _turn = match &target {
                DatabaseTarget::Sqlite { path } => Some(lock_beside(path)?),
                DatabaseTarget::Postgres { .. } => None,
            };
            let mut first = manager.establish()?;
            run_migrations(&mut first)?;
        }
        // SQLite work runs one closure at a time (below), so one connection serves it all and
        // its page cache stays warm; PostgreSQL gets the configured pool.
        let max_size = match target {
            DatabaseTarget::Sqlite { .. } => 1,
            DatabaseTarget::Postgres { .. } => settings.max_connections,
        };
        let pool = r2d2::Pool::builder()
            .max_size(max_size)
            .min_idle(Some(1))
            .connection_timeout(Duration::from_secs(settings.connect_timeout_secs.max(1)))
            .test_on_check_out(false)
            .error_handler(Box::new(PoolErrorLogger))
            .build_unchecked(manager);
        // SQLite lets one writer in at a time, and a writer that finds the lock taken sleeps
        // in the busy handler (1 ms, 2 ms, 5 ms …) rather than queueing: under a write-heavy
        // load that idles the CPU. Statements take microseconds, so one thread running SQLite
        // work in turn (queued on a channel) is faster than letting them race.
        let threads = match target {
            DatabaseTarget::Sqlite { .. } => 1,
            DatabaseTarget::Postgres { .. } => settings.max_connections as usize,
        };
        let jobs = start_workers(&pool, threads).map_err(|e| DbError::Task(e.to_string()))?;
        let alive = Arc::new(());
        if let DatabaseTarget::Sqlite { path } = &target {
            start_checkpointer(
                path.clone(),
                settings.sqlite_busy_timeout_ms,
                Arc::downgrade(&alive),
            )
            .map_err(|e| DbError::Task(e.to_string()))?;
        }
        Ok(Database {
            pool,
            jobs,
            target,
            waiting: Arc::default(),
            _alive: alive,
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
    /// tracing span. The threads are as many as the connections (one for SQLite), so work
    /// beyond that waits in the queue, never on a blocked async worker.
    pub async fn run<T, E, F>(&self, work: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        let (done, result) = tokio::sync::oneshot::channel();
        let span = tracing::Span::current();
        let waiting = self.waiting.clone();
        let job: Job = Box::new(move |pool| {
            waiting.fetch_sub(1, Relaxed);
            let _entered = span.enter();
            let outcome = match pool.get() {
                Ok(mut conn) => {
                    let work = std::panic::AssertUnwindSafe(|| work(&mut conn));
                    match std::panic::catch_unwind(work) {
                        Ok(outcome) => {
                            if outcome.is_err() {
                                check_after_failure(&mut conn);
                            }
                            outcome
                        }
                        // A bug, not input: it fails this request only. The thread lives on
                        // (SQLite has just the one), and the connection, which may be left
                        // inside a transaction nothing will commit, is closed, not reused.
                        Err(_) => {
                            CONNECTION_DEAD.set(true);
                            tracing::error!("a database job panicked");
                            Err(DbError::Task("a database job failed".into()).into())
                        }
                    }
                }
                Err(e) => Err(DbError::from(e).into()),
            };
            let _ = done.send(outcome);
        });
        self.waiting.fetch_add(1, Relaxed);
        if let Err(refused) = self.jobs.0.push(job) {
            self.waiting.fetch_sub(1, Relaxed);
            return Err(refused.into());
        }
        result
            .await
            .unwrap_or_else(|_| Err(DbError::Task("a database task ended early".into()).into()))
    }

    /// Pooled connections (in use, idle) and jobs waiting for a database thread.
    pub fn load(&self) -> (u32, u32, usize) {
        let state = self.pool.state();
        (
            state.connections.saturating_sub(state.idle_connections),
            state.idle_connections,
            self.waiting.load(Relaxed),
        )
    }

    /// True if a connection can be had and answers a trivial query.
    pub async fn is_ready(&self) -> bool {
        self.run(|conn| conn.batch_execute("SELECT 1").map_err(DbError::from))
            .await
            .is_ok()
    }
}

/// Jobs waiting for a database thread. A job wakes one sleeping thread, and only if no thread
/// is awake to take it: one wake per job at most, where a channel shared behind a mutex woke
/// two (the receiver, then the next thread to wait on the channel).
struct JobQueue {
    state: Mutex<QueueState>,
    ready: Condvar,
}

struct QueueState {
    jobs: VecDeque<Job>,
    /// Threads asleep waiting for a job.
    sleeping: usize,
    /// Every Database handle is gone: the threads finish the queue and end.
    closed: bool,
}

impl JobQueue {
    fn push(&self, job: Job) -> Result<(), DbError> {
        let mut state = self
            .state
            .lock()
            .map_err(|_| DbError::Task("the database threads are gone".into()))?;
        if state.jobs.len() >= QUEUE_CAPACITY {
            return Err(DbError::Busy);
        }
        state.jobs.push_back(job);
        let wake = state.sleeping > 0;
        drop(state);
        if wake {
            self.ready.notify_one();
        }
        Ok(())
    }

    /// The next job, waiting for one; None once the queue is closed and empty.
    fn next(&self) -> Option<Job> {
        let mut state = self.state.lock().ok()?;
        loop {
            if let Some(job) = state.jobs.pop_front() {
                return Some(job);
            }
            if state.closed {
                return None;
            }
            state.sleeping += 1;
            state = self.ready.wait(state).ok()?;
            state.sleeping -= 1;
        }
    }

    fn close(&self) {
        if let Ok(mut state) = self.state.lock() {
            state.closed = true;
        }
        self.ready.notify_all();
    }
}

/// The queue's sending side, shared by every clone of a Database; the last one closes it.
struct JobSender(Arc<JobQueue>);

impl Drop for JobSender {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// Threads that take database work off the queue, each with a pooled connection per job.
fn start_workers(pool: &Pool, threads: usize) -> std::io::Result<Arc<JobSender>> {
    let queue = Arc::new(JobQueue {
        state: Mutex::new(QueueState {
            jobs: VecDeque::new(),
            sleeping: 0,
            closed: false,
        }),
        ready: Condvar::new(),
    });
    for index in 0..threads.max(1) {
        let pool = pool.clone();
        let thread_queue = queue.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("tessera-db-{index}"))
            .spawn(move || {
                if threads == 1 {
                    yield_to_requests();
                }
                while let Some(job) = thread_queue.next() {
                    job(&pool);
                }
            });
        if let Err(error) = spawned {
            // The threads already started end instead of waiting for jobs that never come.
            queue.close();
            return Err(error);
        }
    }
    Ok(Arc::new(JobSender(queue)))
}

/// Makes the calling thread SCHED_BATCH: woken by new work, it does not preempt the HTTP
/// worker that queued it but runs when that worker waits or its time slice ends, and then
/// takes every job queued meanwhile in one go, instead of two context switches per job.
fn yield_to_requests() {
    #[cfg(target_os = "linux")]
    // SAFETY: a plain system call on the calling thread (pid 0); the parameter outlives it.
    unsafe {
        let param = libc::sched_param { sched_priority: 0 };
        if libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) != 0 {
            tracing::debug!("could not make the database thread a batch thread");
        }
    }
}

/// Checkpoints SQLite's WAL into the database file every second from a connection of its own,
/// in PASSIVE mode (it never blocks the writer), so commits stay free of checkpoint work and
/// its fsync. Ends when the last handle of the database is dropped.
fn start_checkpointer(
    path: PathBuf,
    busy_timeout_ms: u32,
    alive: std::sync::Weak<()>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("tessera-checkpoint".into())
        .spawn(move || {
            let mut conn = None;
            while alive.upgrade().is_some() {
                std::thread::sleep(Duration::from_secs(1));
                if conn.is_none() {
                    conn = diesel::SqliteConnection::establish(&path.to_string_lossy()).ok();
                    if let Some(c) = conn.as_mut() {
                        let _ =
                            c.batch_execute(&format!("PRAGMA busy_timeout = {busy_timeout_ms}"));
                    }
                }
                if let Some(c) = conn.as_mut()
                    && let Err(error) = c.batch_execute("PRAGMA wal_checkpoint(PASSIVE)")
                {
                    tracing::warn!(%error, "WAL checkpoint failed");
                    conn = None;
                }
            }
        })
        .map(drop)
}

#[derive(Debug)]
struct PoolErrorLogger;

impl r2d2::HandleError<ConnectError> for PoolErrorLogger {
    fn handle_error(&self, error: ConnectError) {
        tracing::warn!(%error, "database connection failed");
    }
}

/// Applies every pending migration for the connection's backend.
pub fn run_migrations(conn: &mut DbConnection) -> Result<Vec<String>, DbError> {
    let names = |versions: Vec<diesel::migration::MigrationVersion<'_>>| {
        versions.iter().map(|v| v.to_string()).collect::<Vec<_>>()
    };
    match conn {
        DbConnection::Sqlite(c) => c
            .run_pending_migrations(SQLITE_MIGRATIONS)
            .map(names)
            .map_err(|e| DbError::Migration(e.to_string())),
        DbConnection::Postgres(c) => {
            // Replicas starting together would race to create the same tables; a session
            // advisory lock lets one migrate while the others wait, then find nothing to do.
            c.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))?;
            let result = c
                .run_pending_migrations(POSTGRES_MIGRATIONS)
                .map(names)
                .map_err(|e| DbError::Migration(e.to_string()));
            c.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"))?;
            result
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

    #[test]
    fn both_backends_have_the_same_migrations() {
        let names = |dir: &str| -> Vec<String> {
            let mut names: Vec<String> = std::fs::read_dir(dir)
                .expect("migrations folder")
                .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        };
        let sqlite = names(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../migrations/sqlite"
        ));
        let postgres = names(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../migrations/postgres"
        ));
        assert!(!sqlite.is_empty());
        assert_eq!(sqlite, postgres);
    }
}
