//! The outbox: mail is a row written in the same transaction as what caused it, and a
//! background sender delivers it with retries and back-off.
//!
//! A row names the kind of mail and the address, not its text: the single-use token in the
//! link is made (and only its hash stored) when the mail is sent, so the database never holds
//! a usable token. Rows for an address with no account (a password reset asked for an unknown
//! email) are closed as `skipped` by the sender: the request itself does the same work either
//! way, so its answer and timing say nothing about which accounts exist.
//!
//! Delivery is at most once per claim: a sender claims a row with one conditional UPDATE
//! before sending, so two replicas never send the same row. A sender that dies between the
//! SMTP server's "250 OK" and marking the row sent leaves its claim to lapse, and the mail is
//! sent again after `mail.claim_secs` (SMTP cannot be made part of a database transaction).

use std::sync::Arc;
use std::time::Duration;

use super::Mailer;
use super::templates::{self, MailKind};
use crate::db::repo::account_tokens::{self, AccountToken};
use crate::db::repo::{self, outbox::OutboxRow};
use crate::db::{DbConnection, DbError};
use crate::services::Services;

/// Queues a mail of `kind` to `email_lower` (inside the caller's transaction).
pub fn enqueue(
    conn: &mut DbConnection,
    kind: MailKind,
    email_lower: &str,
    user_id: Option<&str>,
    now: i64,
) -> Result<(), DbError> {
    repo::outbox::insert(
        conn,
        &OutboxRow::new(kind.as_str(), email_lower, user_id, now),
    )?;
    Ok(())
}

/// Runs the sender until the process ends; nothing when mail is off.
pub fn spawn_sender(svc: Services) {
    let Some(mailer) = svc.mailer.clone() else {
        tracing::info!("no SMTP server configured: mail is off");
        return;
    };
    tracing::info!(target = ?mailer.target(), "mail sender started");
    let poll = Duration::from_millis(svc.settings.mail.poll_interval_ms);
    tokio::spawn(async move {
        loop {
            match send_due(&svc, &mailer).await {
                // A full batch: more may be waiting.
                Ok(claimed) if claimed >= svc.settings.mail.batch_size as usize => continue,
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "outbox: cannot read the queue"),
            }
            tokio::select! {
                () = svc.outbox_wake.notified() => {}
                () = tokio::time::sleep(poll) => {}
            }
        }
    });
}

/// Sends up to `mail.batch_size` due mails, claiming each just before sending it (so a claim
/// never lapses while earlier mails of the batch are still going out); returns how many it
/// claimed.
pub async fn send_due(svc: &Services, mailer: &Arc<Mailer>) -> Result<usize, DbError> {
    let claim_id = crate::db::new_id();
    let settings = svc.settings.mail.clone();
    let mut count = 0;
    while count < settings.batch_size as usize {
        let now = svc.clock.now();
        let claimed = {
            let claim_id = claim_id.clone();
            svc.db
                .run(move |conn| {
                    // Another replica may take a candidate first: then try the next.
                    let mail = repo::outbox::Kinds::AllBut(repo::outbox::BACKCHANNEL_LOGOUT);
                    for id in repo::outbox::due(conn, now, settings.batch_size, mail)? {
                        let until = now + settings.claim_secs;
                        if repo::outbox::claim(conn, &id, &claim_id, now, until)? == 1 {
                            return Ok::<_, DbError>(repo::outbox::find(conn, &id)?);
                        }
                    }
                    Ok(None)
                })
                .await?
        };
        let Some(row) = claimed else { break };
        count += 1;
        let id = row.id.clone();
        if let Err(error) = deliver(svc, mailer, row, &claim_id).await {
            tracing::warn!(mail = %id, %error, "outbox: a mail could not be processed");
        }
    }
    Ok(count)
}

/// What the sender does with one claimed row.
enum Prepared {
    Skip(&'static str),
    Send {
        to: String,
        name: Option<String>,
        token: String,
        token_hash: String,
    },
}

async fn deliver(
    svc: &Services,
    mailer: &Mailer,
    row: OutboxRow,
    claim_id: &str,
) -> Result<(), DbError> {
    let Some(kind) = MailKind::parse(&row.kind) else {
        return finish(svc, &row.id, claim_id, "failed", Some("unknown kind")).await;
    };
    let now = svc.clock.now();
    let valid_for = match kind.token_purpose() {
        MailKind::VerifyEmail => svc.settings.accounts.verification_ttl_secs,
        _ => svc.settings.accounts.reset_ttl_secs,
    };
    let prepared = {
        let row = row.clone();
        svc.db
            .run(move |conn| prepare(conn, kind, &row, valid_for, now))
            .await?
    };
    let (to, name, token, token_hash) = match prepared {
        Prepared::Skip(why) => {
            tracing::info!(mail = %row.id, kind = kind.as_str(), why, "outbox: nothing to send");
            return finish(svc, &row.id, claim_id, "skipped", Some(why)).await;
        }
        Prepared::Send {
            to,
            name,
            token,
            token_hash,
        } => (to, name, token, token_hash),
    };
    let mail = match templates::render(kind, &svc.issuer, &to, name.as_deref(), &token, valid_for) {
        Ok(mail) => mail,
        Err(e) => {
            tracing::error!(mail = %row.id, kind = kind.as_str(), error = %e, "outbox: the mail did not render");
            // The link in a mail that never left must not work later.
            svc.db
                .run(move |conn| account_tokens::delete(conn, &token_hash).map_err(DbError::from))
                .await?;
            return finish(svc, &row.id, claim_id, "failed", Some("did not render")).await;
        }
    };
    match mailer.send(mail).await {
        Ok(()) => {
            tracing::info!(mail = %row.id, kind = kind.as_str(), "outbox: mail sent");
            finish(svc, &row.id, claim_id, "sent", None).await
        }
        Err(error) => {
            let message: String = error.to_string().chars().take(500).collect();
            let attempts = row.attempts;
            let settings = svc.settings.mail.clone();
            let id = row.id.clone();
            let claim = claim_id.to_string();
            let now = svc.clock.now();
            let gave_up = attempts >= settings.max_attempts;
            tracing::warn!(mail = %id, attempts, gave_up, error = %message, "outbox: sending failed");
            svc.db
                .run(move |conn| {
                    // The link in a mail that never left must not work later.
                    account_tokens::delete(conn, &token_hash)?;
                    if gave_up {
                        repo::outbox::finish(conn, &id, &claim, "failed", Some(&message), now)?;
                    } else {
                        let wait = repo::outbox::retry_delay(
                            settings.retry_base_secs,
                            settings.retry_max_secs,
                            attempts,
                        );
                        repo::outbox::retry_later(conn, &id, &claim, &message, now + wait)?;
                    }
                    Ok(())
                })
                .await
        }
    }
}

/// Resolves the row's account and, if a mail is due, makes its single-use token.
fn prepare(
    conn: &mut DbConnection,
    kind: MailKind,
    row: &OutboxRow,
    valid_for: i64,
    now: i64,
) -> Result<Prepared, DbError> {
    let user = match &row.user_id {
        Some(id) => repo::users::find_by_id(conn, id)?,
        None => repo::users::find_by_email(conn, &row.recipient_lower)?,
    };
    let Some(user) = user else {
        return Ok(Prepared::Skip("no account has this address"));
    };
    if user.disabled_at.is_some() {
        return Ok(Prepared::Skip("the account is disabled"));
    }
    if kind == MailKind::VerifyEmail && user.email_verified_at.is_some() {
        return Ok(Prepared::Skip("the address is verified already"));
    }
    let token = crate::crypto::random_token(32).map_err(|e| DbError::Task(e.to_string()))?;
    let token_hash = crate::crypto::sha256_hex(token.as_bytes());
    account_tokens::insert(
        conn,
        &AccountToken {
            token_hash: token_hash.clone(),
            user_id: user.id.to_string(),
            purpose: kind.token_purpose().as_str().to_string(),
            created_at: now,
            expires_at: now + valid_for,
            used_at: None,
        },
    )?;
    Ok(Prepared::Send {
        to: user.email,
        name: user.name,
        token,
        token_hash,
    })
}

/// Closes a claimed outbox row with its outcome (shared by the mail and back-channel senders).
pub async fn finish(
    svc: &Services,
    id: &str,
    claim_id: &str,
    outcome: &'static str,
    note: Option<&'static str>,
) -> Result<(), DbError> {
    let (id, claim_id, now) = (id.to_string(), claim_id.to_string(), svc.clock.now());
    svc.db
        .run(move |conn| {
            repo::outbox::finish(conn, &id, &claim_id, outcome, note, now)
                .map(drop)
                .map_err(DbError::from)
        })
        .await
}
