use std::os::unix::fs::PermissionsExt;

use serde_json::Value;
use tessera::db::Database;
use tessera::db::repo::signing_keys;

use std::time::Duration;

use crate::testkit::{TestApp, TestEnv, eventually, stdout_json};

/// The kids of the published RSA keys (the lifecycle tests follow RS256's keys; every
/// algorithm has the same lifecycle, and `signing_algorithms.rs` follows the others).
async fn published_kids(app: &TestApp) -> Vec<String> {
    published_kids_of(app, "RSA").await
}

async fn published_kids_of(app: &TestApp, kty: &str) -> Vec<String> {
    let body: Value = app
        .get("/.well-known/jwks.json")
        .await
        .json()
        .await
        .expect("json");
    body["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .filter(|k| k["kty"] == kty)
        .map(|k| k["kid"].as_str().expect("kid").to_string())
        .collect()
}

fn signing_kid(app: &TestApp) -> String {
    let token = tessera::tokens::sign(
        app.state.services.keys.current().active(),
        "JWT",
        &serde_json::json!({}),
    )
    .expect("signs");
    jsonwebtoken::decode_header(&token)
        .expect("header")
        .kid
        .expect("kid")
}

/// The RS256 keys' states.
fn key_states(env: &TestEnv) -> Vec<(String, String)> {
    key_states_of(env, "RS256")
}

fn key_states_of(env: &TestEnv, alg: &str) -> Vec<(String, String)> {
    let db = Database::connect(&env.settings().database).expect("db");
    let mut conn = db.get().expect("conn");
    signing_keys::list_all(&mut conn)
        .expect("rows")
        .into_iter()
        .filter(|r| r.algorithm == alg)
        .map(|r| (r.kid, r.state))
        .collect()
}

#[tokio::test]
async fn first_start_creates_one_key_per_algorithm_and_a_restart_keeps_them() {
    let env = TestEnv::new();
    let app = env.spawn().await;
    let first = published_kids(&app).await;
    assert_eq!(first.len(), 1);
    let okp = published_kids_of(&app, "OKP").await;
    let ec = published_kids_of(&app, "EC").await;
    assert_eq!((okp.len(), ec.len()), (1, 1), "one EdDSA and one ES256 key");
    app.stop().await;

    let mut files: Vec<String> = std::fs::read_dir(env.keys_dir())
        .expect("keys dir")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    files.sort();
    let mut expected = vec![
        format!("{}.pem", first[0]),
        format!("{}.pem", okp[0]),
        format!("{}.pem", ec[0]),
        "secrets.key".to_string(),
    ];
    expected.sort();
    assert_eq!(
        files, expected,
        "one signing key file per algorithm and the key that seals TOTP secrets"
    );
    let secrets_key = env.keys_dir().join("secrets.key");
    let sealing_key = std::fs::read(&secrets_key).expect("secrets key");
    let secrets_mode = std::fs::metadata(&secrets_key)
        .expect("secrets key")
        .permissions()
        .mode();
    assert_eq!(secrets_mode & 0o777, 0o600, "secrets key is 0600");
    let path = env.keys_dir().join(format!("{}.pem", first[0]));
    let mode = std::fs::metadata(&path)
        .expect("key file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "key file is 0600");
    let text = std::fs::read_to_string(&path).expect("pem");
    assert!(
        text.starts_with("-----BEGIN PRIVATE KEY-----"),
        "PKCS#8 PEM"
    );

    let again = env.spawn().await;
    assert_eq!(
        std::fs::read(&secrets_key).expect("secrets key"),
        sealing_key,
        "a restart keeps the sealing key: sealed secrets still open"
    );
    assert_eq!(
        published_kids(&again).await,
        first,
        "same key after restart"
    );
    assert_eq!(signing_kid(&again), first[0]);
    assert_eq!(
        key_states(&env),
        vec![(first[0].clone(), "active".to_string())]
    );
    assert_eq!(published_kids_of(&again, "OKP").await, okp);
    assert_eq!(published_kids_of(&again, "EC").await, ec);
    assert_eq!(
        key_states_of(&env, "EdDSA"),
        vec![(okp[0].clone(), "active".to_string())]
    );
    assert_eq!(
        key_states_of(&env, "ES256"),
        vec![(ec[0].clone(), "active".to_string())]
    );
    again.stop().await;
}

#[tokio::test]
async fn rotate_publishes_a_next_key_before_it_signs() {
    let env = TestEnv::new();
    let app = env.spawn().await;
    let original = published_kids(&app).await[0].clone();
    app.stop().await;

    let first = stdout_json(&env.cli(&["keys", "rotate", "--alg", "RS256"], None))[0].clone();
    assert_eq!(first["activated"], Value::Null);
    let next = first["next"].as_str().expect("next kid").to_string();
    let app = env.spawn().await;
    assert_eq!(
        published_kids(&app).await,
        [original.clone(), next.clone()],
        "active first"
    );
    assert_eq!(
        signing_kid(&app),
        original,
        "the next key does not sign yet"
    );
    app.stop().await;

    let second =
        stdout_json(&env.cli(&["keys", "rotate", "--alg", "RS256", "--force"], None))[0].clone();
    assert_eq!(second["activated"], next.as_str());
    assert_eq!(second["retiring"], original.as_str());
    let newest = second["next"].as_str().expect("next kid").to_string();
    let app = env.spawn().await;
    assert_eq!(signing_kid(&app), next, "the waiting key signs now");
    let kids = published_kids(&app).await;
    assert_eq!(kids, [next.clone(), newest.clone(), original.clone()]);
    app.stop().await;

    let mut states = key_states(&env);
    states.sort();
    let mut expected = vec![
        (original, "retiring".to_string()),
        (next, "active".to_string()),
        (newest, "next".to_string()),
    ];
    expected.sort();
    assert_eq!(states, expected);
    let listed = stdout_json(&env.cli(&["keys", "list"], None));
    assert_eq!(
        listed.as_array().expect("list").len(),
        5,
        "three RS256 keys, the EdDSA and the ES256 key"
    );
    for file in std::fs::read_dir(env.keys_dir()).expect("keys dir") {
        let mode = file
            .expect("entry")
            .metadata()
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[tokio::test]
async fn replicas_starting_together_agree_on_one_active_key_per_algorithm() {
    let env = TestEnv::new();
    let (a, b) = tokio::join!(env.spawn(), env.spawn());
    let kids_a = published_kids(&a).await;
    assert_eq!(kids_a, published_kids(&b).await);
    assert_eq!(kids_a.len(), 1);
    assert_eq!(signing_kid(&a), signing_kid(&b));
    for alg in ["RS256", "EdDSA", "ES256"] {
        let active = key_states_of(&env, alg)
            .into_iter()
            .filter(|(_, state)| state == "active")
            .count();
        assert_eq!(active, 1, "{alg}");
    }
    for kty in ["OKP", "EC"] {
        assert_eq!(
            published_kids_of(&a, kty).await,
            published_kids_of(&b, kty).await
        );
    }
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_missing_key_file_is_a_clear_start_up_error() {
    let env = TestEnv::new();
    let app = env.spawn().await;
    let kid = published_kids(&app).await[0].clone();
    app.stop().await;
    std::fs::remove_file(env.keys_dir().join(format!("{kid}.pem"))).expect("remove");
    let error = match tessera::startup::Application::build(env.settings()).await {
        Ok(_) => panic!("start-up must fail without the active key's file"),
        Err(e) => format!("{e:#}"),
    };
    assert!(error.contains(&kid) && error.contains("missing"), "{error}");
}

/// Returns once a key maintenance tick (`keys.reload_interval_secs`, on the real clock) has run
/// from start to end after the call, so a test can say what that tick did not do. The witness
/// is a retired probe key: every tick deletes the private files of retired keys, after
/// retiring what was due. A tick already under way may delete the first probe, so a second
/// probe, planted once the first is gone, is deleted only by a tick that began later.
async fn one_full_maintenance_tick(app: &TestApp, keys_dir: &std::path::Path) {
    for _ in 0..2 {
        let kid = format!("tick-probe-{}", uuid::Uuid::now_v7().simple());
        let row = tessera::db::models::SigningKeyRow {
            kid: kid.clone(),
            algorithm: "RS256".into(),
            state: "retired".into(),
            created_at: 0,
            activated_at: None,
            retiring_at: None,
            retired_at: Some(0),
        };
        app.query(move |c| signing_keys::insert(c, &row)).await;
        let file = keys_dir.join(format!("{kid}.pem"));
        std::fs::write(&file, "probe").expect("probe file");
        eventually(
            Duration::from_secs(10),
            "a key maintenance tick to delete a retired key's file",
            || async { !file.exists() },
        )
        .await;
        app.query(move |c| {
            use diesel::prelude::*;
            diesel::delete(tessera::db::schema::signing_keys::table.find(kid)).execute(c)
        })
        .await;
    }
}

#[tokio::test]
async fn promoting_a_next_key_too_early_is_refused_unless_forced() {
    let env = TestEnv::new();
    let first = stdout_json(&env.cli(&["keys", "rotate", "--alg", "RS256"], None))[0].clone();
    let next = first["next"].as_str().expect("next").to_string();
    let early = env.cli(&["keys", "rotate", "--alg", "RS256"], None);
    assert!(!early.status.success());
    let message = String::from_utf8_lossy(&early.stderr);
    assert!(
        message.contains(&next) && message.contains("--force") && message.contains("305 s"),
        "{message}"
    );
    let states = key_states(&env);
    assert_eq!(states.len(), 2, "a refusal creates no key: {states:?}");
    assert!(states.contains(&(next.clone(), "next".to_string())));

    let forced =
        stdout_json(&env.cli(&["keys", "rotate", "--alg", "RS256", "--force"], None))[0].clone();
    assert_eq!(forced["activated"], next.as_str());
}

#[tokio::test]
async fn a_running_server_picks_up_rotations_without_restart() {
    let env = TestEnv::new();
    let mut settings = env.settings();
    settings.keys.reload_interval_secs = 1;
    let app = env.spawn_with(settings).await;
    let original = signing_kid(&app);

    let first = stdout_json(&env.cli(&["keys", "rotate", "--alg", "RS256"], None))[0].clone();
    let next = first["next"].as_str().expect("next").to_string();
    eventually(
        Duration::from_secs(5),
        "the next key is published without a restart",
        || async { published_kids(&app).await.contains(&next) },
    )
    .await;
    assert_eq!(signing_kid(&app), original, "but does not sign yet");

    stdout_json(&env.cli(&["keys", "rotate", "--alg", "RS256", "--force"], None));
    eventually(
        Duration::from_secs(5),
        "the promoted key signs without a restart",
        || async { signing_kid(&app) == next },
    )
    .await;
    let kids = published_kids(&app).await;
    assert_eq!(kids.len(), 3);
    assert_eq!(kids[0], next, "the active key first");
    assert!(kids.contains(&original), "the retiring key stays published");
    app.stop().await;
}

#[tokio::test]
async fn a_retiring_key_leaves_the_jwks_once_its_tokens_have_expired() {
    let env = TestEnv::new();
    let mut settings = env.settings();
    settings.keys.reload_interval_secs = 1;
    settings.keys.retire_leeway_secs = 10;
    settings.tokens.access_token_ttl_secs = 60;
    settings.tokens.id_token_ttl_secs = 120;
    let app = env.spawn_with(settings).await;
    // A client of its own with a longer access token lifetime holds the key longer.
    app.state
        .services
        .db
        .run(|conn| {
            use diesel::prelude::*;
            let (id, _) = tessera::clients::create(
                conn,
                &tessera::clients::ClientSpec {
                    name: "long-lived".into(),
                    grant_types: vec!["client_credentials".into()],
                    ..Default::default()
                },
            )
            .map_err(|e| tessera::db::DbError::Task(e.to_string()))
            .map(|(c, s)| (c.id.into_string(), s))?;
            diesel::update(tessera::db::schema::clients::table.find(id))
                .set(tessera::db::schema::clients::access_token_ttl_secs.eq(Some(300i64)))
                .execute(conn)
                .map_err(tessera::db::DbError::from)
        })
        .await
        .expect("client ttl");
    let original = signing_kid(&app);
    stdout_json(&env.cli(&["keys", "rotate", "--alg", "RS256"], None));
    stdout_json(&env.cli(&["keys", "rotate", "--alg", "RS256", "--force"], None));
    eventually(
        Duration::from_secs(5),
        "the promoted key to sign",
        || async { signing_kid(&app) != original },
    )
    .await;

    // 300 s (the longest lifetime) + 10 s leeway + 1 s reload: one second short, still there.
    app.clock.advance(310);
    one_full_maintenance_tick(&app, &env.keys_dir()).await;
    assert!(published_kids(&app).await.contains(&original));
    assert!(key_states(&env).contains(&(original.clone(), "retiring".to_string())));

    app.clock.advance(10);
    eventually(
        Duration::from_secs(5),
        "retired once every token it signed has expired",
        || async { !published_kids(&app).await.contains(&original) },
    )
    .await;
    assert!(key_states(&env).contains(&(original.clone(), "retired".to_string())));
    app.stop().await;
}

#[tokio::test]
async fn a_configured_schedule_rotates_by_itself() {
    let env = TestEnv::new();
    let mut settings = env.settings();
    settings.keys.reload_interval_secs = 1;
    settings.keys.jwks_max_age_secs = 1;
    settings.keys.rotate_interval_secs = 3600;
    let app = env.spawn_with(settings).await;
    let original = signing_kid(&app);
    eventually(
        Duration::from_secs(5),
        "a next key is published as soon as the schedule is on",
        || async { published_kids(&app).await.len() == 2 },
    )
    .await;
    one_full_maintenance_tick(&app, &env.keys_dir()).await;
    assert_eq!(signing_kid(&app), original, "not due yet");
    // A few seconds more: the first key was created on the real clock, maybe a second later.
    app.clock.advance(3605);
    eventually(Duration::from_secs(5), "rotated when due", || async {
        signing_kid(&app) != original
    })
    .await;
    let states = key_states(&env);
    assert!(states.contains(&(original, "retiring".to_string())));
    assert_eq!(states.iter().filter(|(_, s)| s == "next").count(), 1);
    app.stop().await;
}

fn key_file(env: &TestEnv, kid: &str) -> std::path::PathBuf {
    env.keys_dir().join(format!("{kid}.pem"))
}

/// Item 20: once a key is retired (nothing it signed is valid any more), its private key file
/// is deleted; the files of the next, active and retiring keys are never touched. Two servers
/// sharing the keys directory retire it at once without harm, and a file left behind (a
/// deletion interrupted, an older version) goes on the next tick.
#[tokio::test]
async fn a_retired_keys_private_file_is_deleted_and_no_other_item20() {
    let env = TestEnv::new();
    let mut settings = env.settings();
    settings.keys.reload_interval_secs = 1;
    settings.keys.retire_leeway_secs = 0;
    settings.tokens.access_token_ttl_secs = 60;
    settings.tokens.id_token_ttl_secs = 60;
    let a = env.spawn_with(settings.clone()).await;
    let b = env.spawn_with_clock(settings, a.clock.clone()).await;
    let original = signing_kid(&a);
    stdout_json(&env.cli(&["keys", "rotate", "--alg", "RS256"], None));
    let forced =
        stdout_json(&env.cli(&["keys", "rotate", "--alg", "RS256", "--force"], None))[0].clone();
    let active = forced["activated"].as_str().expect("activated").to_string();
    let next = forced["next"].as_str().expect("next").to_string();
    let stray = env.keys_dir().join("notes.txt");
    std::fs::write(&stray, "not a key").expect("write");

    a.clock.advance(30);
    one_full_maintenance_tick(&a, &env.keys_dir()).await;
    assert!(key_states(&env).contains(&(original.clone(), "retiring".to_string())));
    assert!(
        key_file(&env, &original).exists(),
        "a retiring key keeps its file"
    );

    a.clock.advance(45);
    eventually(
        Duration::from_secs(5),
        "the retired key's file is deleted",
        || async { !key_file(&env, &original).exists() },
    )
    .await;
    assert!(key_states(&env).contains(&(original.clone(), "retired".to_string())));
    for kid in [&active, &next] {
        assert!(key_file(&env, kid).exists(), "{kid} keeps its file");
    }
    assert!(
        stray.exists(),
        "files that are no retired key are left alone"
    );

    std::fs::write(key_file(&env, &original), "left behind").expect("write");
    eventually(
        Duration::from_secs(5),
        "a file left behind goes on the next tick",
        || async { !key_file(&env, &original).exists() },
    )
    .await;
    for app in [&a, &b] {
        assert!(!published_kids(app).await.contains(&original));
        assert_eq!(signing_kid(app), active);
    }
    b.stop().await;
    a.stop().await;
}
