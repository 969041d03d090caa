//! The browser session at Tessera: one sign-in that every app in that browser shares until it
//! ends (logout, logout everywhere, a password change or reset, a disabled account, an end from
//! the session list) or expires (idle or absolute). The cookie carries a 256-bit secret, stored
//! only as its SHA-256 and replaced at every sign-in, so a cookie planted before a sign-in is
//! worth nothing after it (fixation). The session's `id` is public: it is the `sid` of ID
//! tokens and logout tokens.
//!
//! Ending a session ends, in the same transaction, the refresh families it started (unless
//! they were granted `offline_access`) and queues a logout token for every app with a
//! back-channel logout URI that received tokens in it.

use super::backchannel;
use super::store::{self, SessionRow};
use crate::config::SessionSettings;
use crate::db::{DbConnection, DbError};
use crate::domain::{Amr, User, UserId};

/// A session's last-seen time is written at most this often: `/authorize` with a live session
/// then costs one write (its code), not two.
const TOUCH_EVERY_SECS: i64 = 60;

/// Why a session ended, as recorded on it and in the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// RP-initiated logout (`/logout`).
    Logout,
    LogoutEverywhere,
    /// Another person signed in in the same browser.
    Replaced,
    PasswordChanged,
    PasswordReset,
    UserDisabled,
    /// Ended from the person's session list, or by an operator.
    Revoked,
    /// The address was taken over by a verified upstream sign-in (`federation::link`).
    EmailReleased,
    AccountDeleted,
    /// The person signed in once more than `sessions.max_live_per_user` allows: the oldest goes.
    SessionLimit,
    /// An operator took away the person's second factors (`usecases::users::reset_mfa`).
    MfaReset,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Logout => "logout",
            EndReason::LogoutEverywhere => "logout_everywhere",
            EndReason::Replaced => "replaced",
            EndReason::PasswordChanged => "password_changed",
            EndReason::PasswordReset => "password_reset",
            EndReason::UserDisabled => "user_disabled",
            EndReason::Revoked => "revoked",
            EndReason::EmailReleased => "email_released",
            EndReason::AccountDeleted => "account_deleted",
            EndReason::SessionLimit => "session_limit",
            EndReason::MfaReset => "mfa_reset",
        }
    }
}

/// A live session, as the use cases see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrowserSession {
    pub id: String,
    pub user_id: UserId,
    pub auth_time: i64,
    pub amr: Amr,
    pub persistent: bool,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub idle_expires_at: i64,
    pub absolute_expires_at: i64,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
}

impl From<SessionRow> for BrowserSession {
    fn from(row: SessionRow) -> Self {
        BrowserSession {
            id: row.id,
            user_id: UserId::new(row.user_id),
            auth_time: row.auth_time,
            amr: Amr::from_stored(&row.amr),
            persistent: row.persistent != 0,
            created_at: row.created_at,
            last_seen_at: row.last_seen_at,
            idle_expires_at: row.idle_expires_at,
            absolute_expires_at: row.absolute_expires_at,
            user_agent: row.user_agent,
            ip: row.ip,
        }
    }
}

/// A session just signed into, and the cookie value that stands for it (shown to nobody but
/// the browser, never logged).
pub struct Started {
    pub session: BrowserSession,
    pub secret: String,
}

impl std::fmt::Debug for Started {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Started")
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

/// What the person's session list shows of where a sign-in came from.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub user_agent: Option<String>,
    pub ip: Option<String>,
}

impl Origin {
    /// At most 200 characters of the user agent: enough to tell browsers apart, bounded
    /// whatever a client sends.
    pub fn new(user_agent: Option<&str>, ip: Option<&str>) -> Origin {
        Origin {
            user_agent: user_agent.map(|ua| ua.chars().take(200).collect()),
            ip: ip.map(|ip| ip.chars().take(64).collect()),
        }
    }
}

/// A sign-in: who, how, and whether the cookie should outlive the browser.
pub struct SignedIn<'a> {
    pub user: &'a User,
    pub amr: Amr,
    pub persistent: bool,
    pub origin: Origin,
}

/// Records a sign-in (inside the caller's transaction). The same person signing in again in
/// the same browser keeps the session (its apps stay signed in) with a new secret and a new
/// `auth_time`; anyone else ends the browser's previous session and starts a new one.
pub fn sign_in(
    conn: &mut DbConnection,
    settings: &SessionSettings,
    signed_in: SignedIn<'_>,
    previous: Option<&BrowserSession>,
    now: i64,
) -> Result<Started, DbError> {
    let secret = crate::crypto::random_token(32).map_err(|e| DbError::Task(e.to_string()))?;
    let secret_hash = crate::crypto::sha256_hex(secret.as_bytes());
    let absolute_expires_at = now + settings.absolute_ttl_secs;
    let idle_expires_at = (now + settings.idle_ttl_secs).min(absolute_expires_at);
    let user = signed_in.user;
    if let Some(previous) = previous {
        if previous.user_id == user.id
            && store::renew(
                conn,
                &previous.id,
                &secret_hash,
                now,
                &signed_in.amr.to_string(),
                signed_in.persistent,
                idle_expires_at,
                absolute_expires_at,
            )? == 1
        {
            let row = store::find(conn, &previous.id)?
                .ok_or(DbError::Query(diesel::result::Error::NotFound))?;
            return Ok(Started {
                session: row.into(),
                secret,
            });
        }
        end(conn, &previous.id, EndReason::Replaced, now)?;
    }
    let row = SessionRow {
        id: crate::db::new_id(),
        secret_hash,
        user_id: user.id.to_string(),
        auth_time: now,
        amr: signed_in.amr.to_string(),
        persistent: i64::from(signed_in.persistent),
        created_at: now,
        last_seen_at: now,
        idle_expires_at,
        absolute_expires_at,
        user_agent: signed_in.origin.user_agent,
        ip: signed_in.origin.ip,
        ended_at: None,
        ended_reason: None,
    };
    store::insert(conn, &row)?;
    let cap = usize::try_from(settings.max_live_per_user.max(1)).unwrap_or(usize::MAX);
    for older in store::live_of_user(conn, &row.user_id, now)?
        .into_iter()
        .skip(cap)
    {
        end(conn, &older.id, EndReason::SessionLimit, now)?;
    }
    Ok(Started {
        session: row.into(),
        secret,
    })
}

/// The live session a cookie stands for, with its user: unended, unexpired, and the user
/// still enabled.
pub fn find(
    conn: &mut DbConnection,
    secret: &str,
    now: i64,
) -> Result<Option<(BrowserSession, User)>, DbError> {
    let hash = crate::crypto::sha256_hex(secret.as_bytes());
    let Some((row, user)) = store::find_by_secret_with_user(conn, &hash)? else {
        return Ok(None);
    };
    if row.idle_expires_at <= now || row.absolute_expires_at <= now {
        return Ok(None);
    }
    let user = User::from(user);
    if user.disabled_at.is_some() {
        return Ok(None);
    }
    Ok(Some((row.into(), user)))
}

/// Moves the idle expiry on when the session is used (at most every `TOUCH_EVERY_SECS`).
pub fn touch(
    conn: &mut DbConnection,
    settings: &SessionSettings,
    session: &BrowserSession,
    now: i64,
) -> Result<(), DbError> {
    if now - session.last_seen_at < TOUCH_EVERY_SECS {
        return Ok(());
    }
    let idle = (now + settings.idle_ttl_secs).min(session.absolute_expires_at);
    store::touch(conn, &session.id, now, idle)?;
    Ok(())
}

/// Records that `client_id` received tokens in the session, and returns the session's sign-in
/// methods; `None` if the session has ended or expired (then nothing may be issued in it).
///
/// The session's row is locked first (`store::hold_live`), for the rest of the caller's
/// transaction: an `end` running meanwhile either finished before (the row says so, nothing is
/// issued) or waits for this transaction, and then finds the refresh family and the client it
/// recorded, and ends and tells them. A plain read would let both go ahead on PostgreSQL.
pub fn record_client(
    conn: &mut DbConnection,
    session_id: &str,
    client_id: &str,
    now: i64,
) -> Result<Option<Amr>, DbError> {
    if store::hold_live(conn, session_id, now)? == 0 {
        return Ok(None);
    }
    let Some(row) = store::find(conn, session_id)? else {
        return Ok(None);
    };
    store::record_client(conn, session_id, client_id, now)?;
    Ok(Some(Amr::from_stored(&row.amr)))
}

/// Ends a session (inside the caller's transaction): its refresh families end and its apps are
/// told. `false` if it had ended already, so each ending happens, and is told, once.
pub fn end(
    conn: &mut DbConnection,
    session_id: &str,
    reason: EndReason,
    now: i64,
) -> Result<bool, DbError> {
    if store::end(conn, session_id, now, reason.as_str())? == 0 {
        return Ok(false);
    }
    crate::refresh::store::revoke_families_of_session(conn, session_id, now, "session_ended")?;
    let Some(row) = store::find(conn, session_id)? else {
        return Ok(true);
    };
    for client_id in store::clients_of(conn, session_id)? {
        backchannel::enqueue(conn, &client_id, &row.user_id, session_id, now)?;
    }
    Ok(true)
}

/// Ends every session of a user; how many were unended.
pub fn end_all_of_user(
    conn: &mut DbConnection,
    user_id: &str,
    reason: EndReason,
    now: i64,
) -> Result<usize, DbError> {
    let mut ended = 0;
    for id in store::unended_ids_of_user(conn, user_id)? {
        if end(conn, &id, reason, now)? {
            ended += 1;
        }
    }
    Ok(ended)
}

/// A user's live sessions, newest first.
pub fn live_of_user(
    conn: &mut DbConnection,
    user_id: &str,
    now: i64,
) -> Result<Vec<BrowserSession>, DbError> {
    Ok(store::live_of_user(conn, user_id, now)?
        .into_iter()
        .map(BrowserSession::from)
        .collect())
}

/// The session with this public id, if it belongs to `user_id` and has not ended.
pub fn find_of_user(
    conn: &mut DbConnection,
    session_id: &str,
    user_id: &str,
) -> Result<Option<BrowserSession>, DbError> {
    Ok(find_unended(conn, session_id)?.filter(|session| session.user_id == user_id))
}

/// The session with this public id, whoever's, if it has not ended (it may have expired).
pub fn find_unended(
    conn: &mut DbConnection,
    session_id: &str,
) -> Result<Option<BrowserSession>, DbError> {
    Ok(store::find(conn, session_id)?
        .filter(|row| row.ended_at.is_none())
        .map(BrowserSession::from))
}

/// The names of the apps that received tokens in each of `session_ids`, by session id.
pub fn apps_of(
    conn: &mut DbConnection,
    session_ids: &[String],
) -> Result<std::collections::HashMap<String, Vec<String>>, DbError> {
    let mut apps: std::collections::HashMap<String, Vec<String>> = Default::default();
    for (session_id, name) in store::client_names_of(conn, session_ids)? {
        apps.entry(session_id).or_default().push(name);
    }
    Ok(apps)
}
