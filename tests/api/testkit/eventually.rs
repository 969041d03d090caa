//! Waiting for a state: the one way tests wait. A check is polled until it holds or the
//! deadline passes, and then the test fails saying what it waited for and how long, so a
//! regression fails instead of hanging, and a fast machine does not sit out a fixed sleep.

use std::future::Future;
use std::time::{Duration, Instant};

/// How often a check is polled.
const POLL: Duration = Duration::from_millis(25);

/// What a check answers: `true`/`false`, or `Some(value)` once there is something to return.
pub trait Outcome {
    type Value;
    fn ready(self) -> Option<Self::Value>;
}

impl Outcome for bool {
    type Value = ();
    fn ready(self) -> Option<()> {
        self.then_some(())
    }
}

impl<T> Outcome for Option<T> {
    type Value = T;
    fn ready(self) -> Option<T> {
        self
    }
}

/// Polls `check` until it answers yes (`true` or `Some`) and returns the value; fails the test
/// with "timed out after {deadline} waiting for {what}" at the deadline. The check always runs
/// at least once, and once more at the deadline.
pub async fn eventually<F, Fut, O>(deadline: Duration, what: &str, mut check: F) -> O::Value
where
    F: FnMut() -> Fut,
    Fut: Future<Output = O>,
    O: Outcome,
{
    let started = Instant::now();
    loop {
        let last_chance = started.elapsed() >= deadline;
        if let Some(value) = check().await.ready() {
            return value;
        }
        assert!(
            !last_chance,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// The deadline most waits use: generous for a loaded 2-core machine, short enough that a
/// hang is a quick failure.
pub const DEADLINE: Duration = Duration::from_secs(15);

#[tokio::test]
async fn eventually_returns_the_value_once_the_check_holds() {
    let mut calls = 0;
    let value = eventually(DEADLINE, "the third call", || {
        calls += 1;
        let now = calls;
        async move { (now == 3).then_some(now * 10) }
    })
    .await;
    assert_eq!(value, 30);
}

#[tokio::test]
async fn eventually_fails_naming_what_it_waited_for() {
    let waited = tokio::spawn(eventually(
        Duration::from_millis(60),
        "a state that never comes",
        || async { false },
    ))
    .await
    .expect_err("the wait fails");
    let message = waited.into_panic();
    let message = message
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(
        message.contains("waiting for a state that never comes") && message.contains("60ms"),
        "{message}"
    );
}
