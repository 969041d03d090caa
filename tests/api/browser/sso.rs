//! Single sign-on in Chromium (issue 16): one sign-in at Tessera serves a second app with no
//! page, the session cookie stays out of every script's reach, "Keep me signed in" decides
//! whether it outlives the browser, a cookie planted before the sign-in is not the one after
//! it, and a third-party app's consent page lets the person allow or deny. Every page and
//! redirect on the way is checked for console errors: a CSP that blocked the consent form's
//! redirect to the app would show only there.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tessera::clients::ClientSpec;

use super::{Browser, DEADLINE, Site};
use crate::testkit::{PASSWORD, VERIFIER, claims_of, pkce_challenge, query_of};
use crate::testkit::{TestApp, TestEnv};

const EMAIL: &str = "ann@example.com";
const APP_PAGE: &str = "<!doctype html><title>App</title><p>Back in the app.</p>";
const SESSION_COOKIE: &str = "tessera_session";

/// Tessera and a person who can sign in.
struct World {
    app: TestApp,
    _env: TestEnv,
}

/// An app on its own origin, registered at Tessera with that origin's redirect URI.
struct App {
    site: Site,
    client_id: String,
    /// The `state` its requests carry.
    state: String,
}

impl World {
    async fn new() -> World {
        let env = TestEnv::new();
        let app = env.spawn().await;
        app.create_user(EMAIL, PASSWORD, &[]).await;
        World { app, _env: env }
    }

    /// A public code-flow app named `name`; `spec` may make it third-party.
    async fn register(&self, name: &str, spec: ClientSpec) -> App {
        let site = Site::start(APP_PAGE).await;
        let client_id = self
            .app
            .create_client(ClientSpec {
                name: name.into(),
                public: true,
                grant_types: vec!["authorization_code".into(), "refresh_token".into()],
                redirect_uris: vec![callback(&site)],
                scopes: ["openid", "email", "profile"].map(String::from).to_vec(),
                ..spec
            })
            .await
            .0;
        App {
            site,
            client_id,
            state: format!("state-of-{}", name.to_lowercase().replace(' ', "-")),
        }
    }

    fn authorize_url(&self, app: &App, extra: &[(&str, &str)]) -> String {
        let challenge = pkce_challenge(VERIFIER);
        let mut query = form_urlencoded::Serializer::new(String::new());
        query
            .append_pair("response_type", "code")
            .append_pair("client_id", &app.client_id)
            .append_pair("redirect_uri", &callback(&app.site))
            .append_pair("scope", "openid email")
            .append_pair("state", &app.state)
            .append_pair("nonce", "browser-nonce")
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        for (name, value) in extra {
            query.append_pair(name, value);
        }
        format!("{}?{}", self.app.url("/authorize"), query.finish())
    }

    /// The ID token's claims that `code` buys `app`.
    async fn id_claims(&self, app: &App, code: &str) -> Value {
        let response = self
            .app
            .client
            .post(self.app.url("/token"))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", callback(&app.site).as_str()),
                ("client_id", app.client_id.as_str()),
                ("code_verifier", VERIFIER),
            ])
            .send()
            .await
            .expect("token request");
        assert_eq!(response.status(), 200, "the code buys tokens");
        let tokens: Value = response.json().await.expect("json");
        claims_of(tokens["id_token"].as_str().expect("an ID token"))
    }

    async fn stop(self, apps: Vec<App>) {
        for app in apps {
            app.site.stop().await;
        }
        self.app.stop().await;
    }
}

fn callback(site: &Site) -> String {
    format!("{}/callback", site.origin)
}

/// Types the credentials, ticks "Keep me signed in" if asked, and clicks the button.
async fn sign_in(browser: &Browser, remember: bool) {
    browser.type_into("#email", EMAIL).await;
    browser.type_into("#password", PASSWORD).await;
    if remember {
        browser.click("#remember").await;
    }
    browser.click("button[type=submit]").await;
}

/// Waits for the app's `nth` request (from 1), failing early on a console error (a blocked
/// redirect shows only there); returns its query parameters, after checking the state.
async fn app_hears(browser: &mut Browser, app: &App, nth: usize) -> Vec<(String, String)> {
    let started = Instant::now();
    let request = loop {
        if let Some(request) = app.site.requests().get(nth - 1) {
            break request.clone();
        }
        let errors = browser.console_errors().await;
        assert!(
            errors.is_empty(),
            "the browser never reached the app; its console: {errors:#?}"
        );
        assert!(
            started.elapsed() < DEADLINE,
            "the browser never reached the app; it is at {}",
            browser.current_url().await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(request.starts_with("/callback?"), "{request}");
    let query = query_of(&request);
    assert_eq!(query.get("state"), Some(&app.state), "{request}");
    browser.wait_for_url(&callback(&app.site)).await;
    assert!(browser.text().await.contains("Back in the app."));
    let mut pairs: Vec<(String, String)> = query.into_iter().collect();
    pairs.sort();
    pairs
}

fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn code_in(pairs: &[(String, String)]) -> String {
    param(pairs, "code")
        .unwrap_or_else(|| panic!("no code in {pairs:?}"))
        .to_string()
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64
}

/// Opens a Tessera page that is shown even with a session (the login page under
/// `prompt=login`), so that the cookies read are Tessera's, as its own scripts would see them.
async fn open_tessera_page(browser: &Browser, world: &World, app: &App) {
    browser
        .open(&world.authorize_url(app, &[("prompt", "login")]))
        .await;
    browser.find("#password").await;
}

/// Signed in to app A (typing, clicking, "Keep me signed in" left unticked), app B's
/// `/authorize` sends the browser straight back to app B with a code, no page in between, and
/// both ID tokens name one session. The session cookie is HttpOnly, SameSite=Lax, ends with the
/// browser (no expiry), and `document.cookie` on Tessera's page does not show it.
#[tokio::test]
async fn browser_signed_in_to_app_a_app_b_gets_a_code_with_no_page_and_scripts_cannot_read_the_cookie()
 {
    let world = World::new().await;
    let app_a = world.register("App A", ClientSpec::default()).await;
    let app_b = world.register("App B", ClientSpec::default()).await;
    let mut browser = Browser::start().await;

    browser.open(&world.authorize_url(&app_a, &[])).await;
    browser.find("#password").await;
    assert!(browser.text().await.contains("to continue to App A"));
    browser
        .assert_no_console_errors("on opening the login page")
        .await;
    sign_in(&browser, false).await;
    let back_a = app_hears(&mut browser, &app_a, 1).await;
    let id_a = world.id_claims(&app_a, &code_in(&back_a)).await;

    // App B: the browser goes to Tessera and lands back at B with a code, with no page to
    // answer in between (a login or consent page would leave it at Tessera, and B unvisited).
    browser.open(&world.authorize_url(&app_b, &[])).await;
    let back_b = app_hears(&mut browser, &app_b, 1).await;
    assert_eq!(
        app_b.site.requests().len(),
        1,
        "{:?}",
        app_b.site.requests()
    );
    let id_b = world.id_claims(&app_b, &code_in(&back_b)).await;
    assert_eq!(id_a["sub"], id_b["sub"]);
    assert!(id_a["sid"].is_string(), "{id_a}");
    assert_eq!(id_a["sid"], id_b["sid"], "one session serves both apps");
    assert_eq!(id_a["auth_time"], id_b["auth_time"], "no second sign-in");
    assert_eq!(id_b["aud"], app_b.client_id.as_str());
    browser
        .assert_no_console_errors("through the sign-in and both redirects")
        .await;

    open_tessera_page(&browser, &world, &app_a).await;
    let cookies = browser.cookies().await;
    let session = cookies
        .iter()
        .find(|c| c.name == SESSION_COOKIE)
        .unwrap_or_else(|| panic!("no session cookie: {cookies:?}"));
    assert!(session.http_only, "{session:?}");
    assert_eq!(session.same_site.as_deref(), Some("Lax"), "{session:?}");
    assert_eq!(session.path, "/");
    assert_eq!(
        session.expires, None,
        "unticked: a browser-session cookie: {session:?}"
    );
    assert!(session.value.len() >= 32, "{session:?}");
    let visible = browser.script_cookies().await;
    assert!(
        !visible.contains(SESSION_COOKIE) && !visible.contains(&session.value),
        "document.cookie shows the session cookie: {visible}"
    );
    browser
        .assert_no_console_errors("on Tessera's page while signed in")
        .await;

    browser.close().await;
    world.stop(vec![app_a, app_b]).await;
}

/// Fixation and "Keep me signed in": a `tessera_session` cookie planted in the browser before
/// the sign-in (as a script on a sibling page could) is replaced by another value; ticked, the
/// cookie lives as long as the session's absolute lifetime. A second sign-in (`prompt=login`)
/// rotates the value again and, unticked, makes it a browser-session cookie.
#[tokio::test]
async fn browser_a_planted_session_cookie_is_replaced_and_keep_me_signed_in_persists_it() {
    let world = World::new().await;
    let app = world.register("Notes", ClientSpec::default()).await;
    let mut browser = Browser::start().await;

    browser.open(&world.authorize_url(&app, &[])).await;
    browser.find("#password").await;
    let planted = "planted-by-an-attacker-0123456789abcdef";
    browser
        .script(&format!(
            "document.cookie = '{SESSION_COOKIE}={planted}; path=/; SameSite=Lax'; return true"
        ))
        .await;
    let before = browser.cookie(SESSION_COOKIE).await;
    assert_eq!(
        before.as_ref().map(|c| c.value.as_str()),
        Some(planted),
        "the browser holds the planted cookie: {before:?}"
    );

    sign_in(&browser, true).await;
    let back = app_hears(&mut browser, &app, 1).await;
    let first = world.id_claims(&app, &code_in(&back)).await;

    open_tessera_page(&browser, &world, &app).await;
    let kept = browser
        .cookie(SESSION_COOKIE)
        .await
        .expect("a session cookie");
    assert_ne!(
        kept.value, planted,
        "the planted value survived the sign-in"
    );
    assert!(kept.value.len() >= 32, "{kept:?}");
    assert!(kept.http_only, "{kept:?}");
    let lifetime = world.app.settings.sessions.absolute_ttl_secs;
    let expires = kept
        .expires
        .unwrap_or_else(|| panic!("ticked: a persistent cookie: {kept:?}"));
    let expected = unix_now() + lifetime;
    assert!(
        (expected - 300..=expected + 5).contains(&expires),
        "expires at {expires}, expected about {expected} (now + {lifetime} s)"
    );

    // Signing in again on the page shown rotates the secret; unticked, the cookie now ends
    // with the browser.
    sign_in(&browser, false).await;
    let back = app_hears(&mut browser, &app, 2).await;
    let second = world.id_claims(&app, &code_in(&back)).await;
    assert_eq!(first["sid"], second["sid"], "the same session, renewed");
    open_tessera_page(&browser, &world, &app).await;
    let renewed = browser
        .cookie(SESSION_COOKIE)
        .await
        .expect("a session cookie");
    assert_ne!(renewed.value, kept.value, "a new sign-in, a new secret");
    assert_ne!(renewed.value, planted);
    assert_eq!(renewed.expires, None, "{renewed:?}");
    assert!(renewed.http_only, "{renewed:?}");
    browser
        .assert_no_console_errors("through both sign-ins")
        .await;

    browser.close().await;
    world.stop(vec![app]).await;
}

/// A third-party app: after the sign-in the consent page names the app and describes each
/// requested scope; Allow sends the app a code. A second third-party app, with the session
/// already there, gets its consent page at once (no login form); Deny sends it
/// `error=access_denied` with its state and no code. No console errors on any page or
/// redirect (the consent form's redirect to another origin must pass the page's CSP).
#[tokio::test]
async fn browser_third_party_consent_allow_gives_a_code_and_deny_gives_access_denied() {
    let world = World::new().await;
    let third_party = || ClientSpec {
        consent: Some("required".into()),
        ..ClientSpec::default()
    };
    let printer = world.register("Photo Printer", third_party()).await;
    let calendar = world.register("Calendar Sync", third_party()).await;
    let mut browser = Browser::start().await;

    browser.open(&world.authorize_url(&printer, &[])).await;
    sign_in(&browser, false).await;
    browser.find("#consent-allow").await;
    let page = browser.text().await;
    assert!(page.contains("Allow Photo Printer?"), "{page}");
    assert!(page.contains(EMAIL), "{page}");
    let scopes = browser
        .script("return [...document.querySelectorAll('#scopes li')].map(li => [li.dataset.scope, li.innerText]).sort()")
        .await;
    assert_eq!(
        scopes,
        serde_json::json!([
            ["email", "See your email address"],
            [
                "openid",
                "Know who you are on this site (your account identifier)"
            ],
        ]),
        "{page}"
    );
    assert!(
        printer.site.requests().is_empty(),
        "nothing reaches the app before the person allows it"
    );
    browser
        .assert_no_console_errors("on the login and consent pages")
        .await;

    browser.click("#consent-allow").await;
    let back = app_hears(&mut browser, &printer, 1).await;
    let id = world.id_claims(&printer, &code_in(&back)).await;
    assert_eq!(id["aud"], printer.client_id.as_str());

    browser.open(&world.authorize_url(&calendar, &[])).await;
    browser.find("#consent-deny").await;
    assert!(!browser.has("#password").await, "no login form: signed in");
    let page = browser.text().await;
    assert!(page.contains("Allow Calendar Sync?"), "{page}");
    browser.click("#consent-deny").await;
    let back = app_hears(&mut browser, &calendar, 1).await;
    assert_eq!(param(&back, "error"), Some("access_denied"), "{back:?}");
    assert_eq!(param(&back, "code"), None, "{back:?}");
    browser
        .assert_no_console_errors("through Allow, Deny and their redirects")
        .await;

    browser.close().await;
    world.stop(vec![printer, calendar]).await;
}
