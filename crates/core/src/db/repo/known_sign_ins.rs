//! Devices and IPs each account has signed in from (only hashes of them).

use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::schema::known_sign_ins;

/// What a known sign-in is: the login page's device cookie, or the client's IP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Device,
    Ip,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Device => "device",
            Kind::Ip => "ip",
        }
    }
}

/// Whether the account has signed in with this value since `since`.
pub fn is_known(
    conn: &mut DbConnection,
    user_id: &str,
    kind: Kind,
    value_hash: &str,
    since: i64,
) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        known_sign_ins::table
            .filter(known_sign_ins::user_id.eq(user_id))
            .filter(known_sign_ins::kind.eq(kind.as_str()))
            .filter(known_sign_ins::value_hash.eq(value_hash))
            .filter(known_sign_ins::last_seen_at.ge(since)),
    ))
    .get_result(conn)
}

/// Records a sign-in with this value now, then forgets all but the `keep` most recently used
/// values of its kind for the account.
pub fn remember(
    conn: &mut DbConnection,
    user_id: &str,
    kind: Kind,
    value_hash: &str,
    now: i64,
    keep: i64,
) -> QueryResult<()> {
    // MultiConnection has no upsert: touch the row, and insert it if there was none.
    let touched = diesel::update(known_sign_ins::table.find((user_id, kind.as_str(), value_hash)))
        .set(known_sign_ins::last_seen_at.eq(now))
        .execute(conn)?;
    if touched == 0 {
        diesel::insert_into(known_sign_ins::table)
            .values((
                known_sign_ins::user_id.eq(user_id),
                known_sign_ins::kind.eq(kind.as_str()),
                known_sign_ins::value_hash.eq(value_hash),
                known_sign_ins::first_seen_at.eq(now),
                known_sign_ins::last_seen_at.eq(now),
            ))
            .execute(conn)?;
    }
    let forgotten: Vec<String> = known_sign_ins::table
        .filter(known_sign_ins::user_id.eq(user_id))
        .filter(known_sign_ins::kind.eq(kind.as_str()))
        .order((
            known_sign_ins::last_seen_at.desc(),
            known_sign_ins::value_hash.desc(),
        ))
        .select(known_sign_ins::value_hash)
        .limit(1000)
        .offset(keep)
        .load(conn)?;
    if !forgotten.is_empty() {
        diesel::delete(
            known_sign_ins::table
                .filter(known_sign_ins::user_id.eq(user_id))
                .filter(known_sign_ins::kind.eq(kind.as_str()))
                .filter(known_sign_ins::value_hash.eq_any(&forgotten)),
        )
        .execute(conn)?;
    }
    Ok(())
}

/// Gives a device a new value for every account that knows it (the cookie is renewed at each
/// sign-in, so a value planted in or copied from a browser stops working at its next one).
pub fn renew_device(conn: &mut DbConnection, old_hash: &str, new_hash: &str) -> QueryResult<usize> {
    diesel::update(
        known_sign_ins::table
            .filter(known_sign_ins::kind.eq(Kind::Device.as_str()))
            .filter(known_sign_ins::value_hash.eq(old_hash)),
    )
    .set(known_sign_ins::value_hash.eq(new_hash))
    .execute(conn)
}

/// Deletes values last used before `cutoff`, about `batch` at a time.
pub fn purge(conn: &mut DbConnection, cutoff: i64, batch: i64) -> QueryResult<usize> {
    let old: Vec<String> = known_sign_ins::table
        .filter(known_sign_ins::last_seen_at.lt(cutoff))
        .select(known_sign_ins::value_hash)
        .limit(batch)
        .load(conn)?;
    if old.is_empty() {
        return Ok(0);
    }
    diesel::delete(
        known_sign_ins::table
            .filter(known_sign_ins::value_hash.eq_any(&old))
            .filter(known_sign_ins::last_seen_at.lt(cutoff)),
    )
    .execute(conn)
}
