//! /account/security in Chromium: a person signed in at Tessera sets up an authenticator app
//! from the page. The test reads the secret the page shows, computes the code an app would
//! (with the server's own TOTP function), types it, and sees the recovery codes; the QR code
//! is an inline SVG the browser draws, and nothing on the way logs a console error (a CSP
//! that blocked the SVG or a form would show there).

use tessera::mfa::TotpSecret;

use super::{Browser, SiteApp};
use crate::testkit::mfa::{SECURITY_PAGE, secret_from_page};
use crate::testkit::{PASSWORD, TestEnv};

const EMAIL: &str = "ann@example.com";

/// On the account page of a signed-in browser: starts setting up an authenticator app; the
/// secret the page shows.
pub(super) async fn begin_setup(browser: &Browser) -> TotpSecret {
    browser.click("#totp-begin").await;
    shown_secret(browser).await
}

/// The secret of the authenticator app being set up, as the page shows it.
pub(super) async fn shown_secret(browser: &Browser) -> TotpSecret {
    let shown = browser
        .find("#totp-secret")
        .await
        .text()
        .await
        .expect("text");
    secret_from_page(&shown)
}

/// Types `code` and turns the app on; the recovery codes the page then shows.
pub(super) async fn confirm_setup(browser: &Browser, code: &str) -> Vec<String> {
    browser.type_into("#totp-code", code).await;
    browser.click("#totp-confirm").await;
    browser.find("#recovery-codes").await;
    let codes = browser
        .script(
            "return Array.from(document.querySelectorAll('.recovery-code')).map(e => e.innerText)",
        )
        .await;
    codes
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|c| c.as_str().map(String::from))
        .collect()
}

#[tokio::test]
async fn a_person_sets_up_an_authenticator_app_from_the_page() {
    let env = TestEnv::new();
    let app = env.spawn().await;
    app.create_user(EMAIL, PASSWORD, &[]).await;
    let client = SiteApp::register(&app, "App").await;
    let mut browser = Browser::start().await;

    // Not signed in yet: the page says so.
    browser.open(&app.url(SECURITY_PAGE)).await;
    assert!(browser.text().await.contains("not signed in"));
    // Its 401 is the one console line expected (a failed load, as Chromium logs it).
    let expected = browser.console_errors().await;
    assert_eq!(expected.len(), 1, "{expected:#?}");
    assert!(expected[0].message.contains("401"), "{expected:#?}");

    browser
        .open(&client.authorize_url(&app, "st", "n", &[]))
        .await;
    browser.type_into("#email", EMAIL).await;
    browser.type_into("#password", PASSWORD).await;
    browser.click("button[type=submit]").await;
    browser.wait_for_url(&client.callback()).await;

    browser.open(&app.url(SECURITY_PAGE)).await;
    assert!(
        browser
            .text()
            .await
            .contains("No authenticator app is set up")
    );
    assert!(browser.has("#passkeys-link").await);
    let secret = begin_setup(&browser).await;

    // The QR code is drawn: an SVG with its modules, of a real size on the page.
    browser.find("#totp-qr svg path").await;
    let width = browser
        .script("return document.querySelector('#totp-qr svg').getBoundingClientRect().width")
        .await
        .as_f64()
        .unwrap_or_default();
    assert!(width >= 100.0, "the QR code is {width}px wide");

    let codes = confirm_setup(&browser, &secret.code_at(app.clock.now())).await;
    assert_eq!(codes.len(), 10, "{codes:?}");
    let text = browser.text().await;
    assert!(text.contains("Your authenticator app is set up"), "{text}");
    assert!(text.contains("An authenticator app is set up"), "{text}");
    let errors = browser.console_errors().await;
    assert_eq!(
        errors.len(),
        1,
        "setting up an authenticator app: {errors:#?}"
    );

    // Opened again, the codes are gone from the page.
    browser.open(&app.url(SECURITY_PAGE)).await;
    browser.find("#recovery-codes-left").await;
    assert!(!browser.has("#recovery-codes").await);
    let errors = browser.console_errors().await;
    assert_eq!(errors.len(), 1, "the page again: {errors:#?}");

    browser.close().await;
    client.site.stop().await;
    app.stop().await;
}
