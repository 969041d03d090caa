//! Which Tessera account an upstream identity signs in to.
//!
//! An upstream *vouches* for an address when it is trusted for addresses (`trust_email`) AND
//! says the address is verified. An address nobody vouched for is never used to link and never
//! owned (the "nOAuth" class of bug: a hostile upstream would otherwise take over any account).
//!
//! 1. An identity seen before (provider + `sub`) → its account.
//! 2. Else, when the upstream vouches for the address and an account holds it:
//!    - the holder verified the address and has a password → nothing yet: the person must
//!      prove that account with its password first ([`Resolved::NeedsPassword`], then
//!      [`link_confirmed`]), as Keycloak's "first broker login" does. Otherwise whoever
//!      pre-registered the address with a password of their own would get the identity;
//!    - the holder verified the address and has no password (upstream sign-ins only) → linked;
//!    - the holder never verified the address → the vouched identity owns it: the holder loses
//!      the address (sign-in key, sessions) and a new account owns it. An unverified account
//!      never blocks the address's owner.
//! 3. Else a new account without a password. It owns the address only when the upstream
//!    vouched for it and nobody else holds it; otherwise its sign-in key is
//!    `upstream <provider> <sub>` (never a valid email, which has no spaces), so it cannot
//!    sign in by email, take the address over, or carry it in tokens.
//!
//! Every link, creation and release is an audit event.

use diesel::Connection;
use serde_json::json;

use super::UpstreamIdentity;
use crate::accounts::email::Email;
use crate::audit::{self, Event, Record};
use crate::db::models::{FederatedIdentity, NewUser, PendingLink};
use crate::db::{DbConnection, DbError, repo};
use crate::domain::User;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The identity was linked before.
    Returning,
    /// Linked now to the account with the same verified email.
    Linked,
    /// A new account.
    Created,
}

pub enum Resolved {
    /// The account to sign in to.
    Account(Box<User>, Outcome),
    /// Linking to this account needs its password first; nothing was written.
    NeedsPassword(Box<User>),
}

/// Finds or makes the account, in one transaction. A concurrent first sign-in of the same
/// identity makes one of the two transactions fail on a unique index; the caller retries.
/// `trust_email`: whether this upstream's verified addresses are believed.
pub fn resolve(
    conn: &mut DbConnection,
    provider: &str,
    trust_email: bool,
    identity: &UpstreamIdentity,
    ip: Option<&str>,
    now: i64,
) -> Result<Resolved, DbError> {
    conn.transaction(|conn| {
        if let Some(known) = repo::federation::find_identity(conn, provider, &identity.subject)? {
            repo::federation::touch_identity(conn, &known.id, identity.email.as_deref(), now)?;
            let user = repo::users::find_by_id(conn, &known.user_id)?
                .ok_or(DbError::Query(diesel::result::Error::NotFound))?;
            audit::record(
                conn,
                Event::FederatedLogin,
                Record {
                    user_id: Some(&user.id),
                    ip,
                    detail: Some(json!({ "provider": provider })),
                    ..Record::default()
                },
                now,
            )?;
            return Ok(Resolved::Account(Box::new(user), Outcome::Returning));
        }
        let email = identity.email.as_deref().and_then(|e| Email::parse(e).ok());
        let vouched = trust_email && identity.email_verified && email.is_some();
        let holder = match &email {
            Some(email) => repo::users::find_by_email(conn, email.lookup_key())?,
            None => None,
        };
        let (user, outcome) = match holder {
            Some(holder) if vouched && holder.email_verified_at.is_some() => {
                if holder.password_hash.is_some() {
                    return Ok(Resolved::NeedsPassword(Box::new(holder)));
                }
                (holder, Outcome::Linked)
            }
            holder => {
                let released = match holder {
                    Some(holder) if vouched => {
                        release_address(conn, &holder, provider, ip, now)?;
                        true
                    }
                    Some(_) => false,
                    None => true,
                };
                let owns_address = vouched && released;
                let key = match (&email, owns_address) {
                    (Some(email), true) => email.lookup_key().to_string(),
                    _ => format!("upstream {provider} {}", identity.subject),
                };
                let id = crate::db::new_id();
                let stamp =
                    crate::crypto::random_token(16).map_err(|e| DbError::Task(e.to_string()))?;
                repo::users::insert(
                    conn,
                    &NewUser {
                        id: &id,
                        email: email.as_ref().map_or("", |e| e.display()),
                        email_lower: &key,
                        name: identity.name.as_deref(),
                        password_hash: None,
                        roles: "",
                        security_stamp: &stamp,
                        email_verified_at: owns_address.then_some(now),
                        created_at: now,
                        updated_at: now,
                    },
                )?;
                let user = repo::users::find_by_id(conn, &id)?
                    .ok_or(DbError::Query(diesel::result::Error::NotFound))?;
                (user, Outcome::Created)
            }
        };
        insert_identity(
            conn,
            provider,
            &identity.subject,
            identity.email.clone(),
            &user.id,
            now,
        )?;
        let event = match outcome {
            Outcome::Linked => Event::FederatedIdentityLinked,
            _ => Event::FederatedUserCreated,
        };
        audit::record(
            conn,
            event,
            Record {
                user_id: Some(&user.id),
                ip,
                detail: Some(json!({
                    "provider": provider,
                    "email_verified_upstream": identity.email_verified,
                    "email_trusted": trust_email,
                })),
                ..Record::default()
            },
            now,
        )?;
        Ok(Resolved::Account(Box::new(user), outcome))
    })
}

/// Links the pending identity to its account once the person proved that account's password,
/// and uses the pending link up, in one transaction. `None` when the link was used meanwhile,
/// or the account changed so that the link no longer stands (disabled, or its address gone).
pub fn link_confirmed(
    conn: &mut DbConnection,
    pending: &PendingLink,
    ip: Option<&str>,
    now: i64,
) -> Result<Option<User>, DbError> {
    conn.transaction(|conn| {
        if repo::federation::consume_pending_link(conn, &pending.secret_hash, now)? == 0 {
            return Ok(None);
        }
        let Some(user) = repo::users::find_by_id(conn, &pending.user_id)? else {
            return Ok(None);
        };
        let still_holds = pending
            .email
            .as_deref()
            .and_then(|e| Email::parse(e).ok())
            .is_some_and(|e| e.lookup_key() == user.email_lower);
        if !still_holds
            || user.disabled_at.is_some()
            || repo::federation::find_identity(conn, &pending.provider, &pending.subject)?.is_some()
        {
            return Ok(None);
        }
        insert_identity(
            conn,
            &pending.provider,
            &pending.subject,
            pending.email.clone(),
            &user.id,
            now,
        )?;
        audit::record(
            conn,
            Event::FederatedIdentityLinked,
            Record {
                user_id: Some(&user.id),
                ip,
                detail: Some(json!({
                    "provider": pending.provider,
                    "email_verified_upstream": true,
                    "confirmed_with": "password",
                })),
                ..Record::default()
            },
            now,
        )?;
        Ok(Some(user))
    })
}

fn insert_identity(
    conn: &mut DbConnection,
    provider: &str,
    subject: &str,
    email: Option<String>,
    user_id: &str,
    now: i64,
) -> Result<(), DbError> {
    repo::federation::insert_identity(
        conn,
        &FederatedIdentity {
            id: crate::db::new_id(),
            provider: provider.to_string(),
            subject: subject.to_string(),
            user_id: user_id.to_string(),
            email,
            created_at: now,
            last_login_at: now,
        },
    )?;
    Ok(())
}

/// An unverified account gives its address up to an identity whose upstream vouches for it:
/// its sign-in key becomes `released <id>` (so its password no longer signs in by the
/// address), its security stamp changes, its sessions and verification links end. The account
/// itself stays for the operator (and, with mail on, the purge of unverified accounts).
fn release_address(
    conn: &mut DbConnection,
    holder: &User,
    provider: &str,
    ip: Option<&str>,
    now: i64,
) -> Result<(), DbError> {
    let stamp = crate::crypto::random_token(16).map_err(|e| DbError::Task(e.to_string()))?;
    repo::users::release_address(
        conn,
        &holder.id,
        &format!("released {}", holder.id),
        &stamp,
        now,
    )?;
    let sessions =
        crate::refresh::store::revoke_families_of_user(conn, &holder.id, now, "email_released")?;
    crate::sso::end_all_of_user(conn, &holder.id, crate::sso::EndReason::EmailReleased, now)?;
    // A queued verification mail would still reach the address's owner, who might confirm it.
    repo::outbox::delete_unfinished_for(conn, &holder.id)?;
    repo::account_tokens::use_up_all(
        conn,
        &holder.id,
        crate::mail::templates::MailKind::VerifyEmail.as_str(),
        now,
    )?;
    audit::record(
        conn,
        Event::EmailReleased,
        Record {
            user_id: Some(&holder.id),
            ip,
            detail: Some(json!({
                "to_provider": provider,
                "revoked_sessions": sessions,
            })),
            ..Record::default()
        },
        now,
    )?;
    Ok(())
}

/// Whether a failed `resolve` lost a race on a unique index and is worth one retry.
pub fn is_conflict(e: &DbError) -> bool {
    matches!(
        e,
        DbError::Query(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _
        ))
    )
}
