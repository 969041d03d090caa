//! Sessions, as the person, the operator and administrators see and end them: a user's
//! browser sessions at Tessera and refresh token families (listed, and ended one at a time),
//! every session of a user at once (log out everywhere), and single access tokens.

use diesel::Connection;
use serde::Serialize;
use serde_json::json;

use super::Actor;
use crate::accounts::AccountError;
use crate::audit::{self, Event, Record};
use crate::db::repo;
use crate::db::{DbConnection, DbError};

/// An access token to end with the sessions: the one the request came with.
#[derive(Debug, Clone)]
pub struct PresentedToken {
    pub jti: String,
    pub exp: i64,
    /// The browser session it was issued in (its `sid`), if any.
    pub sid: Option<String>,
}

/// Ends every session of a user (all refresh token families) and, if given, the access token
/// the request came with; returns how many families were live. `NotFound` if there is no such
/// user.
pub fn logout_everywhere(
    conn: &mut DbConnection,
    actor: &Actor,
    user_id: &str,
    presented: Option<&PresentedToken>,
    now: i64,
) -> Result<usize, AccountError> {
    conn.transaction(|conn| {
        if repo::users::find_by_id(conn, user_id)?.is_none() {
            return Err(AccountError::NotFound);
        }
        if let Some(token) = presented {
            repo::revoked::insert(conn, &token.jti, token.exp)?;
        }
        let revoked = crate::refresh::store::revoke_families_of_user(
            conn,
            user_id,
            now,
            "logout_everywhere",
        )?;
        crate::sso::end_all_of_user(conn, user_id, crate::sso::EndReason::LogoutEverywhere, now)?;
        audit::record(
            conn,
            Event::SessionsRevoked,
            Record {
                user_id: Some(user_id),
                detail: Some(
                    json!({ "reason": "logout_everywhere", "by": actor.by(), "families": revoked }),
                ),
                ..Record::default()
            },
            now,
        )?;
        Ok(revoked)
    })
}

/// Ends one access token before its expiry (its session is over: the password changed, the
/// account is gone). Not audited: the event that ended the session is.
pub fn revoke_access_token(conn: &mut DbConnection, token: &PresentedToken) -> Result<(), DbError> {
    Ok(repo::revoked::insert(conn, &token.jti, token.exp)?)
}

/// A user's sessions, as their list (and the operator's) shows them.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SessionList {
    /// Live browser sessions at Tessera, newest first.
    pub browser_sessions: Vec<BrowserSessionView>,
    /// Live refresh token families (one per app sign-in that may refresh), newest first.
    pub refresh_families: Vec<RefreshFamilyView>,
}

/// One browser session: where and when, and which apps received tokens in it. Never its
/// cookie secret or that secret's hash.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct BrowserSessionView {
    /// The public session id (the `sid` of ID tokens); `DELETE …/sessions/{id}` ends it.
    pub id: String,
    pub created_at: i64,
    pub last_seen_at: i64,
    /// When the person last proved who they are in it.
    pub auth_time: i64,
    /// When it expires unless used again (the earlier of the idle and absolute expiries).
    pub expires_at: i64,
    /// "Keep me signed in": the cookie outlives the browser.
    pub persistent: bool,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    /// The names of the apps that received tokens in it, in the order they first did.
    pub apps: Vec<String>,
    /// The session the request's access token was issued in.
    pub current: bool,
}

/// One refresh token family: an app that stays signed in.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RefreshFamilyView {
    /// `DELETE …/sessions/{id}` ends it.
    pub id: String,
    pub client_id: String,
    pub client_name: String,
    pub scope: String,
    pub created_at: i64,
    /// When its newest refresh token was issued (its last use, or its start).
    pub last_used_at: i64,
    /// When it expires unless refreshed again (the earlier of its newest token's idle expiry
    /// and the family's absolute one).
    pub expires_at: i64,
    /// Granted `offline_access`: it outlives the browser session it started in.
    pub offline: bool,
    /// The browser session it ends with, if it is tied to one.
    pub browser_session: Option<String>,
}

/// The live sessions of `user_id`, the one `current_sid` names marked. `NotFound` if there is
/// no such user.
pub fn list(
    conn: &mut DbConnection,
    user_id: &str,
    current_sid: Option<&str>,
    now: i64,
) -> Result<SessionList, AccountError> {
    if repo::users::find_by_id(conn, user_id)?.is_none() {
        return Err(AccountError::NotFound);
    }
    let sessions = crate::sso::session::live_of_user(conn, user_id, now)?;
    let ids: Vec<String> = sessions.iter().map(|s| s.id.clone()).collect();
    let mut apps = crate::sso::session::apps_of(conn, &ids)?;
    let browser_sessions = sessions
        .into_iter()
        .map(|session| BrowserSessionView {
            apps: apps.remove(&session.id).unwrap_or_default(),
            current: current_sid == Some(session.id.as_str()),
            expires_at: session.idle_expires_at.min(session.absolute_expires_at),
            id: session.id,
            created_at: session.created_at,
            last_seen_at: session.last_seen_at,
            auth_time: session.auth_time,
            persistent: session.persistent,
            user_agent: session.user_agent,
            ip: session.ip,
        })
        .collect();
    let families = crate::refresh::store::live_families_of_user(conn, user_id, now)?;
    let ids: Vec<String> = families.iter().map(|(f, _)| f.id.clone()).collect();
    let uses: std::collections::HashMap<String, (Option<i64>, Option<i64>)> =
        crate::refresh::store::last_use_of_families(conn, &ids)?
            .into_iter()
            .map(|(id, issued, idle)| (id, (issued, idle)))
            .collect();
    let refresh_families = families
        .into_iter()
        .filter_map(|(family, client_name)| {
            let (issued, idle) = uses.get(&family.id).copied().unwrap_or_default();
            let expires_at = idle?.min(family.absolute_expires_at);
            // Every token went idle: the family is over, whatever its row says.
            (expires_at > now).then(|| RefreshFamilyView {
                offline: crate::domain::ScopeSet::from_stored(&family.scope)
                    .contains(crate::grants::OFFLINE_ACCESS),
                last_used_at: issued.unwrap_or(family.created_at),
                expires_at,
                id: family.id,
                client_id: family.client_id,
                client_name,
                scope: family.scope,
                created_at: family.created_at,
                browser_session: family.session_id,
            })
        })
        .collect();
    Ok(SessionList {
        browser_sessions,
        refresh_families,
    })
}

/// What `end` ended.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct EndedSession {
    /// `browser_session` or `refresh_family`.
    pub kind: &'static str,
    pub id: String,
    pub user_id: String,
}

/// Ends one session by its id: a browser session (its refresh families that are not offline
/// end with it, and the apps that got tokens in it are sent a logout token) or a refresh
/// family. With `owner`, only a session of that user (the person's own list); another's is
/// `NotFound`, as is an unknown or ended one. The access token `presented` is ended too when it
/// was issued in the browser session that ends. Audited as `sessions_revoked`.
pub fn end(
    conn: &mut DbConnection,
    actor: &Actor,
    owner: Option<&str>,
    id: &str,
    presented: Option<&PresentedToken>,
    ip: Option<&str>,
    now: i64,
) -> Result<EndedSession, AccountError> {
    let owned = |user_id: &str| owner.is_none_or(|owner| owner == user_id);
    conn.transaction(|conn| {
        if let Some(session) =
            crate::sso::session::find_unended(conn, id)?.filter(|s| owned(&s.user_id))
        {
            crate::sso::end(conn, &session.id, crate::sso::EndReason::Revoked, now)?;
            if let Some(token) = presented.filter(|t| t.sid.as_deref() == Some(&session.id)) {
                repo::revoked::insert(conn, &token.jti, token.exp)?;
            }
            let user_id = session.user_id.to_string();
            audit::record(
                conn,
                Event::SessionsRevoked,
                Record {
                    user_id: Some(&user_id),
                    ip,
                    detail: Some(json!({
                        "reason": crate::sso::EndReason::Revoked.as_str(),
                        "by": actor.by(),
                        "browser_session": session.id,
                    })),
                    ..Record::default()
                },
                now,
            )?;
            return Ok(EndedSession {
                kind: "browser_session",
                id: session.id,
                user_id,
            });
        }
        let Some(family) =
            crate::refresh::store::find_live_family(conn, id)?.filter(|f| owned(&f.user_id))
        else {
            return Err(AccountError::NotFound);
        };
        crate::refresh::store::revoke_family(conn, &family.id, now, "revoked")?;
        audit::record(
            conn,
            Event::SessionsRevoked,
            Record {
                user_id: Some(&family.user_id),
                client_id: Some(&family.client_id),
                ip,
                detail: Some(json!({
                    "reason": crate::sso::EndReason::Revoked.as_str(),
                    "by": actor.by(),
                    "refresh_family": family.id,
                })),
            },
            now,
        )?;
        Ok(EndedSession {
            kind: "refresh_family",
            id: family.id,
            user_id: family.user_id,
        })
    })
}
