//! /account/security in Chromium: a person signed in at Tessera sets up an authenticator app
//! from the page. The test reads the secret the page shows, computes the code an app would
//! (with the server's own TOTP function), types it, and sees the recovery codes; the QR code
//! is an inline SVG the browser draws, and nothing on the way logs a console error (a CSP
//! that blocked the SVG or a form would show there).

use std::time::{SystemTime, UNIX_EPOCH};

use tessera::clients::ClientSpec;
use tessera::mfa::TotpSecret;

use super::{Browser, Site};
use crate::testkit::{PASSWORD, TestEnv, VERIFIER, pkce_challenge};

const EMAIL: &str = "ann@example.com";
const APP_PAGE: &str = "<!doctype html><title>App</title><p>Back in the app.</p>";

#[tokio::test]
async fn a_person_sets_up_an_authenticator_app_from_the_page() {
    let env = TestEnv::new();
    let app = env.spawn().await;
    app.create_user(EMAIL, PASSWORD, &[]).await;
    let site = Site::start(APP_PAGE).await;
    let callback = format!("{}/callback", site.origin);
    let client_id = app
        .create_client(ClientSpec {
            name: "App".into(),
            public: true,
            grant_types: vec!["authorization_code".into()],
            redirect_uris: vec![callback.clone()],
            scopes: ["openid", "email"].map(String::from).to_vec(),
            ..ClientSpec::default()
        })
        .await
        .0;
    let mut browser = Browser::start().await;

    // Not signed in yet: the page says so.
    browser.open(&app.url("/account/security")).await;
    assert!(browser.text().await.contains("not signed in"));
    // Its 401 is the one console line expected (a failed load, as Chromium logs it).
    let expected = browser.console_errors().await;
    assert_eq!(expected.len(), 1, "{expected:#?}");
    assert!(expected[0].message.contains("401"), "{expected:#?}");

    let mut query = form_urlencoded::Serializer::new(String::new());
    query
        .append_pair("response_type", "code")
        .append_pair("client_id", &client_id)
        .append_pair("redirect_uri", &callback)
        .append_pair("scope", "openid email")
        .append_pair("state", "st")
        .append_pair("code_challenge", &pkce_challenge(VERIFIER))
        .append_pair("code_challenge_method", "S256");
    browser
        .open(&format!("{}?{}", app.url("/authorize"), query.finish()))
        .await;
    browser.type_into("#email", EMAIL).await;
    browser.type_into("#password", PASSWORD).await;
    browser.click("button[type=submit]").await;
    browser.wait_for_url(&callback).await;

    browser.open(&app.url("/account/security")).await;
    assert!(
        browser
            .text()
            .await
            .contains("No authenticator app is set up")
    );
    assert!(browser.has("#passkeys-link").await);
    browser.click("#totp-begin").await;

    // The QR code is drawn: an SVG with its modules, of a real size on the page.
    browser.find("#totp-qr svg path").await;
    let width = browser
        .script("return document.querySelector('#totp-qr svg').getBoundingClientRect().width")
        .await
        .as_f64()
        .unwrap_or_default();
    assert!(width >= 100.0, "the QR code is {width}px wide");

    let shown = browser
        .find("#totp-secret")
        .await
        .text()
        .await
        .expect("text");
    let secret = TotpSecret::from_bytes(
        data_encoding::BASE32_NOPAD
            .decode(shown.trim().as_bytes())
            .expect("the page shows base32"),
    );
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    browser.type_into("#totp-code", &secret.code_at(now)).await;
    browser.click("#totp-confirm").await;

    browser.find("#recovery-codes").await;
    let codes = browser
        .script(
            "return Array.from(document.querySelectorAll('.recovery-code')).map(e => e.innerText)",
        )
        .await;
    let codes = codes.as_array().expect("a list");
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
    browser.open(&app.url("/account/security")).await;
    browser.find("#recovery-codes-left").await;
    assert!(!browser.has("#recovery-codes").await);
    let errors = browser.console_errors().await;
    assert_eq!(errors.len(), 1, "the page again: {errors:#?}");

    browser.close().await;
    site.stop().await;
    app.stop().await;
}
