//! The time, in epoch seconds (and milliseconds where whole seconds are too coarse). Production
//! reads the system clock; tests stop it or move it forward to expire things without sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset_millis: Arc<AtomicI64>,
    /// When set, the clock stands still at this time in epoch milliseconds (plus any advance).
    frozen_at_millis: Option<i64>,
}

impl Clock {
    pub fn system() -> Clock {
        Clock::default()
    }

    /// A clock that does not move by itself: a burst of requests all happens at one instant.
    pub fn frozen() -> Clock {
        Clock {
            frozen_at_millis: Some(chrono::Utc::now().timestamp_millis()),
            ..Clock::default()
        }
    }

    /// Epoch seconds.
    pub fn now(&self) -> i64 {
        self.now_millis().div_euclid(1000)
    }

    /// Epoch milliseconds.
    pub fn now_millis(&self) -> i64 {
        self.frozen_at_millis
            .unwrap_or_else(|| chrono::Utc::now().timestamp_millis())
            + self.offset_millis.load(Ordering::Relaxed)
    }

    /// Moves this clock (and every clone of it) forward.
    pub fn advance(&self, secs: i64) {
        self.advance_millis(secs.saturating_mul(1000));
    }

    pub fn advance_millis(&self, millis: i64) {
        self.offset_millis.fetch_add(millis, Ordering::Relaxed);
    }
}
