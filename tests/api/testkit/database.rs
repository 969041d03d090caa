//! A fresh database per test. SQLite: a file in the test's temporary directory. PostgreSQL
//! (TEST_DATABASE_URL names a server): a clone of a template database that this test run
//! migrated once, so no test pays for the migrations; a test that is about migrations asks
//! for an empty database instead (`TestDatabase::empty`).

use std::path::Path;
use std::sync::{Mutex, OnceLock};

use diesel::Connection;
use diesel::connection::SimpleConnection;

/// Templates older than this are leftovers of a run that could not drop its own (killed);
/// anything younger may belong to a run going on beside this one.
const STALE_TEMPLATE_SECS: u64 = 6 * 3600;

/// A fresh database for one test, removed when the test ends.
pub struct TestDatabase {
    pub url: String,
    postgres: Option<(String, String)>,
}

/// Which state a new PostgreSQL database starts in.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Every migration applied (a clone of this run's template).
    Migrated,
    /// No table at all, for tests that run the migrations themselves.
    Empty,
}

impl TestDatabase {
    /// Migrated on PostgreSQL; on SQLite the server migrates the new file when it starts, as
    /// it always did.
    pub fn new(dir: &Path) -> TestDatabase {
        TestDatabase::starting(dir, Start::Migrated)
    }

    /// No migration applied, on either backend.
    pub fn empty(dir: &Path) -> TestDatabase {
        TestDatabase::starting(dir, Start::Empty)
    }

    pub fn starting(dir: &Path, start: Start) -> TestDatabase {
        let Some(admin_url) = postgres_admin_url() else {
            return TestDatabase {
                url: format!("sqlite://{}", dir.join("tessera.db").display()),
                postgres: None,
            };
        };
        let name = format!("tessera_test_{}", uuid::Uuid::now_v7().simple());
        let statement = match start {
            Start::Empty => format!("CREATE DATABASE {name}"),
            Start::Migrated => format!("CREATE DATABASE {name} TEMPLATE {}", template(&admin_url)),
        };
        // PostgreSQL refuses to copy a template while any session is connected to it, and two
        // concurrent copies of one template count as such a session: one CREATE at a time.
        static CREATING: Mutex<()> = Mutex::new(());
        {
            let _one_at_a_time = CREATING.lock().unwrap_or_else(|p| p.into_inner());
            admin(&admin_url)
                .batch_execute(&statement)
                .unwrap_or_else(|e| panic!("{statement}: {e}"));
        }
        TestDatabase {
            url: with_database(&admin_url, &name),
            postgres: Some((admin_url, name)),
        }
    }

    pub fn is_postgres(&self) -> bool {
        self.postgres.is_some()
    }

    /// PostgreSQL: `ALTER DATABASE <this one> SET <setting>`, for the sessions opened after it
    /// (e.g. `default_transaction_isolation = 'serializable'`).
    pub fn set(&self, setting: &str) {
        let (admin_url, name) = self.postgres.as_ref().expect("a PostgreSQL database");
        let statement = format!("ALTER DATABASE {name} SET {setting}");
        admin(admin_url)
            .batch_execute(&statement)
            .unwrap_or_else(|e| panic!("{statement}: {e}"));
    }

    /// For a `postgres_only_` test: run by name on SQLite, it fails rather than pass idle.
    pub fn require_postgres(&self) {
        assert!(
            self.is_postgres(),
            "a PostgreSQL-only test: set TEST_DATABASE_URL (scripts/test runs it on PostgreSQL)"
        );
    }

    /// For a `sqlite_only_` test: run by name on PostgreSQL, it fails rather than pass idle.
    pub fn require_sqlite(&self) {
        assert!(
            !self.is_postgres(),
            "an SQLite-only test: unset TEST_DATABASE_URL (scripts/test runs it on SQLite)"
        );
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some((admin_url, name)) = &self.postgres
            && let Ok(mut admin) = diesel::PgConnection::establish(admin_url)
        {
            let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
    }
}

/// TEST_DATABASE_URL when it names a server.
pub fn postgres_admin_url() -> Option<String> {
    std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

/// Whether this run's tests get PostgreSQL databases.
pub fn on_postgres() -> bool {
    postgres_admin_url().is_some()
}

fn admin(admin_url: &str) -> diesel::PgConnection {
    diesel::PgConnection::establish(admin_url)
        .expect("TEST_DATABASE_URL must reach a PostgreSQL server")
}

/// This run's template: created and migrated by the first test that needs it, through the
/// server's own migration function, then left without a connection so it can be copied.
fn template(admin_url: &str) -> &'static str {
    static TEMPLATE: OnceLock<String> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        drop_stale_templates(admin_url);
        let name = format!("tessera_template_{}", uuid::Uuid::now_v7().simple());
        admin(admin_url)
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create the template database");
        {
            let mut conn = tessera::db::DbConnection::Postgres(
                diesel::PgConnection::establish(&with_database(admin_url, &name))
                    .expect("connect to the template database"),
            );
            tessera::db::run_migrations(&mut conn).expect("migrate the template database");
        }
        *TEMPLATE_TO_DROP.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((admin_url.to_string(), name.clone()));
        // libtest has no end-of-run hook; the process's exit handlers run after every test.
        // SAFETY: `drop_template_at_exit` is a plain extern "C" fn that never unwinds.
        unsafe {
            libc::atexit(drop_template_at_exit);
        }
        name
    })
}

static TEMPLATE_TO_DROP: Mutex<Option<(String, String)>> = Mutex::new(None);

extern "C" fn drop_template_at_exit() {
    let _ = std::panic::catch_unwind(|| {
        let taken = TEMPLATE_TO_DROP.lock().ok().and_then(|mut t| t.take());
        if let Some((admin_url, name)) = taken
            && let Ok(mut admin) = diesel::PgConnection::establish(&admin_url)
        {
            let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
    });
}

/// Templates of killed runs (their exit handler never ran), told by the creation time in
/// their UUIDv7 name.
fn drop_stale_templates(admin_url: &str) {
    use diesel::prelude::*;
    #[derive(QueryableByName)]
    struct Named {
        #[diesel(sql_type = diesel::sql_types::Text)]
        datname: String,
    }
    let mut admin = admin(admin_url);
    let Ok(rows) = diesel::sql_query(
        "SELECT datname FROM pg_database WHERE datname LIKE 'tessera\\_template\\_%'",
    )
    .load::<Named>(&mut admin) else {
        return;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    for Named { datname } in rows {
        let created = datname
            .strip_prefix("tessera_template_")
            .and_then(|hex| uuid::Uuid::try_parse(hex).ok())
            .and_then(|id| id.get_timestamp())
            .map(|ts| ts.to_unix().0);
        if created.is_some_and(|secs| now.saturating_sub(secs) > STALE_TEMPLATE_SECS) {
            let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {datname} WITH (FORCE)"));
        }
    }
}

/// The same server URL with another database name.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let authority_end = base
        .find("://")
        .map(|i| i + 3)
        .and_then(|start| base[start..].find('/').map(|j| start + j))
        .unwrap_or(base.len());
    let mut out = format!("{}/{name}", &base[..authority_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

#[test]
fn database_names_are_swapped_in_urls() {
    assert_eq!(
        with_database("postgres://u@h:5432/postgres", "x"),
        "postgres://u@h:5432/x"
    );
    assert_eq!(with_database("postgres://u@h", "x"), "postgres://u@h/x");
    assert_eq!(
        with_database("postgres://u@h/db?sslmode=disable", "x"),
        "postgres://u@h/x?sslmode=disable"
    );
}
