//! Password hashing on its own lane of the executor (`db::executor`): threads sized to the
//! cores and run at a lower scheduling priority than the request workers, so a storm of logins
//! queues here and takes the CPU that is left over, while JWKS, refresh and the rest keep
//! answering promptly.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};

use super::password::{Hasher, PasswordError, Verified};
use crate::db::executor::{Executor, Lane, Refused, Scheduling};

/// Nice value of the hashing threads (0 is normal, 19 the lowest priority).
const HASH_THREAD_NICE: i32 = 10;

#[derive(Debug, thiserror::Error)]
pub enum HashPoolError {
    #[error("too many password checks are waiting")]
    Busy,
    #[error("the password hashing threads are gone")]
    Gone,
    #[error(transparent)]
    Password(#[from] PasswordError),
}

/// The executor's hashing lane, with the figures the metrics and the timing defences read.
#[derive(Clone)]
pub struct HashPool {
    jobs: Executor<Arc<Hasher>>,
    /// Hashes of new passwords computed (not checks), for the metrics.
    hashed: Arc<AtomicU64>,
    /// A moving average of how long a hash takes, queueing included, in microseconds.
    typical_micros: Arc<AtomicU64>,
}

impl std::fmt::Debug for HashPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HashPool({} threads)", self.jobs.threads())
    }
}

/// The hashing threads for the `passwords.hash_threads` setting: 0 means one per core.
pub fn thread_count(configured: usize) -> usize {
    if configured == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        configured
    }
}

impl HashPool {
    /// `threads` 0 means one per core; `queue` is how many hashes may wait for a thread. The
    /// threads end when the last handle is dropped.
    pub fn new(hasher: Hasher, threads: usize, queue: usize) -> std::io::Result<HashPool> {
        let threads = thread_count(threads);
        let jobs = Executor::start(
            Lane {
                name: "hash",
                threads,
                capacity: queue,
                scheduling: Scheduling::Lowered {
                    nice: HASH_THREAD_NICE,
                },
            },
            Arc::new(hasher),
        )?;
        Ok(HashPool {
            jobs,
            hashed: Arc::default(),
            typical_micros: Arc::default(),
        })
    }

    /// Whether a hash asked for now would be refused as `Busy` (the queue is full). A request
    /// that may answer without hashing checks this first, so that a full pool refuses it as it
    /// would one that hashes, and "busy" tells nothing about which it was.
    pub fn is_saturated(&self) -> bool {
        self.jobs.is_full()
    }

    pub fn threads(&self) -> usize {
        self.jobs.threads()
    }

    /// Hashes and checks waiting for a thread.
    pub fn queue_depth(&self) -> usize {
        self.jobs.depth()
    }

    async fn submit<T: Send + 'static>(
        &self,
        job: impl FnOnce(&Hasher) -> T + Send + 'static,
    ) -> Result<T, HashPoolError> {
        self.jobs
            .run(move |hasher: &Arc<Hasher>| job(hasher))
            .await
            .map_err(|refused| match refused {
                Refused::Busy => HashPoolError::Busy,
                Refused::Gone | Refused::Ended => HashPoolError::Gone,
            })
    }

    /// Hashes of new passwords computed since start.
    pub fn hashes_computed(&self) -> u64 {
        self.hashed.load(Relaxed)
    }

    /// About how long a hash has taken lately (none yet: zero). A request that skips hashing
    /// may wait this long, on a timer, so that its answer does not come sooner than a hash's.
    pub fn typical_hash_time(&self) -> std::time::Duration {
        std::time::Duration::from_micros(self.typical_micros.load(Relaxed))
    }

    /// `typical_hash_time`, measured now with a hash of a throwaway password if there is no
    /// figure yet (right after a start), so that a request that waits instead of hashing never
    /// answers sooner than a hash would. The throwaway hash is not counted in
    /// `hashes_computed`. Measuring at start-up instead would keep argon2's memory in an idle
    /// server.
    pub async fn typical_hash_time_measured(&self) -> Result<std::time::Duration, HashPoolError> {
        if self.typical_micros.load(Relaxed) == 0 {
            let started = std::time::Instant::now();
            self.submit(|hasher| hasher.hash("throwaway, never stored"))
                .await??;
            let took = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
            let _ = self
                .typical_micros
                .compare_exchange(0, took.max(1), Relaxed, Relaxed);
            return Ok(started.elapsed());
        }
        Ok(self.typical_hash_time())
    }

    pub async fn hash(&self, password: String) -> Result<String, HashPoolError> {
        let hashed = self.hashed.clone();
        let started = std::time::Instant::now();
        let hash = self
            .submit(move |hasher| {
                hashed.fetch_add(1, Relaxed);
                hasher.hash(&password)
            })
            .await??;
        let took = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        let old = self.typical_micros.load(Relaxed);
        let typical = if old == 0 {
            took
        } else {
            (old.saturating_mul(7).saturating_add(took)) / 8
        };
        self.typical_micros.store(typical, Relaxed);
        Ok(hash)
    }

    /// Verifies against `stored`, or, when there is no stored hash (unknown user, or one
    /// without a password), against a dummy hash of the same cost, so both take as long.
    pub async fn verify(
        &self,
        password: String,
        stored: Option<String>,
    ) -> Result<Verified, HashPoolError> {
        self.submit(move |hasher| match stored {
            Some(phc) if hasher.is_parsable(&phc) => hasher.verify(&password, &phc),
            // No hash, or one that cannot be parsed: spend the same time on the dummy.
            _ => {
                hasher.verify(&password, dummy_hash(hasher));
                Verified::No
            }
        })
        .await
    }
}

/// A hash of a random password under the current parameters, made once on first need (not at
/// start-up, which must stay fast).
fn dummy_hash(hasher: &Hasher) -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let password = crate::crypto::random_token(24).unwrap_or_else(|_| "x".repeat(32));
        hasher.hash(&password).unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PasswordSettings;

    fn pool(queue: usize) -> HashPool {
        let hasher = Hasher::new(&PasswordSettings {
            argon2_memory_kib: 1024,
            argon2_iterations: 1,
            argon2_parallelism: 1,
            min_length: 8,
            hash_threads: 1,
            hash_queue: queue,
        })
        .expect("params");
        HashPool::new(hasher, 1, queue).expect("threads")
    }

    #[tokio::test]
    async fn hashes_and_verifies_off_the_caller() {
        let pool = pool(4);
        let hash = pool.hash("correct horse".into()).await.expect("hash");
        let verified = pool
            .verify("correct horse".into(), Some(hash.clone()))
            .await
            .expect("verify");
        assert_eq!(verified, Verified::Yes);
        assert_eq!(
            pool.verify("wrong".into(), Some(hash))
                .await
                .expect("verify"),
            Verified::No
        );
        assert_eq!(
            pool.verify("anything".into(), None).await.expect("verify"),
            Verified::No
        );
    }
}
