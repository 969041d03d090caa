use diesel::prelude::*;

use crate::db::DbConnection;
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
