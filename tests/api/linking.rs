//! Which account an upstream identity may sign in to, and who owns an address (issue 14,
//! items 4, 5 and 21): the verification link needs a POST from its page; linking to an account
//! with a password needs that password; only a trusted upstream's verified address links or
//! owns an address; an unverified account never blocks the address's owner; one address, one
//! account's tokens.

use diesel::prelude::*;
use serde_json::{Value, json};
use tessera::config::Secret;
use tessera::db::schema::{audit_events, federated_identities, users};

use crate::federation::{
    REDIRECT, World, app_request, exchange, serde_urlencoded, unverified_user, user_count,
    world_with,
};
use crate::testkit::mail_through;
use crate::testkit::smtp::SmtpSink;
use crate::testkit::upstream::{self, Identity};
use crate::testkit::{HttpBrowser, PASSWORD, TestApp, VERIFIER, claims_of, location, query_of};

const ATTACKER_PASSWORD: &str = "the attacker's own passphrase";

/// The value of a hidden input on a page.
fn hidden(html: &str, name: &str) -> String {
    let marker = format!(r#"name="{name}" value=""#);
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("{name} in {html}"))
        + marker.len();
    let end = html[start..].find('"').expect("end quote") + start;
    html[start..end].to_string()
}

fn google(settings: &mut tessera::config::Settings, issuer: &str) {
    settings.google.client_id = upstream::CLIENT_ID.into();
    settings.google.client_secret = Secret::new(upstream::CLIENT_SECRET);
    settings.google.issuer = issuer.into();
}

/// Google plus an `acme` upstream that is not trusted for addresses (the default).
async fn world_with_acme() -> World {
    world_with(|settings, issuer| {
        google(settings, issuer);
        settings.upstreams.insert(
            "acme".into(),
            tessera::config::UpstreamSettings {
                display_name: Some("Acme SSO".into()),
                issuer: issuer.into(),
                client_id: upstream::CLIENT_ID.into(),
                client_secret: Secret::new(upstream::CLIENT_SECRET),
                trust_email: false,
            },
        );
    })
    .await
}

fn identity(sub: &str, email: &str, verified: bool) -> Identity {
    Identity {
        sub: sub.into(),
        email: email.into(),
        email_verified: verified,
        name: "Upstream Person".into(),
    }
}

/// From the app's authorization request (`with_app`) or a direct sign-in, through the
/// upstream `idp`, to Tessera's answer to the callback.
async fn through(
    world: &World,
    browser: &mut HttpBrowser,
    idp: &str,
    with_app: bool,
) -> reqwest::Response {
    let start = if with_app {
        let mut params = app_request(&world.client_id);
        params.push(("idp", idp.into()));
        format!(
            "{}?{}",
            world.app.url("/authorize"),
            serde_urlencoded(&params)
        )
    } else {
        world.app.url(&format!("/auth/{idp}/login"))
    };
    let start = browser.get(&start).await;
    assert_eq!(start.status(), 303, "{:?}", start.text().await);
    let back = browser.get(&location(&start)).await;
    assert_eq!(back.status(), 302, "{:?}", back.text().await);
    browser.get(&location(&back)).await
}

/// The app's code from a redirect to it, exchanged: the ID token's claims.
async fn id_claims_from(world: &World, answer: &reqwest::Response) -> Value {
    assert_eq!(answer.status(), 303);
    let to_app = location(answer);
    assert!(to_app.starts_with(&format!("{REDIRECT}?")), "{to_app}");
    let back = query_of(&to_app);
    assert_eq!(back["state"], "app-state-1");
    let response = exchange(world, &back["code"], VERIFIER).await;
    assert_eq!(response.status(), 200);
    let tokens: Value = response.json().await.expect("json");
    claims_of(tokens["id_token"].as_str().expect("id token"))
}

async fn identities_of(app: &TestApp, user_id: &str) -> Vec<String> {
    let user_id = user_id.to_string();
    app.query(move |c| {
        federated_identities::table
            .filter(federated_identities::user_id.eq(user_id))
            .select(federated_identities::subject)
            .load::<String>(c)
    })
    .await
}

async fn verified_at(app: &TestApp, user_id: &str) -> Option<Option<i64>> {
    let user_id = user_id.to_string();
    app.query(move |c| {
        users::table
            .find(user_id)
            .select(users::email_verified_at)
            .first::<Option<i64>>(c)
            .optional()
    })
    .await
}

async fn password_login(app: &TestApp, email: &str, password: &str) -> reqwest::Response {
    let (client, secret) = app.first_party_client().await;
    app.password_login((&client, &secret), email, password, "openid email")
        .await
}

/// Self-registration as the attacker would do it; returns the account id.
async fn register(app: &TestApp, email: &str, password: &str) -> String {
    let response = app
        .client
        .post(app.url("/users"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .expect("request");
    // With mail on, a new address is answered like a taken one (202, no id): read the id.
    assert_eq!(response.status(), 202, "{:?}", response.text().await);
    let key = email.to_lowercase();
    app.state
        .services
        .db
        .run(move |conn| {
            tessera::db::repo::users::find_by_email(conn, &key).map_err(tessera::db::DbError::from)
        })
        .await
        .expect("read")
        .expect("the account was made")
        .id
        .into_string()
}

fn assert_page_headers(response: &reqwest::Response) {
    let headers = response.headers();
    assert!(
        headers["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("text/html")
    );
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["x-frame-options"], "DENY");
    let csp = headers["content-security-policy"].to_str().expect("ascii");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(csp.contains("default-src 'none'"), "{csp}");
}

// ---- Item 4, first half: the verification link --------------------------------------------

#[tokio::test]
async fn item4_a_scanner_opening_the_verification_link_verifies_nothing() {
    let sink = SmtpSink::start().await;
    let world = world_with(|s, issuer| {
        google(s, issuer);
        mail_through(s, &sink.url());
    })
    .await;
    let app = &world.app;
    let id = register(app, "ann@example.com", PASSWORD).await;
    let link = sink.wait_for(1).await[0].link("/account/verify-email");

    // A mail scanner fetches the link, as a browser and as a bare client, twice.
    for accept in ["text/html", "*/*", "text/html"] {
        let response = app
            .client
            .get(&link)
            .header("accept", accept)
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 200, "{accept}");
    }
    assert_eq!(
        verified_at(app, &id).await,
        Some(None),
        "a GET verifies nothing"
    );

    // The person opens it: a confirmation page; its form verifies.
    let mut browser = HttpBrowser::for_pages();
    let page = browser.get(&link).await;
    assert_eq!(page.status(), 200);
    assert_page_headers(&page);
    let html = page.text().await.expect("html");
    assert!(html.contains(r#"id="verify-email-form""#), "{html}");
    assert!(html.contains(r#"id="verify-email-confirm""#), "{html}");
    assert!(html.contains("ann@example.com"), "{html}");
    let token = hidden(&html, "token");
    let csrf = hidden(&html, "csrf_token");
    assert_eq!(verified_at(app, &id).await, Some(None));
    let done = browser
        .post_form(
            &app.url("/account/verify-email"),
            &[("token", &token), ("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(done.status(), 200);
    assert_page_headers(&done);
    assert!(done.text().await.expect("html").contains("confirmed"));
    assert!(verified_at(app, &id).await.expect("user").is_some());

    // Used up: the page says so, and a second POST does nothing.
    let again = browser.get(&link).await;
    assert_eq!(again.status(), 400);
    assert!(
        again
            .text()
            .await
            .expect("html")
            .contains("already been used")
    );
    world.upstream.stop().await;
}

#[tokio::test]
async fn item4_the_verification_form_refuses_a_post_without_its_csrf_cookie() {
    let sink = SmtpSink::start().await;
    let world = world_with(|s, issuer| {
        google(s, issuer);
        mail_through(s, &sink.url());
    })
    .await;
    let app = &world.app;
    let id = register(app, "ann@example.com", PASSWORD).await;
    let link = sink.wait_for(1).await[0].link("/account/verify-email");
    let mut browser = HttpBrowser::for_pages();
    let html = browser.get(&link).await.text().await.expect("html");
    let token = hidden(&html, "token");
    let csrf = hidden(&html, "csrf_token");

    // Another site's form: no cookie, or a field that does not match it.
    let mut stranger = HttpBrowser::for_pages();
    for form in [
        vec![("token", token.as_str()), ("csrf_token", csrf.as_str())],
        vec![("token", token.as_str())],
    ] {
        let refused = stranger
            .post_form(&app.url("/account/verify-email"), &form)
            .await;
        assert_eq!(refused.status(), 403);
        assert_page_headers(&refused);
    }
    let forged = browser
        .post_form(
            &app.url("/account/verify-email"),
            &[("token", &token), ("csrf_token", "forged-value")],
        )
        .await;
    assert_eq!(forged.status(), 403);
    assert_eq!(verified_at(app, &id).await, Some(None));
    world.upstream.stop().await;
}

#[tokio::test]
async fn item4_the_json_verification_api_still_verifies_with_a_post() {
    let sink = SmtpSink::start().await;
    let world = world_with(|s, issuer| {
        google(s, issuer);
        mail_through(s, &sink.url());
    })
    .await;
    let app = &world.app;
    let id = register(app, "ann@example.com", PASSWORD).await;
    let link = sink.wait_for(1).await[0].link("/account/verify-email");
    let token = link.split("token=").nth(1).expect("token").to_string();
    let check = app.client.get(&link).send().await.expect("request");
    assert_eq!(check.status(), 200);
    let body: Value = check.json().await.expect("json");
    assert_eq!(body["valid"], true);
    assert_eq!(verified_at(app, &id).await, Some(None));
    let verified = app
        .client
        .post(app.url("/account/verify-email"))
        .json(&json!({ "token": token }))
        .send()
        .await
        .expect("request");
    assert_eq!(verified.status(), 200);
    let user: Value = verified.json().await.expect("json");
    assert_eq!(user["email_verified"], true);
    world.upstream.stop().await;
}

// ---- Item 4: the whole attack -------------------------------------------------------------

#[tokio::test]
async fn item4_pre_hijack_attack_a_scanned_link_and_a_later_upstream_sign_in_give_the_attacker_nothing()
 {
    let sink = SmtpSink::start().await;
    let world = world_with(|s, issuer| {
        google(s, issuer);
        mail_through(s, &sink.url());
    })
    .await;
    let app = &world.app;
    // 1. The attacker registers the victim's address with a password of their choosing, and
    //    keeps a session.
    let attacker = register(app, "victim@corp.com", ATTACKER_PASSWORD).await;
    let before = password_login(app, "victim@corp.com", ATTACKER_PASSWORD).await;
    assert_eq!(before.status(), 200);
    let before: Value = before.json().await.expect("json");
    // 2. The victim's mail scanner follows the verification link.
    let link = sink.wait_for(1).await[0].link("/account/verify-email");
    let scanned = app
        .client
        .get(&link)
        .header("accept", "text/html")
        .send()
        .await
        .expect("request");
    assert_eq!(scanned.status(), 200);
    assert_eq!(verified_at(app, &attacker).await, Some(None));
    // 3. The victim signs in with Google, which vouches for the address.
    world
        .upstream
        .set_identity(identity("victim-google", "victim@corp.com", true));
    let mut browser = HttpBrowser::for_pages();
    let answer = through(&world, &mut browser, "google", true).await;
    let id = id_claims_from(&world, &answer).await;

    // No link into the attacker's account: the victim has an account of their own, which
    // owns the address.
    assert_ne!(id["sub"], attacker.as_str());
    assert_eq!(id["email"], "victim@corp.com");
    assert_eq!(id["email_verified"], true);
    assert!(identities_of(app, &attacker).await.is_empty());
    // The attacker's password reaches nothing any more, and their session is over.
    let after = password_login(app, "victim@corp.com", ATTACKER_PASSWORD).await;
    assert_eq!(after.status(), 400);
    let (client, secret) = app.first_party_client().await;
    let refreshed = app
        .token(
            (&client, &secret),
            &[
                ("grant_type", "refresh_token"),
                (
                    "refresh_token",
                    before["refresh_token"].as_str().expect("rt"),
                ),
            ],
        )
        .await;
    assert_eq!(refreshed.status(), 400, "the attacker's session has ended");
    // The attacker's access token is refused at Tessera (the account's stamp changed), and the
    // account carries the address in no token (checked for every account in item 21's test).
    assert_eq!(
        app.userinfo_status(before["access_token"].as_str().expect("at"))
            .await,
        401
    );
    assert!(
        app.audit_events(&attacker)
            .await
            .contains(&"email_released".to_string())
    );
    // The victim's next sign-in is the same account.
    let mut browser = HttpBrowser::for_pages();
    let again = through(&world, &mut browser, "google", true).await;
    assert_eq!(id_claims_from(&world, &again).await["sub"], id["sub"]);
    world.upstream.stop().await;
}

// ---- Item 4, second half: linking needs the account's password ----------------------------

/// A verified password account for gina@example.com, the fake upstream's default person.
async fn gina_world() -> (World, String) {
    let world = world_with(google).await;
    let gina = world
        .app
        .create_user("gina@example.com", PASSWORD, &[])
        .await;
    (world, gina)
}

/// Through the upstream to the link page; returns the page's HTML.
async fn to_link_page(world: &World, browser: &mut HttpBrowser, with_app: bool) -> String {
    let answer = through(world, browser, "google", with_app).await;
    assert_eq!(answer.status(), 303, "{:?}", answer.text().await);
    assert_eq!(location(&answer), "/auth/link");
    let cookie = answer
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().expect("ascii").to_string())
        .find(|c| c.starts_with("tessera_link="))
        .expect("a link cookie");
    assert!(
        cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Lax")
            && cookie.contains("Path=/auth/link")
            && cookie.contains("Max-Age=600"),
        "{cookie}"
    );
    let page = browser.get(&world.app.url("/auth/link")).await;
    assert_eq!(page.status(), 200);
    assert_page_headers(&page);
    page.text().await.expect("html")
}

#[tokio::test]
async fn item4_linking_to_a_password_account_needs_its_password() {
    let (world, gina) = gina_world().await;
    let mut browser = HttpBrowser::for_pages();
    let html = to_link_page(&world, &mut browser, true).await;
    for id in [
        r#"id="link-form""#,
        r#"id="password""#,
        r#"id="link-confirm""#,
        r#"id="link-decline""#,
    ] {
        assert!(html.contains(id), "{id} in {html}");
    }
    assert!(html.contains("gina@example.com"), "{html}");
    // Nothing is linked, and no account made, until the password is given.
    assert!(identities_of(&world.app, &gina).await.is_empty());
    assert_eq!(user_count(&world.app).await, 1);
    // Only a hash of the browser's secret is stored.
    let secret = browser.cookies["tessera_link"].clone();
    let stored: Vec<String> = world
        .app
        .query(|c| {
            tessera::db::schema::pending_links::table
                .select(tessera::db::schema::pending_links::secret_hash)
                .load(c)
        })
        .await;
    assert_eq!(stored, [tessera::crypto::sha256_hex(secret.as_bytes())]);
    assert!(!html.contains(&secret), "the secret is not on the page");

    let csrf = hidden(&html, "csrf_token");
    let linked = browser
        .post_form(
            &world.app.url("/auth/link"),
            &[
                ("csrf_token", &csrf),
                ("password", PASSWORD),
                ("action", "link"),
            ],
        )
        .await;
    let id = id_claims_from(&world, &linked).await;
    assert_eq!(id["sub"], gina.as_str());
    assert_eq!(id["email"], "gina@example.com");
    assert_eq!(identities_of(&world.app, &gina).await, ["100200300"]);
    let events = world.app.audit_events(&gina).await;
    assert!(
        events.contains(&"federated_identity_linked".to_string()),
        "{events:?}"
    );
    assert_eq!(user_count(&world.app).await, 1);

    // Single use: the same browser cannot use the pending link again.
    let replay = browser.get(&world.app.url("/auth/link")).await;
    assert_eq!(replay.status(), 400);
    // And the next sign-in is a returning one, with no page.
    let mut browser = HttpBrowser::for_pages();
    let again = through(&world, &mut browser, "google", true).await;
    assert_eq!(id_claims_from(&world, &again).await["sub"], gina.as_str());
    world.upstream.stop().await;
}

#[tokio::test]
async fn item4_a_wrong_password_links_nothing_and_says_so() {
    let (world, gina) = gina_world().await;
    let mut browser = HttpBrowser::for_pages();
    let html = to_link_page(&world, &mut browser, true).await;
    let csrf = hidden(&html, "csrf_token");
    let wrong = browser
        .post_form(
            &world.app.url("/auth/link"),
            &[
                ("csrf_token", &csrf),
                ("password", "not the password"),
                ("action", "link"),
            ],
        )
        .await;
    assert_eq!(wrong.status(), 401);
    assert_page_headers(&wrong);
    assert!(wrong.headers().get("location").is_none());
    let html = wrong.text().await.expect("html");
    assert!(html.contains("password is not right"), "{html}");
    assert!(html.contains(r#"id="link-form""#), "the form again: {html}");
    assert!(identities_of(&world.app, &gina).await.is_empty());
    assert_eq!(user_count(&world.app).await, 1);
    let failures: i64 = world
        .app
        .query(|c| {
            audit_events::table
                .filter(audit_events::event.eq("login_failure"))
                .count()
                .get_result(c)
        })
        .await;
    assert_eq!(failures, 1, "counted as a failed sign-in");
    // The right one still works afterwards.
    let linked = browser
        .post_form(
            &world.app.url("/auth/link"),
            &[
                ("csrf_token", &csrf),
                ("password", PASSWORD),
                ("action", "link"),
            ],
        )
        .await;
    assert_eq!(id_claims_from(&world, &linked).await["sub"], gina.as_str());
    world.upstream.stop().await;
}

#[tokio::test]
async fn item4_declining_the_link_links_nothing_and_the_app_gets_access_denied() {
    let (world, gina) = gina_world().await;
    let mut browser = HttpBrowser::for_pages();
    let html = to_link_page(&world, &mut browser, true).await;
    let csrf = hidden(&html, "csrf_token");
    let declined = browser
        .post_form(
            &world.app.url("/auth/link"),
            &[("csrf_token", &csrf), ("action", "decline")],
        )
        .await;
    assert_eq!(declined.status(), 303);
    let to_app = location(&declined);
    assert!(to_app.starts_with(REDIRECT), "{to_app}");
    let back = query_of(&to_app);
    assert_eq!(back["error"], "access_denied");
    assert_eq!(back["state"], "app-state-1");
    assert!(!back.contains_key("code"));
    assert!(identities_of(&world.app, &gina).await.is_empty());
    assert_eq!(user_count(&world.app).await, 1, "no other account either");
    // The pending link is gone.
    let replay = browser
        .post_form(
            &world.app.url("/auth/link"),
            &[
                ("csrf_token", &csrf),
                ("password", PASSWORD),
                ("action", "link"),
            ],
        )
        .await;
    assert_eq!(replay.status(), 400);
    assert!(identities_of(&world.app, &gina).await.is_empty());

    // Declining a direct sign-in (no app): a page, signed in nowhere.
    let mut browser = HttpBrowser::for_pages();
    let html = to_link_page(&world, &mut browser, false).await;
    let csrf = hidden(&html, "csrf_token");
    let declined = browser
        .post_form(
            &world.app.url("/auth/link"),
            &[("csrf_token", &csrf), ("action", "decline")],
        )
        .await;
    assert_eq!(declined.status(), 403);
    assert_page_headers(&declined);
    assert!(identities_of(&world.app, &gina).await.is_empty());
    world.upstream.stop().await;
}

#[tokio::test]
async fn item4_the_pending_link_is_bound_to_this_browser_and_csrf_protected() {
    let (world, gina) = gina_world().await;
    let mut browser = HttpBrowser::for_pages();
    let html = to_link_page(&world, &mut browser, true).await;
    let csrf = hidden(&html, "csrf_token");
    let url = world.app.url("/auth/link");
    let form = [
        ("csrf_token", csrf.as_str()),
        ("password", PASSWORD),
        ("action", "link"),
    ];

    // Another browser (the attacker's) with the page's field but not the cookie.
    let mut attacker = HttpBrowser::for_pages();
    let refused = attacker.post_form(&url, &form).await;
    assert_eq!(refused.status(), 400);
    assert_eq!(attacker.get(&url).await.status(), 400);
    // A forged cookie value, and a cross-site post without the field.
    let mut forger = HttpBrowser::for_pages();
    forger.cookies.insert("tessera_link".into(), "A".repeat(43));
    assert_eq!(forger.post_form(&url, &form).await.status(), 400);
    let no_csrf = browser
        .post_form(&url, &[("password", PASSWORD), ("action", "link")])
        .await;
    assert_eq!(no_csrf.status(), 403);
    let bad_csrf = browser
        .post_form(
            &url,
            &[
                ("csrf_token", "forged"),
                ("password", PASSWORD),
                ("action", "link"),
            ],
        )
        .await;
    assert_eq!(bad_csrf.status(), 403);
    // The right cookie and field, but posted from another site's page.
    let cross_site = browser
        .prepare(
            browser
                .http
                .post(&url)
                .header("origin", "https://evil.example")
                .form(&form),
        )
        .send()
        .await
        .expect("request");
    assert_eq!(cross_site.status(), 403);
    assert!(identities_of(&world.app, &gina).await.is_empty());

    // Expired after ten minutes.
    world.app.clock.advance(601);
    let late = browser.post_form(&url, &form).await;
    assert_eq!(late.status(), 400);
    assert!(identities_of(&world.app, &gina).await.is_empty());
    world.upstream.stop().await;
}

#[tokio::test]
async fn item4_the_link_page_is_throttled_like_a_login() {
    let world = world_with(|s, issuer| {
        google(s, issuer);
        s.throttle.account_free_attempts = 2;
    })
    .await;
    let gina = world
        .app
        .create_user("gina@example.com", PASSWORD, &[])
        .await;
    let mut browser = HttpBrowser::for_pages();
    let html = to_link_page(&world, &mut browser, true).await;
    let csrf = hidden(&html, "csrf_token");
    let url = world.app.url("/auth/link");
    let mut throttled = None;
    for _ in 0..6 {
        let response = browser
            .post_form(
                &url,
                &[
                    ("csrf_token", &csrf),
                    ("password", "guess"),
                    ("action", "link"),
                ],
            )
            .await;
        if response.status() == 429 {
            throttled = Some(response);
            break;
        }
        assert_eq!(response.status(), 401);
    }
    let throttled = throttled.expect("throttled after the free attempts");
    assert!(throttled.headers().contains_key("retry-after"));
    // Throttled before the password is checked: the right one waits too.
    let right = browser
        .post_form(
            &url,
            &[
                ("csrf_token", &csrf),
                ("password", PASSWORD),
                ("action", "link"),
            ],
        )
        .await;
    assert_eq!(right.status(), 429);
    assert!(identities_of(&world.app, &gina).await.is_empty());
    world.upstream.stop().await;
}

#[tokio::test]
async fn item4_a_direct_sign_in_continues_after_the_link() {
    let (world, gina) = gina_world().await;
    let mut browser = HttpBrowser::for_pages();
    let html = to_link_page(&world, &mut browser, false).await;
    let csrf = hidden(&html, "csrf_token");
    let done = browser
        .post_form(
            &world.app.url("/auth/link"),
            &[
                ("csrf_token", &csrf),
                ("password", PASSWORD),
                ("action", "link"),
            ],
        )
        .await;
    assert_eq!(done.status(), 200);
    assert_page_headers(&done);
    assert!(done.text().await.expect("html").contains("signed in"));
    assert_eq!(identities_of(&world.app, &gina).await, ["100200300"]);
    world.upstream.stop().await;
}

#[tokio::test]
async fn item4_a_federated_only_account_links_without_a_page() {
    let world = world_with(google).await;
    // A verified account without a password, from an earlier Google identity.
    world
        .upstream
        .set_identity(identity("first", "gina@example.com", true));
    let mut browser = HttpBrowser::for_pages();
    let first = id_claims_from(&world, &through(&world, &mut browser, "google", true).await).await;
    // Same address, another Google subject (a re-created Google account): linked at once.
    world
        .upstream
        .set_identity(identity("second", "gina@example.com", true));
    let mut browser = HttpBrowser::for_pages();
    let second = id_claims_from(&world, &through(&world, &mut browser, "google", true).await).await;
    assert_eq!(first["sub"], second["sub"]);
    world.upstream.stop().await;
}

// ---- Item 4: unverified accounts ----------------------------------------------------------

async fn run_purge(app: &TestApp, now: i64) -> Value {
    let settings = app.settings.clone();
    let mail_on = app.state.services.mailer.is_some();
    let purged = app
        .state
        .services
        .db
        .run(move |conn| tessera::purge::purge(conn, &settings, mail_on, now))
        .await
        .expect("purge");
    serde_json::to_value(purged).expect("json")
}

#[tokio::test]
async fn item4_unverified_accounts_are_purged_after_the_ttl_only_when_mail_is_on() {
    let sink = SmtpSink::start().await;
    let world = world_with(|s, issuer| {
        google(s, issuer);
        mail_through(s, &sink.url());
    })
    .await;
    let app = &world.app;
    assert_eq!(app.settings.accounts.unverified_ttl_secs, 604_800);
    let stale = register(app, "stale@example.com", PASSWORD).await;
    let verified = register(app, "kept@example.com", PASSWORD).await;
    let operator_verified = app.create_user("op@example.com", PASSWORD, &[]).await;
    // Accounts an operator made are the operator's to remove, verified or not (`tessera user
    // add` without --email-verified), and so is a self-registered one an operator gave a role.
    let operator_unverified = {
        let account =
            tessera::accounts::NewAccount::validate("unverified-op@example.com", None, &[], false)
                .expect("valid");
        app.state
            .services
            .db
            .run(move |conn| tessera::accounts::create(conn, &account, None))
            .await
            .expect("created")
            .id
            .into_string()
    };
    let promoted = register(app, "promoted@example.com", PASSWORD).await;
    {
        let promoted = promoted.clone();
        app.query(move |c| {
            diesel::update(users::table.find(promoted))
                .set(users::roles.eq("admin"))
                .execute(c)
        })
        .await;
    }
    // An account from an upstream that vouched for no address: never verified, still a person.
    world
        .upstream
        .set_identity(identity("no-address", "anon@example.com", false));
    let mut browser = HttpBrowser::for_pages();
    let federated = id_claims_from(&world, &through(&world, &mut browser, "google", true).await)
        .await["sub"]
        .as_str()
        .expect("sub")
        .to_string();
    let mails = sink.wait_for(2).await;
    let link = mails
        .iter()
        .find(|m| m.to == ["kept@example.com"])
        .expect("mail")
        .link("/account/verify-email");
    let mut person = HttpBrowser::for_pages();
    let html = person.get(&link).await.text().await.expect("html");
    let form = [
        ("token", hidden(&html, "token")),
        ("csrf_token", hidden(&html, "csrf_token")),
    ];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(
        person
            .post_form(&app.url("/account/verify-email"), &form)
            .await
            .status(),
        200
    );

    let now = app.clock.now();
    let early = run_purge(app, now + 604_800 - 10).await;
    assert_eq!(early["unverified_accounts"], 0);
    let purged = run_purge(app, now + 604_800 + 10).await;
    assert_eq!(purged["unverified_accounts"], 1);
    assert_eq!(verified_at(app, &stale).await, None, "deleted");
    for kept in [
        &verified,
        &operator_verified,
        &federated,
        &operator_unverified,
        &promoted,
    ] {
        assert!(verified_at(app, kept).await.is_some(), "{kept} kept");
    }
    assert!(
        app.audit_events(&stale)
            .await
            .contains(&"user_deleted".to_string())
    );
    // The address is free again for its owner.
    register(app, "stale@example.com", PASSWORD).await;
    world.upstream.stop().await;
}

#[tokio::test]
async fn item4_without_mail_unverified_accounts_are_kept() {
    let world = world_with(google).await;
    let app = &world.app;
    let id = unverified_user(app, "nomail@example.com").await;
    let purged = run_purge(app, app.clock.now() + 10 * 604_800).await;
    assert_eq!(purged["unverified_accounts"], 0);
    assert!(verified_at(app, &id).await.is_some());
    world.upstream.stop().await;
}

#[tokio::test]
async fn item4_a_verified_identity_takes_the_address_from_an_unverified_account() {
    let world = world_with(google).await;
    let app = &world.app;
    let unverified = unverified_user(app, "hal@example.com").await;
    world
        .upstream
        .set_identity(identity("hal-google", "hal@example.com", true));
    let mut browser = HttpBrowser::for_pages();
    let answer = through(&world, &mut browser, "google", true).await;
    let id = id_claims_from(&world, &answer).await;
    assert_ne!(id["sub"], unverified.as_str());
    assert_eq!(id["email"], "hal@example.com");
    assert_eq!(id["email_verified"], true);
    // The unverified account has lost the address: it signs in by it no more, and says why.
    assert_eq!(
        password_login(app, "hal@example.com", PASSWORD)
            .await
            .status(),
        400
    );
    let events = app.audit_events(&unverified).await;
    assert!(events.contains(&"email_released".to_string()), "{events:?}");
    let key: String = app
        .query(move |c| {
            users::table
                .find(unverified)
                .select(users::email_lower)
                .first(c)
        })
        .await;
    assert_ne!(key, "hal@example.com");
    // Nor by its new key, which names its id (the `sub` its holder knows), with the old password.
    assert_eq!(
        password_login(app, &key, PASSWORD).await.status(),
        400,
        "the released account's password is gone"
    );
    world.upstream.stop().await;
}

// ---- Item 5: untrusted or unverified upstream addresses -----------------------------------

#[tokio::test]
async fn item5_an_unverified_upstream_email_owns_no_address() {
    let sink = SmtpSink::start().await;
    let world = world_with(|s, issuer| {
        google(s, issuer);
        mail_through(s, &sink.url());
    })
    .await;
    let app = &world.app;
    world
        .upstream
        .set_identity(identity("attacker-sub", "victim@corp.com", false));
    let mut browser = HttpBrowser::for_pages();
    let id = id_claims_from(&world, &through(&world, &mut browser, "google", true).await).await;
    assert!(id.get("email").is_none(), "{id}");
    // The address's owner can still register it, and a reset for it reaches their account.
    let victim = register(app, "victim@corp.com", PASSWORD).await;
    assert_ne!(id["sub"], victim.as_str());
    let reset = app
        .client
        .post(app.url("/account/password-reset"))
        .json(&json!({"email": "victim@corp.com"}))
        .send()
        .await
        .expect("request");
    assert_eq!(reset.status(), 202);
    let owner: String = app
        .query(|c| {
            users::table
                .filter(users::email_lower.eq("victim@corp.com"))
                .select(users::id)
                .first(c)
        })
        .await;
    assert_eq!(owner, victim);
    world.upstream.stop().await;
}

#[tokio::test]
async fn item5_an_untrusted_upstream_never_links_to_a_verified_account() {
    let world = world_with_acme().await;
    let app = &world.app;
    let gina = app.create_user("gina@example.com", PASSWORD, &[]).await;
    // acme says the address is verified; acme is not trusted to say so.
    world
        .upstream
        .set_identity(identity("acme-sub", "gina@example.com", true));
    let mut browser = HttpBrowser::for_pages();
    let answer = through(&world, &mut browser, "acme", true).await;
    assert_ne!(location(&answer), "/auth/link", "no offer to link either");
    let id = id_claims_from(&world, &answer).await;
    assert_ne!(id["sub"], gina.as_str());
    assert!(id.get("email").is_none(), "{id}");
    assert!(identities_of(app, &gina).await.is_empty());
    assert!(app.audit_events(&gina).await.is_empty());
    // Gina's account is as it was.
    assert_eq!(
        password_login(app, "gina@example.com", PASSWORD)
            .await
            .status(),
        200
    );
    // Nor does an untrusted upstream take an unverified account's address.
    let hal = unverified_user(app, "hal@example.com").await;
    world
        .upstream
        .set_identity(identity("acme-hal", "hal@example.com", true));
    let mut browser = HttpBrowser::for_pages();
    let id = id_claims_from(&world, &through(&world, &mut browser, "acme", true).await).await;
    assert_ne!(id["sub"], hal.as_str());
    assert!(id.get("email").is_none(), "{id}");
    assert_eq!(
        password_login(app, "hal@example.com", PASSWORD)
            .await
            .status(),
        200
    );
    world.upstream.stop().await;
}

// ---- Item 21: one address, one account ----------------------------------------------------

#[tokio::test]
async fn item21_one_address_is_carried_by_one_accounts_tokens() {
    let world = world_with(google).await;
    let app = &world.app;
    // Bob's unverified password account, signed in.
    let password_account = unverified_user(app, "bob@example.com").await;
    let session: Value = password_login(app, "bob@example.com", PASSWORD)
        .await
        .json()
        .await
        .expect("json");
    // Bob signs in with Google.
    world
        .upstream
        .set_identity(identity("bob-google", "bob@example.com", true));
    let mut browser = HttpBrowser::for_pages();
    let google_id =
        id_claims_from(&world, &through(&world, &mut browser, "google", true).await).await;
    assert_ne!(google_id["sub"], password_account.as_str());
    assert_eq!(google_id["email"], "bob@example.com");

    // The password account's tokens no longer work at Tessera (its stamp changed when it lost
    // the address), and no token it could get would carry the address (below).
    assert_eq!(
        app.userinfo_status(session["access_token"].as_str().expect("at"))
            .await,
        401
    );
    // Every account: at most one releases bob@example.com.
    let ids: Vec<String> = app.query(|c| users::table.select(users::id).load(c)).await;
    let mut carrying = 0;
    for id in ids {
        let user = app
            .query(move |c| tessera::db::repo::users::find_by_id(c, &id).map(|u| u.expect("user")))
            .await;
        let claims = tessera::tokens::user_claims(
            &user,
            &tessera::domain::ScopeSet::from_stored("openid email"),
        );
        if claims.email.as_deref() == Some("bob@example.com") {
            carrying += 1;
        }
    }
    assert_eq!(carrying, 1);
    world.upstream.stop().await;
}
