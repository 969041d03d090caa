//! One database job on a database thread, as `Database::run` and a group's fallback run it:
//! what every database thread holds, and the run itself (a pooled connection, the retries after
//! a serialization failure, a connection that a failure left unfit closed).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::breaker::Breaker;
use super::conn::{self, DbConnection, DbError, Pool};
use super::dialect;
use super::retry::{self, Conflict};

/// What every database thread holds: the pool, the breaker, the count of jobs run again.
#[derive(Clone)]
pub(super) struct Jobs {
    pub(super) pool: Pool,
    pub(super) breaker: Arc<Breaker>,
    pub(super) retries: Arc<AtomicU64>,
}

/// One database job, on a database thread: a pooled connection for `work`, run again after a
/// serialization failure, and a connection that a failure or a panic may have left unfit is
/// closed rather than handed out again; one that died takes the breaker's check with it.
pub(super) fn with_connection<T, E, F>(jobs: &Jobs, mut work: F) -> Result<T, E>
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
