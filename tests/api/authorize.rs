//! The authorization code flow with PKCE and the login page.

use serde_json::Value;
use tessera::clients::ClientSpec;

use crate::testkit::csrf_field;
use crate::testkit::verify_independently;
use crate::testkit::{PASSWORD, REDIRECT, VERIFIER, pkce_challenge};
use crate::testkit::{TestApp, TestEnv};

async fn spa(app: &TestApp) -> String {
    app.create_client(ClientSpec {
        name: "Notes <SPA>".into(),
        public: true,
        grant_types: vec!["authorization_code".into(), "refresh_token".into()],
        redirect_uris: vec![REDIRECT.into()],
        scopes: ["openid", "email", "profile"].map(String::from).to_vec(),
        ..ClientSpec::default()
    })
    .await
    .0
}

fn request_params(client_id: &str) -> Vec<(&'static str, String)> {
    vec![
        ("response_type", "code".into()),
        ("client_id", client_id.into()),
        ("redirect_uri", REDIRECT.into()),
        ("scope", "openid email".into()),
        ("state", "state-123".into()),
        ("nonce", "nonce-456".into()),
        ("code_challenge", pkce_challenge(VERIFIER)),
        ("code_challenge_method", "S256".into()),
    ]
}

async fn get_authorize(app: &TestApp, params: &[(&str, String)]) -> reqwest::Response {
    app.client
        .get(app.url("/authorize"))
        .query(params)
        .send()
        .await
        .expect("request")
}

/// The CSRF field of the login page and the cookie set beside it.
async fn open_login_page(app: &TestApp, params: &[(&str, String)]) -> (String, String) {
    let response = get_authorize(app, params).await;
    assert_eq!(response.status(), 200);
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    let cookie = cookie.split(';').next().expect("pair").to_string();
    let html = response.text().await.expect("html");
    let csrf = csrf_field(&html);
    (csrf, cookie)
}

async fn submit_login(
    app: &TestApp,
    params: &[(&str, String)],
    csrf: &str,
    cookie: Option<&str>,
    password: &str,
) -> reqwest::Response {
    let mut form: Vec<(&str, String)> = params.to_vec();
    form.push(("csrf_token", csrf.into()));
    form.push(("email", "ann@example.com".into()));
    form.push(("password", password.into()));
    let mut request = app.client.post(app.url("/authorize")).form(&form);
    if let Some(cookie) = cookie {
        request = request.header("Cookie", cookie);
    }
    request.send().await.expect("request")
}

/// Runs the browser part of the flow and returns the code.
async fn sign_in(app: &TestApp, client_id: &str) -> String {
    let params = request_params(client_id);
    let (csrf, cookie) = open_login_page(app, &params).await;
    let response = submit_login(app, &params, &csrf, Some(&cookie), PASSWORD).await;
    assert_eq!(response.status(), 303);
    let location = response.headers()["location"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert!(location.starts_with(&format!("{REDIRECT}?")), "{location}");
    let query: Vec<(String, String)> = url_pairs(&location);
    assert!(query.contains(&("state".into(), "state-123".into())));
    query
        .into_iter()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v)
        .expect("a code")
}

fn url_pairs(location: &str) -> Vec<(String, String)> {
    let query = location.split_once('?').map(|(_, q)| q).unwrap_or_default();
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn exchange(app: &TestApp, client_id: &str, code: &str, verifier: &str) -> reqwest::Response {
    app.client
        .post(app.url("/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("client_id", client_id),
            ("code_verifier", verifier),
        ])
        .send()
        .await
        .expect("request")
}

#[tokio::test]
async fn the_code_flow_with_pkce_ends_in_verifiable_tokens() {
    let env = TestEnv::new();
    let app = env.spawn().await;
    let user = app.create_user("ann@example.com", PASSWORD, &[]).await;
    let client = spa(&app).await;

    let page = get_authorize(&app, &request_params(&client)).await;
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    assert!(
        page.headers()["content-security-policy"]
            .to_str()
            .expect("ascii")
            .contains("frame-ancestors 'none'")
    );
    let html = page.text().await.expect("html");
    assert!(
        html.contains("Notes &#60;SPA&#62;"),
        "the client name is escaped"
    );
    assert!(html.contains(r#"<label for="password">"#));

    let code = sign_in(&app, &client).await;
    let response = exchange(&app, &client, &code, VERIFIER).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["scope"], "openid email");
    let (_, access) = verify_independently(&app, body["access_token"].as_str().expect("at")).await;
    assert_eq!(access["sub"], user.as_str());
    let (_, id) = verify_independently(&app, body["id_token"].as_str().expect("id")).await;
    assert_eq!(id["nonce"], "nonce-456");
    assert_eq!(id["aud"], client.as_str());
    assert_eq!(id["email"], "ann@example.com");
    let refresh = body["refresh_token"].as_str().expect("refresh");
    let response = app
        .client
        .post(app.url("/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("client_id", client.as_str()),
        ])
        .send()
        .await
        .expect("request");
    assert_eq!(
        response.status(),
        200,
        "the public client refreshes with its id alone"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_replayed_code_is_refused_and_revokes_what_it_issued() {
    let env = TestEnv::new();
    let app = env.spawn().await;
    app.create_user("ann@example.com", PASSWORD, &[]).await;
    let client = spa(&app).await;
    let code = sign_in(&app, &client).await;
    let first: Value = exchange(&app, &client, &code, VERIFIER)
        .await
        .json()
        .await
        .expect("json");
    let replay = exchange(&app, &client, &code, VERIFIER).await;
    assert_eq!(replay.status(), 400);
    assert_eq!(
        replay.json::<Value>().await.expect("json")["error"],
        "invalid_grant"
    );

    let refresh = first["refresh_token"].as_str().expect("refresh");
    let response = app
        .client
        .post(app.url("/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("client_id", client.as_str()),
        ])
        .send()
        .await
        .expect("request");
    assert_eq!(
        response.status(),
        400,
        "the family issued from the code is revoked"
    );
    let userinfo = app
        .client
        .get(app.url("/userinfo"))
        .bearer_auth(first["access_token"].as_str().expect("at"))
        .send()
        .await
        .expect("request");
    assert_eq!(userinfo.status(), 401, "and so is the access token");
    app.stop().await;
}

#[tokio::test]
async fn a_wrong_verifier_burns_the_code_and_expiry_is_enforced() {
    let env = TestEnv::new();
    let app = env.spawn().await;
    app.create_user("ann@example.com", PASSWORD, &[]).await;
    let client = spa(&app).await;
    let code = sign_in(&app, &client).await;
    let wrong = exchange(
        &app,
        &client,
        &code,
        "another-verifier-that-is-long-enough-to-be-valid-0123",
    )
    .await;
    assert_eq!(wrong.status(), 400);
    assert_eq!(
        exchange(&app, &client, &code, VERIFIER).await.status(),
        400,
        "burnt"
    );

    let code = sign_in(&app, &client).await;
    app.clock.advance(61);
    assert_eq!(
        exchange(&app, &client, &code, VERIFIER).await.status(),
        400,
        "expired"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_untrusted_client_or_redirect_gets_a_page_never_a_redirect() {
    let env = TestEnv::new();
    let app = env.spawn().await;
    let client = spa(&app).await;
    let mut params = request_params(&client);
    params[2].1 = "https://evil.example.com/cb".into();
    let response = get_authorize(&app, &params).await;
    assert_eq!(response.status(), 400);
    assert!(!response.headers().contains_key("location"));
    assert!(
        response.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("text/html")
    );
    let mut params = request_params("no-such-client");
    params[1].1 = "no-such-client".into();
    let response = get_authorize(&app, &params).await;
    assert_eq!(response.status(), 400);
    assert!(!response.headers().contains_key("location"));
    app.stop().await;
}

#[tokio::test]
async fn other_errors_go_back_to_the_client_with_its_state() {
    let env = TestEnv::new();
    let app = env.spawn().await;
    let client = spa(&app).await;
    type Change = Box<dyn Fn(&mut Vec<(&'static str, String)>)>;
    let cases: Vec<(Change, &str)> = vec![
        (
            Box::new(|p| p.retain(|(k, _)| !k.starts_with("code_challenge"))),
            "invalid_request",
        ),
        (Box::new(|p| p[7].1 = "plain".into()), "invalid_request"),
        (
            Box::new(|p| p[0].1 = "token".into()),
            "unsupported_response_type",
        ),
        (
            Box::new(|p| p[3].1 = "openid calendar".into()),
            "invalid_scope",
        ),
    ];
    for (change, error) in cases {
        let mut params = request_params(&client);
        change(&mut params);
        let response = get_authorize(&app, &params).await;
        assert_eq!(response.status(), 303, "{params:?}");
        let location = response.headers()["location"]
            .to_str()
            .expect("ascii")
            .to_string();
        assert!(location.starts_with(REDIRECT), "{location}");
        let pairs = url_pairs(&location);
        assert!(
            pairs.contains(&("error".into(), error.into())),
            "{location}"
        );
        assert!(
            pairs.contains(&("state".into(), "state-123".into())),
            "{location}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn the_login_form_needs_its_csrf_cookie_and_the_right_password() {
    let env = TestEnv::new();
    let app = env.spawn().await;
    app.create_user("ann@example.com", PASSWORD, &[]).await;
    let client = spa(&app).await;
    let params = request_params(&client);
    let (csrf, cookie) = open_login_page(&app, &params).await;
    assert_eq!(
        submit_login(&app, &params, &csrf, None, PASSWORD)
            .await
            .status(),
        403
    );
    assert_eq!(
        submit_login(&app, &params, "forged", Some(&cookie), PASSWORD)
            .await
            .status(),
        403
    );
    let wrong = submit_login(&app, &params, &csrf, Some(&cookie), "not the password").await;
    assert_eq!(wrong.status(), 401);
    assert!(!wrong.headers().contains_key("location"));
    assert!(
        wrong
            .text()
            .await
            .expect("html")
            .contains(r#"role="alert""#)
    );
    let right = submit_login(&app, &params, &csrf, Some(&cookie), PASSWORD).await;
    assert_eq!(right.status(), 303);
    app.stop().await;
}

#[tokio::test]
async fn discovery_parses_with_a_standard_oidc_client_library() {
    use openidconnect::core::CoreProviderMetadata;
    let env = TestEnv::new();
    let app = env.spawn().await;
    let text = app
        .get("/.well-known/openid-configuration")
        .await
        .text()
        .await
        .expect("body");
    let metadata: CoreProviderMetadata =
        serde_json::from_str(&text).expect("openidconnect parses it");
    assert_eq!(metadata.issuer().as_str(), app.issuer);
    assert_eq!(
        metadata.authorization_endpoint().as_str(),
        app.url("/authorize")
    );
    assert_eq!(
        metadata.token_endpoint().map(|u| u.as_str().to_string()),
        Some(app.url("/token"))
    );
    assert_eq!(
        metadata.jwks_uri().as_str(),
        app.url("/.well-known/jwks.json")
    );
    app.stop().await;
}

async fn refresh_public(app: &TestApp, client_id: &str, refresh: &str) -> Value {
    let response = app
        .client
        .post(app.url("/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("client_id", client_id),
        ])
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    response.json().await.expect("json")
}

/// Item 3: the ID tokens of a session carry the time the person signed in on the login page,
/// not the time of the code exchange or of a refresh (OIDC Core §12.2).
#[tokio::test]
async fn refreshed_id_tokens_carry_the_sign_in_time_of_the_login_page_item3() {
    let env = TestEnv::new();
    let app = env.spawn().await;
    app.create_user("ann@example.com", PASSWORD, &[]).await;
    let client = spa(&app).await;
    let signed_in_at = app.clock.now();
    let code = sign_in(&app, &client).await;
    app.clock.advance(30);
    let response = exchange(&app, &client, &code, VERIFIER).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    let (_, id) = verify_independently(&app, body["id_token"].as_str().expect("id")).await;
    assert_eq!(id["auth_time"], signed_in_at);
    let mut refresh = body["refresh_token"].as_str().expect("refresh").to_string();
    for _ in 0..2 {
        app.clock.advance(100);
        let body = refresh_public(&app, &client, &refresh).await;
        let (_, id) = verify_independently(&app, body["id_token"].as_str().expect("id")).await;
        assert_eq!(id["auth_time"], signed_in_at, "{id}");
        let (_, access) =
            verify_independently(&app, body["access_token"].as_str().expect("at")).await;
        assert_eq!(access["auth_time"], signed_in_at, "{access}");
        refresh = body["refresh_token"].as_str().expect("refresh").to_string();
    }
    app.stop().await;
}

/// Item 10: what a code issued (its refresh family, its access token) is recorded in the same
/// transaction that consumes the code and starts the family. When recording fails, nothing is
/// issued or left behind, and the code still works; a replay then revokes what it issued.
#[tokio::test]
async fn what_a_code_issued_is_recorded_in_the_transaction_that_consumes_it_item10() {
    let env = TestEnv::new();
    let app = env.spawn().await;
    app.create_user("ann@example.com", PASSWORD, &[]).await;
    let client = spa(&app).await;
    let code = sign_in(&app, &client).await;
    crate::refresh::execute(
        &app,
        "CREATE TRIGGER fail_record BEFORE UPDATE OF access_token_jti ON authorization_codes
         WHEN NEW.access_token_jti IS NOT NULL BEGIN SELECT RAISE(ABORT, 'injected'); END;",
        "CREATE FUNCTION fail_record() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'injected'; END $$ LANGUAGE plpgsql;
         CREATE TRIGGER fail_record BEFORE UPDATE OF access_token_jti ON authorization_codes
         FOR EACH ROW WHEN (NEW.access_token_jti IS NOT NULL) EXECUTE FUNCTION fail_record();",
    )
    .await;
    let failed = exchange(&app, &client, &code, VERIFIER).await;
    assert_eq!(failed.status(), 500);
    let counts = app
        .state
        .services
        .db
        .run(|conn| tessera::refresh::store::counts(conn).map_err(tessera::db::DbError::from))
        .await
        .expect("counts");
    assert_eq!(
        counts,
        (0, 0),
        "no refresh family outlives the failed exchange"
    );
    crate::refresh::execute(
        &app,
        "DROP TRIGGER fail_record;",
        "DROP TRIGGER fail_record ON authorization_codes;",
    )
    .await;

    let issued = exchange(&app, &client, &code, VERIFIER).await;
    assert_eq!(issued.status(), 200, "the failed exchange consumed nothing");
    let issued: Value = issued.json().await.expect("json");
    assert_eq!(exchange(&app, &client, &code, VERIFIER).await.status(), 400);
    let refresh = app
        .client
        .post(app.url("/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            (
                "refresh_token",
                issued["refresh_token"].as_str().expect("refresh"),
            ),
            ("client_id", client.as_str()),
        ])
        .send()
        .await
        .expect("request");
    assert_eq!(refresh.status(), 400, "the replay revoked the family");
    let userinfo = app
        .client
        .get(app.url("/userinfo"))
        .bearer_auth(issued["access_token"].as_str().expect("at"))
        .send()
        .await
        .expect("request");
    assert_eq!(userinfo.status(), 401, "and the access token");
    app.stop().await;
}
