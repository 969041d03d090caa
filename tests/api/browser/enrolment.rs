//! Setting up an authenticator app during sign-in, in Chromium (`accounts.mfa = "required"`,
//! a person with no second factor): after the password the page shows a QR code (an inline
//! SVG the browser draws) and the key; the test computes the app's code from the key shown,
//! types it, sees the recovery codes, follows "Continue", and the app receives a code whose
//! ID token says `otp` and `mfa`. No console errors on the way.

use serde_json::Value;
use tessera::clients::ClientSpec;
use tessera::mfa::TotpSecret;

use super::{Browser, Site};
use crate::testkit::{PASSWORD, TestEnv, VERIFIER, claims_of, pkce_challenge};

const EMAIL: &str = "eve@example.com";
const APP_PAGE: &str = "<!doctype html><title>App</title><p>Back in the app.</p>";

#[tokio::test]
async fn a_person_who_must_use_mfa_sets_up_an_app_while_signing_in() {
    let env = TestEnv::new();
    let mut settings = env.settings();
    settings.accounts.mfa = tessera::config::MfaPolicy::Required;
    let app = env.spawn_with(settings).await;
    app.create_user(EMAIL, PASSWORD, &[]).await;
    let site = Site::start(APP_PAGE).await;
    let callback = format!("{}/callback", site.origin);
    let client_id = app
        .create_client(ClientSpec {
            name: "Diary".into(),
            public: true,
            grant_types: vec!["authorization_code".into()],
            redirect_uris: vec![callback.clone()],
            scopes: ["openid", "email"].map(String::from).to_vec(),
            ..ClientSpec::default()
        })
        .await
        .0;
    let mut browser = Browser::start().await;
    let mut query = form_urlencoded::Serializer::new(String::new());
    query
        .append_pair("response_type", "code")
        .append_pair("client_id", &client_id)
        .append_pair("redirect_uri", &callback)
        .append_pair("scope", "openid email")
        .append_pair("state", "enrol-state")
        .append_pair("code_challenge", &pkce_challenge(VERIFIER))
        .append_pair("code_challenge_method", "S256");
    browser
        .open(&format!("{}?{}", app.url("/authorize"), query.finish()))
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

    // A wrong code first: the page again, with a message and the same key.
    browser.type_into("#totp-code", "000000").await;
    browser.click("#totp-confirm").await;
    browser.find("[role=alert]").await;
    assert!(browser.text().await.contains("That code is not right"));
    let again = browser
        .find("#totp-secret")
        .await
        .text()
        .await
        .expect("text");
    assert_eq!(again.trim(), shown.trim());

    browser
        .type_into("#totp-code", &secret.code_at(app.clock.now()))
        .await;
    browser.click("#totp-confirm").await;
    browser.find("#recovery-codes").await;
    let codes = browser
        .script(
            "return Array.from(document.querySelectorAll('.recovery-code')).map(e => e.innerText)",
        )
        .await;
    assert_eq!(codes.as_array().map(Vec::len), Some(10), "{codes:?}");
    let session = browser
        .cookie("tessera_session")
        .await
        .expect("a session now");
    assert!(session.http_only, "{session:?}");

    browser.click("#continue").await;
    browser.wait_for_url(&callback).await;
    let url = url::Url::parse(&browser.current_url().await).expect("url");
    let query: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(query.get("state").map(String::as_str), Some("enrol-state"));
    let code = query.get("code").expect("a code");
    let tokens: Value = app
        .client
        .post(app.url("/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", callback.as_str()),
            ("client_id", client_id.as_str()),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .expect("token request")
        .json()
        .await
        .expect("json");
    let claims = claims_of(tokens["id_token"].as_str().expect("an ID token"));
    let amr: Vec<&str> = claims["amr"]
        .as_array()
        .expect("amr")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        amr.contains(&"pwd") && amr.contains(&"otp") && amr.contains(&"mfa"),
        "{amr:?}"
    );
    assert_eq!(claims["acr"], "urn:tessera:acr:mfa");
    // The wrong code's 401 is the one console line expected (a failed load, as Chromium logs it).
    let errors = browser.console_errors().await;
    assert!(
        errors.iter().all(|e| e.message.contains("401")),
        "{errors:#?}"
    );
    assert!(errors.len() <= 1, "{errors:#?}");

    browser.close().await;
    site.stop().await;
    app.stop().await;
}
