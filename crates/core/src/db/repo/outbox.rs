use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::schema::mail_outbox;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = mail_outbox)]
pub struct OutboxRow {
    pub id: String,
    pub kind: String,
    pub recipient_lower: String,
    pub user_id: Option<String>,
    pub created_at: i64,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub claim_id: Option<String>,
    pub claimed_until: Option<i64>,
    pub sent_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub outcome: Option<String>,
    pub last_error: Option<String>,
    /// What a message other than mail needs beyond its recipient (a back-channel logout: the
    /// session id).
    pub detail: Option<String>,
}

impl OutboxRow {
    pub fn new(kind: &str, recipient_lower: &str, user_id: Option<&str>, now: i64) -> OutboxRow {
        OutboxRow {
            id: crate::db::new_id(),
            kind: kind.to_string(),
            recipient_lower: recipient_lower.to_string(),
            user_id: user_id.map(String::from),
            created_at: now,
            attempts: 0,
            next_attempt_at: now,
            claim_id: None,
            claimed_until: None,
            sent_at: None,
            finished_at: None,
            outcome: None,
            last_error: None,
            detail: None,
        }
    }
}

pub fn insert(conn: &mut DbConnection, row: &OutboxRow) -> QueryResult<()> {
    diesel::insert_into(mail_outbox::table)
        .values(row)
        .execute(conn)
        .map(drop)
}

pub fn find(conn: &mut DbConnection, id: &str) -> QueryResult<Option<OutboxRow>> {
    mail_outbox::table
        .find(id)
        .select(OutboxRow::as_select())
        .get_result(conn)
        .optional()
}

pub fn list(conn: &mut DbConnection) -> QueryResult<Vec<OutboxRow>> {
    mail_outbox::table
        .order(mail_outbox::id.asc())
        .select(OutboxRow::as_select())
        .load(conn)
}

/// The kind of a back-channel logout message (`sso::backchannel`), named here so that the mail
/// sender can leave those rows alone without depending on their sender.
pub const BACKCHANNEL_LOGOUT: &str = "backchannel_logout";

/// Which rows a sender takes: the mail sender every kind but the back-channel logout's, whose
/// sender takes only those.
#[derive(Debug, Clone, Copy)]
pub enum Kinds<'a> {
    Only(&'a str),
    AllBut(&'a str),
}

/// Ids of up to `batch` unfinished rows of `kinds` that are due and not claimed by a live
/// worker.
pub fn due(
    conn: &mut DbConnection,
    now: i64,
    batch: i64,
    kinds: Kinds<'_>,
) -> QueryResult<Vec<String>> {
    let waiting = mail_outbox::table
        .filter(mail_outbox::finished_at.is_null())
        .filter(mail_outbox::next_attempt_at.le(now))
        .filter(
            mail_outbox::claimed_until
                .is_null()
                .or(mail_outbox::claimed_until.le(now)),
        )
        .order(mail_outbox::next_attempt_at.asc())
        .select(mail_outbox::id)
        .limit(batch);
    match kinds {
        Kinds::Only(kind) => waiting.filter(mail_outbox::kind.eq(kind)).load(conn),
        Kinds::AllBut(kind) => waiting.filter(mail_outbox::kind.ne(kind)).load(conn),
    }
}

/// Claims one row for `claim_id` until `until`, counting the attempt: 1 if this worker got it,
/// 0 if another claimed or finished it first. One conditional UPDATE, so of two replicas
/// racing for a row exactly one wins (PostgreSQL re-checks the condition after the row lock;
/// SQLite has one writer).
pub fn claim(
    conn: &mut DbConnection,
    id: &str,
    claim_id: &str,
    now: i64,
    until: i64,
) -> QueryResult<usize> {
    diesel::update(
        mail_outbox::table
            .find(id)
            .filter(mail_outbox::finished_at.is_null())
            .filter(mail_outbox::next_attempt_at.le(now))
            .filter(
                mail_outbox::claimed_until
                    .is_null()
                    .or(mail_outbox::claimed_until.le(now)),
            ),
    )
    .set((
        mail_outbox::claim_id.eq(claim_id),
        mail_outbox::claimed_until.eq(until),
        mail_outbox::attempts.eq(mail_outbox::attempts + 1),
    ))
    .execute(conn)
}

/// Closes a claimed row with `outcome` ('sent', 'skipped' or 'failed'); only the claim's owner
/// may, so a worker whose claim lapsed and was taken over changes nothing.
pub fn finish(
    conn: &mut DbConnection,
    id: &str,
    claim_id: &str,
    outcome: &str,
    error: Option<&str>,
    now: i64,
) -> QueryResult<usize> {
    diesel::update(
        mail_outbox::table
            .find(id)
            .filter(mail_outbox::claim_id.eq(claim_id)),
    )
    .set((
        mail_outbox::finished_at.eq(now),
        mail_outbox::sent_at.eq((outcome == "sent").then_some(now)),
        mail_outbox::outcome.eq(outcome),
        mail_outbox::last_error.eq(error),
        mail_outbox::claim_id.eq(None::<String>),
        mail_outbox::claimed_until.eq(None::<i64>),
    ))
    .execute(conn)
}

/// The outbox's retry schedule, shared by its senders (mail, back-channel logout): seconds
/// before attempt `attempts + 1`, the base doubling per failed attempt, capped at `max`.
pub fn retry_delay(base: i64, max: i64, attempts: i64) -> i64 {
    let doublings = (attempts - 1).clamp(0, 30) as u32;
    base.saturating_mul(1i64 << doublings).min(max)
}

/// Releases a claimed row for another attempt at `next_attempt_at`.
pub fn retry_later(
    conn: &mut DbConnection,
    id: &str,
    claim_id: &str,
    error: &str,
    next_attempt_at: i64,
) -> QueryResult<usize> {
    diesel::update(
        mail_outbox::table
            .find(id)
            .filter(mail_outbox::claim_id.eq(claim_id)),
    )
    .set((
        mail_outbox::next_attempt_at.eq(next_attempt_at),
        mail_outbox::last_error.eq(error),
        mail_outbox::claim_id.eq(None::<String>),
        mail_outbox::claimed_until.eq(None::<i64>),
    ))
    .execute(conn)
}

/// Deletes the mail of an account, unsent or sent: rows tied to it and rows asked for its
/// address (which would otherwise keep the address until the purge).
pub fn delete_for(conn: &mut DbConnection, user_id: &str, email_lower: &str) -> QueryResult<usize> {
    diesel::delete(
        mail_outbox::table.filter(
            mail_outbox::user_id
                .eq(user_id)
                .or(mail_outbox::recipient_lower.eq(email_lower)),
        ),
    )
    .execute(conn)
}

/// Deletes an account's mail not yet finished (queued or being retried): for an account that
/// lost its address, whose verification mail must not reach the address's owner.
pub fn delete_unfinished_for(conn: &mut DbConnection, user_id: &str) -> QueryResult<usize> {
    diesel::delete(
        mail_outbox::table
            .filter(mail_outbox::user_id.eq(user_id))
            .filter(mail_outbox::finished_at.is_null()),
    )
    .execute(conn)
}

/// Deletes up to `batch` rows finished before `cutoff`.
pub fn purge(conn: &mut DbConnection, cutoff: i64, batch: i64) -> QueryResult<usize> {
    let ids: Vec<String> = mail_outbox::table
        .filter(mail_outbox::finished_at.lt(cutoff))
        .select(mail_outbox::id)
        .limit(batch)
        .load(conn)?;
    if ids.is_empty() {
        return Ok(0);
    }
    diesel::delete(mail_outbox::table.filter(mail_outbox::id.eq_any(&ids))).execute(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_doubling_to_the_ceiling() {
        assert_eq!(retry_delay(30, 3600, 1), 30);
        assert_eq!(retry_delay(30, 3600, 2), 60);
        assert_eq!(retry_delay(30, 3600, 4), 240);
        assert_eq!(retry_delay(30, 3600, 12), 3600);
        assert_eq!(retry_delay(30, 3600, 100), 3600);
    }
}
