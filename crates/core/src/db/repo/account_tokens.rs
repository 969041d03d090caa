use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::schema::account_tokens;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = account_tokens)]
pub struct AccountToken {
    pub token_hash: String,
    pub user_id: String,
    pub purpose: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
}

pub fn insert(conn: &mut DbConnection, token: &AccountToken) -> QueryResult<()> {
    diesel::insert_into(account_tokens::table)
        .values(token)
        .execute(conn)
        .map(drop)
}

pub fn find(conn: &mut DbConnection, token_hash: &str) -> QueryResult<Option<AccountToken>> {
    account_tokens::table
        .find(token_hash)
        .select(AccountToken::as_select())
        .get_result(conn)
        .optional()
}

pub fn delete(conn: &mut DbConnection, token_hash: &str) -> QueryResult<usize> {
    diesel::delete(account_tokens::table.find(token_hash)).execute(conn)
}

/// Marks an unused, unexpired token of `purpose` used: 1 if this call consumed it, 0 if it was
/// used, expired or unknown. The first write of its transaction, so two uses queue here.
pub fn consume(
    conn: &mut DbConnection,
    token_hash: &str,
    purpose: &str,
    now: i64,
) -> QueryResult<usize> {
    diesel::update(
        account_tokens::table
            .find(token_hash)
            .filter(account_tokens::purpose.eq(purpose))
            .filter(account_tokens::used_at.is_null())
            .filter(account_tokens::expires_at.gt(now)),
    )
    .set(account_tokens::used_at.eq(now))
    .execute(conn)
}

/// Ends every other outstanding token of `purpose` for the user (one link works, then none).
pub fn use_up_all(
    conn: &mut DbConnection,
    user_id: &str,
    purpose: &str,
    now: i64,
) -> QueryResult<usize> {
    diesel::update(
        account_tokens::table
            .filter(account_tokens::user_id.eq(user_id))
            .filter(account_tokens::purpose.eq(purpose))
            .filter(account_tokens::used_at.is_null()),
    )
    .set(account_tokens::used_at.eq(now))
    .execute(conn)
}

/// Deletes up to `batch` tokens that expired before `cutoff`.
pub fn purge(conn: &mut DbConnection, cutoff: i64, batch: i64) -> QueryResult<usize> {
    let hashes: Vec<String> = account_tokens::table
        .filter(account_tokens::expires_at.lt(cutoff))
        .select(account_tokens::token_hash)
        .limit(batch)
        .load(conn)?;
    if hashes.is_empty() {
        return Ok(0);
    }
    diesel::delete(account_tokens::table.filter(account_tokens::token_hash.eq_any(&hashes)))
        .execute(conn)
}
