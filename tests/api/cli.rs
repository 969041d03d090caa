use serde_json::Value;
use tessera::db::Database;
use tessera::db::repo;

use crate::testkit::{ServerProcess, TestEnv, run_cli, stdout_json};

fn stderr_of(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).trim().to_string()
}

#[test]
fn user_add_reads_the_password_from_stdin_and_never_prints_it() {
    let env = TestEnv::new();
    let out = env.cli(
        &[
            "user",
            "add",
            "--email",
            " Ann@Example.COM ",
            "--password-stdin",
            "--name",
            "Ann",
            "--role",
            "admin",
            "--email-verified",
        ],
        Some("correct horse battery\n"),
    );
    let user = stdout_json(&out);
    assert_eq!(user["email"], "Ann@example.com");
    assert_eq!(user["name"], "Ann");
    assert_eq!(user["roles"], serde_json::json!(["admin"]));
    assert_eq!(user["email_verified"], true);
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(!printed.contains("correct horse") && !printed.contains("argon2"));

    let listed = env.cli(&["user", "list"], None);
    let users = stdout_json(&listed);
    assert_eq!(users.as_array().expect("list").len(), 1);
    let printed = String::from_utf8_lossy(&listed.stdout);
    assert!(!printed.contains("argon2") && !printed.contains("password"));

    let db = Database::connect(&env.settings().database).expect("db");
    let stored = repo::users::find_by_email(&mut db.get().expect("conn"), "ann@example.com")
        .expect("query")
        .expect("user stored");
    let hash = stored.password_hash.expect("hash stored");
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );

    let duplicate = env.cli(
        &[
            "user",
            "add",
            "--email",
            "ann@EXAMPLE.com",
            "--password-stdin",
        ],
        Some("another password\n"),
    );
    assert!(!duplicate.status.success());
    assert!(
        stderr_of(&duplicate).contains("already exists"),
        "{}",
        stderr_of(&duplicate)
    );
    let short = env.cli(
        &[
            "user",
            "add",
            "--email",
            "bob@example.com",
            "--password-stdin",
        ],
        Some("short\n"),
    );
    assert!(!short.status.success());
    assert!(
        stderr_of(&short).contains("password"),
        "{}",
        stderr_of(&short)
    );
    let bad_email = env.cli(
        &["user", "add", "--email", "bob", "--password-stdin"],
        Some("long enough pass\n"),
    );
    assert!(!bad_email.status.success());
    assert!(
        stderr_of(&bad_email).contains("email"),
        "{}",
        stderr_of(&bad_email)
    );
}

#[test]
fn client_add_shows_a_confidential_secret_once_and_stores_its_hash() {
    let env = TestEnv::new();
    let created = stdout_json(&env.cli(
        &[
            "client",
            "add",
            "--name",
            "Web app",
            "--grant-types",
            "password,refresh_token",
            "--scopes",
            "openid api",
            "--audience",
            "api",
        ],
        None,
    ));
    let client_id = created["client_id"]
        .as_str()
        .expect("client_id")
        .to_string();
    assert!(
        client_id.len() == 32 && client_id.chars().all(|c| c.is_ascii_hexdigit()),
        "hex, so it never starts with '-' on a command line: {client_id}"
    );
    let secret = created["client_secret"]
        .as_str()
        .expect("secret shown")
        .to_string();
    assert_eq!(secret.len(), 43, "256 bits, base64url");
    assert_eq!(
        created["grant_types"],
        serde_json::json!(["password", "refresh_token"])
    );
    assert_eq!(created["scopes"], serde_json::json!(["openid", "api"]));
    assert_eq!(created["public"], false);

    let db = Database::connect(&env.settings().database).expect("db");
    let stored = repo::clients::find(&mut db.get().expect("conn"), &client_id)
        .expect("query")
        .expect("stored");
    assert_eq!(
        stored.secret_hash.as_deref(),
        Some(tessera::crypto::sha256_hex(secret.as_bytes()).as_str())
    );

    let listed = env.cli(&["client", "list"], None);
    let text = String::from_utf8_lossy(&listed.stdout).to_string();
    assert!(
        !text.contains(&secret) && !text.contains("secret"),
        "{text}"
    );
    assert_eq!(stdout_json(&listed).as_array().expect("list").len(), 1);

    let public = stdout_json(&env.cli(
        &[
            "client",
            "add",
            "--name",
            "SPA",
            "--public",
            "--grant-types",
            "authorization_code",
            "--redirect-uri",
            "https://spa.example.com/cb",
        ],
        None,
    ));
    assert_eq!(public["public"], true);
    assert!(public.get("client_secret").is_none());

    let invalid = env.cli(
        &["client", "add", "--name", "x", "--grant-types", "implicit"],
        None,
    );
    assert!(!invalid.status.success());
    assert!(
        stderr_of(&invalid).contains("implicit"),
        "{}",
        stderr_of(&invalid)
    );
}

#[test]
fn migrate_reports_the_backend() {
    // From nothing: the per-test PostgreSQL database is otherwise born migrated.
    let env = TestEnv::with_empty_database();
    let out = stdout_json(&env.cli(&["migrate"], None));
    assert_eq!(out["status"], "migrated");
    let expected = if env.db.is_postgres() {
        "postgres"
    } else {
        "sqlite"
    };
    assert_eq!(out["database"], expected);
}

fn assert_one_line_failure(output: &std::process::Output, code: i32, needles: &[&str]) {
    let stderr = stderr_of(output);
    assert_eq!(output.status.code(), Some(code), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    for needle in needles {
        assert!(stderr.contains(needle), "{needle:?} in {stderr}");
    }
}

#[test]
fn bad_configuration_is_one_clear_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("bad.toml");
    std::fs::write(
        &config,
        "[server]\nbind = \"127.0.0.1:8080\"\nworkerz = 2\n",
    )
    .expect("write");
    let config = config.to_string_lossy().to_string();
    assert_one_line_failure(
        &run_cli(&["migrate", "--config", &config], &[], None),
        2,
        &["workerz"],
    );
    assert_one_line_failure(
        &run_cli(&["migrate"], &[("TESSERA_SERVER_BND", "x")], None),
        2,
        &["TESSERA_SERVER_BND"],
    );
    assert_one_line_failure(
        &run_cli(&["migrate", "--bind", "localhost"], &[], None),
        2,
        &["server.bind"],
    );
    assert_one_line_failure(
        &run_cli(&["migrate"], &[("DATABASE_URL", "mysql://x")], None),
        2,
        &["database.url"],
    );
    assert_one_line_failure(
        &run_cli(&["migrate"], &[("TESSERA_ISSUER", "id.example.com")], None),
        2,
        &["server.issuer"],
    );
}

#[test]
fn an_unreachable_postgres_is_one_clear_line() {
    let out = run_cli(
        &["migrate"],
        &[("DATABASE_URL", "postgres://tessera@127.0.0.1:1/tessera")],
        None,
    );
    assert_one_line_failure(
        &out,
        1,
        &["cannot connect to the database", "127.0.0.1", "refused"],
    );
}

#[test]
fn an_unwritable_keys_directory_is_one_clear_line() {
    let env = TestEnv::new();
    let blocker = env.dir.path().join("not-a-directory");
    std::fs::write(&blocker, "").expect("write");
    let keys_dir = blocker.join("keys");
    let out = run_cli(
        &["keys", "rotate"],
        &[
            ("DATABASE_URL", &env.db.url),
            ("TESSERA_KEYS_DIR", &keys_dir.to_string_lossy()),
        ],
        None,
    );
    assert_one_line_failure(&out, 1, &["keys directory", "not-a-directory"]);
}

/// The binary as an operator runs it: serves JWKS, then stops cleanly on SIGTERM.
#[tokio::test]
async fn serve_answers_and_stops_cleanly_on_sigterm() {
    let env = TestEnv::new();
    let server = ServerProcess::start(&env);
    let jwks: Value = ::reqwest::get(format!("{}/.well-known/jwks.json", server.address))
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(
        jwks["keys"].as_array().map(Vec::len),
        Some(3),
        "one key per algorithm"
    );
    let status = server.stop();
    assert!(status.success(), "exit status {status:?}");
}

/// Issue 14 item 16: Kubernetes injects TESSERA_SERVICE_HOST, TESSERA_PORT… into every pod of a
/// namespace with a Service named `tessera`; they must not stop the start, and they are named
/// in one warning line (names only, never values).
#[test]
fn kubernetes_service_links_are_ignored_with_one_warning() {
    let out = run_cli(
        &["migrate"],
        &[
            ("TESSERA_SERVICE_HOST", "10.96.0.12"),
            ("TESSERA_SERVICE_PORT", "8080"),
            ("TESSERA_PORT", "tcp://10.96.0.12:8080"),
            ("TESSERA_PORT_8080_TCP_ADDR", "10.96.0.12"),
            ("TESSERA_WRAPPER_TOKEN", "value-that-must-not-be-logged"),
        ],
        None,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.contains("TESSERA_")).collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    for name in [
        "TESSERA_SERVICE_HOST",
        "TESSERA_PORT_8080_TCP_ADDR",
        "TESSERA_WRAPPER_TOKEN",
    ] {
        assert!(warnings[0].contains(name), "{stderr}");
    }
    assert!(
        !stderr.contains("value-that-must-not-be-logged"),
        "{stderr}"
    );
}

/// `client add --require-mfa` stores the flag as the domain's `Client` reads it, and `client
/// list` and `client update --require-mfa BOOL` show and change it (a client added without the
/// flag does not require MFA); a value that is not a boolean, or an unknown client, is an
/// error that changes nothing.
#[test]
fn client_add_and_update_set_require_mfa() {
    let env = TestEnv::new();
    let add = |extra: &[&str]| {
        let mut args = vec![
            "client",
            "add",
            "--name",
            "Portal",
            "--grant-types",
            "client_credentials",
        ];
        args.extend_from_slice(extra);
        stdout_json(&env.cli(&args, None))
    };
    let strict = add(&["--require-mfa"]);
    assert_eq!(strict["require_mfa"], true);
    let plain = add(&[]);
    assert_eq!(plain["require_mfa"], false);
    let id = strict["client_id"].as_str().expect("client_id").to_string();
    let db = Database::connect(&env.settings().database).expect("db");
    let stored = |id: &str| {
        repo::clients::find(&mut db.get().expect("conn"), id)
            .expect("query")
            .expect("stored")
            .require_mfa
    };
    assert!(stored(&id));
    assert!(!stored(plain["client_id"].as_str().expect("id")));
    let listed = stdout_json(&env.cli(&["client", "list"], None));
    let shown: Vec<bool> = listed
        .as_array()
        .expect("list")
        .iter()
        .map(|c| c["require_mfa"].as_bool().expect("a boolean"))
        .collect();
    assert_eq!(shown.iter().filter(|b| **b).count(), 1, "{listed}");

    let refused = env.cli(
        &[
            "client",
            "update",
            "--client-id",
            &id,
            "--require-mfa",
            "maybe",
        ],
        None,
    );
    assert!(!refused.status.success());
    assert!(
        stderr_of(&refused).contains("maybe"),
        "{}",
        stderr_of(&refused)
    );
    assert!(stored(&id), "unchanged");
    let unknown = env.cli(
        &[
            "client",
            "update",
            "--client-id",
            "nothing",
            "--require-mfa",
            "true",
        ],
        None,
    );
    assert!(!unknown.status.success());
    assert!(
        stderr_of(&unknown).contains("no client"),
        "{}",
        stderr_of(&unknown)
    );
    let updated = stdout_json(&env.cli(
        &[
            "client",
            "update",
            "--client-id",
            &id,
            "--require-mfa",
            "false",
        ],
        None,
    ));
    assert_eq!(updated["require_mfa"], false);
    assert_eq!(updated["name"], "Portal");
    assert!(!stored(&id));
}
