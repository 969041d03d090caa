//! The one place where code asks which backend it is talking to (besides `conn`, which opens
//! the connection): everything SQLite and PostgreSQL say differently, each function covered on
//! both by tests/api/db_seam.rs, which also fails if another file matches on the backend.

use diesel::connection::SimpleConnection;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};

use super::conn::{ConnectionManager, DatabaseTarget, DbConnection, DbError};
use super::migrate;
use super::models::{RefreshToken, RevokedAccessToken, SessionClientRow, ThrottleRow};
use super::schema::{login_throttles, refresh_tokens, revoked_access_tokens, session_clients};

/// Runs `$body` (a diesel statement built from the schema, the same on both backends) on the
/// backend's own connection, named `$c` inside, rather than through the `MultiConnection`
/// wrapper. The wrapper serializes every statement's SQL text again at each call, even one
/// its prepared-statement cache already holds; a backend's own connection finds a statement
/// of a fixed shape in its cache by the statement's type, without building any SQL. For the
/// hot paths' statements: single sign-on's `/authorize` (the client, the session, the user,
/// the code row), the refresh grant (the token with its family, user and client: ~60 columns,
/// whose SQL the wrapper rendered twice per call; the consuming UPDATE, the next token's
/// INSERT) and introspection's revocation look-up (bench/RESULTS.md, session 12). `DbConnection` must be in scope where it is used (every repository file has
/// it), so that the macro names no path back into `db`.
macro_rules! native {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            DbConnection::Sqlite($c) => $body,
            DbConnection::Postgres($c) => $body,
        }
    };
}
pub(crate) use native;

/// Applies every pending migration for the connection's backend; the versions applied.
/// What the circuit breaker probes with: a fresh connection to a server that can go away
/// (PostgreSQL). None for an embedded file (SQLite), whose lock is not an outage.
pub fn breaker_probe(
    target: &DatabaseTarget,
    settings: &crate::config::DatabaseSettings,
) -> Option<ConnectionManager> {
    match target {
        DatabaseTarget::Postgres { .. } => Some(ConnectionManager::with_connect_timeout(
            target.clone(),
            settings.sqlite_busy_timeout_ms,
            settings.connect_timeout_secs,
        )),
        DatabaseTarget::Sqlite { .. } => None,
    }
}

pub fn run_migrations(conn: &mut DbConnection) -> Result<Vec<String>, DbError> {
    match conn {
        DbConnection::Sqlite(c) => migrate::apply_sqlite(c),
        DbConnection::Postgres(c) => migrate::apply_postgres(c),
    }
}

/// After a failed job: is its connection still fit to use? A transaction whose rollback
/// failed leaves diesel's transaction manager broken, and a PostgreSQL connection cut by a
/// server restart no longer answers (one round trip, on error paths only). Either would go
/// back to the pool and fail every job that drew it until the process restarted.
pub fn connection_is_dead(conn: &mut DbConnection) -> bool {
    use diesel::r2d2::R2D2Connection;
    match conn {
        DbConnection::Sqlite(c) => c.is_broken(),
        DbConnection::Postgres(c) => c.is_broken() || c.batch_execute("SELECT 1").is_err(),
    }
}

/// Whether the backend gains from group commit (`group`): SQLite's one writer does;
/// PostgreSQL's connections write in parallel, and their own commits spread the load.
pub(super) fn groups_commits(target: &DatabaseTarget) -> bool {
    matches!(target, DatabaseTarget::Sqlite { .. })
}

/// Opens a group commit's transaction (`group`): on SQLite `BEGIN IMMEDIATE`, which takes the
/// write lock at once (waiting up to the busy timeout), so no statement inside meets a stale
/// snapshot. Only SQLite groups its commits; PostgreSQL gets a plain `BEGIN`.
pub(super) fn begin_write(conn: &mut DbConnection) -> QueryResult<()> {
    use diesel::connection::AnsiTransactionManager;
    match conn {
        DbConnection::Sqlite(c) => {
            AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")
        }
        DbConnection::Postgres(c) => AnsiTransactionManager::begin_transaction_sql(c, "BEGIN"),
    }
}

/// Commits what `begin_write` opened.
pub(super) fn commit(conn: &mut DbConnection) -> QueryResult<()> {
    use diesel::connection::{AnsiTransactionManager, TransactionManager};
    match conn {
        DbConnection::Sqlite(c) => AnsiTransactionManager::commit_transaction(c),
        DbConnection::Postgres(c) => AnsiTransactionManager::commit_transaction(c),
    }
}

/// Rows that can be inserted unless a row with the same key exists. MultiConnection has no
/// upsert: each backend says "insert unless present" its own way.
pub trait InsertOrIgnore {
    fn insert_or_ignore(&self, conn: &mut DbConnection) -> QueryResult<usize>;
}

macro_rules! insert_or_ignore_into {
    ($row:ty, $table:path) => {
        impl InsertOrIgnore for $row {
            fn insert_or_ignore(&self, conn: &mut DbConnection) -> QueryResult<usize> {
                match conn {
                    DbConnection::Postgres(pg) => diesel::insert_into($table)
                        .values(self)
                        .on_conflict_do_nothing()
                        .execute(pg),
                    DbConnection::Sqlite(lite) => diesel::insert_or_ignore_into($table)
                        .values(self)
                        .execute(lite),
                }
            }
        }
    };
}

insert_or_ignore_into!(ThrottleRow, login_throttles::table);
insert_or_ignore_into!(RevokedAccessToken<'_>, revoked_access_tokens::table);
insert_or_ignore_into!(SessionClientRow, session_clients::table);

/// Inserts `row` unless its key is taken: 1 if it was inserted, 0 if a row was there.
pub fn insert_or_ignore<R: InsertOrIgnore>(conn: &mut DbConnection, row: &R) -> QueryResult<usize> {
    row.insert_or_ignore(conn)
}

diesel::table! {
    /// The rows a rotation's UPDATE consumed: a CTE of the rotation statement, named in its
    /// FROM like a table.
    consumed (token_hash) {
        token_hash -> Text,
    }
}

/// A rotation (`crate::refresh::store::rotate`) in one statement, on the backends that have one:
/// `Some(true)` if the parent was consumed and `child` inserted, `Some(false)` with nothing
/// written if it was used already; `None` on SQLite, which runs the two steps in a transaction
/// (in process, they cost no round trips).
///
/// On PostgreSQL the conditional update is a data-modifying CTE that feeds the insert, so a
/// rotation costs one round trip instead of four (BEGIN, UPDATE, INSERT, COMMIT). The insert
/// names `refresh_tokens::all_columns` and takes each from the model's field: a column added
/// to the table and the model does not compile here until it is written. The values follow
/// the columns by position, so two columns of one type swapped would still compile:
/// `db_seam::a_rotation_writes_every_column_and_only_once` (distinct values in every column) is the
/// guard for that.
pub fn rotate_in_one_statement(
    conn: &mut DbConnection,
    child: &RefreshToken,
    parent_hash: &str,
    now_ms: i64,
) -> QueryResult<Option<bool>> {
    use diesel::sql_types::{BigInt, Nullable, Text};
    let DbConnection::Postgres(pg) = conn else {
        return Ok(None);
    };
    let RefreshToken {
        token_hash,
        family_id,
        // The parent is the row the update consumed, which is the one this names.
        parent_hash: _,
        replaced_by,
        scope,
        issued_at,
        idle_expires_at,
        used_at,
        used_at_ms,
    } = child;
    let consume = diesel::update(
        refresh_tokens::table
            .find(parent_hash)
            .filter(refresh_tokens::used_at.is_null()),
    )
    .set((
        refresh_tokens::used_at.eq(now_ms.div_euclid(1000)),
        refresh_tokens::used_at_ms.eq(now_ms),
        refresh_tokens::replaced_by.eq(token_hash),
    ))
    .returning(refresh_tokens::token_hash);
    let child_row = consumed::table.select((
        token_hash.as_str().into_sql::<Text>(),
        family_id.as_str().into_sql::<Text>(),
        consumed::token_hash.nullable(),
        replaced_by.as_deref().into_sql::<Nullable<Text>>(),
        scope.as_str().into_sql::<Text>(),
        issued_at.into_sql::<BigInt>(),
        idle_expires_at.into_sql::<BigInt>(),
        used_at.into_sql::<Nullable<BigInt>>(),
        used_at_ms.into_sql::<Nullable<BigInt>>(),
    ));
    let insert = diesel::insert_into(refresh_tokens::table)
        .values(child_row)
        .into_columns(refresh_tokens::all_columns);
    let inserted = WithConsumed { consume, insert }.execute(pg)?;
    Ok(Some(inserted == 1))
}

/// `WITH consumed AS (<consume>) <insert>`.
struct WithConsumed<U, I> {
    consume: U,
    insert: I,
}

impl<U: QueryFragment<Pg>, I: QueryFragment<Pg>> QueryFragment<Pg> for WithConsumed<U, I> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql("WITH consumed AS (");
        self.consume.walk_ast(out.reborrow())?;
        out.push_sql(") ");
        self.insert.walk_ast(out.reborrow())
    }
}

impl<U, I> QueryId for WithConsumed<U, I> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<U, I> RunQueryDsl<diesel::PgConnection> for WithConsumed<U, I> {}
