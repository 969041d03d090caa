//! The running provider's parts, shared by every request and free of HTTP: the domain modules
//! take this, the HTTP layer only translates.

use std::sync::Arc;

use crate::accounts::hash_pool::HashPool;
use crate::clock::Clock;
use crate::config::Settings;
use crate::db::Database;
use crate::federation::provider::Federation;
use crate::keys::KeyStore;
use crate::mail::Mailer;
use crate::metrics::Metrics;

#[derive(Clone)]
pub struct Services {
    pub db: Database,
    pub keys: Arc<KeyStore>,
    /// Seals and opens the secrets Tessera must read back (TOTP secrets).
    pub secrets: Arc<crate::mfa::SecretBox>,
    pub federation: Arc<Federation>,
    /// The WebAuthn relying party; `None` when the issuer's host is an IP address.
    pub passkeys: Option<Arc<crate::mfa::passkey::Passkeys>>,
    pub hashes: HashPool,
    pub settings: Arc<Settings>,
    pub issuer: String,
    pub clock: Clock,
    /// The SMTP server mail goes to; `None` when mail is off.
    pub mailer: Option<Arc<Mailer>>,
    /// Wakes the outbox sender when a mail is queued, so it need not wait for its next look.
    pub outbox_wake: Arc<tokio::sync::Notify>,
    /// Wakes the back-channel logout sender when a session ends.
    pub backchannel_wake: Arc<tokio::sync::Notify>,
    pub metrics: Arc<Metrics>,
}

impl Services {
    /// The metrics with the gauges read now from the database pool and the hashing queue.
    pub fn render_metrics(&self) -> String {
        let (in_use, idle, db_waiting) = self.db.load();
        let (breaker_open, breaker_trips, retries) = self.db.health();
        let (group_commits, grouped_jobs) = self.db.group_commits();
        self.metrics.render(crate::metrics::Gauges {
            db_breaker_open: breaker_open.into(),
            db_breaker_trips: breaker_trips,
            db_serialization_retries: retries,
            db_group_commits: group_commits,
            db_grouped_jobs: grouped_jobs,
            db_connections_in_use: in_use.into(),
            db_connections_idle: idle.into(),
            db_queue_depth: db_waiting as u64,
            hash_queue_depth: self.hashes.queue_depth() as u64,
            password_hashes: self.hashes.hashes_computed(),
        })
    }
}
