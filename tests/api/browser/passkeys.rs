//! Passkeys in Chromium (issue 17), with the WebDriver WebAuthn extension's virtual
//! authenticator (CTAP2, internal, resident keys, user verification): a person adds a passkey
//! on `/account/passkeys`, signs out, and at an app's `/authorize` signs in with the passkey
//! and no password; the code buys an ID token whose `amr` says a key was used.
//!
//! The attacker's side, with the browser's own cookies (CSRF cookie, session): the page's
//! `window.tesseraPasskey.answer` runs a ceremony without posting it, and the test posts the
//! answer with `fetch` to read the server's reply. The same answer posted again, the answer to
//! one challenge posted against another, a ceremony past its 5 minutes, a credential nobody
//! registered, and an assertion made for another relying party (a second Tessera on the same
//! database, at `other.localhost`) are each refused with a clear page, and write nothing: no
//! session, the passkey row as it was. A registration answered late or twice adds no passkey.
//! Bad assertions from one IP end in 429 with `Retry-After`, and a good passkey waits too. No
//! console errors on the way but the refusals' own (Chromium logs each 4xx it fetched).
//!
//! Tessera runs with `http://localhost:PORT` as its issuer: WebAuthn needs a domain for the
//! RP ID (an IP address has none), and `localhost` (like `*.localhost`, which Chromium sends to
//! loopback) is a secure context over plain http.

use std::net::SocketAddr;

use fantoccini::wd::WebDriverCompatibleCommand;
use serde_json::{Value, json};
use tessera::clients::ClientSpec;
use tessera::mfa::passkey::CEREMONY_TTL_SECS;
use tessera::mfa::passkey_store::PasskeyRow;

use super::{Browser, Site, free_port};
use crate::testkit::{PASSWORD, TestApp, TestEnv, VERIFIER, claims_of, pkce_challenge};

const EMAIL: &str = "pia@example.com";
const APP_PAGE: &str = "<!doctype html><title>App</title><p>Back in the app.</p>";

/// W3C WebAuthn §11.3: Add Virtual Authenticator.
#[derive(Debug)]
struct AddVirtualAuthenticator;

impl WebDriverCompatibleCommand for AddVirtualAuthenticator {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/webauthn/authenticator",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (reqwest::Method, Option<String>) {
        let body = json!({
            "protocol": "ctap2",
            "transport": "internal",
            "hasResidentKey": true,
            "hasUserVerification": true,
            "isUserConsenting": true,
            "isUserVerified": true,
        });
        (reqwest::Method::POST, Some(body.to_string()))
    }
}

struct World {
    app: TestApp,
    env: TestEnv,
    /// `http://localhost:PORT`: the issuer, and where the browser goes.
    base: String,
    user_id: String,
    site: Site,
    client_id: String,
}

/// The settings of a Tessera whose issuer is `http://HOST:PORT` on a free port.
fn settings_at(env: &TestEnv, host: &str) -> (tessera::config::Settings, String) {
    let port = free_port();
    let mut settings = env.settings();
    settings.server.bind = SocketAddr::from(([127, 0, 0, 1], port));
    let base = format!("http://{host}:{port}");
    settings.server.issuer = Some(base.clone());
    (settings, base)
}

impl World {
    async fn new() -> World {
        World::with(|_| {}).await
    }

    /// With the settings changed first (e.g. a lower throttle).
    async fn with(change: impl FnOnce(&mut tessera::config::Settings)) -> World {
        let env = TestEnv::new();
        let (mut settings, base) = settings_at(&env, "localhost");
        change(&mut settings);
        let app = env.spawn_with(settings).await;
        let user_id = app.create_user(EMAIL, PASSWORD, &[]).await;
        let site = Site::start(APP_PAGE).await;
        let client_id = app
            .create_client(ClientSpec {
                name: "Notes".into(),
                public: true,
                grant_types: vec!["authorization_code".into()],
                redirect_uris: vec![format!("{}/callback", site.origin)],
                scopes: ["openid", "email"].map(String::from).to_vec(),
                ..ClientSpec::default()
            })
            .await
            .0;
        World {
            app,
            env,
            base,
            user_id,
            site,
            client_id,
        }
    }

    /// A second Tessera on the same database (users, clients and passkeys shared), whose
    /// issuer, and so relying party, is `http://HOST:PORT`.
    async fn second_server(&self, host: &str) -> (TestApp, String) {
        let (settings, base) = settings_at(&self.env, host);
        (self.env.spawn_with(settings).await, base)
    }

    fn authorize_url(&self) -> String {
        self.authorize_url_at(&self.base)
    }

    fn authorize_url_at(&self, base: &str) -> String {
        let challenge = pkce_challenge(VERIFIER);
        let mut query = form_urlencoded::Serializer::new(String::new());
        query
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", &format!("{}/callback", self.site.origin))
            .append_pair("scope", "openid email")
            .append_pair("state", "pk-state")
            .append_pair("nonce", "pk-nonce")
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        format!("{base}/authorize?{}", query.finish())
    }

    async fn id_claims(&self, code: &str) -> Value {
        let response = self
            .app
            .client
            .post(self.app.url("/token"))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", &format!("{}/callback", self.site.origin)),
                ("client_id", self.client_id.as_str()),
                ("code_verifier", VERIFIER),
            ])
            .send()
            .await
            .expect("token request");
        assert_eq!(response.status(), 200, "the code buys tokens");
        let tokens: Value = response.json().await.expect("json");
        claims_of(tokens["id_token"].as_str().expect("an ID token"))
    }

    async fn passkey_rows(&self) -> Vec<(String, Option<i64>)> {
        self.passkeys()
            .await
            .into_iter()
            .map(|row| (row.name, row.last_used_at))
            .collect()
    }

    async fn passkeys(&self) -> Vec<PasskeyRow> {
        let user_id = self.user_id.clone();
        self.app
            .state
            .services
            .db
            .run(move |conn| tessera::mfa::passkey::list(conn, &user_id))
            .await
            .expect("passkeys")
    }

    /// What a sign-in or registration writes: the person's passkey rows whole (credential
    /// with its counter, flags, last use) and their sessions.
    async fn written(&self) -> Written {
        let user_id = self.user_id.clone();
        let sessions = self
            .app
            .query(move |conn| {
                use diesel::prelude::*;
                use tessera::db::schema::browser_sessions;
                browser_sessions::table
                    .filter(browser_sessions::user_id.eq(user_id))
                    .count()
                    .get_result::<i64>(conn)
            })
            .await;
        let passkeys = self
            .passkeys()
            .await
            .into_iter()
            .map(|row| {
                (
                    row.id,
                    row.credential,
                    row.backup_eligible,
                    row.last_used_at,
                )
            })
            .collect();
        Written { passkeys, sessions }
    }

    /// A password sign-in at `base`'s `/authorize`, for a session there.
    async fn sign_in_with_password(&self, browser: &Browser, base: &str) {
        browser.open(&self.authorize_url_at(base)).await;
        browser.type_into("#email", EMAIL).await;
        browser.type_into("#password", PASSWORD).await;
        browser.click("button.primary").await;
        browser.wait_for_url(&self.site.origin).await;
    }

    /// Adds a passkey named `name` on `base`'s account page, as a person does (the button).
    async fn add_passkey(&self, browser: &Browser, base: &str, name: &str) {
        browser.open(&format!("{base}/account/passkeys")).await;
        browser.type_into("#passkey-name", name).await;
        browser.click("#passkey-button").await;
        browser
            .wait_for_url(&format!("{base}/account/passkeys?added"))
            .await;
        assert!(browser.text().await.contains(name));
    }
}

/// What a sign-in could have written; equal before and after a refusal.
#[derive(Debug, Clone, PartialEq)]
struct Written {
    /// Each passkey's id, credential (public key, counter), backup flag and last use.
    passkeys: Vec<(String, String, i64, Option<i64>)>,
    sessions: i64,
}

const SIGN_IN_FORM: &str = "#passkey-sign-in";
const ADD_FORM: &str = "#passkey-add";
const SESSION_COOKIE: &str = "tessera_session";

/// Runs the page's ceremony for the form `arguments[0]` through `window.tesseraPasskey` (the
/// options fetched, the authenticator asked) and returns `{ok: {ceremony, answer}}` unposted.
/// With `arguments[1]`, the options fetch answers that JSON instead of the server: a page
/// that runs someone else's challenge.
const ANSWER_JS: &str = r#"
var done = arguments[arguments.length - 1];
var form = document.querySelector(arguments[0]);
var stub = arguments.length > 2 ? arguments[1] : null;
var real = window.fetch;
if (stub) {
  window.fetch = function () {
    return Promise.resolve(new Response(JSON.stringify(stub), {
      status: 200, headers: { "Content-Type": "application/json" } }));
  };
}
window.tesseraPasskey.answer(form).then(
  function (result) { window.fetch = real; done({ ok: result }); },
  function (e) { window.fetch = real; done({ error: String(e && e.name) + ": " + String(e && e.message) }); });
"#;

/// Posts the form `arguments[0]` with `ceremony` = `arguments[1]` and `credential` = the
/// JSON of `arguments[2]`, from the page (its cookies, its Origin), without following a
/// redirect; returns the status, the response type, the page's text and `Retry-After`.
const POST_JS: &str = r#"
var done = arguments[arguments.length - 1];
var form = document.querySelector(arguments[0]);
var data = new FormData(form);
data.set("ceremony", arguments[1]);
data.set("credential", JSON.stringify(arguments[2]));
fetch(form.action, { method: "POST", body: new URLSearchParams(data),
                     credentials: "same-origin", redirect: "manual" })
  .then(function (r) {
    return r.text().then(function (html) {
      var page = new DOMParser().parseFromString(html, "text/html");
      done({ ok: { status: r.status, type: r.type, retryAfter: r.headers.get("Retry-After"),
                   text: page.body ? page.body.textContent.replace(/\s+/g, " ") : "" } });
    });
  })
  .catch(function (e) { done({ error: String(e) }); });
"#;

/// The form `arguments[0]`'s options, as its own script would fetch them.
const OPTIONS_JS: &str = r#"
var done = arguments[arguments.length - 1];
var form = document.querySelector(arguments[0]);
fetch(form.dataset.options, { method: "POST", body: new URLSearchParams(new FormData(form)),
                              credentials: "same-origin", headers: { Accept: "application/json" } })
  .then(function (r) { return r.json(); })
  .then(function (body) { done({ ok: body }); }, function (e) { done({ error: String(e) }); });
"#;

/// A ceremony's secret and the authenticator's answer to it, as the page would post them.
#[derive(Debug, Clone)]
struct Answer {
    ceremony: String,
    answer: Value,
}

/// The server's reply to a post made from the page.
#[derive(Debug)]
struct Reply {
    status: u16,
    /// `opaqueredirect` for a redirect (a success), `basic` for a page.
    kind: String,
    text: String,
    retry_after: Option<String>,
}

impl Reply {
    fn redirected(&self) -> bool {
        self.kind == "opaqueredirect"
    }

    #[track_caller]
    fn assert_refused(&self, status: u16, message: &str) {
        assert_eq!(self.status, status, "{self:?}");
        assert!(self.text.contains(message), "{message:?} not in {self:?}");
    }
}

async fn run_async(browser: &Browser, script: &str, args: Vec<Value>) -> Value {
    let result = browser
        .client
        .execute_async(script, args)
        .await
        .expect("script");
    if let Some(error) = result.get("error") {
        panic!("in the page: {error}");
    }
    result["ok"].clone()
}

/// The page's ceremony for `form`, answered by the authenticator and not posted.
async fn answer(browser: &Browser, form: &str) -> Answer {
    let done = run_async(browser, ANSWER_JS, vec![json!(form)]).await;
    Answer {
        ceremony: done["ceremony"].as_str().expect("a ceremony").to_string(),
        answer: done["answer"].clone(),
    }
}

/// As `answer`, with the options given (another server's challenge) instead of fetched.
async fn answer_to(browser: &Browser, form: &str, options: &Value) -> Answer {
    let done = run_async(browser, ANSWER_JS, vec![json!(form), options.clone()]).await;
    Answer {
        ceremony: done["ceremony"].as_str().expect("a ceremony").to_string(),
        answer: done["answer"].clone(),
    }
}

/// Posts `answer` for `ceremony` with the form `form`, from the page.
async fn post(browser: &Browser, form: &str, ceremony: &str, answer: &Value) -> Reply {
    let reply = run_async(
        browser,
        POST_JS,
        vec![json!(form), json!(ceremony), answer.clone()],
    )
    .await;
    Reply {
        status: u16::try_from(reply["status"].as_u64().expect("status")).expect("u16"),
        kind: reply["type"].as_str().unwrap_or_default().to_string(),
        text: reply["text"].as_str().unwrap_or_default().to_string(),
        retry_after: reply["retryAfter"].as_str().map(String::from),
    }
}

/// The same answer with one byte of its signature changed.
fn tampered(answer: &Value) -> Value {
    use base64::Engine;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut answer = answer.clone();
    let signature = answer["response"]["signature"].as_str().expect("signature");
    let mut bytes = engine.decode(signature).expect("base64url");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    answer["response"]["signature"] = json!(engine.encode(bytes));
    answer
}

/// Every console error so far must be Chromium's note of a refusal the test asked for: a
/// fetched `path` answered with one of `statuses`.
async fn assert_only_refusals_logged(
    browser: &mut Browser,
    when: &str,
    path: &str,
    statuses: &[u16],
) {
    let errors = browser.console_errors().await;
    let unexpected: Vec<_> = errors
        .iter()
        .filter(|e| {
            !(e.source == "network"
                && e.message.contains(path)
                && statuses
                    .iter()
                    .any(|s| e.message.contains(&format!("status of {s}"))))
        })
        .collect();
    assert!(
        unexpected.is_empty(),
        "console errors {when}: {unexpected:#?}"
    );
}

#[tokio::test]
async fn a_passkey_registered_on_the_account_page_signs_in_without_a_password() {
    let world = World::new().await;
    let mut browser = Browser::start().await;
    browser
        .client
        .issue_cmd(AddVirtualAuthenticator)
        .await
        .expect("a virtual authenticator");

    // A password sign-in first, for a session at Tessera.
    browser.open(&world.authorize_url()).await;
    browser.type_into("#email", EMAIL).await;
    browser.type_into("#password", PASSWORD).await;
    browser.click("button.primary").await;
    browser.wait_for_url(&world.site.origin).await;

    // The account page: add a passkey, named.
    browser
        .open(&format!("{}/account/passkeys", world.base))
        .await;
    assert!(browser.has("#none").await, "no passkey yet");
    browser.type_into("#passkey-name", "Work laptop").await;
    browser.click("#passkey-button").await;
    browser
        .wait_for_url(&format!("{}/account/passkeys?added", world.base))
        .await;
    assert!(browser.text().await.contains("Work laptop"));
    let rows = world.passkey_rows().await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0], ("Work laptop".to_string(), None));
    browser.assert_no_console_errors("adding a passkey").await;

    // Signed out: the session cookie goes.
    browser
        .client
        .delete_cookie("tessera_session")
        .await
        .expect("cookie removed");

    // At the app's /authorize: "Sign in with a passkey", no password.
    browser.open(&world.authorize_url()).await;
    browser.click("#passkey-button").await;
    browser.wait_for_url(&world.site.origin).await;
    let url = url::Url::parse(&browser.current_url().await).expect("url");
    let query: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(query.get("state").map(String::as_str), Some("pk-state"));
    let code = query.get("code").expect("a code");
    let claims = world.id_claims(code).await;
    assert_eq!(claims["sub"], world.user_id.as_str());
    assert_eq!(claims["email"], EMAIL);
    assert_eq!(claims["nonce"], "pk-nonce");
    let amr = crate::testkit::fixtures::amr_of(&claims);
    let amr: Vec<&str> = amr.iter().map(String::as_str).collect();
    assert!(amr.contains(&"hwk") || amr.contains(&"swk"), "{amr:?}");
    assert!(amr.contains(&"user") && amr.contains(&"mfa"), "{amr:?}");
    assert!(!amr.contains(&"pwd"), "{amr:?}");
    assert!(world.passkey_rows().await[0].1.is_some(), "last use noted");
    browser
        .assert_no_console_errors("signing in with a passkey")
        .await;

    browser.close().await;
    world.site.stop().await;
    world.app.stop().await;
}

/// A browser with a virtual authenticator, signed in with a password at Tessera, with one
/// passkey added there, then signed out (no session cookie), on the app's login page.
async fn passkey_on_the_login_page(world: &World) -> Browser {
    let browser = Browser::start().await;
    browser
        .client
        .issue_cmd(AddVirtualAuthenticator)
        .await
        .expect("a virtual authenticator");
    world.sign_in_with_password(&browser, &world.base).await;
    world
        .add_passkey(&browser, &world.base, "Work laptop")
        .await;
    signed_out_on_the_login_page(world, &browser).await;
    browser
}

/// The session cookie gone, a fresh login page (and its CSRF cookie) at the app's request.
async fn signed_out_on_the_login_page(world: &World, browser: &Browser) {
    browser
        .client
        .delete_cookie(SESSION_COOKIE)
        .await
        .expect("cookie removed");
    browser.open(&world.authorize_url()).await;
    browser.find(SIGN_IN_FORM).await;
}

#[tokio::test]
async fn a_replayed_crossed_late_or_unknown_passkey_answer_is_refused_and_writes_nothing() {
    let world = World::new().await;
    let mut browser = passkey_on_the_login_page(&world).await;

    // Two ceremonies, both answered: the answer to the first posted with the second's id is
    // the right key signing the wrong challenge.
    let first = answer(&browser, SIGN_IN_FORM).await;
    let second = answer(&browser, SIGN_IN_FORM).await;
    assert_ne!(first.ceremony, second.ceremony);
    let before = world.written().await;
    let crossed = post(&browser, SIGN_IN_FORM, &second.ceremony, &first.answer).await;
    crossed.assert_refused(401, "The passkey's answer could not be verified.");
    assert_eq!(
        world.written().await,
        before,
        "a wrong challenge writes nothing"
    );
    assert!(browser.cookie(SESSION_COOKIE).await.is_none(), "no session");
    // The second ceremony was spent by that refusal: its own answer comes too late.
    let spent = post(&browser, SIGN_IN_FORM, &second.ceremony, &second.answer).await;
    spent.assert_refused(401, "has expired or was already used");
    assert_eq!(world.written().await, before);

    // The first answer with its own ceremony is good: a session, the passkey's use noted.
    let accepted = post(&browser, SIGN_IN_FORM, &first.ceremony, &first.answer).await;
    assert!(accepted.redirected(), "{accepted:?}");
    let after = world.written().await;
    assert_eq!(after.sessions, before.sessions + 1, "a session");
    assert_ne!(after.passkeys, before.passkeys, "the use is noted");
    assert!(browser.cookie(SESSION_COOKIE).await.is_some());

    // Replayed (from a fresh login page: a sign-in ends the page's CSRF cookie): refused,
    // the ceremony is spent; no second session, the passkey as it was.
    signed_out_on_the_login_page(&world, &browser).await;
    let replayed = post(&browser, SIGN_IN_FORM, &first.ceremony, &first.answer).await;
    replayed.assert_refused(
        401,
        "This passkey request has expired or was already used. Please try again.",
    );
    assert_eq!(world.written().await, after, "a replay writes nothing");
    assert!(browser.cookie(SESSION_COOKIE).await.is_none(), "no session");

    // A ceremony answered at its 5 minutes' end is over; a second earlier, it still stands.
    let late = answer(&browser, SIGN_IN_FORM).await;
    let in_time = answer(&browser, SIGN_IN_FORM).await;
    world.app.clock.advance(CEREMONY_TTL_SECS - 1);
    let kept = world.written().await;
    let accepted = post(&browser, SIGN_IN_FORM, &in_time.ceremony, &in_time.answer).await;
    assert!(accepted.redirected(), "in time: {accepted:?}");
    assert_eq!(world.written().await.sessions, kept.sessions + 1);
    signed_out_on_the_login_page(&world, &browser).await;
    world.app.clock.advance(1);
    let kept = world.written().await;
    let expired = post(&browser, SIGN_IN_FORM, &late.ceremony, &late.answer).await;
    expired.assert_refused(401, "has expired or was already used");
    assert_eq!(
        world.written().await,
        kept,
        "an expired ceremony writes nothing"
    );
    assert!(browser.cookie(SESSION_COOKIE).await.is_none(), "no session");

    // A credential nobody registered: the authenticator still holds it, the server does not.
    let orphan = answer(&browser, SIGN_IN_FORM).await;
    let user_id = world.user_id.clone();
    world
        .app
        .query(move |conn| {
            use diesel::prelude::*;
            use tessera::db::schema::passkeys;
            diesel::delete(passkeys::table.filter(passkeys::user_id.eq(user_id))).execute(conn)
        })
        .await;
    let kept = world.written().await;
    assert!(kept.passkeys.is_empty());
    let unknown = post(&browser, SIGN_IN_FORM, &orphan.ceremony, &orphan.answer).await;
    unknown.assert_refused(401, "This passkey is not registered here.");
    assert_eq!(world.written().await, kept, "nothing written");
    assert!(browser.cookie(SESSION_COOKIE).await.is_none(), "no session");

    assert_only_refusals_logged(
        &mut browser,
        "refusing answers",
        "/authorize/passkey",
        &[401],
    )
    .await;
    browser.close().await;
    world.site.stop().await;
    world.app.stop().await;
}

#[tokio::test]
async fn a_registration_answered_late_crossed_or_twice_adds_no_passkey() {
    let world = World::new().await;
    let mut browser = Browser::start().await;
    browser
        .client
        .issue_cmd(AddVirtualAuthenticator)
        .await
        .expect("a virtual authenticator");
    world.sign_in_with_password(&browser, &world.base).await;
    let page = format!("{}/account/passkeys", world.base);
    browser.open(&page).await;
    browser.type_into("#passkey-name", "Late").await;

    // Answered, then posted at the ceremony's 5 minutes' end.
    let late = answer(&browser, ADD_FORM).await;
    world.app.clock.advance(CEREMONY_TTL_SECS);
    let expired = post(&browser, ADD_FORM, &late.ceremony, &late.answer).await;
    expired.assert_refused(
        400,
        "This passkey request has expired or was already used. Please try again.",
    );
    assert!(
        world.passkeys().await.is_empty(),
        "no passkey from a stale ceremony"
    );

    // The refusal's page rotated the form's CSRF token: a fresh page. One ceremony's new
    // credential posted with another's id (the wrong challenge).
    browser.open(&page).await;
    browser.type_into("#passkey-name", "Crossed").await;
    let first = answer(&browser, ADD_FORM).await;
    let second = answer(&browser, ADD_FORM).await;
    let crossed = post(&browser, ADD_FORM, &second.ceremony, &first.answer).await;
    crossed.assert_refused(400, "The passkey's answer could not be verified.");
    assert!(
        world.passkeys().await.is_empty(),
        "no passkey from a wrong challenge"
    );

    // With its own ceremony the first is added; posted again, the ceremony is spent.
    browser.open(&page).await;
    browser.type_into("#passkey-name", "Kept").await;
    let added = post(&browser, ADD_FORM, &first.ceremony, &first.answer).await;
    assert!(added.redirected(), "{added:?}");
    let rows = world.passkeys().await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].name, "Kept");
    let again = post(&browser, ADD_FORM, &first.ceremony, &first.answer).await;
    again.assert_refused(400, "has expired or was already used");
    let after = world.passkeys().await;
    assert_eq!(after.len(), 1, "no second passkey");
    assert_eq!(after[0].id, rows[0].id);

    assert_only_refusals_logged(
        &mut browser,
        "refusing registrations",
        "/account/passkeys/add",
        &[400],
    )
    .await;
    browser.close().await;
    world.site.stop().await;
    world.app.stop().await;
}

#[tokio::test]
async fn bad_passkey_answers_from_one_ip_are_throttled_and_a_good_one_waits_too() {
    const FREE: i64 = 3;
    let world = World::with(|settings| settings.throttle.ip_free_attempts = FREE).await;
    let mut browser = passkey_on_the_login_page(&world).await;
    let before = world.written().await;

    // Real answers with a signature one bit off: checked and refused, the last free one
    // opening a back-off.
    for attempt in 1..=FREE {
        let bad = answer(&browser, SIGN_IN_FORM).await;
        let reply = post(
            &browser,
            SIGN_IN_FORM,
            &bad.ceremony,
            &tampered(&bad.answer),
        )
        .await;
        assert!(reply.retry_after.is_none(), "attempt {attempt}: {reply:?}");
        reply.assert_refused(401, "The passkey's answer could not be verified.");
    }
    let bad = answer(&browser, SIGN_IN_FORM).await;
    let throttled = post(
        &browser,
        SIGN_IN_FORM,
        &bad.ceremony,
        &tampered(&bad.answer),
    )
    .await;
    throttled.assert_refused(429, "Too many failed attempts. Try again in 1 seconds.");
    assert_eq!(throttled.retry_after.as_deref(), Some("1"));

    // The right passkey, untampered, waits as well (the clock stands still).
    let good = answer(&browser, SIGN_IN_FORM).await;
    let waiting = post(&browser, SIGN_IN_FORM, &good.ceremony, &good.answer).await;
    waiting.assert_refused(429, "Too many failed attempts.");
    assert_eq!(waiting.retry_after.as_deref(), Some("1"));
    assert_eq!(
        world.written().await,
        before,
        "nothing written while throttled"
    );
    assert!(browser.cookie(SESSION_COOKIE).await.is_none(), "no session");

    // Once the wait is over the same answer signs in: a throttled post spent no ceremony.
    world.app.clock.advance(1);
    let accepted = post(&browser, SIGN_IN_FORM, &good.ceremony, &good.answer).await;
    assert!(accepted.redirected(), "{accepted:?}");
    assert_eq!(world.written().await.sessions, before.sessions + 1);

    assert_only_refusals_logged(
        &mut browser,
        "throttling",
        "/authorize/passkey",
        &[401, 429],
    )
    .await;
    browser.close().await;
    world.site.stop().await;
    world.app.stop().await;
}

/// A phishing relying party: a second Tessera on the same database at
/// `http://other.localhost:PORT`, where the person has a passkey. Its page runs the real
/// server's challenge (the options Tessera at `localhost` gave), so the authenticator signs
/// that challenge for the other RP ID and origin; Tessera at `localhost` refuses the answer.
#[tokio::test]
async fn an_assertion_made_for_another_relying_party_is_refused() {
    let world = World::new().await;
    let (other, other_base) = world.second_server("other.localhost").await;
    let mut browser = Browser::start().await;
    browser
        .client
        .issue_cmd(AddVirtualAuthenticator)
        .await
        .expect("a virtual authenticator");
    world.sign_in_with_password(&browser, &other_base).await;
    world.add_passkey(&browser, &other_base, "Other site").await;
    // Signed out there (the cookie of the page's host, other.localhost).
    browser
        .client
        .delete_cookie(SESSION_COOKIE)
        .await
        .expect("cookie removed");
    assert_eq!(world.passkeys().await.len(), 1, "one database");

    // The real server's challenge, from its own login page.
    browser.open(&world.authorize_url()).await;
    let options = run_async(&browser, OPTIONS_JS, vec![json!(SIGN_IN_FORM)]).await;
    let ceremony = options["ceremony"].as_str().expect("ceremony").to_string();
    assert_eq!(options["publicKey"]["rpId"], "localhost");

    // Answered on the other site's page, for its RP ID.
    browser.open(&world.authorize_url_at(&other_base)).await;
    let mut relayed = options.clone();
    relayed["publicKey"]["rpId"] = json!("other.localhost");
    let phished = answer_to(&browser, SIGN_IN_FORM, &relayed).await;
    assert_eq!(phished.ceremony, ceremony);

    // Posted back to the real server, with its ceremony, from its own page.
    browser.open(&world.authorize_url()).await;
    let before = world.written().await;
    let refused = post(&browser, SIGN_IN_FORM, &ceremony, &phished.answer).await;
    refused.assert_refused(401, "The passkey's answer could not be verified.");
    assert_eq!(world.written().await, before, "nothing written");
    assert!(
        browser.cookie(SESSION_COOKIE).await.is_none(),
        "no session here"
    );

    // The same passkey does sign in where it was registered.
    browser.open(&world.authorize_url_at(&other_base)).await;
    let own = answer(&browser, SIGN_IN_FORM).await;
    let accepted = post(&browser, SIGN_IN_FORM, &own.ceremony, &own.answer).await;
    assert!(accepted.redirected(), "{accepted:?}");
    assert_eq!(world.written().await.sessions, before.sessions + 1);

    assert_only_refusals_logged(&mut browser, "refusing", "/authorize/passkey", &[401]).await;
    browser.close().await;
    other.stop().await;
    world.site.stop().await;
    world.app.stop().await;
}

/// A passkey as second factor: the person registered one, then signs in with the password;
/// the second-step page offers "Use a passkey" (beside the recovery codes, if any), the
/// virtual authenticator answers, and the app receives a code whose ID token says `pwd` and
/// a key, and `mfa`. No session is made before the passkey.
#[tokio::test]
async fn a_password_then_a_passkey_as_second_factor() {
    let world = World::new().await;
    let mut browser = passkey_on_the_login_page(&world).await;
    browser.type_into("#email", EMAIL).await;
    browser.type_into("#password", PASSWORD).await;
    browser.click("button.primary").await;
    browser.find("#passkey-second-factor").await;
    assert!(
        browser.cookie("tessera_session").await.is_none(),
        "no session before the second factor"
    );
    assert!(!browser.has("#totp").await, "no app to ask for");
    browser.click("#passkey-button").await;
    browser.wait_for_url(&world.site.origin).await;
    let url = url::Url::parse(&browser.current_url().await).expect("url");
    let query: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(query.get("state").map(String::as_str), Some("pk-state"));
    let claims = world.id_claims(query.get("code").expect("a code")).await;
    assert_eq!(claims["sub"], world.user_id.as_str());
    let amr = crate::testkit::fixtures::amr_of(&claims);
    let amr: Vec<&str> = amr.iter().map(String::as_str).collect();
    assert!(amr.contains(&"pwd"), "{amr:?}");
    assert!(amr.contains(&"hwk") || amr.contains(&"swk"), "{amr:?}");
    assert!(amr.contains(&"mfa"), "{amr:?}");
    assert_eq!(claims["acr"], "urn:tessera:acr:mfa");
    assert!(world.passkey_rows().await[0].1.is_some(), "last use noted");
    browser
        .assert_no_console_errors("a passkey as second factor")
        .await;

    browser.close().await;
    world.site.stop().await;
    world.app.stop().await;
}
