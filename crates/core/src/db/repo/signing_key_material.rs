//! The sealed private halves of signing keys (`keys.store = "database"`).

use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::schema::{signing_key_material, signing_keys};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = signing_key_material)]
pub struct KeyMaterialRow {
    pub kid: String,
    pub kek_id: String,
    pub sealed: String,
    pub created_at: i64,
}

pub fn insert(conn: &mut DbConnection, row: &KeyMaterialRow) -> QueryResult<()> {
    diesel::insert_into(signing_key_material::table)
        .values(row)
        .execute(conn)
        .map(drop)
}

pub fn find(conn: &mut DbConnection, kid: &str) -> QueryResult<Option<KeyMaterialRow>> {
    signing_key_material::table
        .filter(signing_key_material::kid.eq(kid))
        .select(KeyMaterialRow::as_select())
        .get_result(conn)
        .optional()
}

pub fn list(conn: &mut DbConnection) -> QueryResult<Vec<KeyMaterialRow>> {
    signing_key_material::table
        .order(signing_key_material::kid.asc())
        .select(KeyMaterialRow::as_select())
        .load(conn)
}

pub fn delete(conn: &mut DbConnection, kid: &str) -> QueryResult<usize> {
    diesel::delete(signing_key_material::table.filter(signing_key_material::kid.eq(kid)))
        .execute(conn)
}

/// Replaces one key's sealed form, if it is still sealed under `old_kek_id`; returns how many
/// rows changed (0 if another process rewrapped it first).
pub fn reseal(
    conn: &mut DbConnection,
    kid: &str,
    old_kek_id: &str,
    kek_id: &str,
    sealed: &str,
) -> QueryResult<usize> {
    diesel::update(
        signing_key_material::table
            .filter(signing_key_material::kid.eq(kid))
            .filter(signing_key_material::kek_id.eq(old_kek_id)),
    )
    .set((
        signing_key_material::kek_id.eq(kek_id),
        signing_key_material::sealed.eq(sealed),
    ))
    .execute(conn)
}

/// Deletes the material of every retired key; returns their kids.
pub fn delete_retired(conn: &mut DbConnection) -> QueryResult<Vec<String>> {
    let retired = signing_keys::table
        .filter(signing_keys::state.eq("retired"))
        .select(signing_keys::kid);
    let kids: Vec<String> = signing_key_material::table
        .filter(signing_key_material::kid.eq_any(retired))
        .select(signing_key_material::kid)
        .load(conn)?;
    if !kids.is_empty() {
        diesel::delete(signing_key_material::table.filter(signing_key_material::kid.eq_any(&kids)))
            .execute(conn)?;
    }
    Ok(kids)
}
