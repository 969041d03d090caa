//! The rows of browser sessions, the apps that got tokens in them, and consents.

use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::models::{SessionClientRow, UserRow};
use crate::db::schema::{browser_sessions, clients, consents, session_clients, users};

#[derive(Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = browser_sessions)]
pub struct SessionRow {
    pub id: String,
    pub secret_hash: String,
    pub user_id: String,
    pub auth_time: i64,
    pub amr: String,
    pub persistent: i64,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub idle_expires_at: i64,
    pub absolute_expires_at: i64,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    pub ended_at: Option<i64>,
    pub ended_reason: Option<String>,
}

/// Never the secret's hash.
impl std::fmt::Debug for SessionRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionRow")
            .field("id", &self.id)
            .field("user_id", &self.user_id)
            .field("ended_at", &self.ended_at)
            .finish_non_exhaustive()
    }
}

pub fn insert(conn: &mut DbConnection, row: &SessionRow) -> QueryResult<()> {
    diesel::insert_into(browser_sessions::table)
        .values(row)
        .execute(conn)
        .map(drop)
}

/// The unended session whose cookie secret hashes to `secret_hash`, with its user, in one
/// statement (single sign-on's hot path: every `/authorize` with a session reads both). Expiry
/// and the user's being enabled are the caller's.
pub fn find_by_secret_with_user(
    conn: &mut DbConnection,
    secret_hash: &str,
) -> QueryResult<Option<(SessionRow, UserRow)>> {
    crate::db::dialect::native!(conn, |c| browser_sessions::table
        .inner_join(users::table)
        .filter(browser_sessions::secret_hash.eq(secret_hash))
        .filter(browser_sessions::ended_at.is_null())
        .select((SessionRow::as_select(), UserRow::as_select()))
        .get_result(c)
        .optional())
}

pub fn find(conn: &mut DbConnection, id: &str) -> QueryResult<Option<SessionRow>> {
    browser_sessions::table
        .find(id)
        .select(SessionRow::as_select())
        .get_result(conn)
        .optional()
}

/// A user's sessions that have not ended and have not expired at `now`, newest first.
pub fn live_of_user(
    conn: &mut DbConnection,
    user_id: &str,
    now: i64,
) -> QueryResult<Vec<SessionRow>> {
    browser_sessions::table
        .filter(browser_sessions::user_id.eq(user_id))
        .filter(browser_sessions::ended_at.is_null())
        .filter(browser_sessions::idle_expires_at.gt(now))
        .filter(browser_sessions::absolute_expires_at.gt(now))
        .order((
            browser_sessions::created_at.desc(),
            browser_sessions::id.desc(),
        ))
        .select(SessionRow::as_select())
        .load(conn)
}

/// Ids of a user's unended sessions (expired ones included: their apps are told too).
pub fn unended_ids_of_user(conn: &mut DbConnection, user_id: &str) -> QueryResult<Vec<String>> {
    browser_sessions::table
        .filter(browser_sessions::user_id.eq(user_id))
        .filter(browser_sessions::ended_at.is_null())
        .select(browser_sessions::id)
        .load(conn)
}

/// A fresh sign-in in the same session: a new secret (against fixation) and a new `auth_time`.
#[allow(clippy::too_many_arguments)]
pub fn renew(
    conn: &mut DbConnection,
    id: &str,
    secret_hash: &str,
    auth_time: i64,
    amr: &str,
    persistent: bool,
    idle_expires_at: i64,
    absolute_expires_at: i64,
) -> QueryResult<usize> {
    diesel::update(
        browser_sessions::table
            .find(id)
            .filter(browser_sessions::ended_at.is_null()),
    )
    .set((
        browser_sessions::secret_hash.eq(secret_hash),
        browser_sessions::auth_time.eq(auth_time),
        browser_sessions::amr.eq(amr),
        browser_sessions::persistent.eq(i64::from(persistent)),
        browser_sessions::last_seen_at.eq(auth_time),
        browser_sessions::idle_expires_at.eq(idle_expires_at),
        browser_sessions::absolute_expires_at.eq(absolute_expires_at),
    ))
    .execute(conn)
}

pub fn touch(
    conn: &mut DbConnection,
    id: &str,
    now: i64,
    idle_expires_at: i64,
) -> QueryResult<usize> {
    diesel::update(
        browser_sessions::table
            .find(id)
            .filter(browser_sessions::ended_at.is_null()),
    )
    .set((
        browser_sessions::last_seen_at.eq(now),
        browser_sessions::idle_expires_at.eq(idle_expires_at),
    ))
    .execute(conn)
}

/// Locks the session's row for the rest of the transaction if it is live (unended and
/// unexpired at `now`), by an update that changes nothing; 0 if it is not. An `end` of the
/// session queues behind the lock, or has already made this find nothing.
pub fn hold_live(conn: &mut DbConnection, id: &str, now: i64) -> QueryResult<usize> {
    diesel::update(
        browser_sessions::table
            .find(id)
            .filter(browser_sessions::ended_at.is_null())
            .filter(browser_sessions::idle_expires_at.gt(now))
            .filter(browser_sessions::absolute_expires_at.gt(now)),
    )
    .set(browser_sessions::last_seen_at.eq(browser_sessions::last_seen_at))
    .execute(conn)
}

/// Marks the session ended; 0 if it had ended already (so it is ended, and told, once).
pub fn end(conn: &mut DbConnection, id: &str, now: i64, reason: &str) -> QueryResult<usize> {
    diesel::update(
        browser_sessions::table
            .find(id)
            .filter(browser_sessions::ended_at.is_null()),
    )
    .set((
        browser_sessions::ended_at.eq(now),
        browser_sessions::ended_reason.eq(reason),
    ))
    .execute(conn)
}

/// Deletes up to `batch` sessions that ended or expired before `cutoff`.
pub fn purge(conn: &mut DbConnection, cutoff: i64, batch: i64) -> QueryResult<usize> {
    let ids: Vec<String> = browser_sessions::table
        .filter(
            browser_sessions::ended_at
                .lt(cutoff)
                .or(browser_sessions::idle_expires_at.lt(cutoff))
                .or(browser_sessions::absolute_expires_at.lt(cutoff)),
        )
        .select(browser_sessions::id)
        .limit(batch)
        .load(conn)?;
    if ids.is_empty() {
        return Ok(0);
    }
    diesel::delete(session_clients::table.filter(session_clients::session_id.eq_any(&ids)))
        .execute(conn)?;
    diesel::delete(browser_sessions::table.filter(browser_sessions::id.eq_any(&ids))).execute(conn)
}

/// Records that `client_id` received tokens in the session (once).
pub fn record_client(
    conn: &mut DbConnection,
    session_id: &str,
    client_id: &str,
    now: i64,
) -> QueryResult<usize> {
    crate::db::dialect::insert_or_ignore(
        conn,
        &SessionClientRow {
            session_id: session_id.to_string(),
            client_id: client_id.to_string(),
            first_at: now,
        },
    )
}

/// The clients that received tokens in the session.
pub fn clients_of(conn: &mut DbConnection, session_id: &str) -> QueryResult<Vec<String>> {
    session_clients::table
        .filter(session_clients::session_id.eq(session_id))
        .order(session_clients::first_at.asc())
        .select(session_clients::client_id)
        .load(conn)
}

/// (session id, client name) of every app that received tokens in one of `session_ids`, in
/// the order they first did: the person's session list names them.
pub fn client_names_of(
    conn: &mut DbConnection,
    session_ids: &[String],
) -> QueryResult<Vec<(String, String)>> {
    if session_ids.is_empty() {
        return Ok(Vec::new());
    }
    session_clients::table
        .inner_join(clients::table)
        .filter(session_clients::session_id.eq_any(session_ids))
        .order((session_clients::first_at.asc(), clients::name.asc()))
        .select((session_clients::session_id, clients::name))
        .load(conn)
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = consents)]
pub struct ConsentRow {
    pub user_id: String,
    pub client_id: String,
    pub scope: String,
    pub granted_at: i64,
    pub updated_at: i64,
}

pub fn find_consent(
    conn: &mut DbConnection,
    user_id: &str,
    client_id: &str,
) -> QueryResult<Option<ConsentRow>> {
    consents::table
        .find((user_id, client_id))
        .select(ConsentRow::as_select())
        .get_result(conn)
        .optional()
}

pub fn insert_consent(conn: &mut DbConnection, row: &ConsentRow) -> QueryResult<()> {
    diesel::insert_into(consents::table)
        .values(row)
        .execute(conn)
        .map(drop)
}

pub fn update_consent(
    conn: &mut DbConnection,
    user_id: &str,
    client_id: &str,
    scope: &str,
    now: i64,
) -> QueryResult<usize> {
    diesel::update(consents::table.find((user_id, client_id)))
        .set((consents::scope.eq(scope), consents::updated_at.eq(now)))
        .execute(conn)
}

/// A user's consents with the name of each client, the most recently changed first.
pub fn consents_of_user(
    conn: &mut DbConnection,
    user_id: &str,
) -> QueryResult<Vec<(ConsentRow, String)>> {
    consents::table
        .inner_join(crate::db::schema::clients::table)
        .filter(consents::user_id.eq(user_id))
        .order((consents::updated_at.desc(), consents::client_id.asc()))
        .select((ConsentRow::as_select(), crate::db::schema::clients::name))
        .load(conn)
}

/// 1 if the user had a consent for the client, 0 otherwise.
pub fn delete_consent(
    conn: &mut DbConnection,
    user_id: &str,
    client_id: &str,
) -> QueryResult<usize> {
    diesel::delete(consents::table.find((user_id, client_id))).execute(conn)
}

/// Whether the session has neither ended nor expired at `now`.
pub fn is_live(conn: &mut DbConnection, id: &str, now: i64) -> QueryResult<bool> {
    use diesel::dsl::exists;
    diesel::select(exists(
        browser_sessions::table
            .filter(browser_sessions::id.eq(id))
            .filter(browser_sessions::ended_at.is_null())
            .filter(browser_sessions::idle_expires_at.gt(now))
            .filter(browser_sessions::absolute_expires_at.gt(now)),
    ))
    .get_result(conn)
}
