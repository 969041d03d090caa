use serde_json::Value;

use crate::testkit::PASSWORD;
use crate::testkit::TestEnv;

async fn assert_json_error(response: reqwest::Response, status: u16, error: &str) {
    assert_eq!(response.status(), status);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: Value = response.json().await.expect("json body");
    assert_eq!(body["error"], error);
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| !d.is_empty())
    );
}

#[tokio::test]
async fn unknown_routes_get_a_json_404() {
    let env = TestEnv::new();
    let app = env.spawn().await;
    assert_json_error(app.get("/no/such/route").await, 404, "not_found").await;
    assert_json_error(app.get("/.well-known/nothing").await, 404, "not_found").await;
    app.stop().await;
}

#[tokio::test]
async fn a_wrong_method_gets_a_json_405() {
    let env = TestEnv::new();
    let app = env.spawn().await;
    let response = app
        .client
        .delete(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .expect("request");
    assert_json_error(response, 405, "method_not_allowed").await;
    app.stop().await;
}

#[tokio::test]
async fn an_oversized_body_gets_a_json_413() {
    let env = TestEnv::new();
    let app = env.spawn().await;
    let limit = app.settings.server.body_limit_bytes;
    let response = app
        .client
        .post(app.url("/healthz"))
        .header("Content-Type", "application/json")
        .body(vec![b'a'; limit + 1])
        .send()
        .await
        .expect("request");
    assert_json_error(response, 413, "request_too_large").await;
    // The server is still there afterwards.
    assert_eq!(app.get("/healthz").await.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn responses_carry_a_request_id() {
    let env = TestEnv::new();
    let app = env.spawn().await;
    let a = app.get("/healthz").await;
    let b = app.get("/healthz").await;
    let id = |r: &reqwest::Response| {
        r.headers()["x-request-id"]
            .to_str()
            .expect("ascii")
            .to_string()
    };
    assert_ne!(id(&a), id(&b));
    app.stop().await;
}

/// Item 19: a body that is not a form gets an answer naming the endpoint it was sent to.
#[tokio::test]
async fn form_endpoints_name_themselves_when_the_body_is_not_a_form_item19() {
    let env = TestEnv::new();
    let app = env.spawn().await;
    for (path, name) in [
        ("/token", "the token endpoint"),
        ("/revoke", "the revocation endpoint"),
        ("/introspect", "the introspection endpoint"),
    ] {
        let response = app
            .client
            .post(app.url(path))
            .json(&serde_json::json!({"token": "x"}))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 400, "{path}");
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["error"], "invalid_request");
        let description = body["error_description"].as_str().expect("text");
        assert!(
            description.contains(name) && description.contains("application/x-www-form-urlencoded"),
            "{path}: {description}"
        );
    }
    app.stop().await;
}

/// Item 19: /userinfo takes the access token in a POST form body (RFC 6750 §2.2, pyoidc's
/// default), but not in two places at once (§2); bearer-protected endpoints answer with RFC
/// 6750's codes only.
#[tokio::test]
async fn userinfo_takes_the_token_in_a_form_body_and_speaks_rfc6750_item19() {
    let env = TestEnv::new();
    let app = env.spawn().await;
    let user = app.create_user("ann@example.com", PASSWORD, &[]).await;
    let client = app.first_party_client().await;
    let response = app
        .password_login(
            (&client.0, &client.1),
            "ann@example.com",
            PASSWORD,
            "openid email",
        )
        .await;
    let token = response.json::<Value>().await.expect("json")["access_token"]
        .as_str()
        .expect("token")
        .to_string();
    let challenge = |r: &reqwest::Response| {
        r.headers()
            .get("www-authenticate")
            .map(|v| v.to_str().expect("ascii").to_string())
            .unwrap_or_default()
    };

    let response = app
        .client
        .post(app.url("/userinfo"))
        .form(&[("access_token", token.as_str())])
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.expect("json")["sub"],
        user.as_str()
    );

    // Header and body at once: RFC 6750 §2 allows one method per request.
    let response = app
        .client
        .post(app.url("/userinfo"))
        .bearer_auth(&token)
        .form(&[("access_token", token.as_str())])
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 400);
    assert!(challenge(&response).contains(r#"error="invalid_request""#));
    assert_json_error(response, 400, "invalid_request").await;

    // A forged token in the body is an invalid token.
    let response = app
        .client
        .post(app.url("/userinfo"))
        .form(&[("access_token", format!("{token}x"))])
        .send()
        .await
        .expect("request");
    assert!(challenge(&response).contains(r#"error="invalid_token""#));
    assert_json_error(response, 401, "invalid_token").await;

    // No token at all (none in the header, a form without one, a JSON body): a bare
    // challenge (§3.1: no error code), and one of RFC 6750's codes in the body.
    let requests = [
        app.client.get(app.url("/userinfo")),
        app.client
            .post(app.url("/userinfo"))
            .form(&[("other", "x")]),
        app.client
            .post(app.url("/userinfo"))
            .json(&serde_json::json!({"access_token": token})),
        app.client.post(app.url("/logout-everywhere")),
        app.client.get(app.url("/admin/users")),
        app.client.delete(app.url("/account")),
    ];
    for request in requests {
        let response = request.send().await.expect("request");
        let challenge = challenge(&response);
        assert!(
            challenge.starts_with("Bearer") && !challenge.contains("error="),
            "{challenge}"
        );
        assert_json_error(response, 401, "invalid_request").await;
    }
    app.stop().await;
}
