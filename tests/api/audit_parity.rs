//! The command line and the admin API call the same use cases, so they write the same audit
//! events: each operation is done once through `tessera …` and once through /admin/… on a
//! fresh database of its own, and the events it added are compared. They name the same user,
//! client or session and carry the same facts; only the actor (`detail.by`: `cli`, or the
//! administrator's id) and where the call came from (`ip`) differ, by design.

use std::collections::HashSet;

use diesel::prelude::*;
use serde_json::{Value, json};
use tessera::db::Database;
use tessera::db::schema::audit_events;

use crate::testkit::app::{TestApp, TestEnv, stdout_json};
use crate::testkit::fixtures::PASSWORD;

const ADMIN: &str = "root@example.com";
const TARGET: &str = "bob@example.com";

#[derive(Debug, Queryable)]
struct Row {
    id: String,
    event: String,
    user_id: Option<String>,
    client_id: Option<String>,
    detail: Option<String>,
}

fn audit_rows(env: &TestEnv) -> Vec<Row> {
    let db = Database::connect(&env.settings().database).expect("database");
    let mut conn = db.get().expect("connection");
    audit_events::table
        .select((
            audit_events::id,
            audit_events::event,
            audit_events::user_id,
            audit_events::client_id,
            audit_events::detail,
        ))
        .load::<Row>(&mut *conn)
        .expect("audit events")
}

/// One audit event with the ids of this run's user and client replaced by what they stand
/// for, so two runs on two databases compare; the actor is kept apart.
#[derive(Debug, PartialEq, Eq)]
struct Event {
    event: String,
    user: Option<String>,
    client: Option<String>,
    detail: Value,
}

/// The ids a run's events may name, and the name each stands for.
struct Names {
    target: String,
    client: Option<String>,
    /// The target's browser session, refresh token family and the family's client.
    sessions: Option<Planted>,
}

impl Names {
    fn user(&self, id: &str) -> String {
        if id == self.target {
            TARGET.into()
        } else {
            format!("another user ({id})")
        }
    }

    fn client(&self, id: &str) -> String {
        match (&self.client, &self.sessions) {
            (Some(client), _) if client == id => "the new client".into(),
            (_, Some(planted)) if planted.client == id => "the session's client".into(),
            _ => format!("another client ({id})"),
        }
    }

    /// A detail's ids of the planted sessions, named.
    fn detail(&self, value: &mut Value) {
        match value {
            Value::String(text) => {
                if let Some(planted) = &self.sessions {
                    if *text == planted.browser_session {
                        *text = "the browser session".into();
                    } else if *text == planted.refresh_family {
                        *text = "the refresh family".into();
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.detail(v)),
            Value::Object(map) => map.values_mut().for_each(|v| self.detail(v)),
            _ => {}
        }
    }
}

/// A browser session and a refresh token family of the target, written straight to the
/// database (as a sign-in would), so that ending them can be compared.
#[derive(Debug, Clone)]
struct Planted {
    browser_session: String,
    refresh_family: String,
    client: String,
}

fn plant_sessions(env: &TestEnv, target: &str) -> Planted {
    use tessera::domain::{Amr, AuthMethod, Authentication, ScopeSet};
    let settings = env.settings();
    let db = Database::connect(&settings.database).expect("database");
    let mut conn = db.get().expect("connection");
    let conn = &mut *conn;
    let now = tessera::db::now();
    let user = tessera::db::repo::users::find_by_id(conn, target)
        .expect("query")
        .expect("the target");
    let (client, _) = tessera::clients::create(
        conn,
        &tessera::clients::ClientSpec {
            name: "session app".into(),
            public: true,
            grant_types: vec!["authorization_code".into(), "refresh_token".into()],
            redirect_uris: vec![crate::testkit::fixtures::REDIRECT.into()],
            scopes: vec!["openid".into()],
            ..Default::default()
        },
    )
    .expect("client");
    let started = tessera::sso::sign_in(
        conn,
        &settings.sessions,
        tessera::sso::SignedIn {
            user: &user,
            amr: Amr::of(AuthMethod::Password),
            persistent: false,
            origin: tessera::sso::Origin::new(Some("parity"), None),
        },
        None,
        now,
    )
    .expect("browser session");
    let (_, family) = tessera::refresh::family::start_family(
        conn,
        &user,
        &client.id,
        &ScopeSet::from_stored("openid"),
        tessera::refresh::family::Lifetimes {
            idle_secs: 3600,
            absolute_secs: 86_400,
            max_live_families: 10,
        },
        &Authentication {
            time: now,
            amr: Amr::of(AuthMethod::Password),
            session_id: None,
        },
        now,
    )
    .expect("refresh family");
    Planted {
        browser_session: started.session.id,
        refresh_family: family,
        client: client.id.into_string(),
    }
}

/// The ids of every audit event so far.
fn snapshot(env: &TestEnv) -> HashSet<String> {
    audit_rows(env).into_iter().map(|r| r.id).collect()
}

/// The events added since `before`, each with the actor it names, in a stable order.
fn added_since(env: &TestEnv, names: &Names, before: &HashSet<String>) -> Vec<(Event, String)> {
    let mut added: Vec<(Event, String)> = audit_rows(env)
        .into_iter()
        .filter(|row| !before.contains(&row.id))
        .map(|row| {
            let mut detail: Value = row
                .detail
                .as_deref()
                .map(|d| serde_json::from_str(d).expect("detail is JSON"))
                .unwrap_or(Value::Null);
            let by = detail
                .as_object_mut()
                .and_then(|d| d.remove("by"))
                .and_then(|by| by.as_str().map(String::from))
                .unwrap_or_else(|| panic!("{} names no actor: {detail}", row.event));
            names.detail(&mut detail);
            let event = Event {
                event: row.event,
                user: row.user_id.as_deref().map(|id| names.user(id)),
                client: row.client_id.as_deref().map(|id| names.client(id)),
                detail,
            };
            (event, by)
        })
        .collect();
    added.sort_by(|a, b| a.0.event.cmp(&b.0.event));
    added
}

const ROLES: [&str; 2] = ["editor", "viewer"];

/// Both runs start alike: an administrator and an unverified user, added with the CLI.
fn add_users(env: &TestEnv) -> String {
    stdout_json(&env.cli(
        &[
            "user",
            "add",
            "--email",
            ADMIN,
            "--password-stdin",
            "--role",
            "admin",
            "--email-verified",
        ],
        Some(PASSWORD),
    ));
    let target = stdout_json(&env.cli(
        &["user", "add", "--email", TARGET, "--password-stdin"],
        Some(PASSWORD),
    ));
    target["id"].as_str().expect("user id").to_string()
}

/// Each operation's events, in the order of `OPERATIONS`.
type Trail = Vec<Vec<(Event, String)>>;

const OPERATIONS: [&str; 12] = [
    "client add",
    "client update",
    "client delete",
    "end-session (browser session)",
    "end-session (refresh family)",
    "disable",
    "enable",
    "roles",
    "logout",
    "verify-email",
    "mfa reset",
    "delete",
];

fn through_the_cli(env: &TestEnv) -> Trail {
    let mut names = Names {
        target: add_users(env),
        client: None,
        sessions: None,
    };
    let run = |args: &[&str]| stdout_json(&env.cli(args, None));
    let mut trail = Vec::new();

    let before = snapshot(env);
    let client = run(&[
        "client",
        "add",
        "--name",
        "parity",
        "--grant-types",
        "client_credentials",
        "--scopes",
        "api",
        "--audience",
        "api",
    ]);
    let client_id = client["client_id"].as_str().expect("client id").to_string();
    names.client = Some(client_id.clone());
    trail.push(added_since(env, &names, &before));

    let planted = plant_sessions(env, &names.target);
    names.sessions = Some(planted.clone());
    let roles: Vec<&str> = ROLES.iter().flat_map(|role| ["--role", role]).collect();
    let steps: [Vec<&str>; 11] = [
        vec![
            "client",
            "update",
            "--client-id",
            &client_id,
            "--require-mfa",
            "true",
        ],
        vec!["client", "delete", "--client-id", &client_id],
        vec!["user", "end-session", "--id", &planted.browser_session],
        vec!["user", "end-session", "--id", &planted.refresh_family],
        vec!["user", "disable", "--email", TARGET],
        vec!["user", "enable", "--email", TARGET],
        [&["user", "roles", "--email", TARGET][..], &roles].concat(),
        vec!["user", "logout", "--email", TARGET],
        vec!["user", "verify-email", "--email", TARGET],
        vec!["user", "mfa", "reset", "--email", TARGET],
        vec!["user", "delete", "--email", TARGET],
    ];
    for args in steps {
        let before = snapshot(env);
        run(&args);
        trail.push(added_since(env, &names, &before));
    }
    trail
}

async fn admin_token(app: &TestApp) -> String {
    let client = app.first_party_client().await;
    let response = app
        .password_login((&client.0, &client.1), ADMIN, PASSWORD, "admin")
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    body["access_token"].as_str().expect("token").to_string()
}

/// The trail, and the administrator's id. The database is read between calls outside the
/// runtime's worker (`block_in_place`), as the CLI is run.
async fn through_the_api(env: &TestEnv) -> (Trail, String) {
    let mut names = Names {
        target: tokio::task::block_in_place(|| add_users(env)),
        client: None,
        sessions: None,
    };
    let app = env.spawn().await;
    let token = admin_token(&app).await;
    let call = |method: reqwest::Method, path: String, body: Option<Value>| {
        let (app, token) = (&app, &token);
        async move {
            let mut request = app
                .client
                .request(method, app.url(&path))
                .bearer_auth(token);
            if let Some(body) = body {
                request = request.json(&body);
            }
            let response = request.send().await.expect("request");
            assert!(
                response.status().is_success(),
                "{path}: {}",
                response.status()
            );
            response.bytes().await.expect("body")
        }
    };
    let snapshot = || tokio::task::block_in_place(|| snapshot(env));
    let mut trail = Vec::new();

    let before = snapshot();
    let created = call(
        reqwest::Method::POST,
        "/admin/clients".into(),
        Some(json!({
            "name": "parity",
            "grant_types": ["client_credentials"],
            "scopes": ["api"],
            "audiences": ["api"],
        })),
    )
    .await;
    let created: Value = serde_json::from_slice(&created).expect("json");
    let client_id = created["client_id"]
        .as_str()
        .expect("client id")
        .to_string();
    names.client = Some(client_id.clone());
    trail.push(tokio::task::block_in_place(|| {
        added_since(env, &names, &before)
    }));

    let user = names.target.clone();
    let planted = tokio::task::block_in_place(|| plant_sessions(env, &user));
    names.sessions = Some(planted.clone());
    let steps: [(reqwest::Method, String, Option<Value>); 11] = [
        (
            reqwest::Method::PATCH,
            format!("/admin/clients/{client_id}"),
            Some(json!({ "require_mfa": true })),
        ),
        (
            reqwest::Method::DELETE,
            format!("/admin/clients/{client_id}"),
            None,
        ),
        (
            reqwest::Method::DELETE,
            format!("/admin/sessions/{}", planted.browser_session),
            None,
        ),
        (
            reqwest::Method::DELETE,
            format!("/admin/sessions/{}", planted.refresh_family),
            None,
        ),
        (
            reqwest::Method::POST,
            format!("/admin/users/{user}/disable"),
            None,
        ),
        (
            reqwest::Method::POST,
            format!("/admin/users/{user}/enable"),
            None,
        ),
        (
            reqwest::Method::PUT,
            format!("/admin/users/{user}/roles"),
            Some(json!({ "roles": ROLES })),
        ),
        (
            reqwest::Method::POST,
            format!("/admin/users/{user}/logout"),
            None,
        ),
        (
            reqwest::Method::POST,
            format!("/admin/users/{user}/verify-email"),
            None,
        ),
        (
            reqwest::Method::POST,
            format!("/admin/users/{user}/mfa/reset"),
            None,
        ),
        (
            reqwest::Method::DELETE,
            format!("/admin/users/{user}"),
            None,
        ),
    ];
    for (method, path, body) in steps {
        let before = snapshot();
        call(method, path, body).await;
        trail.push(tokio::task::block_in_place(|| {
            added_since(env, &names, &before)
        }));
    }
    let admin_id = tokio::task::block_in_place(|| {
        let db = Database::connect(&env.settings().database).expect("database");
        tessera::db::repo::users::find_by_email(&mut db.get().expect("connection"), ADMIN)
            .expect("query")
            .expect("the administrator")
            .id
    });
    app.stop().await;
    (trail, admin_id.into_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_and_the_admin_api_write_the_same_audit_events() {
    let cli_env = TestEnv::new();
    let cli = tokio::task::block_in_place(|| through_the_cli(&cli_env));
    let api_env = TestEnv::new();
    let (api, admin_id) = through_the_api(&api_env).await;

    assert_eq!(cli.len(), OPERATIONS.len());
    assert_eq!(api.len(), OPERATIONS.len());
    for ((operation, by_cli), by_api) in OPERATIONS.iter().zip(&cli).zip(&api) {
        assert!(
            !by_cli.is_empty(),
            "{operation}: the CLI wrote no audit event"
        );
        assert_eq!(
            by_cli.iter().map(|(e, _)| e).collect::<Vec<_>>(),
            by_api.iter().map(|(e, _)| e).collect::<Vec<_>>(),
            "{operation}: the CLI and the API wrote different events"
        );
        for (event, by) in by_cli {
            assert_eq!(by, "cli", "{operation}: {event:?}");
        }
        for (event, by) in by_api {
            assert_eq!(by, &admin_id, "{operation}: {event:?}");
        }
    }
    // What each operation is audited as, so that both writing nothing cannot pass.
    let names: Vec<Vec<&str>> = cli
        .iter()
        .map(|events| events.iter().map(|(e, _)| e.event.as_str()).collect())
        .collect();
    assert_eq!(
        names,
        [
            vec!["client_created"],
            vec!["client_updated"],
            vec!["client_deleted"],
            vec!["sessions_revoked"],
            vec!["sessions_revoked"],
            vec!["user_disabled"],
            vec!["user_enabled"],
            vec!["roles_changed"],
            vec!["sessions_revoked"],
            vec!["email_verified"],
            vec!["mfa_reset"],
            vec!["user_deleted"],
        ]
    );
    assert_eq!(
        cli[1][0].0.detail,
        json!({ "changed": ["require_mfa"], "require_mfa": true })
    );
    // Ending one session names it (and a family its client).
    assert_eq!(
        cli[3][0].0.detail,
        json!({ "reason": "revoked", "browser_session": "the browser session" })
    );
    assert_eq!(cli[3][0].0.user.as_deref(), Some(TARGET));
    assert_eq!(
        cli[4][0].0.detail,
        json!({ "reason": "revoked", "refresh_family": "the refresh family" })
    );
    assert_eq!(cli[4][0].0.client.as_deref(), Some("the session's client"));
}
