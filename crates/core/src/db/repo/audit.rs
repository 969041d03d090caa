use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::models::NewAuditEvent;
use crate::db::schema::audit_events;

pub fn insert(conn: &mut DbConnection, event: &NewAuditEvent<'_>) -> QueryResult<()> {
    diesel::insert_into(audit_events::table)
        .values(event)
        .execute(conn)
        .map(drop)
}

/// Event names, newest last, for one user: what an operator (and a test) reads back.
pub fn events_for_user(conn: &mut DbConnection, user_id: &str) -> QueryResult<Vec<String>> {
    audit_events::table
        .filter(audit_events::user_id.eq(user_id))
        .order(audit_events::id.asc())
        .select(audit_events::event)
        .load(conn)
}

/// How many events of one kind were recorded (any user): what tests and operators count.
pub fn count(conn: &mut DbConnection, event: &str) -> QueryResult<i64> {
    audit_events::table
        .filter(audit_events::event.eq(event))
        .count()
        .get_result(conn)
}

/// Deletes up to `batch` events that occurred before `cutoff`.
pub fn purge(conn: &mut DbConnection, cutoff: i64, batch: i64) -> QueryResult<usize> {
    let ids: Vec<String> = audit_events::table
        .filter(audit_events::occurred_at.lt(cutoff))
        .select(audit_events::id)
        .limit(batch)
        .load(conn)?;
    if ids.is_empty() {
        return Ok(0);
    }
    diesel::delete(audit_events::table.filter(audit_events::id.eq_any(&ids))).execute(conn)
}
