//! User accounts as the operator and administrators manage them.

use diesel::Connection;
use serde_json::json;

use super::Actor;
use crate::accounts::email::Email;
use crate::accounts::self_service::{self, SelfServiceError};
use crate::accounts::{self, AccountError, Cursor, NewAccount, UserPage};
use crate::audit::{self, Event, Record};
use crate::db::repo;
use crate::db::{DbConnection, DbError};
use crate::domain::{Roles, User};

/// A user by address, if there is one.
pub fn find_by_email(conn: &mut DbConnection, email: &Email) -> Result<Option<User>, AccountError> {
    Ok(repo::users::find_by_email(conn, email.lookup_key())?)
}

/// A page of users, oldest first.
pub fn list(
    conn: &mut DbConnection,
    after: Option<&Cursor>,
    limit: i64,
) -> Result<UserPage, AccountError> {
    accounts::list_users(conn, after, limit)
}

/// Creates an account with an already computed password hash (hashing is slow and stays out
/// of the database closure). Audited as `user_registered`, the event of every account that
/// comes into being with a password, with `via: operator` where self-registration says
/// `via: self_registration`.
pub fn add(
    conn: &mut DbConnection,
    actor: &Actor,
    account: &NewAccount,
    password_hash: Option<&str>,
    now: i64,
) -> Result<User, AccountError> {
    conn.transaction(|conn| {
        let user = accounts::create(conn, account, password_hash)?;
        audit::record(
            conn,
            Event::UserRegistered,
            Record {
                user_id: Some(&user.id),
                detail: Some(json!({ "via": "operator", "by": actor.by() })),
                ..Record::default()
            },
            now,
        )?;
        Ok(user)
    })
}

/// Disables an account: it can no longer sign in, and its sessions end.
pub fn disable(
    conn: &mut DbConnection,
    actor: &Actor,
    user_id: &str,
    now: i64,
) -> Result<User, AccountError> {
    set_disabled(conn, actor, user_id, true, now)
}

/// Enables a disabled account.
pub fn enable(
    conn: &mut DbConnection,
    actor: &Actor,
    user_id: &str,
    now: i64,
) -> Result<User, AccountError> {
    set_disabled(conn, actor, user_id, false, now)
}

/// Either way the security stamp changes, so sessions started before (refresh token
/// families) end.
fn set_disabled(
    conn: &mut DbConnection,
    actor: &Actor,
    user_id: &str,
    disabled: bool,
    now: i64,
) -> Result<User, AccountError> {
    conn.transaction(|conn| {
        let stamp = crate::crypto::random_token(16).map_err(|e| DbError::Task(e.to_string()))?;
        let changed =
            repo::users::set_disabled(conn, user_id, disabled.then_some(now), &stamp, now)?;
        if changed == 0 {
            return Err(AccountError::NotFound);
        }
        if disabled {
            crate::sso::end_all_of_user(conn, user_id, crate::sso::EndReason::UserDisabled, now)?;
        }
        let event = if disabled {
            Event::UserDisabled
        } else {
            Event::UserEnabled
        };
        audit::record(
            conn,
            event,
            Record {
                user_id: Some(user_id),
                detail: Some(json!({ "by": actor.by() })),
                ..Record::default()
            },
            now,
        )?;
        repo::users::find_by_id(conn, user_id)?.ok_or(AccountError::NotFound)
    })
}

/// Replaces a user's roles.
pub fn set_roles(
    conn: &mut DbConnection,
    actor: &Actor,
    user_id: &str,
    roles: &[String],
    now: i64,
) -> Result<User, AccountError> {
    let roles = Roles::parse(roles).map_err(AccountError::InvalidRole)?;
    conn.transaction(|conn| {
        if repo::users::set_roles(conn, user_id, &roles.to_string(), now)? == 0 {
            return Err(AccountError::NotFound);
        }
        audit::record(
            conn,
            Event::RolesChanged,
            Record {
                user_id: Some(user_id),
                detail: Some(json!({ "roles": roles.to_vec(), "by": actor.by() })),
                ..Record::default()
            },
            now,
        )?;
        repo::users::find_by_id(conn, user_id)?.ok_or(AccountError::NotFound)
    })
}

/// Marks an account's address verified, as the emailed link would; the links still unused
/// are used up. Audited only when the address was not verified yet.
pub fn verify_email(
    conn: &mut DbConnection,
    actor: &Actor,
    user_id: &str,
    now: i64,
) -> Result<User, AccountError> {
    conn.transaction(|conn| {
        let user = repo::users::find_by_id(conn, user_id)?.ok_or(AccountError::NotFound)?;
        if repo::users::mark_email_verified(conn, &user.id, now)? == 1 {
            let detail = json!({ "via": "operator", "by": actor.by() });
            accounts::self_service::verified(conn, &user.id, detail, now)?;
        }
        repo::users::find_by_id(conn, &user.id)?.ok_or(AccountError::NotFound)
    })
}

/// What an MFA reset did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MfaReset {
    pub user_id: String,
    #[serde(flatten)]
    pub wiped: crate::mfa::Wiped,
    /// Browser sessions and refresh token families that ended with it.
    pub ended_sessions: usize,
    pub revoked_refresh_families: usize,
}

/// For a person who lost every second factor (after the operator checked who asks): takes
/// away their authenticator app, recovery codes and passkeys, and what was under way with them
/// (`mfa::reset`), and ends everything they are signed in with, as a password reset does: a
/// new security stamp (their access tokens stop working), every refresh token family, and
/// every browser session (the apps that got tokens in one are sent a back-channel logout).
/// Their next sign-in is with the password alone, and they set up their factors again.
/// One transaction, audited as `mfa_reset` with the actor. `NotFound` if there is no such user.
pub fn reset_mfa(
    conn: &mut DbConnection,
    actor: &Actor,
    user_id: &str,
    ip: Option<&str>,
    now: i64,
) -> Result<MfaReset, AccountError> {
    conn.transaction(|conn| {
        let user = repo::users::find_by_id(conn, user_id)?.ok_or(AccountError::NotFound)?;
        let wiped = crate::mfa::reset(conn, &user.id)?;
        let stamp = crate::crypto::random_token(16).map_err(|e| DbError::Task(e.to_string()))?;
        repo::users::set_security_stamp(conn, &user.id, &stamp, now)?;
        let revoked =
            crate::refresh::store::revoke_families_of_user(conn, &user.id, now, "mfa_reset")?;
        let ended =
            crate::sso::end_all_of_user(conn, &user.id, crate::sso::EndReason::MfaReset, now)?;
        audit::record(
            conn,
            Event::MfaReset,
            Record {
                user_id: Some(&user.id),
                ip,
                detail: Some(json!({
                    "by": actor.by(),
                    "totp": wiped.totp,
                    "recovery_codes": wiped.recovery_codes,
                    "passkeys": wiped.passkeys,
                    "ended_sessions": ended,
                    "revoked_refresh_families": revoked,
                })),
                ..Record::default()
            },
            now,
        )?;
        Ok(MfaReset {
            user_id: user.id.to_string(),
            wiped,
            ended_sessions: ended,
            revoked_refresh_families: revoked,
        })
    })
}

/// Deletes an account with its sessions, codes, federated identities and unsent mail
/// (`self_service::delete_account`, which self-deletion and the purge share).
pub fn delete(
    conn: &mut DbConnection,
    actor: &Actor,
    user_id: &str,
    ip: Option<&str>,
    now: i64,
) -> Result<(), SelfServiceError> {
    self_service::delete_account(conn, user_id, actor, ip, now)
}
