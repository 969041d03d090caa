use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::schema::login_throttles;

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = login_throttles, treat_none_as_null = true)]
pub struct ThrottleRow {
    pub throttle_key: String,
    pub failures: i64,
    pub window_started_at: i64,
    pub blocked_until: Option<i64>,
}

/// Makes sure the row exists and takes its row lock (PostgreSQL) or the write lock (SQLite)
/// for the rest of the transaction, then reads it: concurrent attempts on one key queue here.
pub fn lock(conn: &mut DbConnection, key: &str, now: i64) -> QueryResult<ThrottleRow> {
    let fresh = ThrottleRow {
        throttle_key: key.to_string(),
        failures: 0,
        window_started_at: now,
        blocked_until: None,
    };
    // MultiConnection has no upsert: each backend says "insert unless present" its own way.
    match conn {
        DbConnection::Postgres(pg) => diesel::insert_into(login_throttles::table)
            .values(&fresh)
            .on_conflict_do_nothing()
            .execute(pg)?,
        DbConnection::Sqlite(lite) => diesel::insert_or_ignore_into(login_throttles::table)
            .values(&fresh)
            .execute(lite)?,
    };
    diesel::update(login_throttles::table.find(key))
        .set(login_throttles::failures.eq(login_throttles::failures))
        .execute(conn)?;
    login_throttles::table
        .find(key)
        .select(ThrottleRow::as_select())
        .first(conn)
}

pub fn save(conn: &mut DbConnection, row: &ThrottleRow) -> QueryResult<()> {
    diesel::update(login_throttles::table.find(&row.throttle_key))
        .set(row)
        .execute(conn)
        .map(drop)
}

pub fn delete(conn: &mut DbConnection, key: &str) -> QueryResult<()> {
    diesel::delete(login_throttles::table.find(key))
        .execute(conn)
        .map(drop)
}

/// Gives back one counted attempt (a success from this key).
pub fn refund(conn: &mut DbConnection, key: &str) -> QueryResult<()> {
    diesel::update(
        login_throttles::table
            .find(key)
            .filter(login_throttles::failures.gt(0)),
    )
    .set(login_throttles::failures.eq(login_throttles::failures - 1))
    .execute(conn)
    .map(drop)
}

pub fn find(conn: &mut DbConnection, key: &str) -> QueryResult<Option<ThrottleRow>> {
    login_throttles::table
        .find(key)
        .select(ThrottleRow::as_select())
        .first(conn)
        .optional()
}
