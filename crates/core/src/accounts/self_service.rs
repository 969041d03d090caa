//! What a user does for their own account: verify the email address, reset a forgotten
//! password by mail, change the password, delete the account. Free of HTTP.

use diesel::Connection;
use serde_json::json;

use super::AccountError;
use super::email::Email;
use super::hash_pool::HashPoolError;
use super::password::{self, Verified};
use super::throttle::{self, Policy};
use crate::audit::{self, Actor, Event, Record};
use crate::db::repo::{self, account_tokens};
use crate::db::{DbConnection, DbError};
use crate::domain::User;
use crate::mail::outbox;
use crate::mail::templates::MailKind;
use crate::services::Services;
use crate::sso::EndReason;

/// A link whose account was disabled or deleted since it was sent.
const GONE: SelfServiceError =
    SelfServiceError::InvalidToken("the account this link was sent for is disabled or deleted");

/// Longest token accepted for a look-up: real ones are 43 characters.
const MAX_TOKEN_LEN: usize = 128;

#[derive(Debug, thiserror::Error)]
pub enum SelfServiceError {
    #[error(
        "email delivery is not configured on this server, so this cannot be done by mail; \
         ask the operator (who can mark addresses verified or set a password)"
    )]
    MailNotConfigured,
    #[error("{0}")]
    InvalidToken(&'static str),
    #[error("too many requests for this address or from this network; try again in {0} s")]
    Throttled(i64),
    #[error("the current password is not correct")]
    WrongPassword,
    #[error("this account has no password; set one with a password reset")]
    NoPassword,
    #[error("the account no longer exists or is disabled")]
    NoAccount,
    /// Something that cannot be undone, asked for with a token from an old sign-in and
    /// without the password.
    #[error("this needs a sign-in within the last {max_age_secs} s")]
    SignInTooOld { max_age_secs: i64 },
    #[error(transparent)]
    Account(#[from] AccountError),
}

impl From<DbError> for SelfServiceError {
    fn from(e: DbError) -> Self {
        SelfServiceError::Account(AccountError::Db(e))
    }
}

impl From<diesel::result::Error> for SelfServiceError {
    fn from(e: diesel::result::Error) -> Self {
        SelfServiceError::Account(AccountError::from(e))
    }
}

impl From<HashPoolError> for SelfServiceError {
    fn from(e: HashPoolError) -> Self {
        SelfServiceError::Account(AccountError::Hashing(e))
    }
}

/// The counters a mail request touches: the address, and the client's network.
fn mail_keys(svc: &Services, email_lower: &str, ip: Option<&str>) -> Vec<(String, Policy)> {
    let settings = &svc.settings.accounts;
    let policy = |free| Policy {
        free_attempts: free,
        window_secs: settings.mail_request_window_secs,
        max_backoff_secs: settings.mail_request_window_secs,
    };
    let mut keys = vec![(
        throttle::mail_email_key(email_lower),
        policy(settings.mail_requests_per_email),
    )];
    if let Some(ip) = ip {
        keys.push((
            format!("mail:ip:{}", throttle::ip_key(ip)),
            policy(settings.mail_requests_per_ip),
        ));
    }
    keys
}

/// Queues a password reset or verification mail for `email`, whether or not an account has
/// it: the request does the same work either way (count, queue, audit) and the sender skips
/// addresses without an account, so neither the answer nor its timing tells them apart.
pub async fn request_mail(
    svc: &Services,
    kind: MailKind,
    email: &str,
    ip: Option<String>,
) -> Result<(), SelfServiceError> {
    if svc.mailer.is_none() {
        return Err(SelfServiceError::MailNotConfigured);
    }
    let email = Email::parse(email).map_err(AccountError::InvalidEmail)?;
    let email_lower = email.lookup_key().to_string();
    let keys = mail_keys(svc, &email_lower, ip.as_deref());
    let now = svc.clock.now();
    let throttled = svc
        .db
        .run(move |conn| {
            if let Some(wait) = throttle::reserve(conn, &keys, now)? {
                return Ok::<_, DbError>(Some(wait));
            }
            conn.transaction(|conn| {
                outbox::enqueue(conn, kind, &email_lower, None, now)?;
                audit::record(
                    conn,
                    Event::MailRequested,
                    Record {
                        ip: ip.as_deref(),
                        detail: Some(json!({ "kind": kind.as_str() })),
                        ..Record::default()
                    },
                    now,
                )
            })?;
            Ok(None)
        })
        .await?;
    if let Some(wait) = throttled {
        return Err(SelfServiceError::Throttled(wait));
    }
    svc.outbox_wake.notify_one();
    Ok(())
}

/// Why a token cannot be used, in words a person understands.
fn token_problem(
    conn: &mut DbConnection,
    token_hash: &str,
    kind: MailKind,
    now: i64,
) -> Result<&'static str, DbError> {
    Ok(match account_tokens::find(conn, token_hash)? {
        Some(t) if t.purpose == kind.as_str() && t.used_at.is_some() => {
            "this link has already been used"
        }
        Some(t) if t.purpose == kind.as_str() && t.expires_at <= now => {
            "this link has expired; ask for a new one"
        }
        _ => "this link is not valid (check that it was copied whole)",
    })
}

fn token_hash(token: &str) -> Result<String, SelfServiceError> {
    let token = token.trim();
    if token.is_empty() {
        return Err(SelfServiceError::InvalidToken("the token is missing"));
    }
    if token.len() > MAX_TOKEN_LEN {
        return Err(SelfServiceError::InvalidToken(
            "this link is not valid (check that it was copied whole)",
        ));
    }
    Ok(crate::crypto::sha256_hex(token.as_bytes()))
}

/// Uses a verification token: the account's email is verified from now on.
pub async fn verify_email(svc: &Services, token: &str) -> Result<User, SelfServiceError> {
    let hash = token_hash(token)?;
    let now = svc.clock.now();
    svc.db
        .run(move |conn| {
            conn.transaction(|conn| {
                if account_tokens::consume(conn, &hash, MailKind::VerifyEmail.as_str(), now)? == 0 {
                    return Err(SelfServiceError::InvalidToken(token_problem(
                        conn,
                        &hash,
                        MailKind::VerifyEmail,
                        now,
                    )?));
                }
                let token = account_tokens::find(conn, &hash)?.ok_or(GONE)?;
                let user = repo::users::find_by_id(conn, &token.user_id)?
                    .filter(|u| u.disabled_at.is_none())
                    .ok_or(GONE)?;
                repo::users::mark_email_verified(conn, &user.id, now)?;
                verified(conn, &user.id, json!({ "via": "link" }), now)?;
                repo::users::find_by_id(conn, &user.id)?.ok_or(GONE)
            })
        })
        .await
}

/// What follows an address being verified, whoever vouched for it: the verification links
/// still unused are used up, and the audit trail says how (`detail`).
pub fn verified(
    conn: &mut DbConnection,
    user_id: &str,
    detail: serde_json::Value,
    now: i64,
) -> Result<(), DbError> {
    account_tokens::use_up_all(conn, user_id, MailKind::VerifyEmail.as_str(), now)?;
    audit::record(
        conn,
        Event::EmailVerified,
        Record {
            user_id: Some(user_id),
            detail: Some(detail),
            ..Record::default()
        },
        now,
    )
}

/// Whether a verification token could be used now (for the page the mail's link opens): the
/// account's email, or why not. Uses nothing up: only the page's POST verifies, so a mail
/// scanner that fetches the link verifies nothing.
pub async fn check_verify_token(svc: &Services, token: &str) -> Result<String, SelfServiceError> {
    let hash = token_hash(token)?;
    let now = svc.clock.now();
    let kind = MailKind::VerifyEmail;
    svc.db
        .run(move |conn| match account_tokens::find(conn, &hash)? {
            Some(t) if t.purpose == kind.as_str() && t.used_at.is_none() && t.expires_at > now => {
                repo::users::find_by_id(conn, &t.user_id)?
                    .filter(|u| u.disabled_at.is_none())
                    .map(|u| u.email)
                    .ok_or(GONE)
            }
            _ => Err(SelfServiceError::InvalidToken(token_problem(
                conn, &hash, kind, now,
            )?)),
        })
        .await
}

/// Whether a reset token could be used now (for the page the mail's link opens): the user's
/// email, or why not. Uses nothing up.
pub async fn check_reset_token(svc: &Services, token: &str) -> Result<String, SelfServiceError> {
    let hash = token_hash(token)?;
    let now = svc.clock.now();
    svc.db
        .run(move |conn| live_reset_token_user(conn, &hash, now).map(|u| u.email))
        .await
}

fn live_reset_token_user(
    conn: &mut DbConnection,
    hash: &str,
    now: i64,
) -> Result<User, SelfServiceError> {
    let kind = MailKind::ResetPassword;
    match account_tokens::find(conn, hash)? {
        Some(t) if t.purpose == kind.as_str() && t.used_at.is_none() && t.expires_at > now => {
            repo::users::find_by_id(conn, &t.user_id)?
                .filter(|u| u.disabled_at.is_none())
                .ok_or(GONE)
        }
        _ => Err(SelfServiceError::InvalidToken(token_problem(
            conn, hash, kind, now,
        )?)),
    }
}

/// Sets a new password with a reset token: the token is used up, the security stamp changes,
/// every session (refresh token family) of the user ends, and the address counts as verified
/// (the link reached it).
pub async fn reset_password(
    svc: &Services,
    token: &str,
    new_password: String,
    ip: Option<String>,
) -> Result<usize, SelfServiceError> {
    let hash = token_hash(token)?;
    let now = svc.clock.now();
    let user = {
        let hash = hash.clone();
        svc.db
            .run(move |conn| live_reset_token_user(conn, &hash, now))
            .await?
    };
    password::check_policy(
        &new_password,
        &user.email,
        svc.settings.passwords.min_length,
    )
    .map_err(AccountError::WeakPassword)?;
    let password_hash = svc.hashes.hash(new_password).await?;
    let now = svc.clock.now();
    svc.db
        .run(move |conn| {
            conn.transaction(|conn| {
                if account_tokens::consume(conn, &hash, MailKind::ResetPassword.as_str(), now)? == 0
                {
                    return Err(SelfServiceError::InvalidToken(token_problem(
                        conn,
                        &hash,
                        MailKind::ResetPassword,
                        now,
                    )?));
                }
                let stamp = new_stamp()?;
                if repo::users::set_password(conn, &user.id, &password_hash, &stamp, now)? == 0 {
                    return Err(GONE);
                }
                repo::users::mark_email_verified(conn, &user.id, now)?;
                account_tokens::use_up_all(conn, &user.id, MailKind::ResetPassword.as_str(), now)?;
                let revoked = crate::refresh::store::revoke_families_of_user(
                    conn,
                    &user.id,
                    now,
                    "password_reset",
                )?;
                crate::sso::end_all_of_user(conn, &user.id, EndReason::PasswordReset, now)?;
                audit::record(
                    conn,
                    Event::PasswordReset,
                    Record {
                        user_id: Some(&user.id),
                        ip: ip.as_deref(),
                        detail: Some(json!({ "revoked_sessions": revoked })),
                        ..Record::default()
                    },
                    now,
                )?;
                Ok(revoked)
            })
        })
        .await
}

fn new_stamp() -> Result<String, SelfServiceError> {
    crate::crypto::random_token(16)
        .map_err(|e| SelfServiceError::from(DbError::Task(e.to_string())))
}

/// An active user, for the endpoints a user's own token reaches.
pub async fn active_user(svc: &Services, user_id: &str) -> Result<User, SelfServiceError> {
    let user_id = user_id.to_string();
    svc.db
        .run(move |conn| repo::users::find_by_id(conn, &user_id).map_err(DbError::from))
        .await?
        .filter(|u| u.disabled_at.is_none())
        .ok_or(SelfServiceError::NoAccount)
}

/// Checks a signed-in user's password again before something that cannot be undone, throttled
/// like a login (a stolen access token must not become a password oracle).
async fn confirm_password(
    svc: &Services,
    user: &User,
    password: String,
    ip: Option<&str>,
) -> Result<(), SelfServiceError> {
    let Some(stored) = user.password_hash.clone() else {
        return Err(SelfServiceError::NoPassword);
    };
    let keys = throttle::keys(&svc.settings.throttle, &user.email_lower, ip);
    let now = svc.clock.now();
    let reserve_keys = keys.clone();
    if let Some(wait) = svc
        .db
        .run(move |conn| throttle::reserve(conn, &reserve_keys, now))
        .await?
    {
        return Err(SelfServiceError::Throttled(wait));
    }
    let verified = match svc.hashes.verify(password, Some(stored)).await {
        Ok(v) => v,
        Err(e) => {
            svc.db
                .run(move |conn| throttle::release(conn, &keys))
                .await?;
            return Err(e.into());
        }
    };
    match verified {
        Verified::Yes | Verified::YesRehash => {
            svc.db
                .run(move |conn| throttle::succeeded(conn, &keys, now))
                .await?;
            Ok(())
        }
        Verified::No => Err(SelfServiceError::WrongPassword),
    }
}

/// What a password change did.
#[derive(Debug, serde::Serialize)]
pub struct PasswordChanged {
    pub revoked_sessions: usize,
    pub kept_session: bool,
}

/// Changes a signed-in user's password, given the current one. Every other session ends; the
/// session of `keep_refresh_token` (the caller's own, if it sends it) survives.
pub async fn change_password(
    svc: &Services,
    user_id: &str,
    current_password: String,
    new_password: String,
    keep_refresh_token: Option<String>,
    ip: Option<String>,
) -> Result<PasswordChanged, SelfServiceError> {
    let user = active_user(svc, user_id).await?;
    password::check_policy(
        &new_password,
        &user.email,
        svc.settings.passwords.min_length,
    )
    .map_err(AccountError::WeakPassword)?;
    confirm_password(svc, &user, current_password, ip.as_deref()).await?;
    let password_hash = svc.hashes.hash(new_password).await?;
    let keep_hash = keep_refresh_token.map(|t| crate::crypto::sha256_hex(t.as_bytes()));
    let now = svc.clock.now();
    svc.db
        .run(move |conn| {
            conn.transaction(|conn| {
                let stamp = new_stamp()?;
                let keep_family = match &keep_hash {
                    Some(hash) => crate::refresh::store::find_session(conn, hash)?
                        .filter(|(_, family, _, _)| {
                            family.user_id == user.id
                                && family.revoked_at.is_none()
                                && family.security_stamp == user.security_stamp
                        })
                        .map(|(_, family, _, _)| family.id),
                    None => None,
                };
                if repo::users::set_password(conn, &user.id, &password_hash, &stamp, now)? == 0 {
                    return Err(SelfServiceError::NoAccount);
                }
                let revoked = match &keep_family {
                    Some(family) => crate::refresh::store::revoke_families_of_user_except(
                        conn,
                        &user.id,
                        family,
                        &stamp,
                        now,
                        "password_change",
                    )?,
                    None => crate::refresh::store::revoke_families_of_user(
                        conn,
                        &user.id,
                        now,
                        "password_change",
                    )?,
                };
                crate::sso::end_all_of_user(conn, &user.id, EndReason::PasswordChanged, now)?;
                account_tokens::use_up_all(conn, &user.id, MailKind::ResetPassword.as_str(), now)?;
                audit::record(
                    conn,
                    Event::PasswordChanged,
                    Record {
                        user_id: Some(&user.id),
                        ip: ip.as_deref(),
                        detail: Some(json!({
                            "revoked_sessions": revoked,
                            "kept_session": keep_family.is_some(),
                        })),
                        ..Record::default()
                    },
                    now,
                )?;
                Ok(PasswordChanged {
                    revoked_sessions: revoked,
                    kept_session: keep_family.is_some(),
                })
            })
        })
        .await
}

/// Destructive self-service (deleting the account, and anything else that cannot be undone
/// and is not guarded by the password) needs a recent sign-in: `auth_time` (when the person
/// behind the access token last proved who they are) within `accounts.reauth_max_age_secs`.
/// An access token alone, stolen or left in a log, is then not enough once that has passed.
pub fn require_recent_sign_in(
    svc: &Services,
    auth_time: Option<i64>,
) -> Result<(), SelfServiceError> {
    let max_age_secs = svc.settings.accounts.reauth_max_age_secs;
    match auth_time {
        Some(at) if svc.clock.now() - at <= max_age_secs => Ok(()),
        _ => Err(SelfServiceError::SignInTooOld { max_age_secs }),
    }
}

/// Deletes a signed-in user's own account. An account with a password needs it, however
/// recent the sign-in (a stolen access token alone must not delete it); one without (it signs
/// in upstream only) needs a recent sign-in (`require_recent_sign_in`) instead.
pub async fn delete_own_account(
    svc: &Services,
    user_id: &str,
    auth_time: Option<i64>,
    password: Option<String>,
    ip: Option<String>,
) -> Result<(), SelfServiceError> {
    let user = active_user(svc, user_id).await?;
    if user.password_hash.is_some() {
        let password = password.ok_or_else(|| {
            AccountError::WeakPassword("the account's password is required to delete it".into())
        })?;
        confirm_password(svc, &user, password, ip.as_deref()).await?;
    } else {
        require_recent_sign_in(svc, auth_time)?;
    }
    let now = svc.clock.now();
    let id = user.id.clone();
    svc.db
        .run(move |conn| delete_account(conn, &id, &Actor::User(id.clone()), ip.as_deref(), now))
        .await
}

/// Deletes an account with everything that hangs on it: sessions and their refresh tokens,
/// authorization codes, federated identities and mail tokens (by foreign-key cascade), and its
/// mail (unsent, and the records of sent mail, which name the address). The audit trail keeps the user id only, never the address.
pub fn delete_account(
    conn: &mut DbConnection,
    user_id: &str,
    actor: &Actor,
    ip: Option<&str>,
    now: i64,
) -> Result<(), SelfServiceError> {
    conn.transaction(|conn| {
        let user = repo::users::find_by_id(conn, user_id)?.ok_or(AccountError::NotFound)?;
        crate::sso::end_all_of_user(conn, &user.id, EndReason::AccountDeleted, now)?;
        let mails = repo::outbox::delete_for(conn, &user.id, &user.email_lower)?;
        if repo::users::delete(conn, &user.id)? == 0 {
            return Err(AccountError::NotFound.into());
        }
        audit::record(
            conn,
            Event::UserDeleted,
            Record {
                user_id: Some(&user.id),
                ip,
                detail: Some(json!({ "by": actor.by(), "mails": mails })),
                ..Record::default()
            },
            now,
        )?;
        Ok(())
    })
}

const PURGE: Actor = Actor::System("purge_unverified");

/// Deletes accounts made before `cutoff` that never verified their address and have no
/// upstream identity, each in its own transaction (checked again inside it, so an account
/// verified meanwhile stays), audited as `user_deleted` by `purge_unverified`.
pub fn purge_unverified(
    conn: &mut DbConnection,
    cutoff: i64,
    batch: i64,
    now: i64,
) -> Result<usize, DbError> {
    let mut deleted = 0;
    loop {
        let ids = repo::users::unverified_before(conn, cutoff, batch)?;
        let before = deleted;
        for id in &ids {
            let gone = conn.transaction(|conn| {
                let still = repo::users::find_by_id(conn, id)?.is_some_and(|u| {
                    u.email_verified_at.is_none() && u.created_at < cutoff && u.roles.is_empty()
                }) && repo::federation::identities_of(conn, id)?.is_empty();
                if !still {
                    return Ok(false);
                }
                delete_account(conn, id, &PURGE, None, now)?;
                Ok::<_, SelfServiceError>(true)
            });
            match gone {
                Ok(true) => deleted += 1,
                Ok(false) => {}
                Err(SelfServiceError::Account(AccountError::Db(e))) => return Err(e),
                Err(e) => return Err(DbError::Task(e.to_string())),
            }
        }
        // A short batch is the last; a batch of which none went would come back the same.
        if (ids.len() as i64) < batch || deleted == before {
            return Ok(deleted);
        }
    }
}
