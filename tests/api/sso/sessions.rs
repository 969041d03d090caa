//! The browser session's life: its cookie (attributes, "Keep me signed in", fixation), who
//! holds it (the same person again, someone else), what ends it (disabling the account, a
//! password reset or change, logout everywhere, idle and absolute expiry), the person's and
//! the operator's session lists, and the purge.

use diesel::prelude::*;
use serde_json::{Value, json};
use tessera::clients::ClientSpec;
use tessera::db::schema::{browser_sessions, session_clients};

use super::{EMAIL, World};
use crate::testkit::app::{TestApp, TestEnv, stdout_json};
use crate::testkit::fixtures::{PASSWORD, claims_of, mail_through};
use crate::testkit::http::HttpBrowser;
use crate::testkit::smtp::SmtpSink;
use crate::testkit::{DEADLINE, eventually};

const BOB: &str = "bob@example.com";
const ADMIN: &str = "root@example.com";
const NEW_PASSWORD: &str = "a much newer passphrase";
/// 43 base64url characters: shaped like a secret the server makes.
const PLANTED: &str = "AttackerChosenSessionValue0123456789abcdefg";

/// The whole Set-Cookie header that sets `name`, if the response has one.
fn set_cookie(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| {
            v.split(';')
                .next()
                .and_then(|pair| pair.split_once('='))
                .is_some_and(|(n, _)| n == name)
        })
        .map(String::from)
}

fn value_of(set_cookie: &str) -> String {
    let pair = set_cookie.split(';').next().expect("name=value");
    pair.split_once('=').expect("name=value").1.to_string()
}

fn attributes(set_cookie: &str) -> Vec<String> {
    set_cookie
        .split(';')
        .skip(1)
        .map(|a| a.trim().to_string())
        .collect()
}

/// Whether `/authorize` in `browser` shows the login page, as opposed to a code straight away.
async fn shows_login_page(world: &World, browser: &mut HttpBrowser, client: &str) -> bool {
    let response = browser.get(&world.authorize_url(client, &[])).await;
    match response.status().as_u16() {
        200 => {
            let html = response.text().await.expect("html");
            assert!(html.contains("name=\"password\""), "{html}");
            true
        }
        303 => {
            World::code_of(&response);
            false
        }
        other => panic!("/authorize answered {other}"),
    }
}

/// Opens `/authorize` (with `extra`) and signs in as `email` on the login page.
async fn sign_in_as(
    world: &World,
    browser: &mut HttpBrowser,
    client: &str,
    extra: &[(&str, &str)],
    email: &str,
    password: &str,
) -> reqwest::Response {
    let page = browser.get(&world.authorize_url(client, extra)).await;
    assert_eq!(page.status(), 200, "the login page");
    let html = page.text().await.expect("html");
    world
        .submit_login_with(browser, &html, &[("email", email), ("password", password)])
        .await
}

/// A token for this provider's own endpoints (`account` or `admin`), by the password grant.
async fn own_token(app: &TestApp, email: &str, password: &str, scope: &str) -> String {
    let (id, secret) = app.first_party_client().await;
    let response = app
        .password_login((&id, &secret), email, password, scope)
        .await;
    assert_eq!(response.status(), 200, "{scope} token");
    let body: Value = response.json().await.expect("json");
    body["access_token"].as_str().expect("token").to_string()
}

async fn call(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: &str,
) -> (u16, Option<Value>) {
    let response = app
        .client
        .request(method, app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.ok())
}

/// How each of the user's browser sessions ended (`None`: it has not), oldest first.
async fn ended_reasons(app: &TestApp, user_id: &str) -> Vec<Option<String>> {
    let user_id = user_id.to_string();
    app.query(move |conn| {
        browser_sessions::table
            .filter(browser_sessions::user_id.eq(user_id))
            .order((
                browser_sessions::created_at.asc(),
                browser_sessions::id.asc(),
            ))
            .select(browser_sessions::ended_reason)
            .load(conn)
    })
    .await
}

/// The status of a refresh grant for a public client.
async fn refresh_status(world: &World, client_id: &str, refresh_token: &str) -> u16 {
    world
        .app
        .client
        .post(world.app.url("/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", client_id),
        ])
        .send()
        .await
        .expect("token request")
        .status()
        .as_u16()
}

fn str_of<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key]
        .as_str()
        .unwrap_or_else(|| panic!("no {key} in {value}"))
}

#[tokio::test]
async fn the_session_cookie_is_http_only_lax_and_outlives_the_browser_only_when_asked() {
    let world = World::new().await;
    let app = world.client("App", ClientSpec::default()).await;

    let mut browser = HttpBrowser::for_pages();
    let response = world.sign_in(&mut browser, &app, &[]).await;
    World::code_of(&response);
    let cookie = set_cookie(&response, "tessera_session").expect("the session cookie");
    assert!(set_cookie(&response, "__Host-tessera_session").is_none());
    let attributes = attributes(&cookie);
    for wanted in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(attributes.iter().any(|a| a == wanted), "{cookie}");
    }
    for unwanted in ["secure", "max-age", "expires", "domain"] {
        assert!(
            !attributes
                .iter()
                .any(|a| a.to_ascii_lowercase().starts_with(unwanted)),
            "without \"Keep me signed in\" the cookie ends with the browser: {cookie}"
        );
    }
    assert_eq!(value_of(&cookie).len(), 43, "256 bits, base64url");

    // "Keep me signed in": the cookie lives as long as the session may.
    let mut kept = HttpBrowser::for_pages();
    let page = kept.get(&world.authorize_url(&app, &[])).await;
    let html = page.text().await.expect("html");
    assert!(html.contains(r#"name="remember""#), "{html}");
    let response = world
        .submit_login_with(
            &mut kept,
            &html,
            &[("email", EMAIL), ("password", PASSWORD), ("remember", "1")],
        )
        .await;
    World::code_of(&response);
    let cookie = set_cookie(&response, "tessera_session").expect("the session cookie");
    let max_age = format!("Max-Age={}", world.app.settings.sessions.absolute_ttl_secs);
    let attributes = self::attributes(&cookie);
    assert!(attributes.contains(&max_age), "{cookie}");
    for wanted in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(attributes.iter().any(|a| a == wanted), "{cookie}");
    }
    world.app.stop().await;
}

#[tokio::test]
async fn under_an_https_issuer_the_session_cookie_is_host_prefixed_and_secure() {
    let env = TestEnv::new();
    let mut settings = env.settings();
    settings.server.issuer = Some("https://id.example.test".into());
    let app = env.spawn_with(settings).await;
    let world = World::with(env, app).await;
    let client = world.client("App", ClientSpec::default()).await;

    let mut browser = HttpBrowser::for_pages();
    let response = world.sign_in(&mut browser, &client, &[]).await;
    World::code_of(&response);
    let cookie = set_cookie(&response, "__Host-tessera_session").expect("the prefixed cookie");
    assert!(set_cookie(&response, "tessera_session").is_none());
    let attributes = attributes(&cookie);
    for wanted in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/"] {
        assert!(attributes.iter().any(|a| a == wanted), "{cookie}");
    }
    assert!(
        !cookie.to_ascii_lowercase().contains("domain"),
        "a __Host- cookie names no domain: {cookie}"
    );
    assert!(
        !attributes
            .iter()
            .any(|a| a.to_ascii_lowercase().starts_with("max-age")),
        "{cookie}"
    );

    // The session works under that name, and only under it.
    assert!(!shows_login_page(&world, &mut browser, &client).await);
    let mut plain = HttpBrowser::for_pages();
    plain
        .cookies
        .insert("tessera_session".into(), value_of(&cookie));
    assert!(
        shows_login_page(&world, &mut plain, &client).await,
        "the unprefixed name, which a sibling site could plant, counts for nothing"
    );
    world.app.stop().await;
}

#[tokio::test]
async fn a_session_cookie_planted_before_the_sign_in_is_not_the_one_after_it() {
    let world = World::new().await;
    let app = world.client("App", ClientSpec::default()).await;
    world.app.create_user(BOB, PASSWORD, &[]).await;

    // A made-up value: no session, and the sign-in sets a value of its own.
    let mut browser = HttpBrowser::for_pages();
    browser
        .cookies
        .insert("tessera_session".into(), PLANTED.into());
    let response = world.sign_in(&mut browser, &app, &[]).await;
    let code = World::code_of(&response);
    let issued = value_of(&set_cookie(&response, "tessera_session").expect("a new cookie"));
    assert_ne!(issued, PLANTED, "the planted value was adopted");
    let ann = claims_of(
        world.exchange(&app, &code).await["id_token"]
            .as_str()
            .expect("id token"),
    );
    let mut attacker = HttpBrowser::for_pages();
    attacker
        .cookies
        .insert("tessera_session".into(), PLANTED.into());
    assert!(
        shows_login_page(&world, &mut attacker, &app).await,
        "the planted value is worth nothing"
    );

    // A real cookie of someone else's session (Bob's), planted in Ann's browser: Ann's sign-in
    // does not join it; it starts her own session and Bob's planted one ends.
    let mut bobs = HttpBrowser::for_pages();
    let response = sign_in_as(&world, &mut bobs, &app, &[], BOB, PASSWORD).await;
    let bob = claims_of(
        world.exchange(&app, &World::code_of(&response)).await["id_token"]
            .as_str()
            .expect("id token"),
    );
    let bobs_cookie = value_of(&set_cookie(&response, "tessera_session").expect("cookie"));
    let mut victim = HttpBrowser::for_pages();
    victim
        .cookies
        .insert("tessera_session".into(), bobs_cookie.clone());
    let response = sign_in_as(
        &world,
        &mut victim,
        &app,
        &[("prompt", "login")],
        EMAIL,
        PASSWORD,
    )
    .await;
    let code = World::code_of(&response);
    let after = value_of(&set_cookie(&response, "tessera_session").expect("a new cookie"));
    assert_ne!(after, bobs_cookie);
    let signed_in = claims_of(
        world.exchange(&app, &code).await["id_token"]
            .as_str()
            .expect("id token"),
    );
    assert_eq!(signed_in["sub"], world.user_id.as_str());
    assert_ne!(signed_in["sid"], bob["sid"], "Ann is not in Bob's session");
    assert_ne!(signed_in["sid"], ann["sid"]);
    assert!(
        shows_login_page(&world, &mut bobs, &app).await,
        "the planted session is over"
    );
    world.app.stop().await;
}

#[tokio::test]
async fn the_same_person_signing_in_again_keeps_the_session_with_a_new_cookie() {
    let world = World::new().await;
    let app = world.client("App", ClientSpec::default()).await;
    let mut browser = HttpBrowser::for_pages();

    let response = world.sign_in(&mut browser, &app, &[]).await;
    let first_cookie = value_of(&set_cookie(&response, "tessera_session").expect("cookie"));
    let first = claims_of(
        world.exchange(&app, &World::code_of(&response)).await["id_token"]
            .as_str()
            .expect("id token"),
    );

    world.app.clock.advance(10);
    let response = world
        .sign_in(&mut browser, &app, &[("prompt", "login")])
        .await;
    let second_cookie = value_of(&set_cookie(&response, "tessera_session").expect("cookie"));
    let second = claims_of(
        world.exchange(&app, &World::code_of(&response)).await["id_token"]
            .as_str()
            .expect("id token"),
    );
    assert_eq!(first["sid"], second["sid"], "the same session");
    assert_ne!(first_cookie, second_cookie, "a new secret at every sign-in");
    assert_eq!(
        second["auth_time"].as_i64(),
        first["auth_time"].as_i64().map(|t| t + 10)
    );
    let mut stale = HttpBrowser::for_pages();
    stale.cookies.insert("tessera_session".into(), first_cookie);
    assert!(
        shows_login_page(&world, &mut stale, &app).await,
        "the old secret is worth nothing"
    );
    assert!(!shows_login_page(&world, &mut browser, &app).await);
    assert_eq!(ended_reasons(&world.app, &world.user_id).await, [None]);
    world.app.stop().await;
}

#[tokio::test]
async fn another_person_signing_in_in_the_same_browser_ends_the_first_persons_session() {
    let world = World::new().await;
    let app = world.client("App", ClientSpec::default()).await;
    let bob_id = world.app.create_user(BOB, PASSWORD, &[]).await;
    let mut browser = HttpBrowser::for_pages();

    let response = world.sign_in(&mut browser, &app, &[]).await;
    let anns_cookie = value_of(&set_cookie(&response, "tessera_session").expect("cookie"));
    let anns = world.exchange(&app, &World::code_of(&response)).await;
    let ann = claims_of(anns["id_token"].as_str().expect("id token"));

    let response = sign_in_as(
        &world,
        &mut browser,
        &app,
        &[("prompt", "login")],
        BOB,
        PASSWORD,
    )
    .await;
    let bob = claims_of(
        world.exchange(&app, &World::code_of(&response)).await["id_token"]
            .as_str()
            .expect("id token"),
    );
    assert_eq!(bob["sub"], bob_id.as_str());
    assert_ne!(bob["sid"], ann["sid"]);
    assert_ne!(
        value_of(&set_cookie(&response, "tessera_session").expect("cookie")),
        anns_cookie
    );

    assert_eq!(
        ended_reasons(&world.app, &world.user_id).await,
        [Some("replaced".to_string())]
    );
    let mut anns_browser = HttpBrowser::for_pages();
    anns_browser
        .cookies
        .insert("tessera_session".into(), anns_cookie);
    assert!(shows_login_page(&world, &mut anns_browser, &app).await);
    // Ann's app sign-in in that session ended with it.
    let refresh = anns["refresh_token"].as_str().expect("refresh token");
    assert_eq!(refresh_status(&world, &app, refresh).await, 400);
    world.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabling_the_account_through_the_admin_api_or_the_cli_ends_its_sessions() {
    let world = World::new().await;
    let app = world.client("App", ClientSpec::default()).await;
    world.app.create_user(ADMIN, PASSWORD, &["admin"]).await;
    let admin = own_token(&world.app, ADMIN, PASSWORD, "admin").await;
    let mut browser = HttpBrowser::for_pages();
    World::code_of(&world.sign_in(&mut browser, &app, &[]).await);

    for step in ["disable", "enable"] {
        let path = format!("/admin/users/{}/{step}", world.user_id);
        let (status, _) = call(&world.app, reqwest::Method::POST, &path, &admin).await;
        assert_eq!(status, 200, "{step}");
    }
    // Enabled again, the account's session stays over: it ended, it was not suspended.
    assert!(shows_login_page(&world, &mut browser, &app).await);
    assert_eq!(
        ended_reasons(&world.app, &world.user_id).await,
        [Some("user_disabled".to_string())]
    );

    World::code_of(&world.sign_in(&mut browser, &app, &[]).await);
    assert!(!shows_login_page(&world, &mut browser, &app).await);
    for step in ["disable", "enable"] {
        let out =
            tokio::task::block_in_place(|| world.env.cli(&["user", step, "--email", EMAIL], None));
        stdout_json(&out);
    }
    assert!(shows_login_page(&world, &mut browser, &app).await);
    assert_eq!(
        ended_reasons(&world.app, &world.user_id).await,
        [
            Some("user_disabled".to_string()),
            Some("user_disabled".to_string())
        ]
    );
    world.app.stop().await;
}

#[tokio::test]
async fn a_password_reset_ends_the_browser_sessions() {
    let sink = SmtpSink::start().await;
    let env = TestEnv::new();
    let mut settings = env.settings();
    mail_through(&mut settings, &sink.url());
    let app = env.spawn_with(settings).await;
    let world = World::with(env, app).await;
    let client = world.client("App", ClientSpec::default()).await;
    let mut browser = HttpBrowser::for_pages();
    World::code_of(&world.sign_in(&mut browser, &client, &[]).await);

    let asked = world
        .app
        .client
        .post(world.app.url("/account/password-reset"))
        .json(&json!({ "email": EMAIL }))
        .send()
        .await
        .expect("request");
    assert_eq!(asked.status(), 202);
    let link = sink.wait_for(1).await[0].link("/account/password-reset");
    let token = link.split("token=").nth(1).expect("a token").to_string();
    let confirmed = world
        .app
        .client
        .post(world.app.url("/account/password-reset/confirm"))
        .json(&json!({ "token": token, "new_password": NEW_PASSWORD }))
        .send()
        .await
        .expect("request");
    assert_eq!(confirmed.status(), 200);

    assert!(shows_login_page(&world, &mut browser, &client).await);
    assert_eq!(
        ended_reasons(&world.app, &world.user_id).await,
        [Some("password_reset".to_string())]
    );
    sink.stop().await;
    world.app.stop().await;
}

#[tokio::test]
async fn a_password_change_and_logout_everywhere_end_the_browser_sessions() {
    let world = World::new().await;
    let app = world.client("App", ClientSpec::default()).await;
    let mut browser = HttpBrowser::for_pages();
    World::code_of(&world.sign_in(&mut browser, &app, &[]).await);

    let account = own_token(&world.app, EMAIL, PASSWORD, "account").await;
    let changed = world
        .app
        .client
        .post(world.app.url("/account/password"))
        .bearer_auth(&account)
        .json(&json!({ "current_password": PASSWORD, "new_password": NEW_PASSWORD }))
        .send()
        .await
        .expect("request");
    assert_eq!(changed.status(), 200);
    assert!(shows_login_page(&world, &mut browser, &app).await);
    assert_eq!(
        ended_reasons(&world.app, &world.user_id).await,
        [Some("password_changed".to_string())]
    );

    let page = browser.get(&world.authorize_url(&app, &[])).await;
    let html = page.text().await.expect("html");
    World::code_of(&world.submit_login(&mut browser, &html, NEW_PASSWORD).await);
    assert!(!shows_login_page(&world, &mut browser, &app).await);
    let account = own_token(&world.app, EMAIL, NEW_PASSWORD, "account").await;
    let (status, _) = call(
        &world.app,
        reqwest::Method::POST,
        "/logout-everywhere",
        &account,
    )
    .await;
    assert_eq!(status, 200);
    assert!(shows_login_page(&world, &mut browser, &app).await);
    assert_eq!(
        ended_reasons(&world.app, &world.user_id).await,
        [
            Some("password_changed".to_string()),
            Some("logout_everywhere".to_string())
        ]
    );
    world.app.stop().await;
}

#[tokio::test]
async fn an_idle_session_expires_and_use_moves_its_idle_expiry_at_most_once_a_minute() {
    let env = TestEnv::new();
    let mut settings = env.settings();
    settings.sessions.idle_ttl_secs = 600;
    settings.sessions.absolute_ttl_secs = 3600;
    let app = env.spawn_with(settings).await;
    let world = World::with(env, app).await;
    let client = world.client("App", ClientSpec::default()).await;
    let clock = world.app.clock.clone();
    let mut browser = HttpBrowser::for_pages();

    // A use within the minute does not move the expiry: 600 s after the sign-in it is over.
    World::code_of(&world.sign_in(&mut browser, &client, &[]).await);
    clock.advance(30);
    assert!(!shows_login_page(&world, &mut browser, &client).await);
    clock.advance(570);
    assert!(
        shows_login_page(&world, &mut browser, &client).await,
        "idle for 600 s but for a use within the first minute"
    );

    // A use a minute on moves it: 600 s from that use.
    World::code_of(&world.sign_in(&mut browser, &client, &[]).await);
    clock.advance(60);
    assert!(!shows_login_page(&world, &mut browser, &client).await);
    clock.advance(570); // 630 s after the sign-in, 570 s after the use
    assert!(!shows_login_page(&world, &mut browser, &client).await);
    clock.advance(599); // 599 s after the last use
    assert!(!shows_login_page(&world, &mut browser, &client).await);
    clock.advance(600);
    assert!(shows_login_page(&world, &mut browser, &client).await);
    world.app.stop().await;
}

#[tokio::test]
async fn a_session_ends_at_its_absolute_expiry_however_often_it_is_used() {
    let env = TestEnv::new();
    let mut settings = env.settings();
    settings.sessions.idle_ttl_secs = 600;
    settings.sessions.absolute_ttl_secs = 1000;
    let app = env.spawn_with(settings).await;
    let world = World::with(env, app).await;
    let client = world.client("App", ClientSpec::default()).await;
    let clock = world.app.clock.clone();
    let mut browser = HttpBrowser::for_pages();

    World::code_of(&world.sign_in(&mut browser, &client, &[]).await);
    clock.advance(500);
    assert!(!shows_login_page(&world, &mut browser, &client).await);
    clock.advance(499);
    assert!(!shows_login_page(&world, &mut browser, &client).await);
    clock.advance(1);
    assert!(
        shows_login_page(&world, &mut browser, &client).await,
        "1000 s after the sign-in, however recent the last use"
    );
    world.app.stop().await;
}

/// A first-party app whose tokens reach this provider's account endpoints.
async fn account_app(world: &World) -> String {
    world
        .app
        .create_client(ClientSpec {
            name: "Account app".into(),
            public: true,
            grant_types: vec!["authorization_code".into(), "refresh_token".into()],
            redirect_uris: vec![crate::testkit::fixtures::REDIRECT.into()],
            scopes: vec!["openid".into(), "account".into()],
            ..ClientSpec::default()
        })
        .await
        .0
}

#[tokio::test]
async fn the_person_lists_their_sessions_with_the_current_one_marked_and_ends_them() {
    let world = World::new().await;
    let account_app = account_app(&world).await;
    let app_b = world.client("App B", ClientSpec::default()).await;
    let clock = world.app.clock.clone();
    let t0 = clock.now();

    // Browser one: the account app (its token is the current session's), App B silently, and
    // App B again with offline_access.
    let mut one = HttpBrowser::for_pages();
    let response = world
        .sign_in(&mut one, &account_app, &[("scope", "openid account")])
        .await;
    let one_cookie = value_of(&set_cookie(&response, "tessera_session").expect("cookie"));
    let tokens = world
        .exchange(&account_app, &World::code_of(&response))
        .await;
    let account = str_of(&tokens, "access_token").to_string();
    let sid_one = claims_of(&account)["sid"]
        .as_str()
        .expect("the access token names its session")
        .to_string();
    let silent = one.get(&world.authorize_url(&app_b, &[])).await;
    let b_in_one = world.exchange(&app_b, &World::code_of(&silent)).await;
    let silent = one
        .get(&world.authorize_url(&app_b, &[("scope", "openid offline_access")]))
        .await;
    let offline = world.exchange(&app_b, &World::code_of(&silent)).await;

    // Browser two, another device.
    let mut two = HttpBrowser::for_pages();
    two.http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent("Browser Two/1.0")
        .build()
        .expect("client");
    clock.advance(5);
    let response = world.sign_in(&mut two, &app_b, &[]).await;
    let b_in_two = world.exchange(&app_b, &World::code_of(&response)).await;
    let sid_two = claims_of(str_of(&b_in_two, "id_token"))["sid"]
        .as_str()
        .expect("sid")
        .to_string();

    // A refresh is a use of its family.
    clock.advance(100);
    let refreshed = world
        .app
        .client
        .post(world.app.url("/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", str_of(&b_in_one, "refresh_token")),
            ("client_id", &app_b),
        ])
        .send()
        .await
        .expect("refresh");
    assert_eq!(refreshed.status(), 200);

    let response = world
        .app
        .client
        .get(world.app.url("/account/sessions"))
        .bearer_auth(&account)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let text = response.text().await.expect("body");
    assert!(!text.contains(&one_cookie), "never a cookie secret");
    assert!(!text.contains("secret"), "{text}");
    let list: Value = serde_json::from_str(&text).expect("json");
    let sessions = list["browser_sessions"]
        .as_array()
        .expect("browser sessions");
    assert_eq!(sessions.len(), 2, "{list}");
    // Newest first.
    assert_eq!(sessions[0]["id"], sid_two.as_str());
    assert_eq!(sessions[0]["current"], false);
    assert_eq!(sessions[0]["user_agent"], "Browser Two/1.0");
    assert_eq!(sessions[0]["ip"], "127.0.0.1");
    assert_eq!(sessions[0]["apps"], json!(["App B"]));
    assert_eq!(sessions[0]["created_at"], t0 + 5);
    assert_eq!(sessions[1]["id"], sid_one.as_str());
    assert_eq!(sessions[1]["current"], true);
    assert_eq!(sessions[1]["apps"], json!(["Account app", "App B"]));
    assert_eq!(sessions[1]["created_at"], t0);
    assert_eq!(sessions[1]["auth_time"], t0);
    assert_eq!(sessions[1]["persistent"], false);
    assert_eq!(
        sessions[1]["expires_at"],
        t0 + world.app.settings.sessions.idle_ttl_secs
    );
    let families = list["refresh_families"].as_array().expect("families");
    assert_eq!(families.len(), 4, "{list}");
    let family = |client: &str, session: Option<&str>, offline: bool| {
        families
            .iter()
            .filter(|f| {
                f["client_id"] == client
                    && f["browser_session"].as_str() == session
                    && f["offline"] == offline
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(family(&account_app, Some(&sid_one), false).len(), 1);
    assert_eq!(family(&app_b, Some(&sid_two), false).len(), 1);
    let offline_family = family(&app_b, None, true);
    assert_eq!(
        offline_family.len(),
        1,
        "offline_access outlives the session"
    );
    let b_family = family(&app_b, Some(&sid_one), false);
    assert_eq!(b_family.len(), 1);
    assert_eq!(b_family[0]["client_name"], "App B");
    assert_eq!(b_family[0]["created_at"], t0);
    assert_eq!(b_family[0]["last_used_at"], t0 + 105, "the refresh");
    let offline_id = str_of(offline_family[0], "id").to_string();

    // Ending the other browser's session: its app sign-ins end, its apps are told.
    let end = |id: String| {
        let (app, account) = (&world.app, &account);
        async move {
            let path = format!("/account/sessions/{id}");
            call(app, reqwest::Method::DELETE, &path, account).await.0
        }
    };
    assert_eq!(end(sid_two.clone()).await, 204);
    assert!(shows_login_page(&world, &mut two, &app_b).await);
    assert_eq!(
        refresh_status(&world, &app_b, str_of(&b_in_two, "refresh_token")).await,
        400
    );
    assert_eq!(end(sid_two.clone()).await, 404, "ended already");
    assert!(!shows_login_page(&world, &mut one, &app_b).await);

    // Ending the offline family: that one app sign-in.
    assert_eq!(end(offline_id.clone()).await, 204);
    assert_eq!(
        refresh_status(&world, &app_b, str_of(&offline, "refresh_token")).await,
        400
    );
    assert_eq!(end(offline_id).await, 404);
    assert_eq!(end("no-such-session".into()).await, 404);

    let (status, list) = call(
        &world.app,
        reqwest::Method::GET,
        "/account/sessions",
        &account,
    )
    .await;
    assert_eq!(status, 200);
    let list = list.expect("json");
    assert_eq!(list["browser_sessions"].as_array().map(Vec::len), Some(1));
    assert_eq!(list["refresh_families"].as_array().map(Vec::len), Some(2));

    // Ending the current session ends the token that asked, too.
    assert_eq!(end(sid_one.clone()).await, 204);
    assert!(shows_login_page(&world, &mut one, &app_b).await);
    let (status, _) = call(
        &world.app,
        reqwest::Method::GET,
        "/account/sessions",
        &account,
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(
        refresh_status(&world, &account_app, str_of(&tokens, "refresh_token")).await,
        400
    );
    let audited: Vec<String> = world
        .app
        .audit_events(&world.user_id)
        .await
        .into_iter()
        .filter(|e| e == "sessions_revoked")
        .collect();
    assert_eq!(audited.len(), 3);
    world.app.stop().await;
}

#[tokio::test]
async fn another_users_sessions_cannot_be_listed_or_ended() {
    let world = World::new().await;
    let app = world.client("App", ClientSpec::default()).await;
    let bob_id = world.app.create_user(BOB, PASSWORD, &[]).await;
    let mut bobs = HttpBrowser::for_pages();
    let response = sign_in_as(&world, &mut bobs, &app, &[], BOB, PASSWORD).await;
    let bob = world.exchange(&app, &World::code_of(&response)).await;
    let bob_sid = claims_of(str_of(&bob, "id_token"))["sid"]
        .as_str()
        .expect("sid")
        .to_string();
    let bob_family = world
        .app
        .query({
            let bob_id = bob_id.clone();
            move |conn| {
                tessera::db::schema::refresh_token_families::table
                    .filter(tessera::db::schema::refresh_token_families::user_id.eq(bob_id))
                    .select(tessera::db::schema::refresh_token_families::id)
                    .first::<String>(conn)
            }
        })
        .await;

    let ann = own_token(&world.app, EMAIL, PASSWORD, "account").await;
    let (status, list) = call(&world.app, reqwest::Method::GET, "/account/sessions", &ann).await;
    assert_eq!(status, 200);
    let text = list.expect("json").to_string();
    assert!(
        !text.contains(&bob_sid) && !text.contains(&bob_family),
        "{text}"
    );
    for id in [&bob_sid, &bob_family] {
        let path = format!("/account/sessions/{id}");
        let (status, body) = call(&world.app, reqwest::Method::DELETE, &path, &ann).await;
        assert_eq!(status, 404, "{body:?}");
    }
    // Nor through the admin API with a token that is not an administrator's.
    for (method, path) in [
        (
            reqwest::Method::GET,
            format!("/admin/users/{bob_id}/sessions"),
        ),
        (
            reqwest::Method::DELETE,
            format!("/admin/sessions/{bob_sid}"),
        ),
        (
            reqwest::Method::DELETE,
            format!("/admin/sessions/{bob_family}"),
        ),
    ] {
        let (status, body) = call(&world.app, method, &path, &ann).await;
        assert_eq!(status, 403, "{path}: {body:?}");
    }
    assert!(!shows_login_page(&world, &mut bobs, &app).await);
    assert_eq!(
        refresh_status(&world, &app, str_of(&bob, "refresh_token")).await,
        200
    );
    world.app.stop().await;
}

#[tokio::test]
async fn an_administrator_lists_and_ends_any_users_sessions() {
    let world = World::new().await;
    let app = world.client("App", ClientSpec::default()).await;
    let admin_id = world.app.create_user(ADMIN, PASSWORD, &["admin"]).await;
    let admin = own_token(&world.app, ADMIN, PASSWORD, "admin").await;
    let mut browser = HttpBrowser::for_pages();
    let response = world.sign_in(&mut browser, &app, &[]).await;
    let tokens = world.exchange(&app, &World::code_of(&response)).await;
    let sid = claims_of(str_of(&tokens, "id_token"))["sid"]
        .as_str()
        .expect("sid")
        .to_string();

    let path = format!("/admin/users/{}/sessions", world.user_id);
    let (status, list) = call(&world.app, reqwest::Method::GET, &path, &admin).await;
    assert_eq!(status, 200);
    let list = list.expect("json");
    let sessions = list["browser_sessions"].as_array().expect("sessions");
    assert_eq!(sessions.len(), 1, "{list}");
    assert_eq!(sessions[0]["id"], sid.as_str());
    assert_eq!(sessions[0]["current"], false);
    assert_eq!(sessions[0]["apps"], json!(["App"]));
    let families = list["refresh_families"].as_array().expect("families");
    assert_eq!(families.len(), 1);
    assert_eq!(families[0]["browser_session"], sid.as_str());
    let family = str_of(&families[0], "id").to_string();
    let (status, _) = call(
        &world.app,
        reqwest::Method::GET,
        "/admin/users/no-such-user/sessions",
        &admin,
    )
    .await;
    assert_eq!(status, 404);

    let (status, _) = call(
        &world.app,
        reqwest::Method::DELETE,
        &format!("/admin/sessions/{family}"),
        &admin,
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(
        refresh_status(&world, &app, str_of(&tokens, "refresh_token")).await,
        400
    );
    assert!(
        !shows_login_page(&world, &mut browser, &app).await,
        "ending the family leaves the browser session"
    );
    let (status, _) = call(
        &world.app,
        reqwest::Method::DELETE,
        &format!("/admin/sessions/{sid}"),
        &admin,
    )
    .await;
    assert_eq!(status, 204);
    assert!(shows_login_page(&world, &mut browser, &app).await);
    for gone in [&sid, &family] {
        let path = format!("/admin/sessions/{gone}");
        let (status, _) = call(&world.app, reqwest::Method::DELETE, &path, &admin).await;
        assert_eq!(status, 404, "{gone}");
    }
    let detail = world
        .app
        .query({
            let user_id = world.user_id.clone();
            move |conn| {
                tessera::db::schema::audit_events::table
                    .filter(tessera::db::schema::audit_events::user_id.eq(user_id))
                    .filter(tessera::db::schema::audit_events::event.eq("sessions_revoked"))
                    .select(tessera::db::schema::audit_events::detail)
                    .load::<Option<String>>(conn)
            }
        })
        .await;
    let details: Vec<Value> = detail
        .iter()
        .map(|d| serde_json::from_str(d.as_deref().expect("detail")).expect("json"))
        .collect();
    assert!(
        details.contains(&json!({ "reason": "revoked", "by": admin_id, "refresh_family": family }))
    );
    assert!(
        details.contains(&json!({ "reason": "revoked", "by": admin_id, "browser_session": sid }))
    );
    world.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_lists_and_ends_a_users_sessions() {
    let world = World::new().await;
    let app = world.client("App", ClientSpec::default()).await;
    let mut browser = HttpBrowser::for_pages();
    let response = world.sign_in(&mut browser, &app, &[]).await;
    let tokens = world.exchange(&app, &World::code_of(&response)).await;
    let sid = claims_of(str_of(&tokens, "id_token"))["sid"]
        .as_str()
        .expect("sid")
        .to_string();
    let cli = |args: &[&str]| tokio::task::block_in_place(|| world.env.cli(args, None));

    let list = stdout_json(&cli(&["user", "sessions", "--email", EMAIL]));
    let sessions = list["browser_sessions"].as_array().expect("sessions");
    assert_eq!(sessions.len(), 1, "{list}");
    assert_eq!(sessions[0]["id"], sid.as_str());
    assert_eq!(sessions[0]["apps"], json!(["App"]));
    assert_eq!(list["refresh_families"].as_array().map(Vec::len), Some(1));

    let ended = stdout_json(&cli(&["user", "end-session", "--id", &sid]));
    assert_eq!(
        ended,
        json!({ "kind": "browser_session", "id": sid, "user_id": world.user_id })
    );
    assert!(shows_login_page(&world, &mut browser, &app).await);
    assert_eq!(
        refresh_status(&world, &app, str_of(&tokens, "refresh_token")).await,
        400,
        "the family ended with its session"
    );
    let list = stdout_json(&cli(&["user", "sessions", "--email", EMAIL]));
    assert_eq!(
        list,
        json!({ "browser_sessions": [], "refresh_families": [] })
    );

    let again = cli(&["user", "end-session", "--id", &sid]);
    assert!(!again.status.success());
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("no live session"), "{stderr}");
    let nobody = cli(&["user", "sessions", "--email", "nobody@example.com"]);
    assert!(!nobody.status.success());
    world.app.stop().await;
}

#[tokio::test]
async fn the_background_purge_deletes_ended_and_expired_sessions_after_the_retention() {
    let env = TestEnv::new();
    let mut settings = env.settings();
    settings.sessions.idle_ttl_secs = 600;
    settings.sessions.absolute_ttl_secs = 3600;
    settings.purge.retention_secs = 1000;
    settings.purge.batch_size = 2;
    settings.purge.interval_secs = 1;
    let app = env.spawn_with(settings).await;
    let world = World::with(env, app).await;
    let client = world.client("App", ClientSpec::default()).await;
    let clock = world.app.clock.clone();
    let t0 = clock.now();

    // Five sessions that will go idle, one with an app recorded in it.
    let mut first = HttpBrowser::for_pages();
    let response = world.sign_in(&mut first, &client, &[]).await;
    world.exchange(&client, &World::code_of(&response)).await;
    for _ in 0..4 {
        World::code_of(
            &world
                .sign_in(&mut HttpBrowser::for_pages(), &client, &[])
                .await,
        );
    }
    let count = || {
        world.app.query(|conn| {
            let sessions = browser_sessions::table.count().get_result::<i64>(conn)?;
            let clients = session_clients::table.count().get_result::<i64>(conn)?;
            Ok((sessions, clients))
        })
    };
    assert_eq!(count().await, (5, 1));

    // Not before the retention has passed since their expiry.
    let settings = world.app.settings.clone();
    let early = world
        .app
        .state
        .services
        .db
        .run(move |conn| tessera::purge::purge(conn, &settings, false, t0 + 600 + 999))
        .await
        .expect("purge");
    assert_eq!(early.browser_sessions, 0);
    assert_eq!(count().await, (5, 1));

    clock.advance(600 + 1001);
    // A live one, and one ended just now: both are kept.
    let mut live = HttpBrowser::for_pages();
    World::code_of(&world.sign_in(&mut live, &client, &[]).await);
    let mut ended = HttpBrowser::for_pages();
    let response = world.sign_in(&mut ended, &client, &[]).await;
    let tokens = world.exchange(&client, &World::code_of(&response)).await;
    let account = own_token(&world.app, EMAIL, PASSWORD, "account").await;
    let sid = claims_of(str_of(&tokens, "id_token"))["sid"]
        .as_str()
        .expect("sid")
        .to_string();
    let path = format!("/account/sessions/{sid}");
    assert_eq!(
        call(&world.app, reqwest::Method::DELETE, &path, &account)
            .await
            .0,
        204
    );

    eventually(
        DEADLINE,
        "the purge to delete the expired sessions",
        || async { count().await == (2, 1) },
    )
    .await;
    assert!(!shows_login_page(&world, &mut live, &client).await);
    let kept = world
        .app
        .query(|conn| {
            browser_sessions::table
                .filter(browser_sessions::ended_at.is_not_null())
                .select(browser_sessions::id)
                .load::<String>(conn)
        })
        .await;
    assert_eq!(kept, [sid]);
    world.app.stop().await;
}

/// A session that simply expires ends its refresh families as a logout does; a family granted
/// `offline_access` lives on.
#[tokio::test]
async fn a_refresh_family_of_an_expired_session_refreshes_no_more_unless_offline() {
    let env = TestEnv::new();
    let mut settings = env.settings();
    settings.sessions.idle_ttl_secs = 600;
    settings.sessions.absolute_ttl_secs = 3600;
    let app = env.spawn_with(settings).await;
    let world = World::with(env, app).await;
    let client = world.client("App", ClientSpec::default()).await;
    let clock = world.app.clock.clone();
    let mut browser = HttpBrowser::for_pages();

    let code = World::code_of(&world.sign_in(&mut browser, &client, &[]).await);
    let bound = world.exchange(&client, &code).await;
    let code = World::code_of(
        &browser
            .get(&world.authorize_url(&client, &[("scope", "openid offline_access")]))
            .await,
    );
    let offline = world.exchange(&client, &code).await;
    let bound = str_of(&bound, "refresh_token").to_string();
    let offline = str_of(&offline, "refresh_token").to_string();

    clock.advance(300);
    let rotated: Value = world
        .app
        .client
        .post(world.app.url("/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", bound.as_str()),
            ("client_id", client.as_str()),
        ])
        .send()
        .await
        .expect("token request")
        .json()
        .await
        .expect("json");
    let bound = str_of(&rotated, "refresh_token").to_string();
    clock.advance(601);
    assert!(shows_login_page(&world, &mut browser, &client).await);
    assert_eq!(
        refresh_status(&world, &client, &bound).await,
        400,
        "the session expired idle: its family with it"
    );
    assert_eq!(refresh_status(&world, &client, &offline).await, 200);
    world.app.stop().await;
}

/// Each sign-in from a new browser makes a session row: past `sessions.max_live_per_user` the
/// person's oldest session ends, so one account cannot grow the table without bound.
#[tokio::test]
async fn a_sign_in_beyond_the_live_session_limit_ends_the_oldest_session() {
    let env = TestEnv::new();
    let mut settings = env.settings();
    settings.sessions.max_live_per_user = 2;
    let app = env.spawn_with(settings).await;
    let world = World::with(env, app).await;
    let client = world.client("App", ClientSpec::default()).await;
    let mut browsers = [
        HttpBrowser::for_pages(),
        HttpBrowser::for_pages(),
        HttpBrowser::for_pages(),
    ];
    for browser in browsers.iter_mut() {
        World::code_of(&world.sign_in(browser, &client, &[]).await);
        world.app.clock.advance(1);
    }
    let [first, second, third] = &mut browsers;
    assert!(
        shows_login_page(&world, first, &client).await,
        "the oldest ended"
    );
    assert!(!shows_login_page(&world, second, &client).await);
    assert!(!shows_login_page(&world, third, &client).await);
    assert!(
        ended_reasons(&world.app, &world.user_id)
            .await
            .contains(&Some("session_limit".to_string()))
    );
    world.app.stop().await;
}
