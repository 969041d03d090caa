//! Group commit, on SQLite. The jobs that ask for it (`Database::run_grouped`) and are waiting
//! when the database thread comes to them run one after another in one write transaction, and
//! are answered once it commits. A COMMIT is most of a small write's cost: it takes and drops
//! the write lock and writes the changed pages to the WAL with their checksums, and a group of
//! codes or refresh tokens shares the pages (bench/RESULTS.md, session 13).
//!
//! What a grouped job may rely on is what it has alone:
//! - its writes are its own transaction's: each job opens one (`conn.transaction`), which in a
//!   group is a savepoint, so a job that fails rolls back only itself;
//! - it is answered only after its writes are durable as far as a commit makes them;
//! - if the group cannot commit (the COMMIT fails, or a job panics and leaves the connection
//!   in a state nothing can trust), nothing of it is kept: the connection is closed, and every
//!   other job runs again alone, exactly as `Database::run` runs it. Jobs are `FnMut` for this,
//!   as for the serialization retries.
//!
//! The group is one IMMEDIATE transaction: it holds the write lock from its start, so no job in
//! it can meet a snapshot that another process's write made stale (which would fail every job
//! after it, where alone each would start afresh).

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::conn::{self, DbConnection, DbError};
use super::dialect;
use super::job::{Jobs, with_connection};

/// The most jobs one COMMIT answers; the rest wait for the next.
const MAX_GROUP: usize = 64;

/// Grouped jobs waiting for the database thread. Each has its own job in the executor's queue
/// (`Database::run_grouped` submits one per job), which drains whatever is here when it runs:
/// the first drains a group, the ones after it usually find nothing.
#[derive(Default)]
pub(super) struct Waiting {
    members: Mutex<VecDeque<(u64, Box<dyn Member>)>>,
    next_id: AtomicU64,
    groups: AtomicU64,
    grouped: AtomicU64,
}

impl Waiting {
    /// Adds `member`; its id lets `withdraw` find it again.
    pub(super) fn push(&self, member: Box<dyn Member>) -> u64 {
        let id = self.next_id.fetch_add(1, Relaxed);
        if let Ok(mut members) = self.members.lock() {
            members.push_back((id, member));
        }
        id
    }

    /// Takes member `id` back if no group has taken it yet (its drain job was refused).
    pub(super) fn withdraw(&self, id: u64) -> bool {
        let Ok(mut members) = self.members.lock() else {
            return false;
        };
        match members.iter().position(|(waiting, _)| *waiting == id) {
            Some(index) => members.remove(index).is_some(),
            None => false,
        }
    }

    /// Commits that answered more than one job, and the jobs they answered.
    pub(super) fn counts(&self) -> (u64, u64) {
        (self.groups.load(Relaxed), self.grouped.load(Relaxed))
    }

    fn take(&self) -> Vec<Box<dyn Member>> {
        let Ok(mut members) = self.members.lock() else {
            return Vec::new();
        };
        let count = members.len().min(MAX_GROUP);
        members.drain(..count).map(|(_, member)| member).collect()
    }
}

/// One grouped job, with the caller waiting for its answer.
pub(super) trait Member: Send {
    /// Runs the job in the group's open transaction and keeps its answer.
    fn run(&mut self, conn: &mut DbConnection);
    /// The group committed: the kept answer goes to the caller.
    fn answer(self: Box<Self>);
    /// The group did not commit: the job runs alone, its answer the one it gets then.
    fn run_alone(self: Box<Self>, jobs: &Jobs);
    /// The job panicked: the caller is told it failed.
    fn fail(self: Box<Self>);
}

/// A job and the channel its caller waits on.
pub(super) struct Entry<T, E, F> {
    pub(super) work: F,
    pub(super) kept: Option<Result<T, E>>,
    pub(super) done: tokio::sync::oneshot::Sender<Result<T, E>>,
    /// The caller's span, so what the job logs carries the request's id.
    pub(super) span: tracing::Span,
}

impl<T, E, F> Member for Entry<T, E, F>
where
    F: FnMut(&mut DbConnection) -> Result<T, E> + Send,
    T: Send,
    E: From<DbError> + Send,
{
    fn run(&mut self, conn: &mut DbConnection) {
        let _entered = self.span.enter();
        self.kept = Some((self.work)(conn));
    }

    fn answer(self: Box<Self>) {
        let Entry { kept, done, .. } = *self;
        let answer = kept
            .unwrap_or_else(|| Err(DbError::Task("a grouped job kept no answer".into()).into()));
        let _ = done.send(answer);
    }

    fn run_alone(self: Box<Self>, jobs: &Jobs) {
        let Entry {
            mut work,
            done,
            span,
            ..
        } = *self;
        let _entered = span.enter();
        let _ = done.send(with_connection(jobs, &mut work));
    }

    fn fail(self: Box<Self>) {
        let _ = self
            .done
            .send(Err(DbError::Task("a database job failed".into()).into()));
    }
}

/// Runs the jobs waiting now, together if there are several: the drain job of every grouped
/// job, on a database thread.
pub(super) fn run(waiting: &Waiting, jobs: &Jobs) {
    let mut members = waiting.take();
    if members.len() < 2 {
        if let Some(member) = members.pop() {
            member.run_alone(jobs);
        }
        return;
    }
    let mut conn = match jobs.pool.get() {
        Ok(conn) if !jobs.breaker.is_open() => conn,
        // Each finds out alone, with the error it would have had.
        _ => return members.into_iter().for_each(|m| m.run_alone(jobs)),
    };
    match run_together(&mut conn, &mut members) {
        Ok(()) => {
            waiting.groups.fetch_add(1, Relaxed);
            waiting.grouped.fetch_add(members.len() as u64, Relaxed);
            members.into_iter().for_each(|m| m.answer());
        }
        Err(panicked) => {
            // The transaction is left to SQLite to roll back as the connection closes.
            conn::discard_connection();
            drop(conn);
            tracing::warn!(
                jobs = members.len(),
                "a group commit failed: its jobs run again one by one"
            );
            for (index, member) in members.into_iter().enumerate() {
                if panicked == Some(index) {
                    tracing::error!("a database job panicked");
                    member.fail();
                } else {
                    member.run_alone(jobs);
                }
            }
        }
    }
}

/// BEGIN IMMEDIATE, every job, COMMIT. `Err(Some(i))`: job `i` panicked; `Err(None)`: the
/// transaction could not begin or commit.
fn run_together(
    conn: &mut DbConnection,
    members: &mut [Box<dyn Member>],
) -> Result<(), Option<usize>> {
    dialect::begin_write(conn).map_err(|_| None)?;
    for (index, member) in members.iter_mut().enumerate() {
        if catch_unwind(AssertUnwindSafe(|| member.run(conn))).is_err() {
            return Err(Some(index));
        }
    }
    dialect::commit(conn).map_err(|_| None)
}
