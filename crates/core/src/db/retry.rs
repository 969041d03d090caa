//! Serialization failures (SQLSTATE 40001): what SERIALIZABLE databases (CockroachDB,
//! YugabyteDB, PostgreSQL at `default_transaction_isolation = serializable`) answer a
//! transaction that lost a race with a concurrent one. The transaction was rolled back whole;
//! running it again is the documented remedy. `Database::run` does it for every job, here is
//! how it knows: every PostgreSQL connection reports its statements to `observe`, which keeps,
//! per database thread, whether the running job met a 40001 and whether anything of the job
//! had committed before it did.

use std::cell::Cell;
use std::time::Duration;

use diesel::connection::InstrumentationEvent;
use diesel::result::{DatabaseErrorKind, Error};

/// Runs of one job after its first: with the backoff below, 0.2-0.4 s of waiting in all.
pub(super) const RETRIES: u32 = 8;

/// What the job running on this thread has done so far.
#[derive(Clone, Copy, Default)]
struct Trace {
    /// Transaction depth (0: autocommit).
    depth: u32,
    /// A COMMIT (top level: true) or ROLLBACK (false) was sent and has not answered yet.
    closing: Option<bool>,
    /// Something of the job is committed: a top-level COMMIT, or a statement outside any
    /// transaction (its own transaction).
    committed: bool,
    conflict: bool,
}

thread_local! {
    static TRACE: Cell<Trace> = Cell::new(Trace::default());
}

/// Set on every PostgreSQL connection: called for each statement it runs.
pub(super) fn observe(event: InstrumentationEvent<'_>) {
    let mut trace = TRACE.get();
    match event {
        InstrumentationEvent::BeginTransaction { depth, .. } => trace.depth = depth.get(),
        InstrumentationEvent::CommitTransaction { depth, .. } => {
            trace.closing = Some(depth.get() == 1);
        }
        InstrumentationEvent::RollbackTransaction { .. } => trace.closing = Some(false),
        InstrumentationEvent::FinishQuery { error, .. } => {
            if matches!(
                error,
                Some(Error::DatabaseError(
                    DatabaseErrorKind::SerializationFailure,
                    _
                ))
            ) {
                trace.conflict = true;
            }
            match trace.closing.take() {
                Some(top_level_commit) => {
                    trace.depth = trace.depth.saturating_sub(1);
                    if top_level_commit && error.is_none() {
                        trace.committed = true;
                    }
                }
                None if trace.depth == 0 && error.is_none() => trace.committed = true,
                None => {}
            }
        }
        _ => return,
    }
    TRACE.set(trace);
}

/// What a failed job met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Conflict {
    None,
    /// A 40001 with nothing of the job committed: running it again is safe.
    Retryable,
    /// A 40001 after part of the job committed: running it again would repeat that part.
    AfterCommit,
}

/// A job starts on this thread.
pub(super) fn begin() {
    TRACE.set(Trace::default());
}

/// After the job failed: did it meet a serialization failure, and may it run again?
pub(super) fn conflict() -> Conflict {
    let trace = TRACE.get();
    match (trace.conflict, trace.committed) {
        (false, _) => Conflict::None,
        (true, false) => Conflict::Retryable,
        (true, true) => Conflict::AfterCommit,
    }
}

/// Before run `attempt` (1-based): 1-2 ms, doubling to 64-128 ms, jittered so the
/// transactions that collided do not collide again in step.
pub(super) fn backoff(attempt: u32) -> Duration {
    use std::hash::BuildHasher;
    let base_us = 1000u64 << attempt.saturating_sub(1).min(6);
    let jitter = std::collections::hash_map::RandomState::new().hash_one(attempt) % base_us;
    Duration::from_micros(base_us + jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_within_its_jitter() {
        for attempt in 1..=RETRIES {
            let wait = backoff(attempt).as_micros();
            let base = 1000u128 << (attempt - 1).min(6);
            assert!(
                wait >= base && wait < 2 * base,
                "attempt {attempt}: {wait} µs"
            );
        }
        let total: Duration = (1..=RETRIES).map(backoff).sum();
        assert!(total < Duration::from_millis(500), "{total:?}");
    }
}
