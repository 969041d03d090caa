use diesel::prelude::*;

use crate::db::models::RevokedAccessToken;
use crate::db::schema::revoked_access_tokens;
use crate::db::{DbConnection, dialect};

/// Records an access token's `jti` as revoked until `expires_at`; revoking twice is a no-op.
pub fn insert(conn: &mut DbConnection, jti: &str, expires_at: i64) -> QueryResult<()> {
    dialect::insert_or_ignore(conn, &RevokedAccessToken { jti, expires_at }).map(drop)
}

pub fn is_revoked(conn: &mut DbConnection, jti: &str) -> QueryResult<bool> {
    crate::db::dialect::native!(conn, |c| diesel::select(diesel::dsl::exists(
        revoked_access_tokens::table.find(jti)
    ))
    .get_result(c))
}

/// Deletes up to `batch` records of tokens that have expired by now anyway.
pub fn purge(conn: &mut DbConnection, now: i64, batch: i64) -> QueryResult<usize> {
    let ids: Vec<String> = revoked_access_tokens::table
        .filter(revoked_access_tokens::expires_at.lt(now))
        .select(revoked_access_tokens::jti)
        .limit(batch)
        .load(conn)?;
    if ids.is_empty() {
        return Ok(0);
    }
    diesel::delete(revoked_access_tokens::table.filter(revoked_access_tokens::jti.eq_any(&ids)))
        .execute(conn)
}
