//! The circuit breaker in front of PostgreSQL. Without it, every request during an outage
//! waits the whole connect timeout for a connection that never comes. With it, the first
//! job that finds the database unreachable opens the breaker; from then on every job is
//! refused at once (`DbError::Down`, a 503 with Retry-After) and a background thread probes
//! with a fresh connection until one answers, then drops the pooled connections the outage
//! killed and closes the breaker.
//!
//! Unreachable means: no connection could be had from the pool, or a connection died under a
//! job and a fresh one cannot be opened either (checked at once, so one connection closed by
//! the server, a pooler or an idle timeout does not open the breaker). SQLite has no breaker:
//! a locked, full or read-only file is not a database that went away.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError, Weak};
use std::time::Duration;

use diesel::connection::SimpleConnection;

use super::conn::{ConnectError, ConnectionManager, Pool, discard_connection};

/// Between two probes of a database that is still unreachable.
const PROBE_INTERVAL: Duration = Duration::from_millis(250);

pub(super) struct Breaker {
    /// Opens fresh connections for the probes; None (SQLite) disarms the breaker.
    probe: Option<ConnectionManager>,
    open: AtomicBool,
    /// How many times it opened.
    trips: AtomicU64,
    lock: Mutex<()>,
    opened: Condvar,
}

impl Breaker {
    pub(super) fn new(probe: Option<ConnectionManager>) -> Breaker {
        Breaker {
            probe,
            open: AtomicBool::new(false),
            trips: AtomicU64::new(0),
            lock: Mutex::new(()),
            opened: Condvar::new(),
        }
    }

    pub(super) fn is_open(&self) -> bool {
        self.open.load(Ordering::Acquire)
    }

    pub(super) fn trips(&self) -> u64 {
        self.trips.load(Ordering::Relaxed)
    }

    /// The database cannot be reached: refuse jobs from now on, and wake the prober.
    pub(super) fn trip(&self, cause: &dyn std::fmt::Display) {
        if self.probe.is_none() || self.open.swap(true, Ordering::AcqRel) {
            return;
        }
        self.trips.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            error = %cause,
            "database unreachable: refusing database work (503) until a probe connects"
        );
        let _guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        self.opened.notify_all();
    }

    /// A connection died under a job: open the breaker unless a fresh one can be had now.
    pub(super) fn connection_died(&self) {
        if let Some(manager) = &self.probe
            && let Err(e) = probe(manager)
        {
            self.trip(&e);
        }
    }
}

/// A fresh connection that answers a trivial query (bounded by the connect timeout the
/// manager adds to the URL).
fn probe(manager: &ConnectionManager) -> Result<(), ConnectError> {
    let mut conn = r2d2::ManageConnection::connect(manager)?;
    conn.batch_execute("SELECT 1")?;
    Ok(())
}

/// Starts the thread that probes while the breaker is open; it ends once `alive` is gone.
pub(super) fn start_prober(
    breaker: Arc<Breaker>,
    pool: Pool,
    alive: Weak<()>,
) -> std::io::Result<()> {
    if breaker.probe.is_none() {
        return Ok(());
    }
    std::thread::Builder::new()
        .name("tessera-db-probe".into())
        .spawn(move || {
            while alive.upgrade().is_some() {
                if !breaker.is_open() {
                    let guard = breaker.lock.lock().unwrap_or_else(PoisonError::into_inner);
                    let _ =
                        breaker
                            .opened
                            .wait_timeout_while(guard, Duration::from_secs(1), |_| {
                                !breaker.is_open()
                            });
                    continue;
                }
                let Some(manager) = &breaker.probe else {
                    return;
                };
                match probe(manager) {
                    Ok(()) => {
                        drop_dead_connections(&pool);
                        breaker.open.store(false, Ordering::Release);
                        tracing::info!("database reachable again");
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "database still unreachable");
                        std::thread::sleep(PROBE_INTERVAL);
                    }
                }
            }
        })
        .map(drop)
}

/// The idle connections the outage left behind, each checked and the dead ones closed, so no
/// job after the recovery draws one. Jobs are refused meanwhile: the pool is idle.
fn drop_dead_connections(pool: &Pool) {
    let idle = pool.state().idle_connections;
    let mut live = Vec::new();
    for _ in 0..idle {
        let Some(mut conn) = pool.try_get() else {
            break;
        };
        if super::dialect::connection_is_dead(&mut conn) {
            // Read by the manager's `has_broken` as the connection goes back, on this thread.
            discard_connection();
            drop(conn);
        } else {
            live.push(conn);
        }
    }
}
