//! The second step of a sign-in in flight. After a password or an upstream sign-in, a person
//! who has a second factor (or must enrol one) gets no browser session yet but a pending row,
//! found by the SHA-256 of a fresh 256-bit secret the browser holds in the `tessera_mfa`
//! cookie (HttpOnly, SameSite=Lax). It lives in the database, not in the process, so any
//! replica can answer the second step. It is worth something for `TTL_SECS` and once: the
//! second step's success takes it (`take`), so a copied cookie replayed after that, or from
//! another browser that never had it, buys nothing.

use diesel::prelude::*;

use crate::db::schema::mfa_pending;
use crate::db::{DbConnection, DbError};
use crate::domain::{Amr, UserId};

/// How long a second step may take: five minutes.
pub const TTL_SECS: i64 = 300;

/// What the first step established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub user_id: UserId,
    /// The methods used so far (`pwd`, `fed`).
    pub amr: Amr,
    /// "Keep me signed in", as asked on the login page.
    pub persistent: bool,
    /// The browser session being stepped up (`acr_values` inside an existing session).
    pub session_id: Option<String>,
    pub expires_at: i64,
}

/// A pending second step and the cookie value that stands for it (shown to nobody but the
/// browser, never logged).
pub struct Begun {
    pub pending: Pending,
    pub secret: String,
}

impl std::fmt::Debug for Begun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Begun")
            .field("pending", &self.pending)
            .finish_non_exhaustive()
    }
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = mfa_pending)]
struct PendingRow {
    secret_hash: String,
    user_id: String,
    amr: String,
    persistent: i64,
    session_id: Option<String>,
    created_at: i64,
    expires_at: i64,
    used_at: Option<i64>,
}

impl From<PendingRow> for Pending {
    fn from(row: PendingRow) -> Pending {
        Pending {
            user_id: UserId::new(row.user_id),
            amr: Amr::from_stored(&row.amr),
            persistent: row.persistent != 0,
            session_id: row.session_id,
            expires_at: row.expires_at,
        }
    }
}

/// Records the first step (inside the caller's transaction).
pub fn begin(
    conn: &mut DbConnection,
    user_id: &UserId,
    amr: &Amr,
    persistent: bool,
    session_id: Option<&str>,
    now: i64,
) -> Result<Begun, DbError> {
    let secret = crate::crypto::random_token(32).map_err(|e| DbError::Task(e.to_string()))?;
    let row = PendingRow {
        secret_hash: crate::crypto::sha256_hex(secret.as_bytes()),
        user_id: user_id.to_string(),
        amr: amr.to_string(),
        persistent: i64::from(persistent),
        session_id: session_id.map(String::from),
        created_at: now,
        expires_at: now + TTL_SECS,
        used_at: None,
    };
    diesel::insert_into(mfa_pending::table)
        .values(&row)
        .execute(conn)?;
    Ok(Begun {
        pending: row.into(),
        secret,
    })
}

/// The unused, unexpired second step the cookie `secret` stands for (to show its page, or
/// count a wrong code against its user).
pub fn find(conn: &mut DbConnection, secret: &str, now: i64) -> Result<Option<Pending>, DbError> {
    let hash = crate::crypto::sha256_hex(secret.as_bytes());
    Ok(mfa_pending::table
        .filter(mfa_pending::secret_hash.eq(hash))
        .filter(mfa_pending::used_at.is_null())
        .filter(mfa_pending::expires_at.gt(now))
        .select(PendingRow::as_select())
        .get_result(conn)
        .optional()?
        .map(Pending::from))
}

/// Takes the second step once (inside the caller's transaction, at its success): the row is
/// marked used by a conditional update, so of two concurrent completions one gets it and the
/// other `None` (the update locks the row on PostgreSQL; SQLite writes one at a time).
pub fn take(conn: &mut DbConnection, secret: &str, now: i64) -> Result<Option<Pending>, DbError> {
    let hash = crate::crypto::sha256_hex(secret.as_bytes());
    let taken = diesel::update(
        mfa_pending::table
            .filter(mfa_pending::secret_hash.eq(&hash))
            .filter(mfa_pending::used_at.is_null())
            .filter(mfa_pending::expires_at.gt(now)),
    )
    .set(mfa_pending::used_at.eq(now))
    .execute(conn)?;
    if taken != 1 {
        return Ok(None);
    }
    Ok(mfa_pending::table
        .filter(mfa_pending::secret_hash.eq(hash))
        .select(PendingRow::as_select())
        .get_result(conn)
        .optional()?
        .map(Pending::from))
}

/// Deletes every second step of the user, used or not (an MFA reset: one begun before it
/// must not finish after it).
pub fn delete_of_user(conn: &mut DbConnection, user_id: &str) -> QueryResult<usize> {
    diesel::delete(mfa_pending::table.filter(mfa_pending::user_id.eq(user_id))).execute(conn)
}

/// Deletes up to `batch` second steps expired before `now` (used or not: worthless either way,
/// so no retention).
pub fn purge(conn: &mut DbConnection, now: i64, batch: i64) -> QueryResult<usize> {
    let hashes: Vec<String> = mfa_pending::table
        .filter(mfa_pending::expires_at.le(now))
        .select(mfa_pending::secret_hash)
        .limit(batch)
        .load(conn)?;
    if hashes.is_empty() {
        return Ok(0);
    }
    diesel::delete(mfa_pending::table.filter(mfa_pending::secret_hash.eq_any(&hashes)))
        .execute(conn)
}
