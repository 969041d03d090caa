use serde_json::Value;
use tessera::clients::ClientSpec;

use crate::testkit::{PASSWORD, TestApp, TestEnv, verify_independently};

async fn setup() -> (TestEnv, TestApp, String, (String, String)) {
    let env = TestEnv::new();
    let app = env.spawn().await;
    let user_id = app
        .create_user("ann@example.com", PASSWORD, &["reader"])
        .await;
    let client = app.first_party_client().await;
    (env, app, user_id, client)
}

fn pair(client: &(String, String)) -> (&str, &str) {
    (&client.0, &client.1)
}

#[tokio::test]
async fn the_password_grant_issues_tokens_that_verify_independently() {
    let (_env, app, user_id, client) = setup().await;
    let response = app
        .password_login(
            pair(&client),
            "Ann@Example.com",
            PASSWORD,
            "openid email profile api",
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(response.headers()["pragma"], "no-cache");
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert_eq!(body["scope"], "openid email profile api");

    let (header, claims) =
        verify_independently(&app, body["access_token"].as_str().expect("at")).await;
    // And with a JWT library, as a resource server would.
    let jwks: jsonwebtoken::jwk::JwkSet = app
        .get("/.well-known/jwks.json")
        .await
        .json()
        .await
        .expect("jwks");
    let kid = header["kid"].as_str().expect("kid");
    let key = jsonwebtoken::DecodingKey::from_jwk(jwks.find(kid).expect("published")).expect("key");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_issuer(&[&app.issuer]);
    validation.set_audience(&["api"]);
    jsonwebtoken::decode::<Value>(
        body["access_token"].as_str().expect("at"),
        &key,
        &validation,
    )
    .expect("a resource server for \"api\" accepts it");
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(claims["iss"], app.issuer.as_str());
    assert_eq!(claims["sub"], user_id.as_str());
    assert_eq!(
        claims["aud"],
        serde_json::json!(["api", app.issuer]),
        "the client's resource server, and this provider because of openid"
    );
    assert_eq!(claims["client_id"], client.0.as_str());
    assert_eq!(claims["scope"], "openid email profile api");
    assert_eq!(claims["roles"], serde_json::json!(["reader"]));
    assert_eq!(
        claims["exp"].as_i64().expect("exp") - claims["iat"].as_i64().expect("iat"),
        900
    );
    assert!(claims["jti"].as_str().is_some_and(|j| j.len() >= 16));

    let (header, id) =
        verify_independently(&app, body["id_token"].as_str().expect("id token")).await;
    assert_eq!(header["typ"], "JWT");
    assert_eq!(id["aud"], client.0.as_str());
    assert_eq!(id["sub"], user_id.as_str());
    assert_eq!(id["email"], "ann@example.com");
    assert_eq!(id["email_verified"], true);
    assert_eq!(id["name"], "Test User");
    assert!(id["auth_time"].is_i64());

    let refresh = body["refresh_token"].as_str().expect("refresh token");
    assert_eq!(refresh.len(), 43, "256 bits, base64url");
    let hash = tessera::crypto::sha256_hex(refresh.as_bytes());
    let stored = app
        .state
        .services
        .db
        .run(move |conn| {
            tessera::refresh::store::find_token(conn, &hash).map_err(tessera::db::DbError::from)
        })
        .await
        .expect("query");
    assert!(stored.is_some(), "only the hash is stored, and it is");
    assert_eq!(app.audit_events(&user_id).await, ["login_success"]);
    app.stop().await;
}

#[tokio::test]
async fn scope_decides_the_id_token_and_its_claims() {
    let (_env, app, _user, client) = setup().await;
    let body: Value = app
        .password_login(pair(&client), "ann@example.com", PASSWORD, "api")
        .await
        .json()
        .await
        .expect("json");
    assert!(body.get("id_token").is_none(), "no openid, no ID token");
    let body: Value = app
        .password_login(pair(&client), "ann@example.com", PASSWORD, "openid")
        .await
        .json()
        .await
        .expect("json");
    let (_, id) = verify_independently(&app, body["id_token"].as_str().expect("id token")).await;
    assert!(
        id.get("email").is_none() && id.get("name").is_none(),
        "{id}"
    );
    // No scope asked: everything the client may have, except what needs a role.
    let response = app
        .token(
            pair(&client),
            &[
                ("grant_type", "password"),
                ("username", "ann@example.com"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(
        response.status(),
        200,
        "no scope asked: the client's default"
    );
    let body: Value = response.json().await.expect("json");
    assert_eq!(
        body["scope"], "openid email profile api",
        "admin is in the client's default but Ann lacks the role, so it is left out"
    );
    app.stop().await;
}

#[tokio::test]
async fn client_secret_post_and_public_clients_work() {
    let (_env, app, _user, client) = setup().await;
    let response = app
        .client
        .post(app.url("/token"))
        .form(&[
            ("grant_type", "password"),
            ("username", "ann@example.com"),
            ("password", PASSWORD),
            ("scope", "api"),
            ("client_id", &client.0),
            ("client_secret", &client.1),
        ])
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);

    let (public_id, secret) = app
        .create_client(ClientSpec {
            name: "mobile".into(),
            public: true,
            grant_types: vec!["password".into()],
            scopes: vec!["api".into()],
            ..ClientSpec::default()
        })
        .await;
    assert!(secret.is_none());
    let form = |extra: Option<(&'static str, &'static str)>| {
        let mut form = vec![
            ("grant_type", "password".to_string()),
            ("username", "ann@example.com".into()),
            ("password", PASSWORD.into()),
            ("client_id", public_id.clone()),
        ];
        if let Some((k, v)) = extra {
            form.push((k, v.to_string()));
        }
        form
    };
    let response = app
        .client
        .post(app.url("/token"))
        .form(&form(None))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert!(
        body.get("refresh_token").is_none(),
        "this client may not refresh"
    );
    let response = app
        .client
        .post(app.url("/token"))
        .form(&form(Some(("client_secret", "guess"))))
        .send()
        .await
        .expect("request");
    assert_eq!(
        response.status(),
        401,
        "a public client has no secret to present"
    );
    app.stop().await;
}

async fn error_of(response: reqwest::Response) -> (u16, String, reqwest::header::HeaderMap) {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body: Value = response.json().await.expect("json error body");
    assert!(body["error_description"].is_string(), "{body}");
    (
        status,
        body["error"].as_str().expect("error").to_string(),
        headers,
    )
}

#[tokio::test]
async fn unknown_users_and_wrong_passwords_get_identical_answers() {
    let (_env, app, _user, client) = setup().await;
    let wrong = app
        .password_login(pair(&client), "ann@example.com", "wrong password!", "api")
        .await;
    let unknown = app
        .password_login(pair(&client), "nobody@example.com", PASSWORD, "api")
        .await;
    assert_eq!(wrong.status(), 400);
    assert_eq!(wrong.status(), unknown.status());
    let strip = |h: &reqwest::header::HeaderMap| {
        let mut h = h.clone();
        h.remove("date");
        h.remove("x-request-id");
        format!("{h:?}")
    };
    assert_eq!(strip(wrong.headers()), strip(unknown.headers()));
    let wrong = wrong.text().await.expect("body");
    assert_eq!(wrong, unknown.text().await.expect("body"));
    assert!(wrong.contains("invalid_grant"), "{wrong}");
    app.stop().await;
}

#[tokio::test]
async fn token_endpoint_errors_follow_rfc6749() {
    let (_env, app, _user, client) = setup().await;
    let login = [
        ("grant_type", "password"),
        ("username", "ann@example.com"),
        ("password", PASSWORD),
    ];

    let (status, error, headers) =
        error_of(app.token((&client.0, "wrong secret"), &login).await).await;
    assert_eq!((status, error.as_str()), (401, "invalid_client"));
    assert!(
        headers["www-authenticate"]
            .to_str()
            .expect("ascii")
            .starts_with("Basic")
    );
    let (status, error, _) = error_of(app.token(("no-such-client", "x"), &login).await).await;
    assert_eq!((status, error.as_str()), (401, "invalid_client"));

    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (
            vec![("username", "ann@example.com"), ("password", PASSWORD)],
            "invalid_request",
        ),
        (vec![("grant_type", "implicit")], "unsupported_grant_type"),
        (
            vec![("grant_type", "password"), ("password", PASSWORD)],
            "invalid_request",
        ),
        (
            vec![
                ("grant_type", "password"),
                ("username", "ann@example.com"),
                ("password", PASSWORD),
                ("scope", "api calendar"),
            ],
            "invalid_scope",
        ),
        (
            vec![
                ("grant_type", "password"),
                ("username", "ann@example.com"),
                ("password", PASSWORD),
                ("scope", "admin"),
            ],
            "invalid_scope",
        ),
        (
            vec![("grant_type", "client_credentials")],
            "unauthorized_client",
        ),
    ];
    for (form, expected) in cases {
        let (status, error, _) = error_of(app.token(pair(&client), &form).await).await;
        assert_eq!((status, error.as_str()), (400, expected), "{form:?}");
    }

    // Repeated parameters (RFC 6749 §3.2) and two authentication methods at once.
    let response = app
        .client
        .post(app.url("/token"))
        .basic_auth(&client.0, Some(&client.1))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("grant_type=password&username=ann%40example.com&password=a&password=b")
        .send()
        .await
        .expect("request");
    assert_eq!(error_of(response).await.1, "invalid_request");
    let response = app
        .client
        .post(app.url("/token"))
        .basic_auth(&client.0, Some(&client.1))
        .form(&[
            ("grant_type", "password"),
            ("client_secret", client.1.as_str()),
        ])
        .send()
        .await
        .expect("request");
    assert_eq!(error_of(response).await.1, "invalid_request");

    // A JSON body is not a token request.
    let response = app
        .client
        .post(app.url("/token"))
        .basic_auth(&client.0, Some(&client.1))
        .json(&serde_json::json!({"grant_type": "password"}))
        .send()
        .await
        .expect("request");
    let (status, error, _) = error_of(response).await;
    assert_eq!((status, error.as_str()), (400, "invalid_request"));

    // A client without the password grant.
    let (other, secret) = app
        .create_client(ClientSpec {
            name: "machine".into(),
            grant_types: vec!["client_credentials".into()],
            ..ClientSpec::default()
        })
        .await;
    let (status, error, _) =
        error_of(app.token((&other, &secret.expect("secret")), &login).await).await;
    assert_eq!((status, error.as_str()), (400, "unauthorized_client"));
    app.stop().await;
}

#[tokio::test]
async fn a_disabled_user_cannot_log_in() {
    let (env, app, user_id, client) = setup().await;
    let out = env.cli(&["user", "disable", "--email", "ann@example.com"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let response = app
        .password_login(pair(&client), "ann@example.com", PASSWORD, "api")
        .await;
    let (status, error, _) = error_of(response).await;
    assert_eq!((status, error.as_str()), (400, "invalid_grant"));
    assert_eq!(
        app.audit_events(&user_id).await,
        ["user_disabled", "login_failure"]
    );
    let out = env.cli(&["user", "enable", "--email", "ann@example.com"], None);
    assert!(out.status.success());
    let response = app
        .password_login(pair(&client), "ann@example.com", PASSWORD, "api")
        .await;
    assert_eq!(response.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn a_hash_made_under_old_parameters_is_replaced_at_login() {
    let env = TestEnv::new();
    let old = env.spawn().await;
    let user_id = old.create_user("ann@example.com", PASSWORD, &[]).await;
    let client = old.first_party_client().await;
    old.stop().await;

    let mut settings = env.settings();
    settings.passwords.argon2_memory_kib = 2048;
    settings.passwords.argon2_iterations = 2;
    let app = env.spawn_with(settings).await;
    let stored_hash = |app: &TestApp| {
        let id = user_id.clone();
        let db = app.state.services.db.clone();
        async move {
            db.run(move |conn| {
                tessera::db::repo::users::find_by_id(conn, &id).map_err(tessera::db::DbError::from)
            })
            .await
            .expect("query")
            .expect("user")
            .password_hash
            .expect("hash")
        }
    };
    assert!(stored_hash(&app).await.contains("m=1024,t=1,p=1"));
    let response = app
        .password_login(pair(&client), "ann@example.com", PASSWORD, "api")
        .await;
    assert_eq!(response.status(), 200);
    let rehashed = stored_hash(&app).await;
    assert!(rehashed.contains("m=2048,t=2,p=1"), "{rehashed}");
    let response = app
        .password_login(pair(&client), "ann@example.com", PASSWORD, "api")
        .await;
    assert_eq!(response.status(), 200, "the new hash verifies");
    app.stop().await;
}
