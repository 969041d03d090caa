//! The purge that keeps the tables from growing forever: expired and revoked tokens, codes,
//! browser sessions, counters and audit records past their retention, in small batches.

use serde::Serialize;

use crate::config::Settings;
use crate::db::{DbConnection, DbError, repo};
use crate::services::Services;

/// Rows the purge deleted.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct Purged {
    pub refresh_families: usize,
    pub used_refresh_tokens: usize,
    pub authorization_codes: usize,
    /// Browser sessions ended or expired (idle or absolute) before the retention.
    pub browser_sessions: usize,
    pub revoked_access_tokens: usize,
    pub login_throttles: usize,
    pub federation_states: usize,
    pub account_tokens: usize,
    pub finished_mails: usize,
    pub pending_links: usize,
    /// Accounts that never verified their address (only with mail on).
    pub unverified_accounts: usize,
    pub known_sign_ins: usize,
    /// Second steps of sign-ins (`mfa::pending`), once expired.
    pub mfa_pending: usize,
    /// Passkey ceremonies (registration, sign-in) never finished and now expired.
    pub webauthn_ceremonies: usize,
    pub audit_events: usize,
}

/// Deletes what has been expired or revoked for longer than the retention, in batches of
/// `purge.batch_size`, each its own short statement; audit events after their own retention;
/// and, with mail on, self-registered accounts that never verified their address within
/// `accounts.unverified_ttl_secs`. Without mail nobody can verify by mail, so no account is
/// deleted for it (an operator verifies them).
pub fn purge(
    conn: &mut DbConnection,
    all: &Settings,
    mail_on: bool,
    now: i64,
) -> Result<Purged, DbError> {
    let settings = &all.purge;
    let window_secs = all.counter_window_secs();
    let cutoff = now - settings.retention_secs;
    let batch = settings.batch_size;
    let known_cutoff = now - all.throttle.known_sign_in_ttl_secs;
    let audit_cutoff =
        (settings.audit_retention_secs > 0).then(|| now - settings.audit_retention_secs);
    let drain = |conn: &mut DbConnection,
                 step: &dyn Fn(&mut DbConnection) -> diesel::QueryResult<usize>| {
        let mut total = 0;
        loop {
            let deleted = step(conn)?;
            total += deleted;
            if deleted < batch as usize {
                return Ok::<_, DbError>(total);
            }
        }
    };
    Ok(Purged {
        refresh_families: drain(conn, &|c| {
            crate::refresh::store::purge_families(c, cutoff, batch)
        })?,
        used_refresh_tokens: drain(conn, &|c| {
            crate::refresh::store::purge_used_tokens(c, cutoff, batch)
        })?,
        authorization_codes: drain(conn, &|c| crate::authorize::store::purge(c, cutoff, batch))?,
        browser_sessions: drain(conn, &|c| crate::sso::store::purge(c, cutoff, batch))?,
        revoked_access_tokens: drain(conn, &|c| repo::revoked::purge(c, now, batch))?,
        login_throttles: drain(conn, &|c| {
            repo::throttles::purge(c, now - window_secs, now, batch)
        })?,
        // Pending upstream sign-ins are worthless once expired: no retention.
        federation_states: drain(conn, &|c| repo::federation::purge_states(c, now, batch))?,
        account_tokens: drain(conn, &|c| repo::account_tokens::purge(c, cutoff, batch))?,
        finished_mails: drain(conn, &|c| repo::outbox::purge(c, cutoff, batch))?,
        pending_links: drain(conn, &|c| {
            repo::federation::purge_pending_links(c, now, batch)
        })?,
        unverified_accounts: match all.accounts.unverified_ttl_secs {
            ttl if mail_on && ttl > 0 => {
                crate::accounts::self_service::purge_unverified(conn, now - ttl, batch, now)?
            }
            _ => 0,
        },
        known_sign_ins: drain(conn, &|c| {
            repo::known_sign_ins::purge(c, known_cutoff, batch)
        })?,
        mfa_pending: drain(conn, &|c| crate::mfa::pending::purge(c, now, batch))?,
        webauthn_ceremonies: drain(conn, &|c| crate::mfa::passkey_store::purge(c, now, batch))?,
        audit_events: match audit_cutoff {
            Some(cutoff) => drain(conn, &|c| repo::audit::purge(c, cutoff, batch))?,
            None => 0,
        },
    })
}

/// Runs the purge every `interval_secs` until the process ends.
pub fn spawn_purge(svc: Services) {
    let interval = svc.settings.purge.interval_secs;
    if interval == 0 {
        return;
    }
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(std::time::Duration::from_secs(interval));
        ticker.tick().await; // the first tick is immediate; start-up stays fast
        loop {
            ticker.tick().await;
            let settings = svc.settings.clone();
            let now = svc.clock.now();
            let mail_on = svc.mailer.is_some();
            let result = svc
                .db
                .run(move |conn| purge(conn, &settings, mail_on, now))
                .await;
            match result {
                Ok(purged) => tracing::info!(?purged, "purge finished"),
                Err(error) => tracing::warn!(%error, "purge failed"),
            }
        }
    });
}
