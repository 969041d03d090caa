//! The one bounded executor for blocking work: the database jobs and the password hashes each
//! get a lane of it (`Executor<C>`), with their own threads, queue bound and scheduling policy.
//! A lane's threads each hold a context (a connection pool, a hasher) that every job borrows.
//!
//! A job wakes one sleeping thread, and only if no thread is awake to take it: one wake per job
//! at most, where a channel shared behind a mutex woke two (the receiver, then the next thread
//! to wait on the channel). See bench/RESULTS.md, "One wake per database job".

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex};

/// How a lane's threads compete with the HTTP workers for the CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheduling {
    /// As the HTTP workers.
    Normal,
    /// SCHED_BATCH: woken by new work, the thread does not preempt the HTTP worker that queued
    /// it but runs when that worker waits or its time slice ends, and then takes every job
    /// queued meanwhile in one go, instead of two context switches per job.
    Batch,
    /// A higher nice value (0 is normal, 19 the lowest priority): the lane takes the CPU the
    /// HTTP workers leave over, so a storm of such work queues instead of starving requests.
    Lowered { nice: i32 },
}

/// The shape of one lane.
#[derive(Debug, Clone, Copy)]
pub struct Lane {
    /// Thread names are `tessera-<name>-<index>`.
    pub name: &'static str,
    pub threads: usize,
    /// How many jobs may wait for a thread; beyond that `submit` answers `Busy`.
    pub capacity: usize,
    pub scheduling: Scheduling,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("too much work is waiting")]
    Busy,
    #[error("the lane's threads are gone")]
    Gone,
    /// The job was taken but never answered (it panicked, or its thread ended).
    #[error("the job ended without an answer")]
    Ended,
}

/// A unit of work waiting for one of the lane's threads.
pub type Job<C> = Box<dyn FnOnce(&C) + Send>;

/// A handle on a lane; clones share it, and the last one dropped lets its threads finish the
/// queue and end.
pub struct Executor<C> {
    sender: Arc<Sender<C>>,
    threads: usize,
}

impl<C> Clone for Executor<C> {
    fn clone(&self) -> Self {
        Executor {
            sender: self.sender.clone(),
            threads: self.threads,
        }
    }
}

impl<C: Clone + Send + 'static> Executor<C> {
    /// Starts `lane.threads` threads (at least one), each with its own clone of `context`.
    pub fn start(lane: Lane, context: C) -> std::io::Result<Executor<C>> {
        let threads = lane.threads.max(1);
        let queue = Arc::new(Queue {
            state: Mutex::new(QueueState {
                jobs: VecDeque::new(),
                sleeping: 0,
                closed: false,
            }),
            ready: Condvar::new(),
            waiting: AtomicUsize::new(0),
            capacity: lane.capacity,
        });
        for index in 0..threads {
            let context = context.clone();
            let thread_queue = queue.clone();
            let scheduling = lane.scheduling;
            let spawned = std::thread::Builder::new()
                .name(format!("tessera-{}-{index}", lane.name))
                .spawn(move || {
                    apply(scheduling);
                    while let Some(job) = thread_queue.next() {
                        // A job that panics fails alone (its caller sees `Ended`); the thread
                        // lives on for the next, and the lane keeps its size.
                        let job = std::panic::AssertUnwindSafe(|| job(&context));
                        if std::panic::catch_unwind(job).is_err() {
                            tracing::error!(lane = lane.name, "an executor job panicked");
                        }
                    }
                });
            if let Err(error) = spawned {
                // The threads already started end instead of waiting for jobs that never come.
                queue.close();
                return Err(error);
            }
        }
        Ok(Executor {
            sender: Arc::new(Sender(queue)),
            threads,
        })
    }
}

impl<C> Executor<C> {
    /// Queues `job`, or refuses it when the queue is full.
    pub fn submit(&self, job: Job<C>) -> Result<(), Refused> {
        self.sender.0.push(job)
    }

    /// Runs `work` on one of the lane's threads, in the caller's tracing span, and waits for
    /// its answer without blocking the caller's thread.
    pub async fn run<T, F>(&self, work: F) -> Result<T, Refused>
    where
        F: FnOnce(&C) -> T + Send + 'static,
        T: Send + 'static,
    {
        let (done, answer) = tokio::sync::oneshot::channel();
        let span = tracing::Span::current();
        self.submit(Box::new(move |context: &C| {
            let _entered = span.enter();
            let _ = done.send(work(context));
        }))?;
        answer.await.map_err(|_| Refused::Ended)
    }

    /// Jobs queued and not yet started.
    pub fn depth(&self) -> usize {
        self.sender.0.waiting.load(Relaxed)
    }

    /// Whether a job submitted now would be refused as `Busy`.
    pub fn is_full(&self) -> bool {
        self.depth() >= self.sender.0.capacity
    }

    pub fn threads(&self) -> usize {
        self.threads
    }
}

struct Queue<C> {
    state: Mutex<QueueState<C>>,
    ready: Condvar,
    /// `state.jobs.len()`, readable without the lock (metrics, `is_full`).
    waiting: AtomicUsize,
    capacity: usize,
}

struct QueueState<C> {
    jobs: VecDeque<Job<C>>,
    /// Threads asleep waiting for a job.
    sleeping: usize,
    /// Every handle is gone: the threads finish the queue and end.
    closed: bool,
}

impl<C> Queue<C> {
    fn push(&self, job: Job<C>) -> Result<(), Refused> {
        let mut state = self.state.lock().map_err(|_| Refused::Gone)?;
        if state.jobs.len() >= self.capacity {
            return Err(Refused::Busy);
        }
        state.jobs.push_back(job);
        self.waiting.fetch_add(1, Relaxed);
        let wake = state.sleeping > 0;
        drop(state);
        if wake {
            self.ready.notify_one();
        }
        Ok(())
    }

    /// The next job, waiting for one; None once the queue is closed and empty.
    fn next(&self) -> Option<Job<C>> {
        let mut state = self.state.lock().ok()?;
        loop {
            if let Some(job) = state.jobs.pop_front() {
                self.waiting.fetch_sub(1, Relaxed);
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

/// The queue's sending side, shared by every clone of an Executor; the last one closes it.
struct Sender<C>(Arc<Queue<C>>);

impl<C> Drop for Sender<C> {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// Applies `scheduling` to the calling thread (Linux; elsewhere threads run as they are).
fn apply(scheduling: Scheduling) {
    match scheduling {
        Scheduling::Normal => {}
        #[cfg(target_os = "linux")]
        Scheduling::Batch => {
            // SAFETY: a plain system call on the calling thread (pid 0); the parameter
            // outlives it.
            let failed = unsafe {
                let param = libc::sched_param { sched_priority: 0 };
                libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) != 0
            };
            if failed {
                tracing::debug!("could not make an executor thread a batch thread");
            }
        }
        #[cfg(target_os = "linux")]
        Scheduling::Lowered { nice } => {
            // SAFETY: plain system calls on the calling thread's own id; no memory is shared.
            // setpriority(PRIO_PROCESS, tid) renices just this thread on Linux.
            let failed = unsafe {
                let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
                libc::setpriority(libc::PRIO_PROCESS, tid, nice) != 0
            };
            if failed {
                tracing::debug!("could not lower the priority of an executor thread");
            }
        }
        #[cfg(not(target_os = "linux"))]
        Scheduling::Batch | Scheduling::Lowered { .. } => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lane(threads: usize, capacity: usize) -> Lane {
        Lane {
            name: "test",
            threads,
            capacity,
            scheduling: Scheduling::Normal,
        }
    }

    #[tokio::test]
    async fn a_panicking_job_fails_alone() {
        let executor = Executor::start(lane(1, 8), ()).expect("threads");
        #[allow(clippy::panic)]
        let failed = executor.run(|_| panic!("a bug in a job")).await;
        assert_eq!(failed.map(|_: ()| ()), Err(Refused::Ended));
        assert_eq!(executor.run(|_| 7).await, Ok(7));
    }

    #[tokio::test]
    async fn runs_jobs_with_the_lane_context() {
        let executor = Executor::start(lane(2, 8), 21_u64).expect("threads");
        let doubled = executor.run(|n| n * 2).await.expect("answer");
        assert_eq!(doubled, 42);
        assert_eq!(executor.threads(), 2);
        assert_eq!(executor.depth(), 0);
    }

    /// With its only thread held, the queue takes `capacity` jobs, refuses the next as Busy, and
    /// counts what waits; once released every queued job runs.
    #[test]
    fn a_full_queue_refuses_and_counts_what_waits() {
        let executor = Executor::start(lane(1, 2), ()).expect("threads");
        let (release, held) = std::sync::mpsc::channel::<()>();
        let (started, has_started) = std::sync::mpsc::channel::<()>();
        executor
            .submit(Box::new(move |_| {
                let _ = started.send(());
                let _ = held.recv();
            }))
            .expect("first job");
        has_started.recv().expect("the thread took the first job");
        let ran = Arc::new(AtomicUsize::new(0));
        for _ in 0..2 {
            let ran = ran.clone();
            executor
                .submit(Box::new(move |_| {
                    ran.fetch_add(1, Relaxed);
                }))
                .expect("queued");
        }
        assert_eq!(executor.depth(), 2);
        assert!(executor.is_full());
        assert_eq!(executor.submit(Box::new(|_| {})), Err(Refused::Busy));
        release.send(()).expect("release");
        let (finished, has_finished) = std::sync::mpsc::channel::<()>();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let finished = finished.clone();
            match executor.submit(Box::new(move |_| {
                let _ = finished.send(());
            })) {
                Ok(()) => break,
                Err(Refused::Busy) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                Err(refused) => panic!("the queue never drained: {refused}"),
            }
        }
        has_finished.recv().expect("the queue drains");
        assert_eq!(ran.load(Relaxed), 2);
        assert_eq!(executor.depth(), 0);
    }
}
