//! Issue 14 item 12: the upstream sign-in's browser-binding cookie. The server alone makes its
//! secret (an attacker who plants a value in a victim's browser must not get it adopted), and
//! under an https issuer it carries the `__Host-` prefix. The login form's CSRF cookie has its
//! tests in `login_page`.

use tessera::config::{Secret, Settings};

use crate::testkit::upstream::{self, FakeUpstream};
use crate::testkit::{TestApp, TestEnv};

/// 43 base64url characters: shaped like a secret the server makes.
const PLANTED: &str = "AttackerChosenBindingValue0123456789abcdefg";

async fn world(https_issuer: bool) -> (TestApp, FakeUpstream, TestEnv) {
    let env = TestEnv::new();
    let upstream = FakeUpstream::start().await;
    let mut settings: Settings = env.settings();
    settings.google.client_id = upstream::CLIENT_ID.into();
    settings.google.client_secret = Secret::new(upstream::CLIENT_SECRET);
    settings.google.issuer = upstream.issuer.clone();
    settings.federation.http_timeout_secs = 1;
    if https_issuer {
        settings.server.issuer = Some("https://id.example.test".into());
    }
    let app = env.spawn_with(settings).await;
    (app, upstream, env)
}

struct Started {
    /// The whole Set-Cookie header of the binding cookie.
    set_cookie: String,
    name: String,
    value: String,
    /// Tessera's callback URL as the upstream sent the browser back, on the test server.
    callback: String,
}

/// `GET /auth/google/login` presenting `cookie`, then the upstream's leg; stops before the
/// callback.
async fn start(app: &TestApp, cookie: Option<&str>) -> Started {
    let mut request = app.client.get(app.url("/auth/google/login"));
    if let Some(cookie) = cookie {
        request = request.header("Cookie", cookie);
    }
    let response = request.send().await.expect("request");
    assert_eq!(response.status(), 303);
    let set_cookie = response.headers()["set-cookie"]
        .to_str()
        .expect("ascii")
        .to_string();
    let (name, value) = set_cookie
        .split(';')
        .next()
        .and_then(|pair| pair.split_once('='))
        .expect("name=value");
    let (name, value) = (name.to_string(), value.to_string());
    let to_upstream = response.headers()["location"]
        .to_str()
        .expect("ascii")
        .to_string();
    let back = app.client.get(&to_upstream).send().await.expect("upstream");
    assert_eq!(back.status(), 302);
    let callback = back.headers()["location"].to_str().expect("ascii");
    // Under an https issuer the callback names the public URL; the server is this one.
    let path = callback
        .find("/auth/google/callback")
        .map(|i| &callback[i..])
        .expect("the callback path");
    Started {
        set_cookie,
        name,
        value,
        callback: app.url(path),
    }
}

async fn finish(app: &TestApp, started: &Started, cookie: &str) -> reqwest::Response {
    app.client
        .get(&started.callback)
        .header("Cookie", cookie)
        .send()
        .await
        .expect("request")
}

/// A binding value planted in the browser (cookie tossing, a sibling subdomain, a plain-http
/// page) is never adopted: the start sets a fresh value, and the planted one cannot finish.
#[tokio::test]
async fn a_planted_binding_cookie_is_replaced_and_cannot_finish_the_sign_in() {
    let (app, upstream, _env) = world(false).await;
    let planted = format!("tessera_upstream={PLANTED}");

    let started = start(&app, Some(&planted)).await;
    assert_eq!(started.name, "tessera_upstream");
    assert_ne!(started.value, PLANTED, "the planted value was adopted");
    assert_eq!(started.value.len(), 43);
    let answer = finish(&app, &started, &planted).await;
    assert_eq!(answer.status(), 400, "the planted value finished a sign-in");

    // The value the server set does finish it.
    let started = start(&app, Some(&planted)).await;
    let own = format!("tessera_upstream={}", started.value);
    let answer = finish(&app, &started, &own).await;
    assert_eq!(answer.status(), 200, "{:?}", answer.text().await);
    assert_eq!(
        upstream.token_requests(),
        1,
        "only the real one reached the upstream"
    );
    upstream.stop().await;
    app.stop().await;
}

/// Under an https issuer the binding cookie is `__Host-tessera_upstream`: Secure, `Path=/`,
/// no `Domain`, and the callback reads it under that name (the plain name does not count).
#[tokio::test]
async fn under_an_https_issuer_the_binding_cookie_has_the_host_prefix() {
    let (app, upstream, _env) = world(true).await;
    let started = start(&app, None).await;
    assert_eq!(
        started.name, "__Host-tessera_upstream",
        "{}",
        started.set_cookie
    );
    let attributes: Vec<&str> = started.set_cookie.split(';').map(str::trim).collect();
    for wanted in ["HttpOnly", "Secure", "Path=/", "SameSite=Lax"] {
        assert!(attributes.contains(&wanted), "{}", started.set_cookie);
    }
    assert!(
        !started.set_cookie.to_ascii_lowercase().contains("domain"),
        "{}",
        started.set_cookie
    );
    let plain = format!("tessera_upstream={}", started.value);
    assert_eq!(finish(&app, &started, &plain).await.status(), 400);

    let started = start(&app, None).await;
    let prefixed = format!("__Host-tessera_upstream={}", started.value);
    let answer = finish(&app, &started, &prefixed).await;
    assert_eq!(answer.status(), 200, "{:?}", answer.text().await);
    upstream.stop().await;
    app.stop().await;
}
