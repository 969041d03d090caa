//! The rows of second factors: TOTP authenticators and recovery codes.

use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::schema::{recovery_codes, totp_credentials};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = totp_credentials)]
pub struct TotpRow {
    pub user_id: String,
    pub sealed_secret: String,
    pub created_at: i64,
    pub confirmed_at: Option<i64>,
    pub last_used_step: i64,
}

/// Whether anyone has an authenticator (confirmed or not), i.e. a secret sealed by the secrets key.
pub fn any_totp(conn: &mut DbConnection) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        totp_credentials::table.select(totp_credentials::user_id),
    ))
    .get_result(conn)
}

pub fn find_totp(conn: &mut DbConnection, user_id: &str) -> QueryResult<Option<TotpRow>> {
    totp_credentials::table
        .find(user_id)
        .select(TotpRow::as_select())
        .get_result(conn)
        .optional()
}

/// Replaces the user's authenticator (confirmed or not) with `row`.
pub fn put_totp(conn: &mut DbConnection, row: &TotpRow) -> QueryResult<()> {
    delete_totp(conn, &row.user_id)?;
    diesel::insert_into(totp_credentials::table)
        .values(row)
        .execute(conn)
        .map(drop)
}

pub fn delete_totp(conn: &mut DbConnection, user_id: &str) -> QueryResult<usize> {
    diesel::delete(totp_credentials::table.find(user_id)).execute(conn)
}

/// Marks the pending authenticator confirmed at `step`; false if there was none pending.
pub fn confirm_totp(
    conn: &mut DbConnection,
    user_id: &str,
    step: i64,
    now: i64,
) -> QueryResult<bool> {
    diesel::update(
        totp_credentials::table
            .find(user_id)
            .filter(totp_credentials::confirmed_at.is_null()),
    )
    .set((
        totp_credentials::confirmed_at.eq(now),
        totp_credentials::last_used_step.eq(step),
    ))
    .execute(conn)
    .map(|n| n == 1)
}

/// Records `step` as used, if it is later than any used before: false when a code of this or a
/// later step was already accepted, here or on another replica (the condition is the guard).
pub fn use_step(conn: &mut DbConnection, user_id: &str, step: i64) -> QueryResult<bool> {
    diesel::update(
        totp_credentials::table
            .find(user_id)
            .filter(totp_credentials::confirmed_at.is_not_null())
            .filter(totp_credentials::last_used_step.lt(step)),
    )
    .set(totp_credentials::last_used_step.eq(step))
    .execute(conn)
    .map(|n| n == 1)
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = recovery_codes)]
pub struct RecoveryCodeRow {
    pub code_hash: String,
    pub user_id: String,
    pub created_at: i64,
    pub used_at: Option<i64>,
}

pub fn replace_recovery_codes(
    conn: &mut DbConnection,
    user_id: &str,
    rows: &[RecoveryCodeRow],
) -> QueryResult<()> {
    delete_recovery_codes(conn, user_id)?;
    // One statement per row: a batch insert has no form common to both backends.
    for row in rows {
        diesel::insert_into(recovery_codes::table)
            .values(row)
            .execute(conn)?;
    }
    Ok(())
}

pub fn delete_recovery_codes(conn: &mut DbConnection, user_id: &str) -> QueryResult<usize> {
    diesel::delete(recovery_codes::table.filter(recovery_codes::user_id.eq(user_id))).execute(conn)
}

/// Spends the user's unused code with this hash; false if there is none (wrong, or used).
pub fn spend_recovery_code(
    conn: &mut DbConnection,
    user_id: &str,
    code_hash: &str,
    now: i64,
) -> QueryResult<bool> {
    diesel::update(
        recovery_codes::table
            .find(code_hash)
            .filter(recovery_codes::user_id.eq(user_id))
            .filter(recovery_codes::used_at.is_null()),
    )
    .set(recovery_codes::used_at.eq(now))
    .execute(conn)
    .map(|n| n == 1)
}

pub fn unused_recovery_codes(conn: &mut DbConnection, user_id: &str) -> QueryResult<i64> {
    recovery_codes::table
        .filter(recovery_codes::user_id.eq(user_id))
        .filter(recovery_codes::used_at.is_null())
        .count()
        .get_result(conn)
}
