//! Opaque refresh tokens: 256 bits from the OS RNG, URL-safe, stored only as SHA-256, each in
//! a family that stands for one login session.

use super::store;
use crate::db::models::{RefreshFamily, RefreshToken};
use crate::db::{DbConnection, DbError};

/// The lifetimes a family lives under (server defaults or the client's own), and how many
/// live families one user may hold at one client.
#[derive(Debug, Clone, Copy)]
pub struct Lifetimes {
    pub idle_secs: i64,
    pub absolute_secs: i64,
    pub max_live_families: i64,
}

/// Starts a family for a fresh login and returns its first token and the family's id; the
/// user's oldest live families at the client beyond `max_live_families` are revoked, so one
/// account cannot make the tables grow without bound. Runs inside the caller's transaction
/// (a savepoint of its own would, when SQLite rolls a failed write back by itself, leave a
/// `ROLLBACK TO` that fails with an error no one can classify). `auth` is the sign-in (when,
/// how, in which browser session), which every refresh passes on.
pub fn start_family(
    conn: &mut DbConnection,
    user: &crate::domain::User,
    client_id: &str,
    scope: &crate::domain::ScopeSet,
    lifetimes: Lifetimes,
    auth: &crate::domain::Authentication,
    now: i64,
) -> Result<(String, String), DbError> {
    let family = RefreshFamily {
        id: crate::db::new_id(),
        user_id: user.id.to_string(),
        client_id: client_id.to_string(),
        scope: scope.to_string(),
        security_stamp: user.security_stamp.clone(),
        auth_time: auth.time,
        created_at: now,
        absolute_expires_at: now + lifetimes.absolute_secs,
        revoked_at: None,
        revoked_reason: None,
        session_id: auth.session_id.clone(),
        amr: (!auth.amr.is_empty()).then(|| auth.amr.to_string()),
    };
    let (token, token_hash) = new_token()?;
    store::insert_family(conn, &family)?;
    store::insert_token(
        conn,
        &RefreshToken {
            token_hash,
            family_id: family.id.clone(),
            parent_hash: None,
            replaced_by: None,
            scope: scope.to_string(),
            issued_at: now,
            idle_expires_at: (now + lifetimes.idle_secs).min(family.absolute_expires_at),
            used_at: None,
            used_at_ms: None,
        },
    )?;
    store::revoke_oldest_live(
        conn,
        &family.user_id,
        &family.client_id,
        lifetimes.max_live_families,
        now,
        "session_limit",
    )?;
    Ok((token, family.id))
}

/// A new token and its SHA-256 hex, the only form stored.
pub fn new_token() -> Result<(String, String), DbError> {
    let token = crate::crypto::random_token(32).map_err(|e| DbError::Task(e.to_string()))?;
    let hash = crate::crypto::sha256_hex(token.as_bytes());
    Ok((token, hash))
}
