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

/// The kids of every retired key.
pub fn list_retired(conn: &mut DbConnection) -> QueryResult<Vec<String>> {
    signing_keys::table
        .filter(signing_keys::state.eq("retired"))
        .select(signing_keys::kid)
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

/// Moves the given active key to `retiring`; returns how many rows changed (0 if another
/// process rotated first).
pub fn retire_active_key(conn: &mut DbConnection, kid: &str, now: i64) -> QueryResult<usize> {
    diesel::update(
        signing_keys::table
            .filter(signing_keys::kid.eq(kid))
            .filter(signing_keys::state.eq("active")),
    )
    .set((
        signing_keys::state.eq("retiring"),
        signing_keys::retiring_at.eq(now),
    ))
    .execute(conn)
}

/// Retiring keys that stopped signing at or before `stopped_by`: every token they signed has
/// expired, so they leave the JWKS. Returns their kids.
pub fn retire_finished(
    conn: &mut DbConnection,
    stopped_by: i64,
    now: i64,
) -> QueryResult<Vec<String>> {
    conn.transaction(|conn| {
        let kids: Vec<String> = signing_keys::table
            .filter(signing_keys::state.eq("retiring"))
            .filter(signing_keys::retiring_at.le(stopped_by))
            .select(signing_keys::kid)
            .load(conn)?;
        if !kids.is_empty() {
            diesel::update(
                signing_keys::table
                    .filter(signing_keys::kid.eq_any(&kids))
                    .filter(signing_keys::state.eq("retiring")),
            )
            .set((
                signing_keys::state.eq("retired"),
                signing_keys::retired_at.eq(now),
            ))
            .execute(conn)?;
        }
        Ok(kids)
    })
}
