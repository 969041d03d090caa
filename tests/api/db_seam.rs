//! The database seam: every `dialect` function on this run's backend (the SQLite pass and the
//! PostgreSQL pass of scripts/test each cover theirs), `schema.rs` against the migrated
//! database, the two migration trees against the short list of differences they may have, and
//! no file but `dialect.rs` and `conn.rs` telling the backends apart.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use diesel::connection::{SimpleConnection, TransactionManager};
use diesel::prelude::*;
use tessera::db::models::{RefreshFamily, RefreshToken, RevokedAccessToken, ThrottleRow};
use tessera::db::{
    ConnectionManager, Database, DatabaseTarget, DbConnection, dialect, repo, run_migrations,
};

use crate::testkit::app::TestEnv;
use crate::testkit::rust_files;

fn manifest_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn connect(env: &TestEnv) -> Database {
    Database::connect(&env.settings().database).expect("database")
}

/// A connection of its own, outside the pool.
fn own_connection(env: &TestEnv) -> DbConnection {
    let target = DatabaseTarget::parse(&env.db.url).expect("url");
    r2d2::ManageConnection::connect(&ConnectionManager::new(target, 5000)).expect("connect")
}

fn migration_folders(backend: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(manifest_path("migrations").join(backend))
        .expect("migrations folder")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn migrations_apply_once_each() {
    // Not the per-run template: this database must start with nothing migrated.
    let env = TestEnv::with_empty_database();
    let mut conn = own_connection(&env);
    let applied = run_migrations(&mut conn).expect("migrate");
    let folders = migration_folders(if env.db.is_postgres() {
        "postgres"
    } else {
        "sqlite"
    });
    let versions: Vec<String> = folders
        .iter()
        .map(|f| f.split('_').next().expect("version").replace('-', ""))
        .collect();
    assert_eq!(applied, versions);
    assert_eq!(
        run_migrations(&mut conn).expect("again"),
        Vec::<String>::new()
    );
}

#[test]
fn insert_or_ignore_keeps_the_row_already_there() {
    let env = TestEnv::new();
    let db = connect(&env);
    let mut conn = db.get().expect("conn");
    let first = ThrottleRow {
        throttle_key: "ip:192.0.2.1".into(),
        failures: 3,
        window_started_at: 100,
        blocked_until: Some(200),
    };
    let second = ThrottleRow {
        failures: 0,
        blocked_until: None,
        ..first.clone()
    };
    assert_eq!(
        dialect::insert_or_ignore(&mut conn, &first).expect("insert"),
        1
    );
    assert_eq!(
        dialect::insert_or_ignore(&mut conn, &second).expect("ignore"),
        0
    );
    assert_eq!(
        repo::throttles::find(&mut conn, "ip:192.0.2.1").expect("find"),
        Some(first)
    );

    let revoked = RevokedAccessToken {
        jti: "jti-1",
        expires_at: 500,
    };
    assert_eq!(
        dialect::insert_or_ignore(&mut conn, &revoked).expect("insert"),
        1
    );
    let again = RevokedAccessToken {
        jti: "jti-1",
        expires_at: 900,
    };
    assert_eq!(
        dialect::insert_or_ignore(&mut conn, &again).expect("ignore"),
        0
    );
    assert!(repo::revoked::is_revoked(&mut conn, "jti-1").expect("read"));
    // The first expiry stands: a purge at 600 removes it.
    assert_eq!(repo::revoked::purge(&mut conn, 600, 10).expect("purge"), 1);
}

/// A user, a client and a refresh family to hang tokens on.
fn family(conn: &mut DbConnection) -> String {
    let account = tessera::accounts::NewAccount::validate("seam@example.com", None, &[], true)
        .expect("account");
    let user = tessera::accounts::create(conn, &account, None).expect("user");
    let (client, _) = tessera::clients::create(
        conn,
        &tessera::clients::ClientSpec {
            name: "seam".into(),
            grant_types: vec!["password".into(), "refresh_token".into()],
            scopes: vec!["openid".into()],
            ..Default::default()
        },
    )
    .expect("client");
    let id = tessera::db::new_id();
    tessera::refresh::store::insert_family(
        conn,
        &RefreshFamily {
            id: id.clone(),
            user_id: user.id.into_string(),
            client_id: client.id.into_string(),
            scope: "openid".into(),
            security_stamp: "stamp".into(),
            auth_time: 1,
            created_at: 1,
            absolute_expires_at: i64::MAX / 2,
            revoked_at: None,
            revoked_reason: None,
            session_id: None,
            amr: None,
        },
    )
    .expect("family");
    id
}

fn token(hash: &str, family_id: &str, parent: Option<&str>) -> RefreshToken {
    RefreshToken {
        token_hash: hash.into(),
        family_id: family_id.into(),
        parent_hash: parent.map(String::from),
        replaced_by: None,
        scope: "openid".into(),
        issued_at: 10,
        idle_expires_at: 20,
        used_at: None,
        used_at_ms: None,
    }
}

fn fields(t: &RefreshToken) -> impl PartialEq + std::fmt::Debug + use<> {
    (
        t.token_hash.clone(),
        t.family_id.clone(),
        t.parent_hash.clone(),
        t.replaced_by.clone(),
        t.scope.clone(),
        t.issued_at,
        t.idle_expires_at,
        t.used_at,
        t.used_at_ms,
    )
}

/// Every column of the new token lands, on either path: a child with no field left at its
/// default reads back whole, and the parent records when and by what it was replaced.
#[test]
fn a_rotation_writes_every_column_and_only_once() {
    let env = TestEnv::new();
    let db = connect(&env);
    let mut conn = db.get().expect("conn");
    let family_id = family(&mut conn);
    tessera::refresh::store::insert_token(&mut conn, &token("parent", &family_id, None))
        .expect("parent");
    let child = RefreshToken {
        replaced_by: Some("not-yet".into()),
        scope: "openid email".into(),
        issued_at: 11,
        idle_expires_at: 22,
        used_at: Some(33),
        used_at_ms: Some(33_044),
        ..token("child", &family_id, Some("parent"))
    };
    assert!(tessera::refresh::store::rotate(&mut conn, &child, 5_678).expect("rotate"));
    let stored = tessera::refresh::store::find_token(&mut conn, "child")
        .expect("read")
        .expect("inserted");
    assert_eq!(fields(&stored), fields(&child));
    let parent = tessera::refresh::store::find_token(&mut conn, "parent")
        .expect("read")
        .expect("parent");
    assert_eq!(
        (parent.used_at, parent.used_at_ms, parent.replaced_by),
        (Some(5), Some(5_678), Some("child".into()))
    );

    let rival = token("rival", &family_id, Some("parent"));
    assert!(!tessera::refresh::store::rotate(&mut conn, &rival, 6_000).expect("rotate"));
    assert!(
        tessera::refresh::store::find_token(&mut conn, "rival")
            .expect("read")
            .is_none()
    );
    let orphan = token("orphan", &family_id, Some("no such token"));
    assert!(!tessera::refresh::store::rotate(&mut conn, &orphan, 6_000).expect("rotate"));
    assert!(
        tessera::refresh::store::find_token(&mut conn, "orphan")
            .expect("read")
            .is_none()
    );
}

/// The one-statement form is PostgreSQL's; SQLite answers that it has none and writes nothing.
#[test]
fn the_one_statement_rotation_is_postgresql_only() {
    let env = TestEnv::new();
    let db = connect(&env);
    let mut conn = db.get().expect("conn");
    let family_id = family(&mut conn);
    tessera::refresh::store::insert_token(&mut conn, &token("parent", &family_id, None))
        .expect("parent");
    let child = token("child", &family_id, Some("parent"));
    let answer =
        dialect::rotate_in_one_statement(&mut conn, &child, "parent", 7_000).expect("rotate");
    let written = tessera::refresh::store::find_token(&mut conn, "child")
        .expect("read")
        .is_some();
    if env.db.is_postgres() {
        assert_eq!((answer, written), (Some(true), true));
        let again = dialect::rotate_in_one_statement(
            &mut conn,
            &token("c2", &family_id, Some("parent")),
            "parent",
            7_001,
        )
        .expect("rotate");
        assert_eq!(again, Some(false));
    } else {
        assert_eq!((answer, written), (None, false));
    }
}

#[test]
fn a_connection_left_unfit_is_recognised() {
    let env = TestEnv::new();
    let mut conn = own_connection(&env);
    assert!(!dialect::connection_is_dead(&mut conn));
    // A transaction nothing will commit: what a panicking job leaves behind.
    <DbConnection as Connection>::TransactionManager::begin_transaction(&mut conn).expect("begin");
    assert!(dialect::connection_is_dead(&mut conn));
    if env.db.is_postgres() {
        let mut cut = own_connection(&env);
        // The server ends this session, as a restart would.
        let _ = cut.batch_execute("SELECT pg_terminate_backend(pg_backend_pid())");
        assert!(dialect::connection_is_dead(&mut cut));
    }
}

/// Files that may tell the backends apart: the dialect, and conn.rs, which opens connections.
const MAY_NAME_BACKENDS: [&str; 2] = [
    "crates/core/src/db/dialect.rs",
    "crates/core/src/db/conn.rs",
];

/// What telling the backends apart looks like in Rust source.
const BACKEND_CHECKS: [&str; 8] = [
    "DbConnection::Postgres",
    "DbConnection::Sqlite",
    "DbConnection::{",
    "DbConnection::*",
    "DatabaseTarget::Postgres",
    "DatabaseTarget::Sqlite",
    "backend_name() ==",
    "backend_name() !=",
];

#[test]
fn only_the_dialect_tells_the_backends_apart() {
    let root = manifest_path("");
    let mut files = Vec::new();
    files.extend(rust_files(&root.join("src")));
    files.extend(rust_files(&root.join("crates")));
    assert!(files.len() > 20, "found only {files:?}");
    let mut offenders = Vec::new();
    for file in &files {
        let relative = file
            .strip_prefix(&root)
            .expect("inside")
            .to_string_lossy()
            .replace('\\', "/");
        let text = std::fs::read_to_string(file).expect("read");
        let allowed = MAY_NAME_BACKENDS.contains(&relative.as_str());
        for (number, line) in text.lines().enumerate() {
            if !allowed && BACKEND_CHECKS.iter().any(|check| line.contains(check)) {
                offenders.push(format!("{relative}:{}: {}", number + 1, line.trim()));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "only crates/core/src/db/dialect.rs may match on the backend; move these there:\n{}",
        offenders.join("\n")
    );
    // The check looks for what the dialect really writes, so it cannot pass by missing it.
    let dialect =
        std::fs::read_to_string(root.join("crates/core/src/db/dialect.rs")).expect("dialect");
    assert!(dialect.contains("DbConnection::Postgres") && dialect.contains("DbConnection::Sqlite"));
}

/// Where the migration trees may differ, each with its reason. A difference not listed fails,
/// and so does a listed one that is gone (then the entry goes too).
const ALLOWED_DIFFERENCES: [(&str, Difference); 5] = [
    (
        // The token hash is the key: without a rowid SQLite keeps the rows in the primary
        // key's b-tree, so an insert writes one tree instead of a table and its index.
        // PostgreSQL has no such table kind.
        "2026-11-22-000001_initial_schema/up.sql",
        Difference::Replaced {
            sqlite: ") WITHOUT ROWID;",
            postgres: ");",
        },
    ),
    (
        // SQLite cannot change a CHECK constraint, so it rebuilds the table; PostgreSQL alters
        // the constraint. What the file must keep alike is the constraint itself.
        "2026-11-22-140700_registration_notice/up.sql",
        Difference::SameChecks,
    ),
    (
        "2026-11-22-140700_registration_notice/down.sql",
        Difference::SameChecks,
    ),
    // The same again, for the back-channel logout's kind.
    (
        "2026-12-02-000010_backchannel_outbox_kind/up.sql",
        Difference::SameChecks,
    ),
    (
        "2026-12-02-000010_backchannel_outbox_kind/down.sql",
        Difference::SameChecks,
    ),
];

#[derive(Clone, Copy)]
enum Difference {
    /// After normalising, the SQLite file with this text replaced is the PostgreSQL file.
    Replaced {
        sqlite: &'static str,
        postgres: &'static str,
    },
    /// Different statements with the same CHECK constraints.
    SameChecks,
}

/// The SQL without comments, with each run of whitespace one space.
fn normalised(sql: &str) -> String {
    sql.lines()
        .map(|line| line.split_once("--").map_or(line, |(code, _)| code))
        .collect::<Vec<_>>()
        .join(" ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Every `CHECK (…)` clause, parentheses balanced.
fn checks(sql: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = sql;
    while let Some(start) = rest.find("CHECK (") {
        let clause = &rest[start..];
        let mut depth = 0;
        let mut end = clause.len();
        for (i, c) in clause.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        end = i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        found.push(clause[..end].to_string());
        rest = &clause[end..];
    }
    found
}

fn migration_files(backend: &str) -> BTreeMap<String, String> {
    let mut files = BTreeMap::new();
    let dir = manifest_path("migrations").join(backend);
    for folder in migration_folders(backend) {
        for entry in std::fs::read_dir(dir.join(&folder)).expect("migration") {
            let path = entry.expect("entry").path();
            let name = path
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned();
            files.insert(
                format!("{folder}/{name}"),
                std::fs::read_to_string(&path).expect("read"),
            );
        }
    }
    files
}

#[test]
fn the_migration_trees_differ_only_where_listed() {
    let sqlite = migration_files("sqlite");
    let postgres = migration_files("postgres");
    assert!(sqlite.len() >= 20, "{:?}", sqlite.keys());
    assert_eq!(
        sqlite.keys().collect::<Vec<_>>(),
        postgres.keys().collect::<Vec<_>>(),
        "both trees have the same migrations and files"
    );
    let mut problems = Vec::new();
    for (file, sqlite_sql) in &sqlite {
        let (lite, pg) = (normalised(sqlite_sql), normalised(&postgres[file]));
        let allowed = ALLOWED_DIFFERENCES
            .iter()
            .find(|(f, _)| f == file)
            .map(|(_, d)| *d);
        match allowed {
            None if lite != pg => problems.push(format!("{file}: differs and is not listed")),
            None => {}
            Some(Difference::Replaced { sqlite, postgres }) => {
                if !lite.contains(sqlite) {
                    problems.push(format!("{file}: the listed {sqlite:?} is gone; unlist it"));
                } else if lite.replacen(sqlite, postgres, 1) != pg {
                    problems.push(format!("{file}: differs beyond the listed {sqlite:?}"));
                }
            }
            Some(Difference::SameChecks) => {
                if lite == pg {
                    problems.push(format!("{file}: now the same; unlist it"));
                } else if checks(&lite).is_empty() || checks(&lite) != checks(&pg) {
                    problems.push(format!(
                        "{file}: CHECK constraints differ: {:?} vs {:?}",
                        checks(&lite),
                        checks(&pg)
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// A column as the database or schema.rs has it: (type, nullable, part of the primary key).
type Columns = BTreeMap<String, (String, bool, bool)>;

/// schema.rs's `table!` blocks: table name to columns, in diesel's type names.
fn declared_schema() -> BTreeMap<String, Columns> {
    let text =
        std::fs::read_to_string(manifest_path("crates/core/src/db/schema.rs")).expect("schema.rs");
    let mut tables = BTreeMap::new();
    let mut lines = text.lines().map(str::trim);
    while let Some(line) = lines.next() {
        if line != "diesel::table! {" {
            continue;
        }
        let header = lines.next().expect("table header");
        let (name, keys) = header.split_once(" (").expect("name (keys) {");
        let keys: Vec<&str> = keys
            .trim_end_matches(") {")
            .split(',')
            .map(str::trim)
            .collect();
        let mut columns = Columns::new();
        for line in lines.by_ref() {
            if line == "}" {
                break;
            }
            let (column, sql_type) = line
                .trim_end_matches(',')
                .split_once(" -> ")
                .unwrap_or_else(|| panic!("a column line in {name}: {line:?}"));
            let (sql_type, nullable) = match sql_type.strip_prefix("Nullable<") {
                Some(inner) => (inner.trim_end_matches('>'), true),
                None => (sql_type, false),
            };
            columns.insert(
                column.to_string(),
                (sql_type.to_string(), nullable, keys.contains(&column)),
            );
        }
        tables.insert(name.to_string(), columns);
    }
    tables
}

#[derive(QueryableByName)]
struct ColumnRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    table_name: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    column_name: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    data_type: String,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    nullable: bool,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    primary_key: bool,
}

/// The migrated database's tables, with each type named as schema.rs names it.
fn migrated_schema(env: &TestEnv) -> BTreeMap<String, Columns> {
    let _ = connect(env);
    let (query, diesel_type): (&str, fn(&str) -> String) = if env.db.is_postgres() {
        (
            "SELECT c.table_name::text AS table_name, c.column_name::text AS column_name,
                    c.data_type::text AS data_type, c.is_nullable = 'YES' AS nullable,
                    EXISTS (SELECT 1 FROM information_schema.table_constraints t
                            JOIN information_schema.key_column_usage k
                              ON k.constraint_name = t.constraint_name
                             AND k.table_schema = t.table_schema
                            WHERE t.constraint_type = 'PRIMARY KEY'
                              AND t.table_schema = c.table_schema
                              AND t.table_name = c.table_name
                              AND k.column_name = c.column_name) AS primary_key
             FROM information_schema.columns c
             WHERE c.table_schema = 'public' AND c.table_name <> '__diesel_schema_migrations'",
            |t| match t {
                "text" => "Text".into(),
                "bigint" => "BigInt".into(),
                other => format!("unmapped {other}"),
            },
        )
    } else {
        (
            "SELECT m.name AS table_name, p.name AS column_name, p.type AS data_type,
                    p.\"notnull\" = 0 AS nullable, p.pk > 0 AS primary_key
             FROM sqlite_master m JOIN pragma_table_info(m.name) p
             WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%'
               AND m.name <> '__diesel_schema_migrations'",
            |t| match t {
                "TEXT" => "Text".into(),
                "BIGINT" => "BigInt".into(),
                other => format!("unmapped {other}"),
            },
        )
    };
    let rows: Vec<ColumnRow> = diesel::sql_query(query)
        .load(&mut own_connection(env))
        .expect("columns");
    let mut tables = BTreeMap::<String, Columns>::new();
    for row in rows {
        tables.entry(row.table_name).or_default().insert(
            row.column_name,
            (diesel_type(&row.data_type), row.nullable, row.primary_key),
        );
    }
    tables
}

/// schema.rs is written by hand: every table, column, type, nullability and key it declares
/// is what this backend's migrations made, and it leaves out none.
#[test]
fn schema_rs_matches_the_migrated_database() {
    let env = TestEnv::new();
    let declared = declared_schema();
    let migrated = migrated_schema(&env);
    assert!(declared.len() >= 16, "{:?}", declared.keys());
    let mut problems = std::collections::BTreeSet::new();
    for table in declared.keys().chain(migrated.keys()) {
        let (Some(want), Some(have)) = (declared.get(table), migrated.get(table)) else {
            problems.insert(format!(
                "{table}: only in one of schema.rs and the database"
            ));
            continue;
        };
        for column in want.keys().chain(have.keys()) {
            if want.get(column) != have.get(column) {
                problems.insert(format!(
                    "{table}.{column}: schema.rs {:?}, database {:?}",
                    want.get(column),
                    have.get(column)
                ));
            }
        }
    }
    let problems: Vec<String> = problems.into_iter().collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
