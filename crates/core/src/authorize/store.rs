use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::models::AuthorizationCode;
use crate::db::schema::authorization_codes;

/// Deletes up to `batch` authorization codes that expired before `cutoff`.
pub fn purge(conn: &mut DbConnection, cutoff: i64, batch: i64) -> QueryResult<usize> {
    let hashes: Vec<String> = authorization_codes::table
        .filter(authorization_codes::expires_at.lt(cutoff))
        .select(authorization_codes::code_hash)
        .limit(batch)
        .load(conn)?;
    if hashes.is_empty() {
        return Ok(0);
    }
    diesel::delete(
        authorization_codes::table.filter(authorization_codes::code_hash.eq_any(&hashes)),
    )
    .execute(conn)
}

/// One statement of a fixed shape (the row's `None`s are bound as NULL, not left out), run on
/// the backend's own connection: its prepared statement is found by type, no SQL is built.
pub fn insert(conn: &mut DbConnection, code: &AuthorizationCode) -> QueryResult<()> {
    crate::db::dialect::native!(conn, |c| diesel::insert_into(authorization_codes::table)
        .values(code)
        .execute(c))
    .map(drop)
}

/// Marks an unused code used: 1 if this call consumed it. The first statement of an exchange,
/// so concurrent exchanges of one code queue on its lock.
pub fn consume(conn: &mut DbConnection, code_hash: &str, now: i64) -> QueryResult<usize> {
    diesel::update(
        authorization_codes::table
            .find(code_hash)
            .filter(authorization_codes::used_at.is_null()),
    )
    .set(authorization_codes::used_at.eq(now))
    .execute(conn)
}

pub fn find(conn: &mut DbConnection, code_hash: &str) -> QueryResult<Option<AuthorizationCode>> {
    authorization_codes::table
        .find(code_hash)
        .select(AuthorizationCode::as_select())
        .get_result(conn)
        .optional()
}

/// Remembers what was issued from a code, to revoke it if the code comes back.
pub fn record_issued(
    conn: &mut DbConnection,
    code_hash: &str,
    family_id: Option<&str>,
    jti: &str,
    expires_at: i64,
) -> QueryResult<()> {
    diesel::update(authorization_codes::table.find(code_hash))
        .set((
            authorization_codes::family_id.eq(family_id),
            authorization_codes::access_token_jti.eq(jti),
            authorization_codes::access_token_expires_at.eq(expires_at),
        ))
        .execute(conn)
        .map(drop)
}

/// Deletes the codes issued to `client_id` for `user_id` that have not been redeemed (a code
/// in flight when the person withdrew their consent buys nothing); redeemed ones stay, to
/// catch a replay.
pub fn delete_unused_of(
    conn: &mut DbConnection,
    user_id: &str,
    client_id: &str,
) -> QueryResult<usize> {
    diesel::delete(
        authorization_codes::table
            .filter(authorization_codes::user_id.eq(user_id))
            .filter(authorization_codes::client_id.eq(client_id))
            .filter(authorization_codes::used_at.is_null()),
    )
    .execute(conn)
}
