//! The second step of a sign-in in Chromium (issue 17): a person sets up an authenticator
//! app on `/account/security` (the test reads the secret the page shows and computes the codes
//! an app would), signs out, and at an app's `/authorize` is asked, after the password, for a
//! code on the "Second step" page; the app's code buys an ID token that says both factors.
//! The same code at a new sign-in, and a recovery code used twice, are refused with a message
//! on the page. Step-up: an app asking for multi-factor (`acr_values`, either value) in a
//! session made with a password alone gets the second step without the password, and the
//! session, upgraded, serves later requests with no page. No console errors on the way, but
//! the refused pages' own status.
//!
//! Codes are computed at the server's clock (`app.clock`, stopped): the test moves it on a
//! step (30 s) where a sign-in needs a code nobody has used.

use serde_json::Value;

use super::security::{begin_setup, confirm_setup};
use super::{Browser, SiteApp};
use crate::testkit::mfa::{Enrolled, SECURITY_PAGE};
use crate::testkit::{PASSWORD, TestApp, TestEnv};

const EMAIL: &str = "ann@example.com";
const STATE: &str = "mfa-state";
const NONCE: &str = "mfa-nonce";
const TESSERA_MFA: &str = "urn:tessera:acr:mfa";
const PAPE_MFA: &str = "http://schemas.openid.net/pape/policies/2007/06/multi-factor";
/// What the second-step page says to a code that is wrong or already used.
const REFUSED: &str = "That code is not right, or was already used.";

/// Tessera, a person with a password, and an app on its own origin.
struct World {
    app: TestApp,
    _env: TestEnv,
    client: SiteApp,
}

impl World {
    async fn new() -> World {
        let env = TestEnv::new();
        let app = env.spawn().await;
        app.create_user(EMAIL, PASSWORD, &[]).await;
        let client = SiteApp::register(&app, "App").await;
        World {
            app,
            _env: env,
            client,
        }
    }

    fn authorize_url(&self, extra: &[(&str, &str)]) -> String {
        self.client.authorize_url(&self.app, STATE, NONCE, extra)
    }

    /// Waits for the browser to be back at the app; the code it brought (with the state).
    async fn code_in(&self, browser: &Browser) -> String {
        browser.wait_for_url(&self.client.callback()).await;
        self.code_at(&browser.current_url().await)
    }

    fn code_at(&self, url: &str) -> String {
        self.client.code_in(url, STATE)
    }

    /// The ID token's claims that `code` buys.
    async fn id_claims(&self, code: &str) -> Value {
        let claims = self.client.id_claims(&self.app, code).await;
        assert_eq!(claims["nonce"], NONCE);
        claims
    }

    /// The server's clock, on a step of the app's codes nobody has used yet.
    fn next_step(&self) {
        self.app.clock.advance(tessera::mfa::totp::STEP_SECS);
    }

    async fn stop(self) {
        self.client.site.stop().await;
        self.app.stop().await;
    }
}

fn amr_of(claims: &Value) -> Vec<String> {
    claims["amr"]
        .as_array()
        .expect("amr")
        .iter()
        .filter_map(|m| m.as_str().map(String::from))
        .collect()
}

/// Types the password on the login page and clicks "Sign in".
async fn password(browser: &Browser) {
    browser.type_into("#email", EMAIL).await;
    browser.type_into("#password", PASSWORD).await;
    browser.click("button.primary").await;
}

/// Signed out: the session cookie goes, as when the browser is closed.
async fn sign_out(browser: &Browser) {
    browser
        .client
        .delete_cookie("tessera_session")
        .await
        .expect("cookie removed");
    assert!(browser.cookie("tessera_session").await.is_none());
}

/// Waits for the second-step page: it asks for a code, not for the password.
async fn second_step(browser: &Browser) {
    browser.find("#totp").await;
    assert!(browser.text().await.contains("Second step"));
    assert!(!browser.has("#password").await, "no password asked");
}

/// Sets up an authenticator app on the account page of a signed-in browser, as a person does:
/// the secret shown, the current code typed, the recovery codes shown.
async fn enrol(world: &World, browser: &Browser) -> Enrolled {
    browser.open(&world.app.url(SECURITY_PAGE)).await;
    assert!(
        browser
            .text()
            .await
            .contains("No authenticator app is set up")
    );
    let secret = begin_setup(browser).await;
    let now = world.app.clock.now();
    let recovery_codes = confirm_setup(browser, &secret.code_at(now)).await;
    assert_eq!(recovery_codes.len(), 10, "{recovery_codes:?}");
    Enrolled {
        secret,
        recovery_codes,
        step: tessera::mfa::totp::step_of(now),
    }
}

/// Fails on any console error but the `refused` pages' own (Chromium logs a page answered
/// with 401 as a failed load).
async fn assert_console_errors_are_refusals(browser: &mut Browser, when: &str, refused: usize) {
    let errors = browser.console_errors().await;
    let (statuses, others): (Vec<_>, Vec<_>) = errors
        .iter()
        .partition(|e| e.message.contains("status of 401"));
    assert!(others.is_empty(), "console errors {when}: {others:#?}");
    assert_eq!(statuses.len(), refused, "{when}: {errors:#?}");
}

#[tokio::test]
async fn after_the_password_the_app_code_is_asked_for_and_good_once() {
    let world = World::new().await;
    let mut browser = Browser::start().await;

    // A password sign-in, for a session to reach the account page with; then the app.
    browser.open(&world.authorize_url(&[])).await;
    password(&browser).await;
    world.code_in(&browser).await;
    let Enrolled {
        secret,
        recovery_codes,
        ..
    } = enrol(&world, &browser).await;
    browser.assert_no_console_errors("setting up the app").await;

    // Signed out, and back at the app's /authorize: the password, then the second step.
    sign_out(&browser).await;
    world.next_step();
    browser.open(&world.authorize_url(&[])).await;
    password(&browser).await;
    second_step(&browser).await;
    assert!(
        browser.cookie("tessera_session").await.is_none(),
        "no session before the second factor"
    );
    assert!(browser.has("#recovery_code").await, "a recovery code too");
    let code = secret.code_at(world.app.clock.now());
    browser.type_into("#totp", &code).await;
    browser.click("#totp-submit").await;
    let claims = world.id_claims(&world.code_in(&browser).await).await;
    let amr = amr_of(&claims);
    for method in ["pwd", "otp", "mfa"] {
        assert!(amr.iter().any(|m| m == method), "{method} in {amr:?}");
    }
    assert_eq!(claims["acr"], TESSERA_MFA);
    assert_eq!(claims["email"], EMAIL);
    assert!(browser.cookie("tessera_session").await.is_some());
    browser
        .assert_no_console_errors("signing in with the app's code")
        .await;

    // A new sign-in in the same 30 s: the code already used is refused, on the page.
    sign_out(&browser).await;
    browser.open(&world.authorize_url(&[])).await;
    password(&browser).await;
    second_step(&browser).await;
    browser.type_into("#totp", &code).await;
    browser.click("#totp-submit").await;
    let message = browser.find("#error").await.text().await.expect("text");
    assert!(message.contains(REFUSED), "{message}");
    assert!(
        browser
            .current_url()
            .await
            .starts_with(&world.app.url("/authorize"))
    );
    assert!(browser.cookie("tessera_session").await.is_none());
    assert_console_errors_are_refusals(&mut browser, "a used code", 1).await;

    // A recovery code stands in for the app, on the same page.
    browser
        .type_into("#recovery_code", &recovery_codes[0])
        .await;
    browser.click("#recovery-submit").await;
    let claims = world.id_claims(&world.code_in(&browser).await).await;
    assert_eq!(claims["acr"], TESSERA_MFA);
    assert!(amr_of(&claims).iter().any(|m| m == "mfa"), "{claims}");
    assert_console_errors_are_refusals(&mut browser, "a recovery code", 1).await;

    // Once.
    sign_out(&browser).await;
    browser.open(&world.authorize_url(&[])).await;
    password(&browser).await;
    second_step(&browser).await;
    browser
        .type_into("#recovery_code", &recovery_codes[0])
        .await;
    browser.click("#recovery-submit").await;
    let message = browser.find("#error").await.text().await.expect("text");
    assert!(message.contains(REFUSED), "{message}");
    assert!(browser.cookie("tessera_session").await.is_none());
    assert_console_errors_are_refusals(&mut browser, "a recovery code again", 2).await;

    browser.close().await;
    world.stop().await;
}

/// A session made with a password before the person set up an app, then an app asking for a
/// multi-factor sign-in with `acr`: the second step, not the password; the same session
/// (`sid`) comes out of it with `acr` and `otp`, and serves later requests, plain or asking
/// for multi-factor again, with no page.
async fn step_up(acr: &str) {
    let world = World::new().await;
    let mut browser = Browser::start().await;

    browser.open(&world.authorize_url(&[])).await;
    password(&browser).await;
    let first = world.id_claims(&world.code_in(&browser).await).await;
    assert_eq!(amr_of(&first), ["pwd"]);
    assert!(first.get("acr").is_none(), "{first}");
    let Enrolled { secret, .. } = enrol(&world, &browser).await;

    world.next_step();
    browser
        .open(&world.authorize_url(&[("acr_values", acr)]))
        .await;
    second_step(&browser).await;
    assert!(!browser.has("#email").await, "{acr}: no login form");
    browser
        .type_into("#totp", &secret.code_at(world.app.clock.now()))
        .await;
    browser.click("#totp-submit").await;
    let stepped = world.id_claims(&world.code_in(&browser).await).await;
    assert_eq!(stepped["acr"], TESSERA_MFA, "{acr}");
    assert!(amr_of(&stepped).iter().any(|m| m == "otp"), "{stepped}");
    assert_eq!(stepped["sid"], first["sid"], "the same session, upgraded");

    // The upgraded session answers with no page: the browser lands at the app straight away.
    for extra in [&[][..], &[("acr_values", acr)][..]] {
        browser.open(&world.authorize_url(extra)).await;
        let url = browser.current_url().await;
        let claims = world.id_claims(&world.code_at(&url)).await;
        assert_eq!(claims["acr"], TESSERA_MFA, "{extra:?}");
        assert_eq!(claims["auth_time"], stepped["auth_time"], "{extra:?}");
    }
    browser
        .assert_no_console_errors(&format!("stepping up with {acr}"))
        .await;

    browser.close().await;
    world.stop().await;
}

#[tokio::test]
async fn acr_values_tessera_mfa_steps_up_a_password_session() {
    step_up(TESSERA_MFA).await;
}

#[tokio::test]
async fn acr_values_pape_multi_factor_steps_up_a_password_session() {
    step_up(PAPE_MFA).await;
}
