use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::models::SigningKeyRow;
use crate::db::schema::signing_keys;

/// Every key still published (next, active, retiring), oldest first.
pub fn list_published(conn: &mut DbConnection) -> QueryResult<Vec<SigningKeyRow>> {
    signing_keys::table
        .filter(signing_keys::state.ne("retired"))
        .order(signing_keys::created_at.asc())
        .then_order_by(signing_keys::kid.asc())
        .select(SigningKeyRow::as_select())
        .load(conn)
}

pub fn list_all(conn: &mut DbConnection) -> QueryResult<Vec<SigningKeyRow>> {
    signing_keys::table
        .order(signing_keys::created_at.asc())
        .then_order_by(signing_keys::kid.asc())
        .select(SigningKeyRow::as_select())
        .load(conn)
}

pub fn insert(conn: &mut DbConnection, row: &SigningKeyRow) -> QueryResult<()> {
    diesel::insert_into(signing_keys::table)
        .values(row)
        .execute(conn)
        .map(drop)
}

/// Moves the active key to `retiring`; returns how many rows changed (0 or 1).
pub fn retire_active(conn: &mut DbConnection, now: i64) -> QueryResult<usize> {
    diesel::update(signing_keys::table.filter(signing_keys::state.eq("active")))
        .set((
            signing_keys::state.eq("retiring"),
            signing_keys::retiring_at.eq(now),
        ))
        .execute(conn)
}

/// Promotes one `next` key to `active`; returns how many rows changed (0 or 1).
pub fn activate(conn: &mut DbConnection, kid: &str, now: i64) -> QueryResult<usize> {
    diesel::update(
        signing_keys::table
            .filter(signing_keys::kid.eq(kid))
            .filter(signing_keys::state.eq("next")),
    )
    .set((
        signing_keys::state.eq("active"),
        signing_keys::activated_at.eq(now),
    ))
    .execute(conn)
}
