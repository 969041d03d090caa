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
mod group;
mod job;
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
use job::{Jobs, with_connection};

/// The pool, and the executor lane that hands database work to the threads that own its
/// connections.
#[derive(Clone)]
pub struct Database {
    pool: Pool,
    jobs: Executor<Jobs>,
    breaker: Arc<Breaker>,
    retries: Arc<AtomicU64>,
    target: DatabaseTarget,
    /// Grouped jobs waiting, on SQLite with `database.group_commit`; None where each job
    /// commits alone.
    group: Option<Arc<group::Waiting>>,
    /// The checkpointer thread runs while any clone of this handle lives.
    _alive: Arc<()>,
}

/// Database work waiting beyond this is refused with 503 rather than queued without bound.
const QUEUE_CAPACITY: usize = 4096;

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
        let group = (settings.group_commit && dialect::groups_commits(&target))
            .then(|| Arc::new(group::Waiting::default()));
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
            group,
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
            Err(refused) => Err(refused_error(refused).into()),
        }
    }

    /// As `run`, but on SQLite (with `database.group_commit`) `work` may share its COMMIT with
    /// the other grouped jobs waiting at the same time (`group`): for the hot paths' small
    /// writes. `work` must make its writes in its own transaction (`conn.transaction`), which
    /// in a group is a savepoint, so that a failure rolls back only its own.
    pub async fn run_grouped<T, E, F>(&self, work: F) -> Result<T, E>
    where
        F: FnMut(&mut DbConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        let Some(waiting) = &self.group else {
            return self.run(work).await;
        };
        if self.breaker.is_open() {
            return Err(DbError::Down.into());
        }
        let (done, answer) = tokio::sync::oneshot::channel();
        let id = waiting.push(Box::new(group::Entry {
            work,
            kept: None,
            done,
            span: tracing::Span::current(),
        }));
        let drain = waiting.clone();
        if let Err(refused) = self
            .jobs
            .submit(Box::new(move |jobs| group::run(&drain, jobs)))
        {
            // Unless a group took it meanwhile (then its answer comes), it was never run.
            if waiting.withdraw(id) {
                return Err(refused_error(refused).into());
            }
        }
        answer
            .await
            .unwrap_or_else(|_| Err(refused_error(Refused::Ended).into()))
    }

    /// Commits that answered several grouped jobs, and the jobs they answered.
    pub fn group_commits(&self) -> (u64, u64) {
        self.group
            .as_ref()
            .map_or((0, 0), |waiting| waiting.counts())
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

/// Why the database lane did not run a job.
fn refused_error(refused: Refused) -> DbError {
    match refused {
        Refused::Busy => DbError::Busy,
        Refused::Gone => DbError::Task("the database threads are gone".into()),
        Refused::Ended => DbError::Task("a database task ended early".into()),
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

    /// A job for `run_grouped` with its answer of type `T`.
    type Grouped<T> = Box<dyn FnMut(&mut DbConnection) -> Result<T, DbError> + Send>;

    /// A database with a table, and a runtime with threads for tasks that wait on it.
    fn grouped_fixture(schema: &str) -> (tempfile::TempDir, Database, tokio::runtime::Runtime) {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut settings = crate::config::Settings::defaults().expect("defaults");
        settings.database.url = format!("sqlite://{}", dir.path().join("t.db").display());
        assert!(settings.database.group_commit, "on by default");
        let db = Database::connect(&settings.database).expect("connect");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_time()
            .build()
            .expect("runtime");
        let schema = schema.to_string();
        runtime
            .block_on(db.run(move |conn| conn.batch_execute(&schema).map_err(DbError::from)))
            .expect("schema");
        (dir, db, runtime)
    }

    /// Runs `jobs` as grouped jobs that all wait while the only database thread is held, so
    /// that they are queued together; their answers in order.
    fn run_held_together<T: Send + 'static>(
        db: &Database,
        runtime: &tokio::runtime::Runtime,
        jobs: Vec<Grouped<T>>,
    ) -> Vec<Result<T, DbError>> {
        let (release, held) = std::sync::mpsc::channel::<()>();
        let (started, has_started) = std::sync::mpsc::channel::<()>();
        let holder = {
            let db = db.clone();
            runtime.spawn(async move {
                db.run(move |_| {
                    let _ = started.send(());
                    let _ = held.recv();
                    Ok::<_, DbError>(())
                })
                .await
            })
        };
        has_started
            .recv()
            .expect("the database thread took the holding job");
        let count = jobs.len();
        let tasks: Vec<_> = jobs
            .into_iter()
            .map(|job| {
                let db = db.clone();
                runtime.spawn(async move { db.run_grouped(job).await })
            })
            .collect();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while db.load().2 < count {
            assert!(
                std::time::Instant::now() < deadline,
                "the jobs never queued"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        release.send(()).expect("release");
        runtime.block_on(async {
            holder.await.expect("holder").expect("held job");
            let mut answers = Vec::new();
            for task in tasks {
                answers.push(task.await.expect("task"));
            }
            answers
        })
    }

    fn numbers(conn_path: &std::path::Path, table: &str) -> Vec<i64> {
        #[derive(QueryableByName)]
        struct Row {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let mut fresh =
            diesel::SqliteConnection::establish(&conn_path.to_string_lossy()).expect("open");
        let rows: Vec<Row> = diesel::sql_query(format!("SELECT n FROM {table} ORDER BY n"))
            .load(&mut fresh)
            .expect("read");
        rows.iter().map(|r| r.n).collect()
    }

    type GroupedJob = Grouped<()>;

    fn insert(table: &'static str, n: i64) -> GroupedJob {
        Box::new(move |conn: &mut DbConnection| {
            conn.transaction(|conn| {
                conn.batch_execute(&format!("INSERT INTO {table} VALUES ({n})"))
                    .map_err(DbError::from)
            })
        })
    }

    /// Grouped jobs that wait together share one commit; one that fails (a duplicate key, or
    /// its own error after a write) rolls back only its own writes, and the others commit.
    #[test]
    fn grouped_jobs_waiting_together_share_one_commit_and_fail_alone() {
        let (dir, db, runtime) = grouped_fixture("CREATE TABLE t (n INTEGER PRIMARY KEY)");
        let mut jobs: Vec<GroupedJob> = (1..=5).map(|n| insert("t", n)).collect();
        jobs.push(insert("t", 3));
        jobs.push(Box::new(|conn: &mut DbConnection| {
            conn.transaction(|conn| {
                conn.batch_execute("INSERT INTO t VALUES (7)")?;
                Err(DbError::Task("the job's own refusal".into()))
            })
        }));
        jobs.push(insert("t", 8));
        let answers = run_held_together(&db, &runtime, jobs);
        let failed: Vec<usize> = (0..answers.len())
            .filter(|i| answers[*i].is_err())
            .collect();
        // The jobs queue in whatever order their tasks ran: of the two that insert 3, the
        // second to run is the duplicate.
        assert!(
            failed == vec![2, 6] || failed == vec![5, 6],
            "one of the two inserts of 3, and the job's own refusal: {answers:?}"
        );
        assert_eq!(db.group_commits(), (1, 8), "one commit answered all eight");
        assert_eq!(
            numbers(&dir.path().join("t.db"), "t"),
            vec![1, 2, 3, 4, 5, 8]
        );
    }

    /// A group whose COMMIT fails (here a deferred foreign key that one job breaks) keeps
    /// nothing: each job runs again alone, and only the breaking one fails.
    #[test]
    fn a_group_that_cannot_commit_runs_its_jobs_again_alone() {
        let (dir, db, runtime) = grouped_fixture(
            "CREATE TABLE parent (id INTEGER PRIMARY KEY);
             CREATE TABLE child (n INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED);
             INSERT INTO parent VALUES (1), (2);",
        );
        let jobs = vec![insert("child", 1), insert("child", 99), insert("child", 2)];
        let answers = run_held_together(&db, &runtime, jobs);
        assert!(answers[0].is_ok() && answers[2].is_ok(), "{answers:?}");
        assert!(answers[1].is_err(), "the broken reference fails");
        assert_eq!(db.group_commits(), (0, 0), "the group did not commit");
        assert_eq!(numbers(&dir.path().join("t.db"), "child"), vec![1, 2]);
    }

    /// A job that panics in a group fails alone: the others run again alone and commit, and
    /// nothing of the group's transaction is left open on the connection.
    #[test]
    fn a_panicking_job_in_a_group_fails_alone() {
        let (dir, db, runtime) = grouped_fixture("CREATE TABLE t (n INTEGER PRIMARY KEY)");
        let jobs: Vec<GroupedJob> = vec![
            insert("t", 1),
            Box::new(|conn: &mut DbConnection| {
                conn.transaction(|conn| {
                    conn.batch_execute("INSERT INTO t VALUES (2)")?;
                    #[allow(clippy::panic)]
                    if conn.batch_execute("SELECT 1").is_ok() {
                        panic!("a bug in a grouped job");
                    }
                    Ok(())
                })
            }),
            insert("t", 3),
        ];
        let answers = run_held_together(&db, &runtime, jobs);
        assert!(answers[0].is_ok() && answers[2].is_ok(), "{answers:?}");
        assert!(matches!(answers[1], Err(DbError::Task(_))));
        assert_eq!(numbers(&dir.path().join("t.db"), "t"), vec![1, 3]);
        runtime
            .block_on(db.run_grouped(insert("t", 4)))
            .expect("a later job commits");
        assert_eq!(numbers(&dir.path().join("t.db"), "t"), vec![1, 3, 4]);
    }
}
