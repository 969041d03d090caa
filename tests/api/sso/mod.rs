//! Single sign-on: the browser session at Tessera, the OpenID Connect request parameters that
//! steer it, logout, and consent. `World` is an app or two and a person who can sign in, and a
//! cookie-keeping HTTP browser; the flows a person sees are also driven in Chromium
//! (`browser::sso`).

mod consent;
mod enrolment;
mod interop;
mod logout;
mod mfa;
mod mfa_reset;
mod params;
mod review;
mod session;
mod sessions;

use tessera::clients::ClientSpec;

use crate::testkit::app::{TestApp, TestEnv};
use crate::testkit::fixtures::{
    PASSWORD, REDIRECT, VERIFIER, csrf_field, location, pkce_challenge, query_of,
};
use crate::testkit::http::HttpBrowser;

pub const EMAIL: &str = "ann@example.com";

/// A running server with one person and the clients a test registers.
pub struct World {
    /// Keeps the database and keys directory for as long as the world lives.
    #[allow(dead_code)]
    pub env: TestEnv,
    pub app: TestApp,
    pub user_id: String,
}

impl World {
    pub async fn new() -> World {
        let env = TestEnv::new();
        let app = env.spawn().await;
        World::with(env, app).await
    }

    pub async fn with(env: TestEnv, app: TestApp) -> World {
        let user_id = app.create_user(EMAIL, PASSWORD, &[]).await;
        World { env, app, user_id }
    }

    /// A passkey of the person's, written as the passkeys page would (its credential is never
    /// checked: enough to count as a second factor).
    pub async fn plant_passkey(&self) {
        let (user_id, now) = (self.user_id.clone(), self.app.clock.now());
        self.app
            .query(move |conn| {
                tessera::mfa::passkey_store::insert(
                    conn,
                    &tessera::mfa::passkey_store::PasskeyRow {
                        id: tessera::db::new_id(),
                        credential_id: format!("credential-of-{user_id}"),
                        user_id,
                        name: "Phone".into(),
                        credential: "{}".into(),
                        backup_eligible: 0,
                        created_at: now,
                        last_used_at: None,
                    },
                )
            })
            .await;
    }

    /// A public code-flow client named `name`, first-party unless `spec` says otherwise.
    pub async fn client(&self, name: &str, spec: ClientSpec) -> String {
        self.app
            .create_client(ClientSpec {
                name: name.into(),
                public: true,
                grant_types: vec!["authorization_code".into(), "refresh_token".into()],
                redirect_uris: vec![REDIRECT.into()],
                scopes: ["openid", "email", "profile", "offline_access"]
                    .map(String::from)
                    .to_vec(),
                ..spec
            })
            .await
            .0
    }

    pub fn authorize_url(&self, client_id: &str, extra: &[(&str, &str)]) -> String {
        let challenge = pkce_challenge(VERIFIER);
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", REDIRECT),
            ("scope", "openid email"),
            ("state", "st-1"),
            ("nonce", "n-1"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ] {
            if !extra.iter().any(|(name, _)| *name == k) {
                query.append_pair(k, v);
            }
        }
        for (k, v) in extra {
            query.append_pair(k, v);
        }
        format!("{}?{}", self.app.url("/authorize"), query.finish())
    }

    /// Opens `/authorize` and signs in on the login page; the response to the form.
    pub async fn sign_in(
        &self,
        browser: &mut HttpBrowser,
        client_id: &str,
        extra: &[(&str, &str)],
    ) -> reqwest::Response {
        let page = browser.get(&self.authorize_url(client_id, extra)).await;
        assert_eq!(page.status(), 200, "the login page");
        let html = page.text().await.expect("html");
        self.submit_login(browser, &html, PASSWORD).await
    }

    /// Posts the login form of `html` (its hidden fields) with the person's credentials.
    pub async fn submit_login(
        &self,
        browser: &mut HttpBrowser,
        html: &str,
        password: &str,
    ) -> reqwest::Response {
        let mut form = hidden_fields(html);
        form.push(("csrf_token".into(), csrf_field(html)));
        form.push(("email".into(), EMAIL.into()));
        form.push(("password".into(), password.into()));
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        browser.post_form(&self.app.url("/authorize"), &form).await
    }

    /// Posts the login form of `html` (its hidden fields) with `fields` (`email`, `password`,
    /// `remember`, …): another person's sign-in, or "Keep me signed in".
    pub async fn submit_login_with(
        &self,
        browser: &mut HttpBrowser,
        html: &str,
        fields: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut form = hidden_fields(html);
        form.push(("csrf_token".into(), csrf_field(html)));
        form.extend(fields.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        browser.post_form(&self.app.url("/authorize"), &form).await
    }

    /// The code in a redirect to the app, which must carry the request's state.
    pub fn code_of(response: &reqwest::Response) -> String {
        assert_eq!(response.status(), 303, "a redirect to the app");
        let location = location(response);
        assert!(location.starts_with(REDIRECT), "{location}");
        let query = query_of(&location);
        assert_eq!(query.get("state").map(String::as_str), Some("st-1"));
        query
            .get("code")
            .cloned()
            .unwrap_or_else(|| panic!("no code in {location}"))
    }

    /// Exchanges a code at the token endpoint; the token response as JSON.
    pub async fn exchange(&self, client_id: &str, code: &str) -> serde_json::Value {
        self.app.exchange_code(client_id, REDIRECT, code).await
    }
}

/// The hidden fields of the first form of `html` but its CSRF token, as name/value pairs.
pub fn hidden_fields(html: &str) -> Vec<(String, String)> {
    // The page's first form only: the login page also has the passkey form, which carries
    // the request too, and a browser posts one form, not both.
    let html = html
        .find("<form")
        .map(|start| {
            let form = &html[start..];
            &form[..form.find("</form>").unwrap_or(form.len())]
        })
        .unwrap_or(html);
    let mut fields = Vec::new();
    for part in html.split("<input type=\"hidden\" name=\"").skip(1) {
        let Some((name, rest)) = part.split_once('"') else {
            continue;
        };
        let Some(value) = rest
            .split("value=\"")
            .nth(1)
            .and_then(|v| v.split('"').next())
        else {
            continue;
        };
        if name != "csrf_token" {
            fields.push((name.to_string(), unescape(value)));
        }
    }
    fields
}

fn unescape(value: &str) -> String {
    value
        .replace("&#x2f;", "/")
        .replace("&#x2F;", "/")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&quot;", "\"")
        .replace("&#34;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}
