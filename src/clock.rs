//! The time, in epoch seconds. Production reads the system clock; tests stop it or move it
//! forward to expire things without sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset_secs: Arc<AtomicI64>,
    /// When set, the clock stands still at this time (plus any advance).
    frozen_at: Option<i64>,
}

impl Clock {
    pub fn system() -> Clock {
        Clock::default()
    }

    /// A clock that does not move by itself: a burst of requests all happens at one instant.
    pub fn frozen() -> Clock {
        Clock {
            frozen_at: Some(chrono::Utc::now().timestamp()),
            ..Clock::default()
        }
    }

    pub fn now(&self) -> i64 {
        self.frozen_at
            .unwrap_or_else(|| chrono::Utc::now().timestamp())
            + self.offset_secs.load(Ordering::Relaxed)
    }

    /// Moves this clock (and every clone of it) forward.
    pub fn advance(&self, secs: i64) {
        self.offset_secs.fetch_add(secs, Ordering::Relaxed);
    }
}
