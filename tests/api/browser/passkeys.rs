//! Passkeys in Chromium (issue 17), with the WebDriver WebAuthn extension's virtual
//! authenticator (CTAP2, internal, resident keys, user verification): a person adds a passkey
//! on `/account/passkeys`, signs out, and at an app's `/authorize` signs in with the passkey
//! and no password; the code buys an ID token whose `amr` says a key was used. The attacker's
//! side, with the browser's own cookies: the same answer posted again, the answer to one
//! challenge posted against another, a ceremony past its 5 minutes, and a credential nobody
//! registered are each refused with a clear page. No console errors on the way.
//!
//! Tessera runs with `http://localhost:PORT` as its issuer: WebAuthn needs a domain for the
//! RP ID (an IP address has none), and `localhost` is a secure context over plain http.

use std::net::SocketAddr;

use fantoccini::wd::WebDriverCompatibleCommand;
use serde_json::{Value, json};
use tessera::clients::ClientSpec;

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
    _env: TestEnv,
    /// `http://localhost:PORT`: the issuer, and where the browser goes.
    base: String,
    user_id: String,
    site: Site,
    client_id: String,
}

impl World {
    async fn new() -> World {
        let env = TestEnv::new();
        let port = free_port();
        let mut settings = env.settings();
        settings.server.bind = SocketAddr::from(([127, 0, 0, 1], port));
        let base = format!("http://localhost:{port}");
        settings.server.issuer = Some(base.clone());
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
            _env: env,
            base,
            user_id,
            site,
            client_id,
        }
    }

    fn authorize_url(&self) -> String {
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
        format!("{}/authorize?{}", self.base, query.finish())
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
        let user_id = self.user_id.clone();
        self.app
            .state
            .services
            .db
            .run(move |conn| tessera::mfa::passkey::list(conn, &user_id))
            .await
            .expect("passkeys")
            .into_iter()
            .map(|row| (row.name, row.last_used_at))
            .collect()
    }
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
    let amr: Vec<&str> = claims["amr"]
        .as_array()
        .expect("amr")
        .iter()
        .filter_map(Value::as_str)
        .collect();
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

/// A passkey as second factor: the person registered one, then signs in with the password;
/// the second-step page offers "Use a passkey" (beside the recovery codes, if any), the
/// virtual authenticator answers, and the app receives a code whose ID token says `pwd` and
/// a key, and `mfa`. No session is made before the passkey.
#[tokio::test]
async fn a_password_then_a_passkey_as_second_factor() {
    let world = World::new().await;
    let mut browser = Browser::start().await;
    browser
        .client
        .issue_cmd(AddVirtualAuthenticator)
        .await
        .expect("a virtual authenticator");
    browser.open(&world.authorize_url()).await;
    browser.type_into("#email", EMAIL).await;
    browser.type_into("#password", PASSWORD).await;
    browser.click("button.primary").await;
    browser.wait_for_url(&world.site.origin).await;
    browser
        .open(&format!("{}/account/passkeys", world.base))
        .await;
    browser.type_into("#passkey-name", "Phone").await;
    browser.click("#passkey-button").await;
    browser
        .wait_for_url(&format!("{}/account/passkeys?added", world.base))
        .await;
    browser
        .client
        .delete_cookie("tessera_session")
        .await
        .expect("cookie removed");

    browser.open(&world.authorize_url()).await;
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
    let amr: Vec<&str> = claims["amr"]
        .as_array()
        .expect("amr")
        .iter()
        .filter_map(Value::as_str)
        .collect();
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
