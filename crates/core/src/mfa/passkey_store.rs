//! The rows of passkeys and of WebAuthn ceremonies under way.

use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::schema::{passkeys, webauthn_ceremonies};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = passkeys)]
pub struct PasskeyRow {
    pub id: String,
    pub user_id: String,
    pub credential_id: String,
    pub name: String,
    /// webauthn-rs's `Passkey` as JSON (public key, counter, backup flags).
    pub credential: String,
    /// 1 for a synced (backup-eligible) passkey, else 0.
    pub backup_eligible: i64,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = webauthn_ceremonies)]
pub struct CeremonyRow {
    /// SHA-256 (hex) of the secret the browser holds.
    pub id: String,
    pub user_id: Option<String>,
    pub kind: String,
    pub state: String,
    pub created_at: i64,
    pub expires_at: i64,
}

pub fn list(conn: &mut DbConnection, user_id: &str) -> QueryResult<Vec<PasskeyRow>> {
    passkeys::table
        .filter(passkeys::user_id.eq(user_id))
        .order((passkeys::created_at.asc(), passkeys::id.asc()))
        .select(PasskeyRow::as_select())
        .load(conn)
}

pub fn count(conn: &mut DbConnection, user_id: &str) -> QueryResult<i64> {
    passkeys::table
        .filter(passkeys::user_id.eq(user_id))
        .count()
        .get_result(conn)
}

pub fn by_credential_id(
    conn: &mut DbConnection,
    credential_id: &str,
) -> QueryResult<Option<PasskeyRow>> {
    passkeys::table
        .filter(passkeys::credential_id.eq(credential_id))
        .select(PasskeyRow::as_select())
        .get_result(conn)
        .optional()
}

pub fn insert(conn: &mut DbConnection, row: &PasskeyRow) -> QueryResult<()> {
    diesel::insert_into(passkeys::table)
        .values(row)
        .execute(conn)
        .map(drop)
}

/// Stores the credential as updated by a use (counter, backup state).
pub fn record_use(
    conn: &mut DbConnection,
    id: &str,
    credential: &str,
    backup_eligible: bool,
    now: i64,
) -> QueryResult<()> {
    diesel::update(passkeys::table.find(id))
        .set((
            passkeys::credential.eq(credential),
            passkeys::backup_eligible.eq(i64::from(backup_eligible)),
            passkeys::last_used_at.eq(now),
        ))
        .execute(conn)
        .map(drop)
}

/// Renames the user's passkey `id`; false if the user has no such passkey.
pub fn rename(conn: &mut DbConnection, user_id: &str, id: &str, name: &str) -> QueryResult<bool> {
    diesel::update(
        passkeys::table
            .find(id)
            .filter(passkeys::user_id.eq(user_id)),
    )
    .set(passkeys::name.eq(name))
    .execute(conn)
    .map(|n| n == 1)
}

/// Removes the user's passkey `id`; false if the user has no such passkey.
pub fn delete(conn: &mut DbConnection, user_id: &str, id: &str) -> QueryResult<bool> {
    diesel::delete(
        passkeys::table
            .find(id)
            .filter(passkeys::user_id.eq(user_id)),
    )
    .execute(conn)
    .map(|n| n == 1)
}

/// Removes every passkey of the user (an MFA reset); how many there were.
pub fn delete_all_of_user(conn: &mut DbConnection, user_id: &str) -> QueryResult<usize> {
    diesel::delete(passkeys::table.filter(passkeys::user_id.eq(user_id))).execute(conn)
}

/// Removes the ceremonies under way for the user (an MFA reset: none may finish afterwards).
pub fn delete_ceremonies_of_user(conn: &mut DbConnection, user_id: &str) -> QueryResult<usize> {
    diesel::delete(webauthn_ceremonies::table.filter(webauthn_ceremonies::user_id.eq(user_id)))
        .execute(conn)
}

pub fn insert_ceremony(conn: &mut DbConnection, row: &CeremonyRow) -> QueryResult<()> {
    diesel::insert_into(webauthn_ceremonies::table)
        .values(row)
        .execute(conn)
        .map(drop)
}

/// Takes the ceremony `id` of `kind` out of the table (deleting it) if it has not expired: a
/// ceremony is finished once. The caller's transaction decides whether the delete stands.
pub fn take_ceremony(
    conn: &mut DbConnection,
    id: &str,
    kind: &str,
    now: i64,
) -> QueryResult<Option<CeremonyRow>> {
    let row = webauthn_ceremonies::table
        .find(id)
        .select(CeremonyRow::as_select())
        .get_result(conn)
        .optional()?;
    let Some(row) = row else {
        return Ok(None);
    };
    // The delete is the claim: of two concurrent finishes only one deletes the row.
    let deleted = diesel::delete(webauthn_ceremonies::table.find(id)).execute(conn)?;
    Ok((deleted == 1 && row.kind == kind && row.expires_at > now).then_some(row))
}

/// Expired ceremonies: worthless, no retention.
pub fn purge(conn: &mut DbConnection, now: i64, batch: i64) -> QueryResult<usize> {
    let ids: Vec<String> = webauthn_ceremonies::table
        .filter(webauthn_ceremonies::expires_at.le(now))
        .select(webauthn_ceremonies::id)
        .limit(batch)
        .load(conn)?;
    diesel::delete(webauthn_ceremonies::table.filter(webauthn_ceremonies::id.eq_any(ids)))
        .execute(conn)
}
