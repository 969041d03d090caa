//! client_credentials, userinfo, registration, the admin API and CORS.

use serde_json::{Value, json};
use tessera::clients::ClientSpec;

use crate::testkit::PASSWORD;
use crate::testkit::verify_independently;
use crate::testkit::{TestApp, TestEnv};

async fn access_token(
    app: &TestApp,
    client: &(String, String),
    email: &str,
    scope: &str,
) -> String {
    let response = app
        .password_login((&client.0, &client.1), email, PASSWORD, scope)
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    body["access_token"].as_str().expect("token").to_string()
}

#[tokio::test]
async fn client_credentials_issues_a_token_for_the_client_itself() {
    let env = TestEnv::new();
    let app = env.spawn().await;
    let (id, secret) = app
        .create_client(ClientSpec {
            name: "billing job".into(),
            grant_types: vec!["client_credentials".into()],
            scopes: vec!["invoices:read".into(), "invoices:write".into()],
            audiences: vec!["billing".into()],
            ..ClientSpec::default()
        })
        .await;
    let secret = secret.expect("confidential");
    let response = app
        .token(
            (&id, &secret),
            &[
                ("grant_type", "client_credentials"),
                ("scope", "invoices:read"),
            ],
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.expect("json");
    assert!(body.get("refresh_token").is_none() && body.get("id_token").is_none());
    assert_eq!(body["scope"], "invoices:read");
    let (header, claims) =
        verify_independently(&app, body["access_token"].as_str().expect("at")).await;
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(claims["sub"], id.as_str());
    assert_eq!(claims["client_id"], id.as_str());
    assert_eq!(claims["aud"], "billing");
    assert!(claims.get("roles").is_none());

    let response = app
        .token(
            (&id, &secret),
            &[
                ("grant_type", "client_credentials"),
                ("scope", "invoices:delete"),
            ],
        )
        .await;
    assert_eq!(response.status(), 400);
    let response = app
        .token(
            (&id, "not the secret"),
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(response.status(), 401);
    app.stop().await;
}

#[tokio::test]
async fn userinfo_releases_claims_by_scope() {
    let env = TestEnv::new();
    let app = env.spawn().await;
    let user_id = app.create_user("ann@example.com", PASSWORD, &[]).await;
    let client = app.first_party_client().await;

    let token = access_token(&app, &client, "ann@example.com", "openid email").await;
    for method in [reqwest::Method::GET, reqwest::Method::POST] {
        let response = app
            .client
            .request(method.clone(), app.url("/userinfo"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("request");
        assert_eq!(
            response.status(),
            200,
            "{method}: {:?}",
            response.text().await
        );
        let body: Value = response.json().await.expect("json");
        assert_eq!(
            body,
            json!({"sub": user_id, "email": "ann@example.com", "email_verified": true})
        );
    }
    let token = access_token(&app, &client, "ann@example.com", "openid profile").await;
    let body: Value = app
        .client
        .get(app.url("/userinfo"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(body, json!({"sub": user_id, "name": "Test User"}));

    let no_openid = access_token(&app, &client, "ann@example.com", "api").await;
    let response = app
        .client
        .get(app.url("/userinfo"))
        .bearer_auth(&no_openid)
        .send()
        .await
        .expect("request");
    assert_eq!(
        response.status(),
        401,
        "minted for \"api\" only, not for this server"
    );
    // A client naming no resource server gets tokens for this provider, openid or not.
    let (plain_id, plain_secret) = app
        .create_client(ClientSpec {
            name: "plain".into(),
            grant_types: vec!["password".into()],
            scopes: vec!["email".into(), "openid".into()],
            ..ClientSpec::default()
        })
        .await;
    let no_openid = access_token(
        &app,
        &(plain_id, plain_secret.expect("secret")),
        "ann@example.com",
        "email",
    )
    .await;
    let response = app
        .client
        .get(app.url("/userinfo"))
        .bearer_auth(&no_openid)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 403);
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert!(
        challenge.contains(r#"error="insufficient_scope""#),
        "{challenge}"
    );

    let response = app.get("/userinfo").await;
    assert_eq!(response.status(), 401);
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert!(
        challenge.starts_with("Bearer") && !challenge.contains("error="),
        "{challenge}"
    );

    for bad in ["garbage", "a.b.c", &format!("{token}x")] {
        let response = app
            .client
            .get(app.url("/userinfo"))
            .bearer_auth(bad)
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 401, "{bad}");
        let challenge = response.headers()["www-authenticate"]
            .to_str()
            .expect("ascii")
            .to_string();
        assert!(
            challenge.contains(r#"error="invalid_token""#),
            "{challenge}"
        );
    }
    app.clock.advance(901);
    let response = app
        .client
        .get(app.url("/userinfo"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 401, "expired");
    app.stop().await;
}

#[tokio::test]
async fn self_registration_validates_and_creates_an_account() {
    let env = TestEnv::new();
    let app = env.spawn().await;
    let register = |body: Value| {
        let app = &app;
        async move {
            app.client
                .post(app.url("/users"))
                .json(&body)
                .send()
                .await
                .expect("request")
        }
    };
    let response =
        register(json!({"email": " Bea@Example.COM ", "password": PASSWORD, "name": "Bea"})).await;
    assert_eq!(response.status(), 201);
    let user: Value = response.json().await.expect("json");
    assert_eq!(user["email"], "Bea@example.com");
    assert_eq!(user["name"], "Bea");
    assert_eq!(user["email_verified"], false);
    let text = user.to_string();
    assert!(
        !text.contains("argon2") && !text.contains(PASSWORD) && !text.contains("stamp"),
        "{text}"
    );
    let user_id = user["id"].as_str().expect("id").to_string();
    assert_eq!(app.audit_events(&user_id).await, ["user_registered"]);

    let response =
        register(json!({"email": "bea@example.com", "password": "another long one"})).await;
    assert_eq!(response.status(), 409);
    for (body, field) in [
        (
            json!({"email": "cy@example.com", "password": "short"}),
            "password",
        ),
        (
            json!({"email": "cy@example.com", "password": "password123"}),
            "password",
        ),
        (
            json!({"email": "cy@example.com", "password": "CY@example.com"}),
            "password",
        ),
        (
            json!({"email": "not-an-email", "password": PASSWORD}),
            "email",
        ),
    ] {
        let response = register(body.clone()).await;
        assert_eq!(response.status(), 422, "{body}");
        let error: Value = response.json().await.expect("json");
        assert_eq!(error["field"], field, "{body}");
        assert_eq!(error["error"], "invalid_request");
    }
    let response = register(json!({"email": "cy@example.com"})).await;
    assert_eq!(response.status(), 400);
    let response = app
        .client
        .post(app.url("/users"))
        .body("email=x")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 415);
    assert_eq!(
        response.json::<Value>().await.expect("json")["error"],
        "invalid_request"
    );

    let client = app.first_party_client().await;
    let response = app
        .password_login((&client.0, &client.1), "bea@example.com", PASSWORD, "api")
        .await;
    assert_eq!(response.status(), 200, "the new account signs in");
    app.stop().await;

    let mut settings = env.settings();
    settings.accounts.self_registration = false;
    let closed = env.spawn_with(settings).await;
    let response = closed
        .client
        .post(closed.url("/users"))
        .json(&json!({"email": "dee@example.com", "password": PASSWORD}))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 403);
    closed.stop().await;
}

#[tokio::test]
async fn the_admin_api_needs_the_admin_scope_and_role() {
    let env = TestEnv::new();
    let app = env.spawn().await;
    app.create_user("root@example.com", PASSWORD, &["admin"])
        .await;
    let ann = app.create_user("ann@example.com", PASSWORD, &[]).await;
    let client = app.first_party_client().await;
    let admin = access_token(&app, &client, "root@example.com", "admin").await;
    let call = |method: reqwest::Method, path: String, token: String, body: Option<Value>| {
        let app = &app;
        async move {
            let mut request = app
                .client
                .request(method, app.url(&path))
                .bearer_auth(token);
            if let Some(body) = body {
                request = request.json(&body);
            }
            request.send().await.expect("request")
        }
    };

    let response = call(
        reqwest::Method::GET,
        "/admin/users".into(),
        admin.clone(),
        None,
    )
    .await;
    assert_eq!(response.status(), 200);
    let users: Value = response.json().await.expect("json");
    assert_eq!(users["users"].as_array().expect("list").len(), 2);
    assert_eq!(users["next_cursor"], Value::Null);
    assert!(!users.to_string().contains("argon2"));

    let response = call(
        reqwest::Method::POST,
        format!("/admin/users/{ann}/disable"),
        admin.clone(),
        None,
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.expect("json")["active"],
        false
    );
    let login = app
        .password_login((&client.0, &client.1), "ann@example.com", PASSWORD, "api")
        .await;
    assert_eq!(login.status(), 400, "disabled");
    let response = call(
        reqwest::Method::POST,
        format!("/admin/users/{ann}/enable"),
        admin.clone(),
        None,
    )
    .await;
    assert_eq!(response.status(), 200);
    let response = call(
        reqwest::Method::PUT,
        format!("/admin/users/{ann}/roles"),
        admin.clone(),
        Some(json!({"roles": ["editor"]})),
    )
    .await;
    assert_eq!(
        response.json::<Value>().await.expect("json")["roles"],
        json!(["editor"])
    );
    let response = call(
        reqwest::Method::POST,
        "/admin/users/nobody/disable".into(),
        admin.clone(),
        None,
    )
    .await;
    assert_eq!(response.status(), 404);

    let response = call(
        reqwest::Method::POST,
        "/admin/clients".into(),
        admin.clone(),
        Some(json!({"name": "reports", "grant_types": ["client_credentials"], "scopes": ["reports"]})),
    )
    .await;
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.expect("json");
    let new_id = created["client_id"].as_str().expect("id").to_string();
    let new_secret = created["client_secret"]
        .as_str()
        .expect("secret shown once")
        .to_string();
    let listed = call(
        reqwest::Method::GET,
        "/admin/clients".into(),
        admin.clone(),
        None,
    )
    .await
    .text()
    .await
    .expect("body");
    assert!(
        listed.contains(&new_id) && !listed.contains(&new_secret) && !listed.contains("secret")
    );
    assert_eq!(
        app.token(
            (&new_id, &new_secret),
            &[("grant_type", "client_credentials")]
        )
        .await
        .status(),
        200
    );
    let response = call(
        reqwest::Method::DELETE,
        format!("/admin/clients/{new_id}"),
        admin.clone(),
        None,
    )
    .await;
    assert_eq!(response.status(), 204);
    assert_eq!(
        app.token(
            (&new_id, &new_secret),
            &[("grant_type", "client_credentials")]
        )
        .await
        .status(),
        401
    );
    let response = call(
        reqwest::Method::POST,
        "/admin/clients".into(),
        admin.clone(),
        Some(json!({"name": "x", "grant_types": ["implicit"]})),
    )
    .await;
    assert_eq!(response.status(), 422);

    // A token without the admin scope, one minted for another resource server, or one from a
    // user who lost the role since, is refused.
    let plain = access_token(&app, &client, "root@example.com", "openid").await;
    let response = call(reqwest::Method::GET, "/admin/users".into(), plain, None).await;
    assert_eq!(
        response.status(),
        401,
        "aud is [\"api\", issuer], not this provider alone"
    );
    let elsewhere = access_token(&app, &client, "root@example.com", "api").await;
    let response = call(reqwest::Method::GET, "/admin/users".into(), elsewhere, None).await;
    assert_eq!(response.status(), 401, "aud is only \"api\"");
    let out = env.cli(&["user", "roles", "--email", "root@example.com"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let response = call(reqwest::Method::GET, "/admin/users".into(), admin, None).await;
    assert_eq!(response.status(), 403);
    assert_eq!(
        response.json::<Value>().await.expect("json")["error"],
        "insufficient_scope"
    );
    let response = call(
        reqwest::Method::GET,
        "/admin/users".into(),
        String::new(),
        None,
    )
    .await;
    assert_eq!(response.status(), 401);
    app.stop().await;
}

#[tokio::test]
async fn cors_allows_only_configured_origins_without_credentials() {
    let env = TestEnv::new();
    let mut settings = env.settings();
    settings.server.cors_allowed_origins = vec!["https://app.example.com".into()];
    let app = env.spawn_with(settings).await;
    let preflight = |origin: &'static str| {
        let app = &app;
        async move {
            app.client
                .request(reqwest::Method::OPTIONS, app.url("/token"))
                .header("Origin", origin)
                .header("Access-Control-Request-Method", "POST")
                .send()
                .await
                .expect("request")
        }
    };
    let allowed = preflight("https://app.example.com").await;
    assert!(allowed.status().is_success(), "{}", allowed.status());
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    assert!(
        !allowed
            .headers()
            .contains_key("access-control-allow-credentials")
    );
    let refused = preflight("https://evil.example.com").await;
    assert!(
        !refused
            .headers()
            .contains_key("access-control-allow-origin")
    );
    app.stop().await;
}

/// Issue 14, item 9: GET /admin/users answers a page at a time (`limit`, default 50, at most
/// 200) with an opaque `next_cursor` for the next page; walking the pages lists every user
/// once, in creation order, even while users are added.
#[tokio::test]
async fn the_admin_user_list_is_paginated_with_a_cursor() {
    let env = TestEnv::new();
    let app = env.spawn().await;
    app.create_user("root@example.com", PASSWORD, &["admin"])
        .await;
    for i in 0..6 {
        app.create_user(&format!("user{i}@example.com"), PASSWORD, &[])
            .await;
    }
    let client = app.first_party_client().await;
    let admin = access_token(&app, &client, "root@example.com", "admin").await;
    let page = |query: String| {
        let app = &app;
        let admin = &admin;
        async move {
            app.client
                .get(app.url(&format!("/admin/users{query}")))
                .bearer_auth(admin)
                .send()
                .await
                .expect("request")
        }
    };

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut sizes = Vec::new();
    loop {
        let query = match &cursor {
            Some(c) => format!("?limit=3&cursor={c}"),
            None => "?limit=3".into(),
        };
        let response = page(query).await;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.expect("json");
        let users = body["users"].as_array().expect("users");
        sizes.push(users.len());
        seen.extend(
            users
                .iter()
                .map(|u| u["email"].as_str().expect("email").to_string()),
        );
        if sizes.len() == 1 {
            // Added while listing: it comes last, on a later page.
            app.create_user("late@example.com", PASSWORD, &[]).await;
        }
        match body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    assert_eq!(sizes, [3, 3, 2]);
    let mut expected = vec!["root@example.com".to_string()];
    expected.extend((0..6).map(|i| format!("user{i}@example.com")));
    expected.push("late@example.com".into());
    assert_eq!(seen, expected, "every user once, oldest first");

    // Without a limit: the default page holds them all here.
    let body: Value = page(String::new()).await.json().await.expect("json");
    assert_eq!(body["users"].as_array().expect("users").len(), 8);
    assert_eq!(body["next_cursor"], Value::Null);
    // Limits out of range and cursors not made here are refused clearly.
    for query in [
        "?limit=0",
        "?limit=201",
        "?limit=x",
        "?cursor=not-a-cursor",
        "?cursor=",
    ] {
        let response = page(query.into()).await;
        assert_eq!(response.status(), 400, "{query}");
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["error"], "invalid_request", "{query}");
    }
    let response = page("?limit=200".into()).await;
    assert_eq!(response.status(), 200);
    app.stop().await;
}

/// Item 8: /admin takes only a token meant for it: the `admin` scope and this provider as its
/// only audience. An admin asking for `openid admin api` (a token an API would also accept) is
/// refused at the token endpoint, and a token of that shape — as this server minted it
/// before — no longer works at /admin.
#[tokio::test]
async fn the_admin_api_refuses_tokens_that_other_apis_receive_item8() {
    let env = TestEnv::new();
    let app = env.spawn().await;
    app.create_user("root@example.com", PASSWORD, &["admin"])
        .await;
    let client = app.first_party_client().await;
    let admin_users = |token: String| {
        let app = &app;
        async move {
            let response = app
                .client
                .get(app.url("/admin/users"))
                .bearer_auth(token)
                .send()
                .await
                .expect("request");
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.expect("json"))
        }
    };

    let mixed = app
        .password_login(
            (&client.0, &client.1),
            "root@example.com",
            PASSWORD,
            "openid admin api",
        )
        .await;
    let status = mixed.status().as_u16();
    let body: Value = mixed.json().await.expect("json");
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_scope")),
        "{body}"
    );

    let admin = access_token(&app, &client, "root@example.com", "openid admin").await;
    let (_, claims) = verify_independently(&app, &admin).await;
    assert_eq!(claims["aud"], app.issuer.as_str(), "this provider alone");
    assert_eq!(admin_users(admin.clone()).await.0, 200);

    let mut old_shape = claims.clone();
    old_shape["aud"] = json!(["api", app.issuer.as_str()]);
    old_shape["scope"] = json!("openid admin api");
    let old_shape = tessera::tokens::sign(
        app.state.services.keys.current().active(),
        "at+jwt",
        &old_shape,
    )
    .expect("signed");
    let (status, error) = admin_users(old_shape).await;
    assert_eq!(
        (status, error["error"].as_str()),
        (401, Some("invalid_token"))
    );

    let for_the_api = access_token(&app, &client, "root@example.com", "openid api").await;
    let (status, error) = admin_users(for_the_api).await;
    assert_eq!(
        (status, error["error"].as_str()),
        (401, Some("invalid_token"))
    );
    app.stop().await;
}

/// `require_mfa` through the admin API: false unless asked for at registration, shown by the
/// list and by GET /admin/clients/{id}, changed in place by PATCH (audited, with the fields
/// that changed), stored as the domain's `Client` reads it. A value of the wrong type, or a
/// field that cannot change in place, is a JSON 400 that changes nothing; an unknown client is
/// a 404.
#[tokio::test]
async fn a_client_requires_mfa_as_the_admin_api_sets_shows_and_changes_it() {
    let env = TestEnv::new();
    let app = env.spawn().await;
    app.create_user("root@example.com", PASSWORD, &["admin"])
        .await;
    let client = app.first_party_client().await;
    let admin = access_token(&app, &client, "root@example.com", "admin").await;
    let call = |method: reqwest::Method, path: String, body: Option<Value>| {
        let (app, admin) = (&app, &admin);
        async move {
            let mut request = app
                .client
                .request(method, app.url(&path))
                .bearer_auth(admin);
            if let Some(body) = body {
                request = request.json(&body);
            }
            let response = request.send().await.expect("request");
            let status = response.status().as_u16();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let stored = |id: String| {
        let app = &app;
        async move {
            app.query(move |conn| tessera::db::repo::clients::find(conn, &id))
                .await
                .expect("stored")
                .require_mfa
        }
    };
    let spec = |require_mfa: Option<Value>| {
        let mut spec = json!({"name": "portal", "grant_types": ["client_credentials"]});
        if let Some(value) = require_mfa {
            spec["require_mfa"] = value;
        }
        spec
    };

    let (status, plain) = call(
        reqwest::Method::POST,
        "/admin/clients".into(),
        Some(spec(None)),
    )
    .await;
    assert_eq!(status, 201, "{plain}");
    assert_eq!(plain["require_mfa"], false);
    let plain_id = plain["client_id"].as_str().expect("id").to_string();
    assert!(!stored(plain_id.clone()).await);
    let (status, strict) = call(
        reqwest::Method::POST,
        "/admin/clients".into(),
        Some(spec(Some(json!(true)))),
    )
    .await;
    assert_eq!(status, 201, "{strict}");
    assert_eq!(strict["require_mfa"], true);
    let id = strict["client_id"].as_str().expect("id").to_string();
    assert!(stored(id.clone()).await);
    let (status, shown) = call(reqwest::Method::GET, format!("/admin/clients/{id}"), None).await;
    assert_eq!(status, 200);
    assert_eq!(shown["require_mfa"], true);
    assert_eq!(shown["name"], "portal");
    assert!(shown.get("client_secret").is_none(), "{shown}");
    let (_, listed) = call(reqwest::Method::GET, "/admin/clients".into(), None).await;
    let flags: Vec<(String, bool)> = listed
        .as_array()
        .expect("list")
        .iter()
        .map(|c| {
            let id = c["client_id"].as_str().expect("id").to_string();
            (id, c["require_mfa"].as_bool().expect("a boolean"))
        })
        .collect();
    assert!(flags.contains(&(id.clone(), true)) && flags.contains(&(plain_id.clone(), false)));

    // Wrong types and fields that do not change in place: 400, RFC-shaped, nothing written.
    for (method, path, body) in [
        (
            reqwest::Method::POST,
            "/admin/clients".to_string(),
            spec(Some(json!("yes"))),
        ),
        (
            reqwest::Method::POST,
            "/admin/clients".to_string(),
            spec(Some(json!(1))),
        ),
        (
            reqwest::Method::PATCH,
            format!("/admin/clients/{id}"),
            json!({"require_mfa": "no"}),
        ),
        (
            reqwest::Method::PATCH,
            format!("/admin/clients/{id}"),
            json!({"require_mfa": null}),
        ),
        (
            reqwest::Method::PATCH,
            format!("/admin/clients/{id}"),
            json!({"scopes": ["x"]}),
        ),
        (
            reqwest::Method::PATCH,
            format!("/admin/clients/{id}"),
            json!({"public": true}),
        ),
        (
            reqwest::Method::PATCH,
            format!("/admin/clients/{id}"),
            json!([true]),
        ),
    ] {
        let (status, error) = call(method.clone(), path.clone(), Some(body.clone())).await;
        assert_eq!(status, 400, "{method} {path} {body}: {error}");
        assert_eq!(error["error"], "invalid_request", "{body}: {error}");
        assert!(error["error_description"].is_string(), "{error}");
    }
    let (_, listed) = call(reqwest::Method::GET, "/admin/clients".into(), None).await;
    assert_eq!(
        listed.as_array().expect("list").len(),
        3,
        "no client was added"
    );
    assert!(stored(id.clone()).await, "unchanged");
    // A change that breaks the registration's rules is refused as one would be at creation.
    let (status, _) = call(
        reqwest::Method::PATCH,
        format!("/admin/clients/{id}"),
        Some(json!({"require_mfa": false, "name": "  "})),
    )
    .await;
    assert_eq!(status, 422);
    assert!(
        stored(id.clone()).await,
        "nothing of a refused change is written"
    );

    let (status, updated) = call(
        reqwest::Method::PATCH,
        format!("/admin/clients/{id}"),
        Some(json!({"require_mfa": false})),
    )
    .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["require_mfa"], false);
    assert_eq!(updated["name"], "portal", "what the patch leaves out stays");
    assert!(!stored(id.clone()).await);
    let (_, shown) = call(reqwest::Method::GET, format!("/admin/clients/{id}"), None).await;
    assert_eq!(shown["require_mfa"], false);
    let (status, _) = call(
        reqwest::Method::PATCH,
        format!("/admin/clients/{plain_id}"),
        Some(json!({"require_mfa": true})),
    )
    .await;
    assert_eq!(status, 200);
    assert!(stored(plain_id.clone()).await);

    let audited = {
        let id = id.clone();
        app.query(move |conn| {
            use diesel::prelude::*;
            use tessera::db::schema::audit_events;
            audit_events::table
                .filter(audit_events::client_id.eq(id))
                .order(audit_events::id.asc())
                .select((audit_events::event, audit_events::detail))
                .load::<(String, Option<String>)>(conn)
        })
        .await
    };
    let audited: Vec<(String, Value)> = audited
        .into_iter()
        .map(|(event, detail)| {
            (
                event,
                serde_json::from_str(&detail.expect("detail")).expect("JSON"),
            )
        })
        .collect();
    assert_eq!(audited.len(), 2, "{audited:?}");
    assert_eq!(audited[0].0, "client_created");
    assert_eq!(audited[0].1["require_mfa"], true);
    assert_eq!(audited[1].0, "client_updated");
    assert_eq!(audited[1].1["changed"], json!(["require_mfa"]));
    assert_eq!(audited[1].1["require_mfa"], false);

    for method in [reqwest::Method::GET, reqwest::Method::PATCH] {
        let body = (method == reqwest::Method::PATCH).then(|| json!({"require_mfa": true}));
        let (status, error) = call(method, "/admin/clients/nothing-here".into(), body).await;
        assert_eq!(status, 404);
        assert_eq!(error["error"], "not_found");
    }
    // Only an administrator reads or changes it.
    let plain_token = access_token(&app, &client, "root@example.com", "openid").await;
    let response = app
        .client
        .patch(app.url(&format!("/admin/clients/{id}")))
        .bearer_auth(plain_token)
        .json(&json!({"require_mfa": true}))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 401);
    assert!(!stored(id).await);
    app.stop().await;
}
