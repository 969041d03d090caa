//! Ending sessions: every refresh token family of a user, and single access tokens.

use diesel::Connection;
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
