use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::models::{RefreshFamily, RefreshToken};
use crate::db::schema::{refresh_token_families, refresh_tokens};

pub fn insert_family(conn: &mut DbConnection, family: &RefreshFamily) -> QueryResult<()> {
    diesel::insert_into(refresh_token_families::table)
        .values(family)
        .execute(conn)
        .map(drop)
}

pub fn insert_token(conn: &mut DbConnection, token: &RefreshToken) -> QueryResult<()> {
    diesel::insert_into(refresh_tokens::table)
        .values(token)
        .execute(conn)
        .map(drop)
}

pub fn find_token(conn: &mut DbConnection, token_hash: &str) -> QueryResult<Option<RefreshToken>> {
    refresh_tokens::table
        .find(token_hash)
        .select(RefreshToken::as_select())
        .first(conn)
        .optional()
}

pub fn find_family(conn: &mut DbConnection, id: &str) -> QueryResult<Option<RefreshFamily>> {
    refresh_token_families::table
        .find(id)
        .select(RefreshFamily::as_select())
        .first(conn)
        .optional()
}

pub fn families_of_user(conn: &mut DbConnection, user_id: &str) -> QueryResult<Vec<RefreshFamily>> {
    refresh_token_families::table
        .filter(refresh_token_families::user_id.eq(user_id))
        .select(RefreshFamily::as_select())
        .load(conn)
}
