//! Setting up an authenticator app during sign-in, in Chromium (`accounts.mfa = "required"`,
//! a person with no second factor): after the password the page shows a QR code (an inline
//! SVG the browser draws) and the key; the test computes the app's code from the key shown,
//! types it, sees the recovery codes, follows "Continue", and the app receives a code whose
//! ID token says `otp` and `mfa`. A wrong code first gets the page again with the same key.
//! No console errors but the wrong code's 401.

use super::security::{confirm_setup, shown_secret};
use super::{Browser, SiteApp};
use crate::testkit::{PASSWORD, TestEnv};

const EMAIL: &str = "eve@example.com";

#[tokio::test]
async fn a_person_who_must_use_mfa_sets_up_an_app_while_signing_in() {
    let env = TestEnv::new();
    let mut settings = env.settings();
    settings.accounts.mfa = tessera::config::MfaPolicy::Required;
    let app = env.spawn_with(settings).await;
    app.create_user(EMAIL, PASSWORD, &[]).await;
    let diary = SiteApp::register(&app, "Diary").await;
    let mut browser = Browser::start().await;
    browser
        .open(&diary.authorize_url(&app, "enrol-state", "n", &[]))
        .await;
    browser.type_into("#email", EMAIL).await;
    browser.type_into("#password", PASSWORD).await;
    browser.click("button[type=submit]").await;

    // The enrolment page: the QR code is drawn, at a real size.
    browser.find("#totp-qr svg path").await;
    let width = browser
        .script("return document.querySelector('#totp-qr svg').getBoundingClientRect().width")
        .await
        .as_f64()
        .unwrap_or_default();
    assert!(width >= 100.0, "the QR code is {width}px wide");
    assert!(
        browser.cookie("tessera_session").await.is_none(),
        "no session before the app is on"
    );
    let secret = shown_secret(&browser).await;

    // A wrong code first: the page again, with a message and the same key.
    let wrong = crate::testkit::mfa::wrong_code(&secret, app.clock.now());
    browser.type_into("#totp-code", &wrong).await;
    browser.click("#totp-confirm").await;
    browser.find("[role=alert]").await;
    assert!(browser.text().await.contains("That code is not right"));
    assert_eq!(shown_secret(&browser).await.base32(), secret.base32());

    let codes = confirm_setup(&browser, &secret.code_at(app.clock.now())).await;
    assert_eq!(codes.len(), 10, "{codes:?}");
    let session = browser
        .cookie("tessera_session")
        .await
        .expect("a session now");
    assert!(session.http_only, "{session:?}");

    browser.click("#continue").await;
    browser.wait_for_url(&diary.callback()).await;
    let code = diary.code_in(&browser.current_url().await, "enrol-state");
    let claims = diary.id_claims(&app, &code).await;
    let amr = crate::testkit::fixtures::amr_of(&claims);
    assert!(
        ["pwd", "otp", "mfa"]
            .iter()
            .all(|m| amr.iter().any(|a| a == m)),
        "{amr:?}"
    );
    assert_eq!(claims["acr"], "urn:tessera:acr:mfa");
    // The wrong code's 401 is the one console line expected (a failed load, as Chromium logs it).
    let errors = browser.console_errors().await;
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(errors[0].message.contains("401"), "{errors:#?}");

    browser.close().await;
    diary.site.stop().await;
    app.stop().await;
}
