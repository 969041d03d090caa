use diesel::prelude::*;

pub use crate::db::models::ThrottleRow;
use crate::db::schema::login_throttles;
use crate::db::{DbConnection, dialect};

/// Makes sure the row exists and takes its row lock (PostgreSQL) or the write lock (SQLite)
/// for the rest of the transaction, then reads it: concurrent attempts on one key queue here.
pub fn lock(conn: &mut DbConnection, key: &str, now: i64) -> QueryResult<ThrottleRow> {
    let fresh = ThrottleRow {
        throttle_key: key.to_string(),
        failures: 0,
        window_started_at: now,
        blocked_until: None,
    };
    // A purge may delete the row between the insert and the update; then go round again.
    for _ in 0..3 {
        dialect::insert_or_ignore(conn, &fresh)?;
        let locked = diesel::update(login_throttles::table.find(key))
            .set(login_throttles::failures.eq(login_throttles::failures))
            .execute(conn)?;
        if locked == 1 {
            return login_throttles::table
                .find(key)
                .select(ThrottleRow::as_select())
                .get_result(conn);
        }
    }
    Err(diesel::result::Error::NotFound)
}

pub fn save(conn: &mut DbConnection, row: &ThrottleRow) -> QueryResult<()> {
    diesel::update(login_throttles::table.find(&row.throttle_key))
        .set(row)
        .execute(conn)
        .map(drop)
}

/// Clears a key's count and block (a successful login). The row stays: deleting it could
/// race with a concurrent attempt that has just inserted-or-found it.
pub fn reset(conn: &mut DbConnection, key: &str, now: i64) -> QueryResult<()> {
    diesel::update(login_throttles::table.find(key))
        .set((
            login_throttles::failures.eq(0),
            login_throttles::window_started_at.eq(now),
            login_throttles::blocked_until.eq(None::<i64>),
        ))
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
        .get_result(conn)
        .optional()
}

/// Deletes up to `batch` counters whose window ended before `cutoff` and that block nothing.
pub fn purge(conn: &mut DbConnection, cutoff: i64, now: i64, batch: i64) -> QueryResult<usize> {
    let keys: Vec<String> = login_throttles::table
        .filter(login_throttles::window_started_at.lt(cutoff))
        .filter(
            login_throttles::blocked_until
                .is_null()
                .or(login_throttles::blocked_until.lt(now)),
        )
        .select(login_throttles::throttle_key)
        .limit(batch)
        .load(conn)?;
    if keys.is_empty() {
        return Ok(0);
    }
    diesel::delete(login_throttles::table.filter(login_throttles::throttle_key.eq_any(&keys)))
        .execute(conn)
}
