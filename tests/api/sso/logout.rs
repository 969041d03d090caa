//! Logout: OpenID Connect RP-Initiated Logout 1.0 (`/logout`: with a hint for this session at
//! once, otherwise after a CSRF-protected "Sign out?", back only to a registered address) and
//! Back-Channel Logout 1.0 (a logout token to every app of the ended session, through the
//! outbox: retried, once per message, never in the person's way), checked by tessera-verify.

use std::collections::BTreeSet;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use tessera::clients::ClientSpec;
use tessera::db::repo::outbox::OutboxRow;
use tessera_verify::{Verifier, VerifyError};

use super::{EMAIL, World, hidden_fields};
use crate::testkit::app::{TestApp, TestEnv};
use crate::testkit::fixtures::{PASSWORD, REDIRECT, claims_of, csrf_field, location, query_of};
use crate::testkit::http::HttpBrowser;
use crate::testkit::{DEADLINE, LogoutReceiver, eventually};

/// The address apps register to come back to after a logout.
const SIGNED_OUT: &str = "http://127.0.0.1:9/signed-out";
const SESSION_COOKIE: &str = "tessera_session";

/// A world whose back-channel sender looks at the outbox often and retries a second after a
/// failure (once the test moves the frozen clock on).
async fn world() -> World {
    let env = TestEnv::new();
    let mut settings = env.settings();
    settings.backchannel.poll_interval_ms = 50;
    settings.backchannel.retry_base_secs = 1;
    settings.backchannel.retry_max_secs = 1;
    settings.backchannel.timeout_secs = 5;
    settings.backchannel.claim_secs = 30;
    let app = env.spawn_with(settings).await;
    World::with(env, app).await
}

/// An app that registered `SIGNED_OUT`, and the receiver's URI if given.
fn app_spec(receiver: Option<&LogoutReceiver>) -> ClientSpec {
    ClientSpec {
        post_logout_redirect_uris: vec![SIGNED_OUT.into()],
        backchannel_logout_uri: receiver.map(LogoutReceiver::url),
        ..ClientSpec::default()
    }
}

/// Signs in at `client` on the login page; the token response.
async fn signed_in(world: &World, browser: &mut HttpBrowser, client: &str) -> Value {
    let code = World::code_of(&world.sign_in(browser, client, &[]).await);
    world.exchange(client, &code).await
}

/// As `signed_in`, as the account `email`.
async fn signed_in_as(
    world: &World,
    browser: &mut HttpBrowser,
    client: &str,
    email: &str,
) -> Value {
    let page = browser.get(&world.authorize_url(client, &[])).await;
    let html = page.text().await.expect("html");
    let mut form = hidden_fields(&html);
    form.push(("csrf_token".into(), csrf_field(&html)));
    form.push(("email".into(), email.into()));
    form.push(("password".into(), PASSWORD.into()));
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let response = browser.post_form(&world.app.url("/authorize"), &form).await;
    let code = World::code_of(&response);
    world.exchange(client, &code).await
}

fn id_token(tokens: &Value) -> String {
    tokens["id_token"]
        .as_str()
        .expect("an ID token")
        .to_string()
}

fn logout_url(world: &World, params: &[(&str, &str)]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (name, value) in params {
        query.append_pair(name, value);
    }
    format!("{}?{}", world.app.url("/logout"), query.finish())
}

/// Whether the browser's session still stands: `prompt=none` gets a code, or `login_required`.
async fn session_is_live(world: &World, browser: &mut HttpBrowser, client: &str) -> bool {
    let response = browser
        .get(&world.authorize_url(client, &[("prompt", "none")]))
        .await;
    assert_eq!(response.status(), 303, "prompt=none never shows a page");
    let query = query_of(&location(&response));
    match query.get("error").map(String::as_str) {
        None => {
            assert!(query.contains_key("code"), "{query:?}");
            true
        }
        Some("login_required") => false,
        Some(other) => panic!("prompt=none answered {other}"),
    }
}

/// Whether the response makes the browser forget its session cookie.
fn forgets_the_session(response: &reqwest::Response) -> bool {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|cookie| {
            cookie.starts_with(&format!("{SESSION_COOKIE}=;")) && cookie.contains("Max-Age=0")
        })
}

/// A page, and not a redirect anywhere.
async fn assert_page(response: reqwest::Response, status: u16) -> String {
    assert_eq!(response.status(), status);
    assert!(response.headers().get("location").is_none());
    assert!(
        response.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("text/html"),
    );
    response.text().await.expect("html")
}

/// The back-channel logout messages in the outbox, oldest first.
async fn logout_messages(app: &TestApp) -> Vec<OutboxRow> {
    let mut rows: Vec<OutboxRow> = app
        .query(tessera::db::repo::outbox::list)
        .await
        .into_iter()
        .filter(|row| row.kind == tessera::sso::backchannel::KIND)
        .collect();
    rows.sort_by_key(|row| row.created_at);
    rows
}

/// Waits until the only logout message has failed an attempt and waits for its retry.
async fn wait_for_a_failed_attempt(app: &TestApp) -> OutboxRow {
    eventually(DEADLINE, "a failed delivery awaiting its retry", || async {
        logout_messages(app).await.into_iter().next().filter(|row| {
            row.attempts >= 1
                && row.last_error.is_some()
                && row.claim_id.is_none()
                && row.finished_at.is_none()
        })
    })
    .await
}

async fn wait_until_sent(app: &TestApp, count: usize) -> Vec<OutboxRow> {
    eventually(DEADLINE, "the logout messages delivered", || async {
        let rows = logout_messages(app).await;
        (rows.len() == count && rows.iter().all(|r| r.outcome.as_deref() == Some("sent")))
            .then_some(rows)
    })
    .await
}

/// A logout token's JOSE header.
fn header_of(token: &str) -> Value {
    let header = token.split('.').next().expect("a JWS");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).expect("base64")).expect("json")
}

fn logout_verifier(world: &World, client_id: &str) -> Verifier {
    Verifier::builder(&world.app.issuer)
        .audience(client_id)
        .build()
        .expect("verifier")
}

#[tokio::test]
async fn a_hint_for_this_session_ends_it_at_once_and_returns_to_the_app_with_the_state() {
    let world = world().await;
    let app = world.client("App", app_spec(None)).await;
    let mut browser = HttpBrowser::for_pages();
    let tokens = signed_in(&world, &mut browser, &app).await;
    let old_cookie = browser.cookies[SESSION_COOKIE].clone();

    let url = logout_url(
        &world,
        &[
            ("id_token_hint", &id_token(&tokens)),
            ("post_logout_redirect_uri", SIGNED_OUT),
            ("state", "bye & see you"),
            ("ui_locales", "fr-CA fr"),
        ],
    );
    let response = browser.get(&url).await;
    assert_eq!(response.status(), 303);
    assert_eq!(
        location(&response),
        format!("{SIGNED_OUT}?state=bye+%26+see+you")
    );
    assert!(forgets_the_session(&response));
    assert!(!browser.cookies.contains_key(SESSION_COOKIE));

    // The old cookie, kept by someone, is worth nothing now: the login page, and
    // login_required for prompt=none.
    let mut keeper = HttpBrowser::for_pages();
    keeper.cookies.insert(SESSION_COOKIE.into(), old_cookie);
    let page = keeper.get(&world.authorize_url(&app, &[])).await;
    assert_eq!(page.status(), 200);
    assert!(page.text().await.expect("html").contains("Sign in"));
    assert!(!session_is_live(&world, &mut keeper, &app).await);
    assert!(
        world
            .app
            .audit_events(&world.user_id)
            .await
            .contains(&"sessions_revoked".to_string())
    );

    // The same request again: no session to end, straight back to the app.
    let again = browser.get(&url).await;
    assert_eq!(again.status(), 303);
    assert!(location(&again).starts_with(SIGNED_OUT));
    world.app.stop().await;
}

#[tokio::test]
async fn an_app_may_post_the_logout_form_and_one_posted_without_the_cookie_goes_on_as_a_get() {
    let world = world().await;
    let app = world.client("App", app_spec(None)).await;
    let mut browser = HttpBrowser::for_pages();
    let tokens = signed_in(&world, &mut browser, &app).await;
    let hint = id_token(&tokens);
    let form = [
        ("id_token_hint", hint.as_str()),
        ("post_logout_redirect_uri", SIGNED_OUT),
        ("state", "s-1"),
    ];

    // A browser that sent no session cookie with the app's form (SameSite=Lax on a
    // cross-site POST) is sent to the same request as a GET, which brings it.
    let mut cookieless = HttpBrowser::for_pages();
    let response = cookieless.post_form(&world.app.url("/logout"), &form).await;
    assert_eq!(response.status(), 303);
    let get = location(&response);
    assert!(get.starts_with("/logout?"), "{get}");
    let query = query_of(&format!("http://x{get}"));
    assert_eq!(query["id_token_hint"], hint);
    assert_eq!(query["post_logout_redirect_uri"], SIGNED_OUT);
    assert_eq!(query["state"], "s-1");
    assert!(session_is_live(&world, &mut browser, &app).await);

    let response = browser.post_form(&world.app.url("/logout"), &form).await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), format!("{SIGNED_OUT}?state=s-1"));
    assert!(forgets_the_session(&response));
    assert!(!session_is_live(&world, &mut browser, &app).await);
    world.app.stop().await;
}

#[tokio::test]
async fn without_a_hint_the_person_is_asked_and_their_yes_ends_the_session() {
    let world = world().await;
    let app = world.client("Notes <App>", app_spec(None)).await;
    let mut browser = HttpBrowser::for_pages();
    signed_in(&world, &mut browser, &app).await;

    let url = logout_url(
        &world,
        &[
            ("client_id", &app),
            ("post_logout_redirect_uri", SIGNED_OUT),
            ("state", "s-2"),
        ],
    );
    let response = browser.get(&url).await;
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert!(
        csp.contains("form-action 'self' http://127.0.0.1:9;"),
        "{csp}"
    );
    assert!(!forgets_the_session(&response));
    let html = assert_page(response, 200).await;
    assert!(html.contains("Sign out?"), "{html}");
    assert!(html.contains("Notes &#60;App&#62;"), "{html}");
    assert!(html.contains(EMAIL), "{html}");
    assert!(html.contains(r#"action="/logout/confirm""#), "{html}");
    assert!(
        session_is_live(&world, &mut browser, &app).await,
        "asking ends nothing"
    );

    let mut form = hidden_fields(&html);
    form.push(("csrf_token".into(), csrf_field(&html)));
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let response = browser
        .post_form(&world.app.url("/logout/confirm"), &form)
        .await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), format!("{SIGNED_OUT}?state=s-2"));
    assert!(forgets_the_session(&response));
    assert!(!browser.cookies.contains_key("tessera_logout_csrf"));
    assert!(!session_is_live(&world, &mut browser, &app).await);

    // A bare /logout (no app named) asks too, and ends on the "signed out" page.
    signed_in(&world, &mut browser, &app).await;
    let html = assert_page(browser.get(&world.app.url("/logout")).await, 200).await;
    let mut form = hidden_fields(&html);
    form.push(("csrf_token".into(), csrf_field(&html)));
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let response = browser
        .post_form(&world.app.url("/logout/confirm"), &form)
        .await;
    assert!(forgets_the_session(&response));
    let html = assert_page(response, 200).await;
    assert!(html.contains("You are signed out."), "{html}");
    assert!(!session_is_live(&world, &mut browser, &app).await);
    world.app.stop().await;
}

#[tokio::test]
async fn a_hint_of_another_person_or_another_session_asks_first() {
    let world = world().await;
    let app = world.client("App", app_spec(None)).await;
    world
        .app
        .create_user("bob@example.com", PASSWORD, &[])
        .await;
    let mut ann = HttpBrowser::for_pages();
    let own = signed_in(&world, &mut ann, &app).await;
    let mut bobs_browser = HttpBrowser::for_pages();
    let bob = signed_in_as(&world, &mut bobs_browser, &app, "bob@example.com").await;
    let mut anns_other_browser = HttpBrowser::for_pages();
    let other_session = signed_in(&world, &mut anns_other_browser, &app).await;
    assert_ne!(
        claims_of(&id_token(&own))["sid"],
        claims_of(&id_token(&other_session))["sid"]
    );

    for hint in [id_token(&bob), id_token(&other_session)] {
        let url = logout_url(
            &world,
            &[
                ("id_token_hint", &hint),
                ("post_logout_redirect_uri", SIGNED_OUT),
            ],
        );
        let html = assert_page(ann.get(&url).await, 200).await;
        assert!(html.contains("Sign out?"), "{html}");
        assert!(session_is_live(&world, &mut ann, &app).await);
    }
    // Nobody else's session ended either.
    assert!(session_is_live(&world, &mut bobs_browser, &app).await);
    assert!(session_is_live(&world, &mut anns_other_browser, &app).await);

    let url = logout_url(&world, &[("id_token_hint", &id_token(&own))]);
    let response = ann.get(&url).await;
    assert!(forgets_the_session(&response));
    assert_page(response, 200).await;
    assert!(session_is_live(&world, &mut anns_other_browser, &app).await);
    world.app.stop().await;
}

#[tokio::test]
async fn the_confirmation_refuses_a_form_without_its_csrf_token() {
    let world = world().await;
    let app = world.client("App", app_spec(None)).await;
    let mut browser = HttpBrowser::for_pages();
    signed_in(&world, &mut browser, &app).await;
    let html = assert_page(browser.get(&world.app.url("/logout")).await, 200).await;
    let token = csrf_field(&html);
    let sid = hidden_fields(&html)
        .into_iter()
        .find(|(name, _)| name == "sid")
        .map(|(_, value)| value)
        .expect("the session the page was shown in");
    let confirm = world.app.url("/logout/confirm");

    // A forged form: no token, a wrong one, the right one from another site, or the right one
    // from a browser that lacks the cookie (another site can post, but not read the cookie).
    let forged = [
        vec![("sid", sid.as_str())],
        vec![("sid", sid.as_str()), ("csrf_token", "guessed")],
    ];
    for form in &forged {
        assert_page(browser.post_form(&confirm, form).await, 403).await;
    }
    let good = [("sid", sid.as_str()), ("csrf_token", token.as_str())];
    let cross_site = browser
        .prepare(browser.http.post(&confirm).form(&good))
        .header("origin", "https://evil.example")
        .send()
        .await
        .expect("request");
    assert_page(cross_site, 403).await;
    let mut without_csrf_cookie = HttpBrowser::for_pages();
    without_csrf_cookie.cookies.insert(
        SESSION_COOKIE.into(),
        browser.cookies[SESSION_COOKIE].clone(),
    );
    assert_page(without_csrf_cookie.post_form(&confirm, &good).await, 403).await;
    assert!(session_is_live(&world, &mut browser, &app).await);

    // A "yes" given to another session's question ends nothing.
    let response = browser
        .post_form(
            &confirm,
            &[("sid", "another-session"), ("csrf_token", token.as_str())],
        )
        .await;
    assert!(!forgets_the_session(&response));
    assert_page(response, 409).await;
    assert!(session_is_live(&world, &mut browser, &app).await);

    // The page's own form ends it.
    let html = assert_page(browser.get(&world.app.url("/logout")).await, 200).await;
    let response = browser
        .post_form(
            &confirm,
            &[("sid", sid.as_str()), ("csrf_token", &csrf_field(&html))],
        )
        .await;
    assert!(forgets_the_session(&response));
    assert_page(response, 200).await;
    world.app.stop().await;
}

#[tokio::test]
async fn the_return_address_must_be_one_the_app_registered_exactly() {
    let world = world().await;
    let app = world.client("App", app_spec(None)).await;
    let other = world
        .client(
            "Other",
            ClientSpec {
                post_logout_redirect_uris: vec!["http://127.0.0.1:9/other-app".into()],
                ..ClientSpec::default()
            },
        )
        .await;
    let mut browser = HttpBrowser::for_pages();
    let hint = id_token(&signed_in(&world, &mut browser, &app).await);

    for near_miss in [
        "http://127.0.0.1:9/signed-out/",
        "http://127.0.0.1:9/signed-out?x=1",
        "http://127.0.0.1:9/signed-out#top",
        "http://127.0.0.1:9/Signed-out",
        "http://127.0.0.1:9/signed-out/../signed-out",
        "http://localhost:9/signed-out",
        "http://127.0.0.1:10/signed-out",
        "https://127.0.0.1:9/signed-out",
        "http://127.0.0.1:9/other-app",
        "https://evil.example/",
        REDIRECT,
    ] {
        for params in [
            vec![
                ("id_token_hint", hint.as_str()),
                ("post_logout_redirect_uri", near_miss),
                ("state", "s"),
            ],
            vec![
                ("client_id", app.as_str()),
                ("post_logout_redirect_uri", near_miss),
            ],
        ] {
            let html = assert_page(browser.get(&logout_url(&world, &params)).await, 400).await;
            assert!(html.contains("not one registered"), "{near_miss}: {html}");
        }
    }
    // An address with no app to check it against; an app the hint was not issued to; an app
    // that is not registered.
    for params in [
        vec![("post_logout_redirect_uri", SIGNED_OUT)],
        vec![
            ("id_token_hint", hint.as_str()),
            ("client_id", other.as_str()),
            ("post_logout_redirect_uri", "http://127.0.0.1:9/other-app"),
        ],
        vec![
            ("client_id", "no-such-app"),
            ("post_logout_redirect_uri", SIGNED_OUT),
        ],
    ] {
        assert_page(browser.get(&logout_url(&world, &params)).await, 400).await;
    }
    assert!(
        session_is_live(&world, &mut browser, &app).await,
        "a refused request ends nothing, even with a good hint"
    );

    let exact = logout_url(
        &world,
        &[
            ("id_token_hint", &hint),
            ("client_id", &app),
            ("post_logout_redirect_uri", SIGNED_OUT),
        ],
    );
    let response = browser.get(&exact).await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), SIGNED_OUT, "no state, none added");
    world.app.stop().await;
}

#[tokio::test]
async fn a_bad_hint_shows_a_page_and_an_expired_one_still_works() {
    let world = world().await;
    let app = world.client("App", app_spec(None)).await;
    let mut browser = HttpBrowser::for_pages();
    let tokens = signed_in(&world, &mut browser, &app).await;
    let hint = id_token(&tokens);
    let mut parts: Vec<String> = hint.split('.').map(String::from).collect();
    let mut forged = claims_of(&hint);
    forged["sub"] = "someone-else".into();
    parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).expect("json"));
    let tampered = parts.join(".");
    let access_token = tokens["access_token"].as_str().expect("access token");

    for bad in ["not-a-token", tampered.as_str(), access_token] {
        let url = logout_url(
            &world,
            &[
                ("id_token_hint", bad),
                ("client_id", &app),
                ("post_logout_redirect_uri", SIGNED_OUT),
            ],
        );
        let html = assert_page(browser.get(&url).await, 400).await;
        assert!(html.contains("not issued here"), "{html}");
    }
    // A repeated parameter is a malformed request.
    let twice = format!(
        "{}&state=b",
        logout_url(&world, &[("client_id", &app), ("state", "a")])
    );
    assert_page(browser.get(&twice).await, 400).await;
    assert!(session_is_live(&world, &mut browser, &app).await);

    // Past its exp (the ID token lives an hour), the hint still says who the app saw.
    world
        .app
        .clock
        .advance(world.app.settings.tokens.id_token_ttl_secs + 1);
    let url = logout_url(
        &world,
        &[
            ("id_token_hint", &hint),
            ("post_logout_redirect_uri", SIGNED_OUT),
        ],
    );
    let response = browser.get(&url).await;
    assert_eq!(response.status(), 303);
    assert!(forgets_the_session(&response));
    world.app.stop().await;
}

#[tokio::test]
async fn with_no_session_logout_goes_straight_on() {
    let world = world().await;
    let app = world.client("App", app_spec(None)).await;
    let mut stranger = HttpBrowser::for_pages();
    let url = logout_url(
        &world,
        &[
            ("client_id", &app),
            ("post_logout_redirect_uri", SIGNED_OUT),
            ("state", "s-3"),
        ],
    );
    let response = stranger.get(&url).await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), format!("{SIGNED_OUT}?state=s-3"));

    let html = assert_page(stranger.get(&world.app.url("/logout")).await, 200).await;
    assert!(html.contains("You are signed out."), "{html}");
    // A cookie for no live session is no session either.
    stranger
        .cookies
        .insert(SESSION_COOKIE.into(), "made-up".into());
    let response = stranger.get(&url).await;
    assert_eq!(response.status(), 303);
    assert!(forgets_the_session(&response));
    world.app.stop().await;
}

#[tokio::test]
async fn the_sessions_refresh_families_end_with_it_and_an_offline_access_one_lives_on() {
    let world = world().await;
    let app = world.client("App", app_spec(None)).await;
    let mut browser = HttpBrowser::for_pages();
    let online = signed_in(&world, &mut browser, &app).await;
    let silent = browser
        .get(&world.authorize_url(&app, &[("scope", "openid offline_access")]))
        .await;
    let offline = world.exchange(&app, &World::code_of(&silent)).await;

    let url = logout_url(&world, &[("id_token_hint", &id_token(&online))]);
    assert_page(browser.get(&url).await, 200).await;

    let refresh = |token: Value| {
        let (client, url) = (world.app.client.clone(), world.app.url("/token"));
        let app = app.clone();
        async move {
            client
                .post(url)
                .form(&[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", token.as_str().expect("a refresh token")),
                    ("client_id", &app),
                ])
                .send()
                .await
                .expect("request")
        }
    };
    let ended = refresh(online["refresh_token"].clone()).await;
    assert_eq!(ended.status(), 400);
    let body: Value = ended.json().await.expect("json");
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(
        refresh(offline["refresh_token"].clone()).await.status(),
        200
    );
    world.app.stop().await;
}

#[tokio::test]
async fn a_back_channel_logout_token_reaches_the_app_and_verifies_with_tessera_verify() {
    let world = world().await;
    let receiver = LogoutReceiver::start().await;
    let unused_receiver = LogoutReceiver::start().await;
    let app = world.client("App", app_spec(Some(&receiver))).await;
    let deaf = world.client("Deaf", app_spec(None)).await;
    let elsewhere = world
        .client("Elsewhere", app_spec(Some(&unused_receiver)))
        .await;
    let mut browser = HttpBrowser::for_pages();
    let tokens = signed_in(&world, &mut browser, &app).await;
    let id = claims_of(&id_token(&tokens));
    assert!(session_is_live(&world, &mut browser, &deaf).await);

    let url = logout_url(&world, &[("id_token_hint", &id_token(&tokens))]);
    assert_page(browser.get(&url).await, 200).await;

    let rows = wait_until_sent(&world.app, 1).await;
    let received = receiver.received();
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(received[0].method, "POST");
    assert_eq!(
        received[0].content_type.as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    let token = received[0].logout_token.clone().expect("a logout_token");
    assert_eq!(header_of(&token)["typ"], "logout+jwt");
    let claims = logout_verifier(&world, &app)
        .verify_logout_token(&token)
        .await
        .expect("a valid logout token");
    assert_eq!(claims.iss, world.app.issuer);
    assert!(claims.aud.contains(&app));
    assert_eq!(claims.sub.as_deref(), Some(world.user_id.as_str()));
    assert_eq!(claims.sid.as_deref(), id["sid"].as_str());
    assert_eq!(claims.jti, rows[0].id, "the message's id");
    assert_eq!(claims.exp - claims.iat, 120);
    assert_eq!(claims.nonce, None);
    // It is that app's and no other's.
    assert_eq!(
        logout_verifier(&world, &elsewhere)
            .verify_logout_token(&token)
            .await
            .expect_err("another app's"),
        VerifyError::WrongAudience
    );
    // Only the app that listens and got tokens in the session is told; the database never
    // held the token.
    assert_eq!(rows[0].recipient_lower, app);
    assert!(!rows[0].detail.clone().unwrap_or_default().contains("eyJ"));
    assert!(unused_receiver.received().is_empty());
    world.app.stop().await;
}

#[tokio::test]
async fn a_receiver_that_is_down_gets_the_token_once_it_is_back() {
    let world = world().await;
    let receiver = LogoutReceiver::down().await;
    let app = world.client("App", app_spec(Some(&receiver))).await;
    let mut browser = HttpBrowser::for_pages();
    let tokens = signed_in(&world, &mut browser, &app).await;
    let url = logout_url(&world, &[("id_token_hint", &id_token(&tokens))]);
    assert_page(browser.get(&url).await, 200).await;

    let failed = wait_for_a_failed_attempt(&world.app).await;
    assert_eq!(failed.attempts, 1);
    receiver.up().await;
    world.app.clock.advance(1);

    let rows = wait_until_sent(&world.app, 1).await;
    assert_eq!(rows[0].attempts, 2);
    let tokens = receiver.tokens();
    assert_eq!(tokens.len(), 1, "delivered once");
    let claims = logout_verifier(&world, &app)
        .verify_logout_token(&tokens[0])
        .await
        .expect("valid");
    assert_eq!(claims.jti, rows[0].id);
    world.app.stop().await;
}

#[tokio::test]
async fn a_receiver_answering_500_gets_the_same_token_id_again_until_it_takes_it() {
    let world = world().await;
    let receiver = LogoutReceiver::start().await;
    receiver.answer_with(500);
    let app = world.client("App", app_spec(Some(&receiver))).await;
    let mut browser = HttpBrowser::for_pages();
    let tokens = signed_in(&world, &mut browser, &app).await;
    let url = logout_url(&world, &[("id_token_hint", &id_token(&tokens))]);
    assert_page(browser.get(&url).await, 200).await;

    let failed = wait_for_a_failed_attempt(&world.app).await;
    assert!(
        failed
            .last_error
            .as_deref()
            .unwrap_or_default()
            .contains("500"),
        "{failed:?}"
    );
    receiver.answer_with(200);
    world.app.clock.advance(1);

    let rows = wait_until_sent(&world.app, 1).await;
    let tokens = receiver.tokens();
    assert_eq!(tokens.len(), 2, "the refused attempt and the accepted one");
    let verifier = logout_verifier(&world, &app);
    let mut jtis = BTreeSet::new();
    for token in &tokens {
        jtis.insert(
            verifier
                .verify_logout_token(token)
                .await
                .expect("valid")
                .jti,
        );
    }
    assert_eq!(jtis, BTreeSet::from([rows[0].id.clone()]), "one jti");
    assert_eq!(rows[0].attempts, 2);
    world.app.stop().await;
}

#[tokio::test]
async fn a_slow_receiver_does_not_slow_the_logout() {
    let world = world().await;
    let receiver = LogoutReceiver::start().await;
    receiver.hold();
    let app = world.client("App", app_spec(Some(&receiver))).await;
    let mut browser = HttpBrowser::for_pages();

    // The sender waits up to backchannel.timeout_secs (5 s) for an answer; the logout does
    // not wait at all, even while the sender is stuck with the previous logout's delivery.
    for round in 0..2 {
        let tokens = signed_in(&world, &mut browser, &app).await;
        let url = logout_url(&world, &[("id_token_hint", &id_token(&tokens))]);
        let response = tokio::time::timeout(Duration::from_secs(3), browser.get(&url))
            .await
            .unwrap_or_else(|_| panic!("logout {round} waited for the app"));
        assert!(forgets_the_session(&response));
        eventually(DEADLINE, "a delivery held by the slow app", || async {
            receiver.held() == 1
        })
        .await;
    }
    receiver.release();
    let rows = wait_until_sent(&world.app, 2).await;
    assert_ne!(rows[0].id, rows[1].id);
    assert_eq!(receiver.tokens().len(), 2);
    world.app.stop().await;
}

#[tokio::test]
async fn logout_everywhere_tells_the_apps_of_every_browser_session() {
    let world = world().await;
    let receiver = LogoutReceiver::start().await;
    let app = world.client("App", app_spec(Some(&receiver))).await;
    let mut sids = BTreeSet::new();
    for _ in 0..2 {
        let mut browser = HttpBrowser::for_pages();
        let tokens = signed_in(&world, &mut browser, &app).await;
        sids.insert(claims_of(&id_token(&tokens))["sid"].to_string());
    }
    assert_eq!(sids.len(), 2, "two browsers, two sessions");

    let first_party = world.app.first_party_client().await;
    let login = world
        .app
        .password_login((&first_party.0, &first_party.1), EMAIL, PASSWORD, "account")
        .await;
    let account: Value = login.json().await.expect("json");
    let response = world
        .app
        .client
        .post(world.app.url("/logout-everywhere"))
        .bearer_auth(account["access_token"].as_str().expect("token"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);

    wait_until_sent(&world.app, 2).await;
    let verifier = logout_verifier(&world, &app);
    let mut told = BTreeSet::new();
    for token in receiver.tokens() {
        let claims = verifier.verify_logout_token(&token).await.expect("valid");
        assert_eq!(claims.sub.as_deref(), Some(world.user_id.as_str()));
        told.insert(Value::from(claims.sid.expect("sid")).to_string());
    }
    assert_eq!(told, sids);
    world.app.stop().await;
}

#[tokio::test]
async fn discovery_lists_the_end_session_endpoint_and_back_channel_logout() {
    let world = World::new().await;
    for path in [
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
    ] {
        let doc: Value = world.app.get(path).await.json().await.expect("json");
        assert_eq!(
            doc["end_session_endpoint"],
            world.app.url("/logout"),
            "{path}"
        );
        assert_eq!(doc["backchannel_logout_supported"], true, "{path}");
        assert_eq!(doc["backchannel_logout_session_supported"], true, "{path}");
    }
    let doc: Value = world
        .app
        .get("/.well-known/openid-configuration")
        .await
        .json()
        .await
        .expect("json");
    for claim in ["sid", "auth_time", "amr"] {
        assert!(
            doc["claims_supported"]
                .as_array()
                .expect("a list")
                .contains(&Value::from(claim)),
            "{claim}"
        );
    }
    world.app.stop().await;
}
