//! Which Tessera account an upstream identity signs in to.
//!
//! 1. An identity seen before (provider + `sub`) → its account.
//! 2. Else an account with the same email is linked only when BOTH the upstream says the email
//!    is verified AND the Tessera account's email is verified. Linking on anything less hands
//!    an account to whoever controls an unverified address (pre-account takeover,
//!    keycloak#53041).
//! 3. Else a new account without a password. If the address already belongs to an account
//!    that may not be linked, the new account shows the address but does not own it: its
//!    sign-in key is `upstream <provider> <sub>` (never a valid email, which has no spaces),
//!    so it cannot sign in by email or take the address over.
//!
//! Every link and creation is an audit event.

use diesel::Connection;
use serde_json::json;

use super::UpstreamIdentity;
use crate::accounts::email::Email;
use crate::audit::{self, Event, Record};
use crate::db::models::{FederatedIdentity, NewUser, User};
use crate::db::{DbConnection, DbError, repo};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The identity was linked before.
    Returning,
    /// Linked now to the account with the same verified email.
    Linked,
    /// A new account.
    Created,
}

/// Finds or makes the account, in one transaction. A concurrent first sign-in of the same
/// identity makes one of the two transactions fail on a unique index; the caller retries.
pub fn resolve(
    conn: &mut DbConnection,
    provider: &str,
    identity: &UpstreamIdentity,
    ip: Option<&str>,
    now: i64,
) -> Result<(User, Outcome), DbError> {
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
            return Ok((user, Outcome::Returning));
        }
        let email = identity.email.as_deref().and_then(|e| Email::parse(e).ok());
        let holder = match &email {
            Some(email) => repo::users::find_by_email(conn, email.lookup_key())?,
            None => None,
        };
        let (user, outcome) = match holder {
            Some(holder) if identity.email_verified && holder.email_verified_at.is_some() => {
                (holder, Outcome::Linked)
            }
            holder => {
                let owns_address = email.is_some() && holder.is_none();
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
                        email_verified_at: (identity.email_verified && email.is_some())
                            .then_some(now),
                        created_at: now,
                        updated_at: now,
                    },
                )?;
                let user = repo::users::find_by_id(conn, &id)?
                    .ok_or(DbError::Query(diesel::result::Error::NotFound))?;
                (user, Outcome::Created)
            }
        };
        repo::federation::insert_identity(
            conn,
            &FederatedIdentity {
                id: crate::db::new_id(),
                provider: provider.to_string(),
                subject: identity.subject.clone(),
                user_id: user.id.clone(),
                email: identity.email.clone(),
                created_at: now,
                last_login_at: now,
            },
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
                })),
                ..Record::default()
            },
            now,
        )?;
        Ok((user, outcome))
    })
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
