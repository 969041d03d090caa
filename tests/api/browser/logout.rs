//! Logout in Chromium (OpenID Connect RP-Initiated Logout 1.0), as a person meets it: an app
//! that sends the browser to `/logout` with its ID token as the hint comes back signed out with
//! its state; without a hint the "Sign out?" page asks first, and its button ends the session
//! and goes on to the app's registered address or the "You are signed out" page. Either way
//! the session cookie leaves the browser's jar and the session is over at Tessera (its old
//! cookie, replayed, gets `login_required`). A hostile page on another origin, linking to
//! `/logout` or posting forms at it, signs nobody out. The pages are checked for console
//! errors: a CSP that blocked the confirmation form's redirect to the app shows only there.

use std::time::{Duration, Instant};

use serde_json::Value;
use tessera::clients::ClientSpec;

use super::{Browser, DEADLINE, Site};
use crate::testkit::http::HttpBrowser;
use crate::testkit::{PASSWORD, VERIFIER, claims_of, location, pkce_challenge, query_of};
use crate::testkit::{TestApp, TestEnv};

const EMAIL: &str = "ann@example.com";
const APP_PAGE: &str = "<!doctype html><title>Notes</title><p>Back in the app.</p>";
const SESSION_COOKIE: &str = "tessera_session";
const LOGOUT_CSRF_COOKIE: &str = "tessera_logout_csrf";
const STATE: &str = "st-login";

/// Tessera, a person who can sign in, and an app on its own origin that registered
/// `/callback` to come back to after a sign-in and `/signed-out` after a logout.
struct World {
    app: TestApp,
    site: Site,
    client_id: String,
    _env: TestEnv,
}

impl World {
    async fn new() -> World {
        let env = TestEnv::new();
        let app = env.spawn().await;
        app.create_user(EMAIL, PASSWORD, &[]).await;
        let site = Site::start(APP_PAGE).await;
        let client_id = app
            .create_client(ClientSpec {
                name: "Notes".into(),
                public: true,
                grant_types: vec!["authorization_code".into(), "refresh_token".into()],
                redirect_uris: vec![format!("{}/callback", site.origin)],
                post_logout_redirect_uris: vec![format!("{}/signed-out", site.origin)],
                scopes: ["openid", "email", "profile"].map(String::from).to_vec(),
                ..ClientSpec::default()
            })
            .await
            .0;
        World {
            app,
            site,
            client_id,
            _env: env,
        }
    }

    fn callback(&self) -> String {
        format!("{}/callback", self.site.origin)
    }

    fn signed_out_uri(&self) -> String {
        format!("{}/signed-out", self.site.origin)
    }

    fn authorize_url(&self, extra: &[(&str, &str)]) -> String {
        let challenge = pkce_challenge(VERIFIER);
        let mut query = form_urlencoded::Serializer::new(String::new());
        query
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", &self.callback())
            .append_pair("scope", "openid email")
            .append_pair("state", STATE)
            .append_pair("nonce", "browser-nonce")
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        for (name, value) in extra {
            query.append_pair(name, value);
        }
        format!("{}?{}", self.app.url("/authorize"), query.finish())
    }

    fn logout_url(&self, params: &[(&str, &str)]) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (name, value) in params {
            query.append_pair(name, value);
        }
        match query.finish() {
            query if query.is_empty() => self.app.url("/logout"),
            query => format!("{}?{query}", self.app.url("/logout")),
        }
    }

    /// The token response that `code` buys the app.
    async fn tokens(&self, code: &str) -> Value {
        let response = self
            .app
            .client
            .post(self.app.url("/token"))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", self.callback().as_str()),
                ("client_id", self.client_id.as_str()),
                ("code_verifier", VERIFIER),
            ])
            .send()
            .await
            .expect("token request");
        assert_eq!(response.status(), 200, "the code buys tokens");
        response.json().await.expect("json")
    }

    /// Whether a session cookie value still stands at Tessera, asked outside the browser:
    /// `prompt=none` with it gets a code, or `login_required`.
    async fn session_stands(&self, cookie: &str) -> bool {
        let mut replay = HttpBrowser::for_pages();
        replay
            .cookies
            .insert(SESSION_COOKIE.into(), cookie.to_string());
        let response = replay.get(&self.authorize_url(&[("prompt", "none")])).await;
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

    async fn stop(self) {
        self.site.stop().await;
        self.app.stop().await;
    }
}

/// Types the credentials and clicks the button, as a person would.
async fn sign_in(browser: &Browser) {
    browser.type_into("#email", EMAIL).await;
    browser.type_into("#password", PASSWORD).await;
    browser.click("button[type=submit]").await;
}

/// Waits until `site` has had `count` requests, failing early on a console error (a blocked
/// redirect shows only there); returns the last, after the browser shows it.
async fn site_hears(browser: &mut Browser, site: &Site, count: usize) -> String {
    let started = Instant::now();
    let request = loop {
        if let Some(request) = site.requests().get(count - 1) {
            break request.clone();
        }
        let errors = browser.console_errors().await;
        assert!(
            errors.is_empty(),
            "the browser never reached the app; its console: {errors:#?}"
        );
        assert!(
            started.elapsed() < DEADLINE,
            "the browser never reached the app; it is at {}; the app heard {:?}",
            browser.current_url().await,
            site.requests()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    browser
        .wait_for_url(&format!("{}{request}", site.origin))
        .await;
    assert!(browser.text().await.contains("Back in the app."));
    request
}

/// Signs in through the login page in the browser; the app's tokens and the session cookie's
/// value as the browser holds it.
async fn signed_in(browser: &mut Browser, world: &World) -> (Value, String) {
    let before = world.site.requests().len();
    browser.open(&world.authorize_url(&[])).await;
    browser.find("#password").await;
    sign_in(browser).await;
    let back = site_hears(browser, &world.site, before + 1).await;
    assert!(back.starts_with("/callback?"), "{back}");
    let query = query_of(&back);
    assert_eq!(query.get("state").map(String::as_str), Some(STATE));
    let tokens = world.tokens(&query["code"]).await;
    let cookie = browser
        .cookie(SESSION_COOKIE)
        .await
        .unwrap_or_else(|| panic!("signed in, the browser holds a session cookie"));
    assert!(world.session_stands(&cookie.value).await);
    (tokens, cookie.value)
}

/// No session in the browser: the app's `/authorize` shows the login page, and the browser
/// holds no session cookie.
async fn assert_signed_out(browser: &mut Browser, world: &World) {
    let before = world.site.requests().len();
    browser.open(&world.authorize_url(&[])).await;
    browser.find("#password").await;
    assert!(browser.text().await.contains("to continue to Notes"));
    assert_eq!(
        world.site.requests().len(),
        before,
        "no code without a session"
    );
    let cookies = browser.cookies().await;
    assert!(
        cookies.iter().all(|c| c.name != SESSION_COOKIE),
        "the session cookie is still in the jar: {cookies:?}"
    );
}

/// The app sends the browser to `/logout` with its ID token as `id_token_hint`, its
/// registered post-logout address and a state: no page, the app's site receives the browser
/// with `state=s`, the cookie is gone from the jar, the old cookie value is worth nothing at
/// Tessera, and the app's next `/authorize` shows the login page.
#[tokio::test]
async fn browser_logout_with_the_apps_id_token_returns_to_the_app_with_its_state_and_ends_the_session()
 {
    let world = World::new().await;
    let mut browser = Browser::start().await;
    let (tokens, cookie) = signed_in(&mut browser, &world).await;
    let id_token = tokens["id_token"].as_str().expect("an ID token");

    let heard = world.site.requests().len();
    browser
        .open(&world.logout_url(&[
            ("id_token_hint", id_token),
            ("post_logout_redirect_uri", &world.signed_out_uri()),
            ("state", "s"),
        ]))
        .await;
    let back = site_hears(&mut browser, &world.site, heard + 1).await;
    assert_eq!(back, "/signed-out?state=s");
    assert!(
        browser.cookie(SESSION_COOKIE).await.is_none(),
        "the browser forgot the session cookie"
    );
    assert!(
        !world.session_stands(&cookie).await,
        "the session ended at Tessera, not only in the jar"
    );
    assert_signed_out(&mut browser, &world).await;
    browser
        .assert_no_console_errors("through the sign-in, the logout and the login page")
        .await;

    browser.close().await;
    world.stop().await;
}

/// Without a hint (a plain link at the app, naming itself and its registered address):
/// "Sign out?" names the app and the person and ends nothing by being shown; its button ends
/// the session and lands on the registered address with the state. The form's CSRF cookie and
/// the session cookie leave the jar. No console errors on the page or through its redirect.
#[tokio::test]
async fn browser_logout_without_a_hint_asks_first_and_its_button_signs_out_to_the_registered_uri() {
    let world = World::new().await;
    let mut browser = Browser::start().await;
    let (_, cookie) = signed_in(&mut browser, &world).await;

    let heard = world.site.requests().len();
    browser
        .open(&world.logout_url(&[
            ("client_id", &world.client_id),
            ("post_logout_redirect_uri", &world.signed_out_uri()),
            ("state", "s"),
        ]))
        .await;
    browser.find("#logout-confirm").await;
    let page = browser.text().await;
    assert!(page.contains("Sign out?"), "{page}");
    assert!(page.contains("Notes asks to sign you out"), "{page}");
    assert!(page.contains(EMAIL), "{page}");
    assert!(
        world.session_stands(&cookie).await,
        "showing the question ends nothing"
    );
    assert!(browser.cookie(SESSION_COOKIE).await.is_some());
    let csrf = browser
        .cookie(LOGOUT_CSRF_COOKIE)
        .await
        .expect("the form's CSRF cookie");
    assert!(csrf.http_only, "{csrf:?}");
    assert_eq!(csrf.same_site.as_deref(), Some("Strict"), "{csrf:?}");
    browser
        .assert_no_console_errors("on the confirmation page")
        .await;

    browser.click("#logout-confirm").await;
    let back = site_hears(&mut browser, &world.site, heard + 1).await;
    assert_eq!(back, "/signed-out?state=s");
    assert!(!world.session_stands(&cookie).await, "the session ended");
    let jar = browser.cookies().await;
    assert!(
        jar.iter()
            .all(|c| c.name != SESSION_COOKIE && c.name != LOGOUT_CSRF_COOKIE),
        "{jar:?}"
    );
    browser
        .assert_no_console_errors("through the confirmation's redirect to the app")
        .await;
    assert_signed_out(&mut browser, &world).await;

    browser.close().await;
    world.stop().await;
}

/// A bare `/logout` (no hint, no app, no address): "Sign out?" without an app's name, and its
/// button shows "You are signed out" at Tessera, with no console errors on either page.
#[tokio::test]
async fn browser_bare_logout_asks_first_and_its_button_shows_the_signed_out_page() {
    let world = World::new().await;
    let mut browser = Browser::start().await;
    let (_, cookie) = signed_in(&mut browser, &world).await;

    browser.open(&world.logout_url(&[])).await;
    browser.find("#logout-confirm").await;
    let page = browser.text().await;
    assert!(page.contains("Sign out?"), "{page}");
    assert!(!page.contains("asks to sign you out"), "{page}");
    assert!(page.contains(EMAIL), "{page}");
    browser
        .assert_no_console_errors("on the confirmation page")
        .await;

    let heard = world.site.requests().len();
    browser.click("#logout-confirm").await;
    browser
        .wait_until("the signed-out page", || async {
            browser.text().await.contains("You are signed out")
        })
        .await;
    assert!(
        browser
            .current_url()
            .await
            .starts_with(&world.app.url("/logout/confirm")),
        "{}",
        browser.current_url().await
    );
    assert_eq!(world.site.requests().len(), heard, "nowhere to go back to");
    assert!(browser.cookie(SESSION_COOKIE).await.is_none());
    assert!(!world.session_stands(&cookie).await, "the session ended");
    browser
        .assert_no_console_errors("on the signed-out page")
        .await;
    assert_signed_out(&mut browser, &world).await;

    browser.close().await;
    world.stop().await;
}

/// A page for another origin that auto-submits a form of `fields` to `action` at Tessera.
fn auto_submit(action: &str, fields: &[(&str, &str)]) -> String {
    let inputs: String = fields
        .iter()
        .map(|(name, value)| format!("<input type=\"hidden\" name=\"{name}\" value=\"{value}\">"))
        .collect();
    format!(
        "<!doctype html><title>Win a prize</title>\
         <form method=\"post\" action=\"{action}\">{inputs}</form>\
         <script>document.forms[0].submit()</script>"
    )
}

/// Hostile pages on other origins: a link to a bare `/logout` only gets the question asked;
/// a form auto-submitted at `/logout/confirm` (with the session's real `sid`, which an app
/// learns from its ID token, and a made-up CSRF token, while the browser holds a logout CSRF
/// cookie of its own) is refused; a form auto-submitted at `/logout` without a hint gets the
/// question too. Afterwards the person's `/authorize` still gets a code with no page, in the
/// same session.
#[tokio::test]
async fn browser_hostile_pages_on_another_origin_cannot_sign_the_person_out() {
    let world = World::new().await;
    let mut browser = Browser::start().await;
    let (tokens, cookie) = signed_in(&mut browser, &world).await;
    let sid = claims_of(tokens["id_token"].as_str().expect("an ID token"))["sid"]
        .as_str()
        .expect("a sid")
        .to_string();

    // A link on a hostile page, clicked: the question, nothing ended.
    let link = Site::start(&format!(
        "<!doctype html><title>Win a prize</title><a id=\"go\" href=\"{}\">Claim</a>",
        world.logout_url(&[])
    ))
    .await;
    browser.open(&format!("{}/prize", link.origin)).await;
    browser.click("#go").await;
    browser.find("#logout-confirm").await;
    assert!(world.session_stands(&cookie).await, "a link ends nothing");
    assert!(
        browser.cookie(LOGOUT_CSRF_COOKIE).await.is_some(),
        "the question set its CSRF cookie"
    );

    // A form posted at the confirmation's action: refused, nothing ended.
    let forged = Site::start(&auto_submit(
        &world.app.url("/logout/confirm"),
        &[
            ("sid", &sid),
            ("csrf_token", "forged-by-the-attacker"),
            ("client_id", &world.client_id),
        ],
    ))
    .await;
    browser.open(&format!("{}/prize", forged.origin)).await;
    browser
        .wait_until("Tessera's answer to the forged form", || async {
            browser.text().await.contains("did not come from this site")
        })
        .await;
    assert!(
        browser
            .current_url()
            .await
            .starts_with(&world.app.url("/logout/confirm"))
    );
    assert!(
        world.session_stands(&cookie).await,
        "a forged confirmation ends nothing"
    );

    // A form posted at /logout without a hint: the question again, nothing ended.
    let posted = Site::start(&auto_submit(
        &world.app.url("/logout"),
        &[("client_id", &world.client_id)],
    ))
    .await;
    browser.open(&format!("{}/prize", posted.origin)).await;
    browser
        .wait_until("the question after the posted form", || async {
            browser.has("#logout-confirm").await
        })
        .await;
    assert!(
        world.session_stands(&cookie).await,
        "a posted logout without a hint ends nothing"
    );

    // The person comes back to the app: a code, no page, the same session.
    let heard = world.site.requests().len();
    browser.open(&world.authorize_url(&[])).await;
    let back = site_hears(&mut browser, &world.site, heard + 1).await;
    assert_eq!(
        world.site.requests().len(),
        heard + 1,
        "{:?}",
        world.site.requests()
    );
    let query = query_of(&back);
    let again = world.tokens(&query["code"]).await;
    let claims = claims_of(again["id_token"].as_str().expect("an ID token"));
    assert_eq!(
        claims["sid"].as_str(),
        Some(sid.as_str()),
        "the same session"
    );
    assert_eq!(
        browser
            .cookie(SESSION_COOKIE)
            .await
            .map(|c| c.value)
            .as_deref(),
        Some(cookie.as_str())
    );

    browser.close().await;
    link.stop().await;
    forged.stop().await;
    posted.stop().await;
    world.stop().await;
}
