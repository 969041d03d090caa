//! The migrations embedded in the binary, one tree per backend (kept alike by
//! tests/api/db_seam.rs), and how each backend applies them. `dialect::run_migrations` picks.

use diesel::connection::SimpleConnection;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use super::conn::DbError;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");
/// Arbitrary, fixed: the advisory lock id under which PostgreSQL migrations run.
const MIGRATION_LOCK: i64 = 0x0074_6573_7365_7261;

fn names(versions: Vec<diesel::migration::MigrationVersion<'_>>) -> Vec<String> {
    versions.iter().map(|v| v.to_string()).collect()
}

/// Applies the pending SQLite migrations; the caller holds the file's start-up lock.
pub(super) fn apply_sqlite(conn: &mut diesel::SqliteConnection) -> Result<Vec<String>, DbError> {
    conn.run_pending_migrations(SQLITE_MIGRATIONS)
        .map(names)
        .map_err(|e| DbError::Migration(e.to_string()))
}

/// Applies the pending PostgreSQL migrations. Replicas starting together would race to create
/// the same tables; a session advisory lock lets one migrate while the others wait, then find
/// nothing to do.
pub(super) fn apply_postgres(conn: &mut diesel::PgConnection) -> Result<Vec<String>, DbError> {
    conn.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))?;
    let result = conn
        .run_pending_migrations(POSTGRES_MIGRATIONS)
        .map(names)
        .map_err(|e| DbError::Migration(e.to_string()));
    conn.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"))?;
    result
}
