//! The page that asks for an existing account's password before an upstream identity is
//! linked to it (issue 14 item 4), in Chromium: the person comes back from the upstream, types
//! the password (a wrong one first), clicks, and the app on another origin gets its code.

use tessera::clients::ClientSpec;
use tessera::config::Secret;

use super::{Browser, DEADLINE, Site};
use crate::testkit::TestEnv;
use crate::testkit::upstream::{self, FakeUpstream};
use crate::testkit::{PASSWORD, VERIFIER, pkce_challenge};

#[tokio::test]
async fn browser_linking_asks_for_the_password_then_the_app_gets_its_code() {
    let env = TestEnv::new();
    let fake = FakeUpstream::start().await;
    let mut settings = env.settings();
    settings.google.client_id = upstream::CLIENT_ID.into();
    settings.google.client_secret = Secret::new(upstream::CLIENT_SECRET);
    settings.google.issuer = fake.issuer.clone();
    let app = env.spawn_with(settings).await;
    // The fake upstream vouches for gina@example.com, which a password account here owns.
    app.create_user("gina@example.com", PASSWORD, &[]).await;
    let site = Site::start("<!doctype html><title>App</title><p>Back in the app.</p>").await;
    let redirect_uri = format!("{}/callback", site.origin);
    let (client_id, _) = app
        .create_client(ClientSpec {
            name: "Notes".into(),
            public: true,
            grant_types: vec!["authorization_code".into()],
            redirect_uris: vec![redirect_uri.clone()],
            scopes: ["openid", "email"].map(String::from).to_vec(),
            ..ClientSpec::default()
        })
        .await;
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", &client_id)
        .append_pair("redirect_uri", &redirect_uri)
        .append_pair("scope", "openid email")
        .append_pair("state", "link-state")
        .append_pair("code_challenge", &pkce_challenge(VERIFIER))
        .append_pair("code_challenge_method", "S256")
        .append_pair("idp", "google")
        .finish();

    let mut browser = Browser::start().await;
    browser.open(&app.url(&format!("/authorize?{query}"))).await;
    browser.wait_for_url(&app.url("/auth/link")).await;
    assert!(browser.text().await.contains("gina@example.com"));

    browser.type_into("#password", "not the password").await;
    browser.click("#link-confirm").await;
    browser
        .wait_until("the refusal", || async {
            browser.has("[role=alert]").await
        })
        .await;
    assert!(site.requests().is_empty(), "nothing reached the app yet");

    browser.type_into("#password", PASSWORD).await;
    browser.click("#link-confirm").await;
    let started = std::time::Instant::now();
    while site.requests().is_empty() {
        let errors = browser.console_errors().await;
        assert!(
            started.elapsed() < DEADLINE,
            "the app never heard back; console: {errors:#?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let arrived = &site.requests()[0];
    assert!(arrived.starts_with("/callback?code="), "{arrived}");
    assert!(arrived.contains("state=link-state"), "{arrived}");
    let errors: Vec<_> = browser
        .console_errors()
        .await
        .into_iter()
        .filter(|e| !e.message.contains("status of 401"))
        .collect();
    assert!(errors.is_empty(), "console errors: {errors:#?}");
    browser.close().await;
    site.stop().await;
    fake.stop().await;
    app.stop().await;
}
