//! The login page's headers and markup, and the "forgot password" page, over plain HTTP
//! (what a browser does with them is in `browser::`). Issue 14 items 1, 12 and 22.

use std::collections::HashMap;

use tessera::clients::ClientSpec;

use crate::testkit::smtp::SmtpSink;
use crate::testkit::{PASSWORD, REDIRECT, VERIFIER, pkce_challenge};
use crate::testkit::{TestApp, TestEnv};
use crate::testkit::{csrf_field, mail_through};

const BAD_FORM: &str = "This sign-in form has expired or did not come from this site.";

async fn client_with_redirect(app: &TestApp, redirect: &str) -> String {
    app.create_client(ClientSpec {
        name: "Notes".into(),
        public: true,
        grant_types: vec!["authorization_code".into()],
        redirect_uris: vec![redirect.into()],
        scopes: ["openid", "email"].map(String::from).to_vec(),
        ..ClientSpec::default()
    })
    .await
    .0
}

fn request(client_id: &str, redirect: &str) -> Vec<(&'static str, String)> {
    vec![
        ("response_type", "code".into()),
        ("client_id", client_id.into()),
        ("redirect_uri", redirect.into()),
        ("scope", "openid email".into()),
        ("state", "s-1".into()),
        ("code_challenge", pkce_challenge(VERIFIER)),
        ("code_challenge_method", "S256".into()),
    ]
}

struct LoginPage {
    csp: String,
    referrer_policy: String,
    set_cookie: String,
    /// `name=value` of the CSRF cookie, to send back.
    cookie: String,
    csrf: String,
    html: String,
}

async fn open(app: &TestApp, params: &[(&str, String)]) -> LoginPage {
    let response = app
        .client
        .get(app.url("/authorize"))
        .query(params)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let header = |name: &str| {
        response.headers()[name]
            .to_str()
            .expect("ascii")
            .to_string()
    };
    let (csp, referrer_policy, set_cookie) = (
        header("content-security-policy"),
        header("referrer-policy"),
        header("set-cookie"),
    );
    let html = response.text().await.expect("html");
    let csrf = csrf_field(&html);
    LoginPage {
        csp,
        referrer_policy,
        cookie: set_cookie.split(';').next().expect("pair").to_string(),
        set_cookie,
        csrf,
        html,
    }
}

async fn post_login(
    app: &TestApp,
    params: &[(&str, String)],
    page: &LoginPage,
    email: &str,
    password: &str,
    origin: Option<&str>,
) -> reqwest::Response {
    let mut form: Vec<(&str, String)> = params.to_vec();
    form.push(("csrf_token", page.csrf.clone()));
    form.push(("email", email.into()));
    form.push(("password", password.into()));
    let mut request = app
        .client
        .post(app.url("/authorize"))
        .header("Cookie", &page.cookie)
        .form(&form);
    if let Some(origin) = origin {
        request = request.header("Origin", origin);
    }
    request.send().await.expect("request")
}

fn directives(csp: &str) -> HashMap<String, String> {
    csp.split(';')
        .filter_map(|d| {
            let d = d.trim();
            let (name, value) = d.split_once(' ').unwrap_or((d, ""));
            (!name.is_empty()).then(|| (name.to_string(), value.trim().to_string()))
        })
        .collect()
}

/// The CSP of every page except the form-action, which `check` gets.
fn assert_strict_csp(csp: &str, form_action: &str) {
    let d = directives(csp);
    assert_eq!(d["default-src"], "'none'", "{csp}");
    assert_eq!(d["style-src"], "'unsafe-inline'", "{csp}");
    assert_eq!(d["frame-ancestors"], "'none'", "{csp}");
    assert_eq!(d["form-action"], form_action, "{csp}");
    assert_eq!(d.len(), 4, "nothing else is allowed: {csp}");
}

/// The login page's CSP: the strict one, plus Tessera's own passkey script and its calls back
/// to Tessera (`script-src 'self'`, `connect-src 'self'`), and nothing else.
fn assert_login_csp(csp: &str, form_action: &str) {
    let d = directives(csp);
    assert_eq!(d["script-src"], "'self'", "{csp}");
    assert_eq!(d["connect-src"], "'self'", "{csp}");
    let rest: Vec<&str> = csp
        .split(';')
        .map(str::trim)
        .filter(|d| !d.starts_with("script-src") && !d.starts_with("connect-src"))
        .collect();
    assert_strict_csp(&rest.join("; "), form_action);
}

/// Item 1: the login page's form may post here and be redirected to the origin of the
/// request's validated redirect URI (a private-use scheme for a native app), and nowhere
/// else; on the first rendering and after an error alike. Other pages keep `'self'` alone.
#[tokio::test]
async fn the_login_pages_form_action_adds_only_the_redirect_uris_origin() {
    let env = TestEnv::new();
    let app = env.spawn().await;
    app.create_user("ann@example.com", PASSWORD, &[]).await;
    let web = client_with_redirect(&app, "http://127.0.0.1:9/app/callback?x=1").await;
    let params = request(&web, "http://127.0.0.1:9/app/callback?x=1");
    let page = open(&app, &params).await;
    assert_login_csp(&page.csp, "'self' http://127.0.0.1:9");

    let wrong = post_login(&app, &params, &page, "ann@example.com", "wrong", None).await;
    assert_eq!(wrong.status(), 401);
    let csp = wrong.headers()["content-security-policy"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert_login_csp(&csp, "'self' http://127.0.0.1:9");

    let https = client_with_redirect(&app, "https://notes.example.com:8443/cb").await;
    let page = open(&app, &request(&https, "https://notes.example.com:8443/cb")).await;
    assert_login_csp(&page.csp, "'self' https://notes.example.com:8443");

    let native = client_with_redirect(&app, "com.example.app://oauth/cb").await;
    let page = open(&app, &request(&native, "com.example.app://oauth/cb")).await;
    assert_login_csp(&page.csp, "'self' com.example.app:");

    // A page that is not the login form (here: a refused request) allows only 'self'.
    let mut unknown = request(&web, "https://evil.example/cb");
    unknown[2].1 = "https://evil.example/cb".into();
    let refused = app
        .client
        .get(app.url("/authorize"))
        .query(&unknown)
        .send()
        .await
        .expect("request");
    assert_eq!(refused.status(), 400);
    let csp = refused.headers()["content-security-policy"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert_strict_csp(&csp, "'self'");
    app.stop().await;
}

/// Item 22: `Referrer-Policy: same-origin`, so the form post carries the real `Origin`.
#[tokio::test]
async fn pages_send_a_same_origin_referrer_policy() {
    let env = TestEnv::new();
    let app = env.spawn().await;
    let client = client_with_redirect(&app, REDIRECT).await;
    let page = open(&app, &request(&client, REDIRECT)).await;
    assert_eq!(page.referrer_policy, "same-origin");
    app.stop().await;
}

/// Item 22: a form post from another origin gets the same 403 page as a bad CSRF token, even
/// with a valid cookie and field (`Origin: null` too); the page's own origin, and a post
/// with no `Origin` at all (older clients), go through to the password check.
#[tokio::test]
async fn a_cross_origin_login_post_is_refused_like_a_bad_csrf_token() {
    let env = TestEnv::new();
    let app = env.spawn().await;
    app.create_user("ann@example.com", PASSWORD, &[]).await;
    let client = client_with_redirect(&app, REDIRECT).await;
    let params = request(&client, REDIRECT);
    let page = open(&app, &params).await;
    for origin in ["http://evil.example", "null", "http://127.0.0.1:9"] {
        let response = post_login(
            &app,
            &params,
            &page,
            "ann@example.com",
            PASSWORD,
            Some(origin),
        )
        .await;
        assert_eq!(response.status(), 403, "Origin: {origin}");
        assert!(
            response.text().await.expect("html").contains(BAD_FORM),
            "Origin: {origin}"
        );
    }
    let ok = post_login(
        &app,
        &params,
        &page,
        "ann@example.com",
        PASSWORD,
        Some(&app.address),
    )
    .await;
    assert_eq!(ok.status(), 303, "its own origin");
    let ok = post_login(&app, &params, &page, "ann@example.com", PASSWORD, None).await;
    assert_eq!(ok.status(), 303, "no Origin header");
    app.stop().await;
}

/// The Origin check believes the `Host` header the browser sent, never `Forwarded` or
/// `X-Forwarded-Host`, which anyone can add (review of item 22).
#[tokio::test]
async fn forwarding_headers_do_not_make_another_origin_our_own() {
    let env = TestEnv::new();
    let app = env.spawn().await;
    app.create_user("ann@example.com", PASSWORD, &[]).await;
    let client = client_with_redirect(&app, REDIRECT).await;
    let params = request(&client, REDIRECT);
    let page = open(&app, &params).await;
    let mut form: Vec<(&str, String)> = params.to_vec();
    form.push(("csrf_token", page.csrf.clone()));
    form.push(("email", "ann@example.com".into()));
    form.push(("password", PASSWORD.into()));
    for (name, value) in [
        ("x-forwarded-host", "evil.example"),
        ("forwarded", "host=evil.example;proto=http"),
    ] {
        let response = app
            .client
            .post(app.url("/authorize"))
            .header("Cookie", &page.cookie)
            .header("Origin", "http://evil.example")
            .header(name, value)
            .form(&form)
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 403, "{name}: {value}");
    }
    app.stop().await;
}

/// Item 22: after a wrong password the typed email is back in its field, escaped.
#[tokio::test]
async fn the_typed_email_is_kept_and_escaped_after_a_wrong_password() {
    let env = TestEnv::new();
    let app = env.spawn().await;
    let client = client_with_redirect(&app, REDIRECT).await;
    let params = request(&client, REDIRECT);
    let page = open(&app, &params).await;
    let typed = r#"ann"><script>x()</script>@example.com"#;
    let wrong = post_login(&app, &params, &page, typed, "wrong", None).await;
    assert_eq!(wrong.status(), 401);
    let html = wrong.text().await.expect("html");
    assert!(
        html.contains(r#"value="ann&#34;&#62;&#60;script&#62;x()&#60;/script&#62;@example.com""#),
        "{html}"
    );
    assert!(!html.contains("<script>"));
    app.stop().await;
}

/// Item 22: "Forgot password?" only when mail is on, "Create account" only when
/// self-registration is on, and the submit button is the primary action.
#[tokio::test]
async fn the_login_page_links_only_to_what_this_server_offers() {
    let sink = SmtpSink::start().await;
    for (mail, registration) in [(false, true), (true, false), (true, true), (false, false)] {
        let env = TestEnv::new();
        let mut settings = env.settings();
        if mail {
            mail_through(&mut settings, &sink.url());
        }
        settings.accounts.self_registration = registration;
        let app = env.spawn_with(settings).await;
        let client = client_with_redirect(&app, REDIRECT).await;
        let page = open(&app, &request(&client, REDIRECT)).await;
        assert_eq!(
            page.html.contains(r#"href="/account/forgot-password""#),
            mail,
            "mail {mail}: {}",
            page.html
        );
        assert_eq!(
            page.html.contains(r#"href="/account/register""#),
            registration,
            "registration {registration}: {}",
            page.html
        );
        assert!(
            page.html
                .contains(r#"<button type="submit" class="primary">Sign in</button>"#),
            "{}",
            page.html
        );
        app.stop().await;
    }
    sink.stop().await;
}

/// Item 12: under an https issuer (the test server itself stays on plain http) the login
/// form's CSRF cookie is `__Host-` prefixed, Secure, `Path=/`, without `Domain`; the form
/// reads that name back, and the unprefixed name no longer counts.
#[tokio::test]
async fn under_an_https_issuer_the_csrf_cookie_has_the_host_prefix() {
    let env = TestEnv::new();
    let mut settings = env.settings();
    settings.server.issuer = Some("https://id.example.test".into());
    let app = env.spawn_with(settings).await;
    app.create_user("ann@example.com", PASSWORD, &[]).await;
    let client = client_with_redirect(&app, REDIRECT).await;
    let params = request(&client, REDIRECT);
    let page = open(&app, &params).await;
    let attributes: Vec<&str> = page.set_cookie.split(';').map(str::trim).collect();
    assert!(
        page.cookie.starts_with("__Host-tessera_csrf="),
        "{}",
        page.set_cookie
    );
    for wanted in ["HttpOnly", "Secure", "Path=/", "SameSite=Lax"] {
        assert!(attributes.contains(&wanted), "{}", page.set_cookie);
    }
    assert!(
        !page.set_cookie.to_ascii_lowercase().contains("domain"),
        "{}",
        page.set_cookie
    );

    let unprefixed = LoginPage {
        cookie: page.cookie.replacen("__Host-", "", 1),
        ..page
    };
    let refused = post_login(
        &app,
        &params,
        &unprefixed,
        "ann@example.com",
        PASSWORD,
        None,
    )
    .await;
    assert_eq!(refused.status(), 403, "the plain name is not read");
    let page = LoginPage {
        cookie: unprefixed
            .cookie
            .replacen("tessera_csrf", "__Host-tessera_csrf", 1),
        ..unprefixed
    };
    let signed_in = post_login(&app, &params, &page, "ann@example.com", PASSWORD, None).await;
    assert_eq!(signed_in.status(), 303);
    let removal = signed_in.headers()["set-cookie"].to_str().expect("ascii");
    assert!(
        removal.starts_with("__Host-tessera_csrf=;") && removal.contains("Path=/"),
        "the used cookie is removed under its own name and path: {removal}"
    );
    app.stop().await;
}

/// Under plain http the names stay unprefixed (browsers drop `__Host-` cookies without
/// Secure) and the path stays narrow.
#[tokio::test]
async fn under_plain_http_the_csrf_cookie_keeps_its_plain_name() {
    let env = TestEnv::new();
    let app = env.spawn().await;
    let client = client_with_redirect(&app, REDIRECT).await;
    let page = open(&app, &request(&client, REDIRECT)).await;
    assert!(
        page.cookie.starts_with("tessera_csrf="),
        "{}",
        page.set_cookie
    );
    assert!(page.set_cookie.contains("Path=/authorize"));
    assert!(!page.set_cookie.contains("Secure"));
    app.stop().await;
}

struct FormPage {
    cookie: String,
    csrf: String,
    html: String,
}

async fn open_forgot(app: &TestApp) -> FormPage {
    let response = app.get("/account/forgot-password").await;
    assert_eq!(response.status(), 200);
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert_strict_csp(&csp, "'self'");
    assert_eq!(response.headers()["x-frame-options"], "DENY");
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    let html = response.text().await.expect("html");
    FormPage {
        cookie: cookie.split(';').next().expect("pair").to_string(),
        csrf: csrf_field(&html),
        html,
    }
}

async fn post_forgot(
    app: &TestApp,
    cookie: Option<&str>,
    csrf: &str,
    email: &str,
    origin: Option<&str>,
) -> reqwest::Response {
    let mut request = app
        .client
        .post(app.url("/account/forgot-password"))
        .form(&[("csrf_token", csrf), ("email", email)]);
    if let Some(cookie) = cookie {
        request = request.header("Cookie", cookie);
    }
    if let Some(origin) = origin {
        request = request.header("Origin", origin);
    }
    request.send().await.expect("request")
}

/// Item 22: the "forgot password" page. A CSRF-protected form; every address gets the same
/// answer, only an account's owner gets a mail (with a working reset link), and the reset
/// throttle applies. A forged or cross-origin post sends nothing.
#[tokio::test]
async fn forgot_password_answers_alike_for_every_address_and_mails_only_the_owner() {
    let sink = SmtpSink::start().await;
    let env = TestEnv::new();
    let mut settings = env.settings();
    mail_through(&mut settings, &sink.url());
    settings.accounts.mail_requests_per_email = 1;
    let app = env.spawn_with(settings).await;
    app.create_user("ann@example.com", PASSWORD, &[]).await;

    let page = open_forgot(&app).await;
    assert!(
        page.html
            .contains(r#"<input id="email" name="email" type="email""#)
    );
    let missing_cookie = post_forgot(&app, None, &page.csrf, "ann@example.com", None).await;
    assert_eq!(missing_cookie.status(), 403);
    let forged = post_forgot(&app, Some(&page.cookie), "forged", "ann@example.com", None).await;
    assert_eq!(forged.status(), 403);
    let cross = post_forgot(
        &app,
        Some(&page.cookie),
        &page.csrf,
        "ann@example.com",
        Some("http://evil.example"),
    )
    .await;
    assert_eq!(cross.status(), 403);

    let known = post_forgot(
        &app,
        Some(&page.cookie),
        &page.csrf,
        "ann@example.com",
        Some(&app.address),
    )
    .await;
    assert_eq!(known.status(), 200);
    let known = known.text().await.expect("html");
    let unknown = post_forgot(
        &app,
        Some(&page.cookie),
        &page.csrf,
        "nobody@example.com",
        None,
    )
    .await;
    assert_eq!(unknown.status(), 200);
    let unknown = unknown.text().await.expect("html");
    assert_eq!(
        known, unknown,
        "the same answer whether or not an account exists"
    );
    assert!(known.contains("If an account has this address"), "{known}");

    let mails = sink.wait_for(1).await;
    assert_eq!(mails[0].to, vec!["ann@example.com".to_string()]);
    let link = mails[0].link("/account/password-reset");
    assert!(link.starts_with(&app.issuer), "{link}");
    let reset_page = app
        .client
        .get(&link)
        .header("Accept", "text/html")
        .send()
        .await
        .expect("request");
    assert_eq!(reset_page.status(), 200, "the mailed link works");

    // The per-address limit (1 here) applies to the page as to the API.
    let again = post_forgot(
        &app,
        Some(&page.cookie),
        &page.csrf,
        "ann@example.com",
        None,
    )
    .await;
    assert_eq!(again.status(), 429);
    assert!(again.headers().contains_key("retry-after"));
    let queued = app
        .state
        .services
        .db
        .run(|conn| tessera::db::repo::outbox::list(conn).map_err(tessera::db::DbError::from))
        .await
        .expect("outbox");
    assert_eq!(queued.len(), 2, "the throttled request queued nothing");
    app.stop().await;
    sink.stop().await;
}

/// Without mail there is no way to mail a link: the page says so instead of pretending.
#[tokio::test]
async fn forgot_password_without_mail_says_it_is_not_available() {
    let env = TestEnv::new();
    let app = env.spawn().await;
    let response = app.get("/account/forgot-password").await;
    assert_eq!(response.status(), 503);
    let html = response.text().await.expect("html");
    assert!(html.contains("not available"), "{html}");
    app.stop().await;
}
