//! The example resource server against a real Tessera: users see only their own notes, the
//! admin route needs the admin role, and tokens without the scope or audience are refused.

use serde_json::{Value, json};
use tessera::clients::ClientSpec;

use crate::testkit::PASSWORD;
use crate::testkit::{TestApp, TestEnv};

async fn start_api(app: &TestApp) -> (String, actix_web::dev::ServerHandle) {
    let api = notes_api::build(notes_api::NotesConfig {
        bind: "127.0.0.1:0".parse().expect("addr"),
        issuer: app.issuer.clone(),
        jwks_url: None,
        audience: "notes".into(),
        cache_floor: std::time::Duration::from_secs(30),
        workers: 1,
    })
    .await
    .expect("notes-api starts");
    let url = format!("http://{}", api.address);
    let handle = api.server.handle();
    tokio::spawn(api.server);
    (url, handle)
}

async fn login(app: &TestApp, client: (&str, &str), email: &str, scope: &str) -> String {
    let response = app.password_login(client, email, PASSWORD, scope).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    body["access_token"].as_str().expect("token").to_string()
}

#[tokio::test]
async fn notes_belong_to_their_owner_and_the_admin_route_needs_the_role() {
    let env = TestEnv::new();
    let app = env.spawn().await;
    let (id, secret) = app
        .create_client(ClientSpec {
            name: "notes app".into(),
            grant_types: vec!["password".into()],
            scopes: vec!["notes".into(), "profile".into()],
            audiences: vec!["notes".into()],
            ..ClientSpec::default()
        })
        .await;
    let secret = secret.expect("confidential");
    let client = (id.as_str(), secret.as_str());
    app.create_user("alice@example.com", PASSWORD, &[]).await;
    app.create_user("root@example.com", PASSWORD, &["admin"])
        .await;
    let (api, handle) = start_api(&app).await;
    let http = reqwest::Client::new();

    let alice = login(&app, client, "alice@example.com", "notes").await;
    let root = login(&app, client, "root@example.com", "notes").await;

    let created = http
        .post(format!("{api}/notes"))
        .bearer_auth(&alice)
        .json(&json!({ "title": "groceries", "body": "eggs" }))
        .send()
        .await
        .expect("post");
    assert_eq!(created.status(), 201);
    let note: Value = created.json().await.expect("json");
    let note_id = note["id"].as_u64().expect("id");

    let mine: Value = http
        .get(format!("{api}/notes"))
        .bearer_auth(&alice)
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(mine.as_array().expect("list").len(), 1);
    let theirs: Value = http
        .get(format!("{api}/notes"))
        .bearer_auth(&root)
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(theirs, json!([]), "another user's notes are not listed");
    let peek = http
        .get(format!("{api}/notes/{note_id}"))
        .bearer_auth(&root)
        .send()
        .await
        .expect("get");
    assert_eq!(peek.status(), 404, "nor readable by id");

    let bad = http
        .post(format!("{api}/notes"))
        .bearer_auth(&alice)
        .json(&json!({ "title": "" }))
        .send()
        .await
        .expect("post");
    assert_eq!(bad.status(), 400);
    let body: Value = bad.json().await.expect("json");
    assert_eq!(body["error"], "invalid_request");

    let admin_as_alice = http
        .get(format!("{api}/admin/notes"))
        .bearer_auth(&alice)
        .send()
        .await
        .expect("get");
    assert_eq!(admin_as_alice.status(), 403);
    let all: Value = http
        .get(format!("{api}/admin/notes"))
        .bearer_auth(&root)
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(all.as_array().expect("all").len(), 1);

    // A token without the notes scope, and no token at all.
    let profile_only = login(&app, client, "alice@example.com", "profile").await;
    let underscoped = http
        .get(format!("{api}/notes"))
        .bearer_auth(&profile_only)
        .send()
        .await
        .expect("get");
    assert_eq!(underscoped.status(), 403);
    assert_eq!(
        underscoped.headers()["www-authenticate"],
        r#"Bearer error="insufficient_scope", scope="notes""#
    );
    let anonymous = http.get(format!("{api}/notes")).send().await.expect("get");
    assert_eq!(anonymous.status(), 401);
    assert_eq!(
        anonymous.headers()["www-authenticate"],
        r#"Bearer error="invalid_token", error_description="no bearer token""#
    );

    // A token for another audience (the first-party client's "api") is refused.
    let (other_id, other_secret) = app.first_party_client().await;
    let foreign = login(&app, (&other_id, &other_secret), "alice@example.com", "api").await;
    let refused = http
        .get(format!("{api}/notes"))
        .bearer_auth(&foreign)
        .send()
        .await
        .expect("get");
    assert_eq!(refused.status(), 401);
    assert!(
        refused.headers()["www-authenticate"]
            .to_str()
            .expect("ascii")
            .starts_with(r#"Bearer error="invalid_token""#)
    );

    let deleted = http
        .delete(format!("{api}/notes/{note_id}"))
        .bearer_auth(&alice)
        .send()
        .await
        .expect("delete");
    assert_eq!(deleted.status(), 204);
    handle.stop(true).await;
    app.stop().await;
}
