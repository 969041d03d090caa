//! TLS to PostgreSQL: libpq is built with OpenSSL, and every `sslmode` and `sslrootcert` in
//! `DATABASE_URL` is libpq's to read. The local server has `ssl = on` with Debian's snakeoil
//! certificate, whose name is read from the certificate here, not assumed; libpq's `hostaddr`
//! lets `verify-full` check that name without DNS.

use diesel::prelude::*;
use serde_json::Value;
use tessera::db::{Database, DbError};

use crate::testkit::{PASSWORD, TestEnv, run_cli};

const SNAKEOIL: &str = "/etc/ssl/certs/ssl-cert-snakeoil.pem";

/// The common name of the server's certificate.
fn server_name() -> String {
    let pem = std::fs::read(SNAKEOIL).expect("the snakeoil certificate (ssl-cert package)");
    let cert = openssl::x509::X509::from_pem(&pem).expect("a PEM certificate");
    let name = cert
        .subject_name()
        .entries_by_nid(openssl::nid::Nid::COMMONNAME)
        .next()
        .expect("a common name");
    name.data().to_string().expect("utf-8")
}

/// The test database's URL with `host` in place of the server's address (reached at
/// 127.0.0.1 through `hostaddr`) and `params` added.
fn url_with(url: &str, host: Option<&str>, params: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("scheme");
    let slash = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(slash);
    let authority = match host {
        Some(host) => {
            let (user, address) = authority.rsplit_once('@').unwrap_or(("", authority));
            let port = address.rsplit_once(':').map_or("5432", |(_, p)| p);
            let user = if user.is_empty() {
                String::new()
            } else {
                format!("{user}@")
            };
            format!("{user}{host}:{port}")
        }
        None => authority.to_string(),
    };
    let separator = if path.contains('?') { '&' } else { '?' };
    let hostaddr = if host.is_some() {
        "hostaddr=127.0.0.1&"
    } else {
        ""
    };
    format!("{scheme}://{authority}{path}{separator}{hostaddr}{params}")
}

#[derive(QueryableByName)]
struct Encrypted {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    ssl: bool,
}

const OWN_SESSION_SSL: &str = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()";

/// Whether the session a job of `db`'s own pool runs on is encrypted.
async fn encrypted(db: &Database) -> bool {
    let rows: Vec<Encrypted> = db
        .run(|conn| {
            diesel::sql_query(OWN_SESSION_SSL)
                .load(conn)
                .map_err(DbError::from)
        })
        .await
        .expect("pg_stat_ssl");
    rows.first().expect("our own session").ssl
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "PostgreSQL only: scripts/test runs it on PostgreSQL"]
async fn postgres_only_sslmode_require_serves_tokens_over_an_encrypted_session() {
    let env = TestEnv::new();
    env.db.require_postgres();
    let mut settings = env.settings();
    settings.database.url = url_with(&env.db.url, None, "sslmode=require");
    let app = env.spawn_with(settings).await;
    app.create_user("ann@example.com", PASSWORD, &[]).await;
    let client = app.first_party_client().await;
    let login = app
        .password_login((&client.0, &client.1), "ann@example.com", PASSWORD, "api")
        .await;
    assert_eq!(login.status(), 200);
    let body: Value = login.json().await.expect("json");
    assert!(body["access_token"].is_string());
    assert!(encrypted(&app.state.services.db).await, "sslmode=require");
    app.stop().await;

    // The check tells the two apart: the same server without TLS is a plaintext session.
    let mut settings = env.settings();
    settings.database.url = url_with(&env.db.url, None, "sslmode=disable");
    let db = Database::connect(&settings.database).expect("sslmode=disable connects");
    assert!(!encrypted(&db).await, "sslmode=disable");
}

/// Every mode libpq knows, as libpq reads it: the ones that may encrypt do against this
/// server, verify-ca and verify-full with the server's own certificate as the root.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "PostgreSQL only: scripts/test runs it on PostgreSQL"]
async fn postgres_only_every_sslmode_is_read_from_the_url() {
    let env = TestEnv::new();
    env.db.require_postgres();
    let name = server_name();
    let root = format!("sslrootcert={SNAKEOIL}");
    for (host, params, tls) in [
        (None, "sslmode=disable".to_string(), false),
        (None, "sslmode=allow".to_string(), false),
        (None, "sslmode=prefer".to_string(), true),
        (None, "sslmode=require".to_string(), true),
        (None, format!("sslmode=verify-ca&{root}"), true),
        (
            Some(name.as_str()),
            format!("sslmode=verify-full&{root}"),
            true,
        ),
    ] {
        let mut settings = env.settings();
        settings.database.url = url_with(&env.db.url, host, &params);
        let db = Database::connect(&settings.database)
            .unwrap_or_else(|e| panic!("{params} (host {host:?}): {e}"));
        assert_eq!(encrypted(&db).await, tls, "{params}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "PostgreSQL only: scripts/test runs it on PostgreSQL"]
async fn postgres_only_verify_full_with_the_server_certificate_and_name_serves_tokens() {
    let env = TestEnv::new();
    env.db.require_postgres();
    let name = server_name();
    let mut settings = env.settings();
    settings.database.url = url_with(
        &env.db.url,
        Some(&name),
        &format!("sslmode=verify-full&sslrootcert={SNAKEOIL}"),
    );
    let app = env.spawn_with(settings).await;
    app.create_user("ann@example.com", PASSWORD, &[]).await;
    let client = app.first_party_client().await;
    let login = app
        .password_login((&client.0, &client.1), "ann@example.com", PASSWORD, "api")
        .await;
    assert_eq!(login.status(), 200);
    assert!(encrypted(&app.state.services.db).await);
    app.stop().await;

    // The name is checked: the certificate does not name the address itself.
    let mut settings = env.settings();
    settings.database.url = url_with(
        &env.db.url,
        Some("127.0.0.1"),
        &format!("sslmode=verify-full&sslrootcert={SNAKEOIL}"),
    );
    let refused = Database::connect(&settings.database).map(drop);
    assert!(
        refused.is_err(),
        "verify-full accepted a name the certificate lacks"
    );
}

/// A root that did not sign the server's certificate: start-up fails, in-process and for the
/// operator, with one line that says why (no panic, no multi-line libpq dump).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "PostgreSQL only: scripts/test runs it on PostgreSQL"]
async fn postgres_only_verify_full_with_a_wrong_root_fails_at_start_with_one_clear_line() {
    let env = TestEnv::new();
    env.db.require_postgres();
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(Vec::new()).expect("params");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Not the server's CA");
    let wrong = params.self_signed(&key).expect("CA");
    let root = env.dir.path().join("wrong-root.pem");
    std::fs::write(&root, wrong.pem()).expect("write root");
    let url = url_with(
        &env.db.url,
        Some(&server_name()),
        &format!("sslmode=verify-full&sslrootcert={}", root.display()),
    );

    let mut settings = env.settings();
    settings.database.url = url.clone();
    let built = tessera::startup::Application::build(settings).await;
    let error = format!("{:#}", built.err().expect("start-up fails"));
    assert!(error.contains("certificate verify failed"), "{error}");

    for command in [&["migrate"][..], &[][..]] {
        let out = run_cli(
            command,
            &[
                ("DATABASE_URL", url.as_str()),
                ("TESSERA_KEYS_DIR", &env.keys_dir().to_string_lossy()),
            ],
            None,
        );
        assert!(!out.status.success(), "{command:?} succeeded");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{command:?}: {stderr}");
        assert!(lines[0].starts_with("tessera: "), "{command:?}: {stderr}");
        assert!(
            lines[0].contains("certificate verify failed"),
            "{command:?}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{command:?}: {stderr}");
    }
}
