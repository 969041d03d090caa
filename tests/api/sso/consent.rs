//! Consent for third-party apps: the page (allow, deny, what it lists, escaping), what is
//! remembered, `prompt=consent` and `prompt=none`, the forms' CSRF and session checks, the
//! person's list and revocation (`/account/consents`), and registration of `consent: required`.

use serde_json::{Value, json};
use tessera::clients::ClientSpec;
use tessera::config::ScopeSettings;

use super::{EMAIL, World, hidden_fields};
use crate::testkit::fixtures::{PASSWORD, REDIRECT, csrf_field, location, query_of};
use crate::testkit::http::HttpBrowser;
use crate::testkit::{TestApp, TestEnv, stdout_json};

fn third_party() -> ClientSpec {
    ClientSpec {
        consent: Some("required".into()),
        ..ClientSpec::default()
    }
}

/// Whether `html` is the consent page.
fn is_consent_page(html: &str) -> bool {
    html.contains("id=\"consent-allow\"") && html.contains("action=\"/authorize/consent\"")
}

/// The scopes the consent page lists, in order.
fn listed(html: &str) -> Vec<String> {
    html.split("data-scope=\"")
        .skip(1)
        .map(|rest| rest.split('"').next().expect("value").to_string())
        .collect()
}

/// The consent page a response must be; its HTML.
async fn consent_page_of(response: reqwest::Response) -> String {
    assert_eq!(response.status(), 200, "a page");
    let html = response.text().await.expect("html");
    assert!(is_consent_page(&html), "the consent page: {html}");
    html
}

/// Opens `/authorize` in a browser with a live session: the consent page.
async fn consent_page(
    world: &World,
    browser: &mut HttpBrowser,
    client_id: &str,
    extra: &[(&str, &str)],
) -> String {
    consent_page_of(browser.get(&world.authorize_url(client_id, extra)).await).await
}

/// The consent form of `html`, answered with `decision` (and `changes` over its fields).
async fn answer_with(
    world: &World,
    browser: &mut HttpBrowser,
    html: &str,
    decision: &str,
    changes: &[(&str, &str)],
) -> reqwest::Response {
    let mut form = hidden_fields(html);
    form.push(("csrf_token".into(), csrf_field(html)));
    form.push(("decision".into(), decision.into()));
    for (name, value) in changes {
        form.retain(|(n, _)| n != name);
        form.push((name.to_string(), value.to_string()));
    }
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    browser
        .post_form(&world.app.url("/authorize/consent"), &form)
        .await
}

async fn answer(
    world: &World,
    browser: &mut HttpBrowser,
    html: &str,
    decision: &str,
) -> reqwest::Response {
    answer_with(world, browser, html, decision, &[]).await
}

/// Signs in for a third-party app (whose consent page follows) and allows it: the code.
async fn sign_in_and_allow(
    world: &World,
    browser: &mut HttpBrowser,
    client_id: &str,
    extra: &[(&str, &str)],
) -> String {
    let html = consent_page_of(world.sign_in(browser, client_id, extra).await).await;
    World::code_of(&answer(world, browser, &html, "allow").await)
}

/// An `account` token of `email` (a token meant for Tessera), from a first-party client.
async fn account_token(app: &TestApp, email: &str) -> String {
    let client = app.first_party_client().await;
    let response = app
        .password_login((&client.0, &client.1), email, PASSWORD, "account")
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    body["access_token"].as_str().expect("token").to_string()
}

async fn consents_of(app: &TestApp, token: &str) -> Value {
    let response = app
        .client
        .get(app.url("/account/consents"))
        .bearer_auth(token)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    response.json().await.expect("json")
}

async fn revoke(app: &TestApp, token: &str, client_id: &str) -> reqwest::Response {
    app.client
        .delete(app.url(&format!("/account/consents/{client_id}")))
        .bearer_auth(token)
        .send()
        .await
        .expect("request")
}

async fn refresh(app: &TestApp, client_id: &str, token: &str) -> reqwest::Response {
    app.client
        .post(app.url("/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", token),
            ("client_id", client_id),
        ])
        .send()
        .await
        .expect("request")
}

/// The error a redirect to the app carries, with the request's state.
fn error_of(response: &reqwest::Response) -> String {
    assert_eq!(
        response.status(),
        303,
        "a redirect to the app, never a page"
    );
    let target = location(response);
    assert!(target.starts_with(REDIRECT), "{target}");
    let query = query_of(&target);
    assert_eq!(query.get("state").map(String::as_str), Some("st-1"));
    assert!(!query.contains_key("code"), "{target}");
    query.get("error").cloned().expect("an error")
}

#[tokio::test]
async fn allow_remembers_the_consent_and_the_next_authorize_gets_a_code_with_no_page() {
    let world = World::new().await;
    let app = world.client("Photo Printer", third_party()).await;
    let mut browser = HttpBrowser::for_pages();

    let html = consent_page_of(world.sign_in(&mut browser, &app, &[]).await).await;
    assert!(
        html.contains("Photo Printer") && html.contains(EMAIL),
        "{html}"
    );
    assert_eq!(listed(&html), ["openid", "email"]);
    assert!(
        html.contains("See your email address"),
        "built-in description"
    );
    let code = World::code_of(&answer(&world, &mut browser, &html, "allow").await);
    let tokens = world.exchange(&app, &code).await;
    assert_eq!(tokens["scope"], "openid email");

    // Remembered: the same request again, and a narrower one, go straight back to the app.
    World::code_of(&browser.get(&world.authorize_url(&app, &[])).await);
    World::code_of(
        &browser
            .get(&world.authorize_url(&app, &[("scope", "openid")]))
            .await,
    );
    World::code_of(
        &browser
            .get(&world.authorize_url(&app, &[("prompt", "none")]))
            .await,
    );

    let token = account_token(&world.app, EMAIL).await;
    let consents = consents_of(&world.app, &token).await;
    let list = consents.as_array().expect("a list");
    assert_eq!(list.len(), 1, "{consents}");
    assert_eq!(list[0]["client_id"], app.as_str());
    assert_eq!(list[0]["client_name"], "Photo Printer");
    assert_eq!(list[0]["scopes"], json!(["openid", "email"]));
    assert!(list[0]["granted_at"].is_i64() && list[0]["updated_at"].is_i64());
    assert!(
        world
            .app
            .audit_events(&world.user_id)
            .await
            .contains(&"consent_granted".to_string())
    );
    world.app.stop().await;
}

#[tokio::test]
async fn deny_sends_access_denied_with_the_state_and_remembers_nothing() {
    let world = World::new().await;
    let app = world.client("Photo Printer", third_party()).await;
    let mut browser = HttpBrowser::for_pages();

    let html = consent_page_of(world.sign_in(&mut browser, &app, &[]).await).await;
    let denied = answer(&world, &mut browser, &html, "deny").await;
    assert_eq!(error_of(&denied), "access_denied");
    assert!(
        !browser.cookies.contains_key("tessera_csrf"),
        "the form is done with"
    );

    // Nothing remembered: the page again, and prompt=none is refused.
    consent_page(&world, &mut browser, &app, &[]).await;
    let silent = browser
        .get(&world.authorize_url(&app, &[("prompt", "none")]))
        .await;
    assert_eq!(error_of(&silent), "consent_required");
    let token = account_token(&world.app, EMAIL).await;
    assert_eq!(consents_of(&world.app, &token).await, json!([]));

    // Neither allow nor deny: a page, no redirect.
    let html = consent_page(&world, &mut browser, &app, &[]).await;
    let neither = answer(&world, &mut browser, &html, "maybe").await;
    assert_eq!(neither.status(), 400);
    assert!(neither.headers().get("location").is_none());
    world.app.stop().await;
}

#[tokio::test]
async fn a_request_for_more_scopes_asks_only_for_the_new_ones() {
    let world = World::new().await;
    let app = world.client("Photo Printer", third_party()).await;
    let mut browser = HttpBrowser::for_pages();
    sign_in_and_allow(&world, &mut browser, &app, &[]).await;

    let more = [("scope", "openid email profile")];
    let silent = browser
        .get(&world.authorize_url(
            &app,
            &[("scope", "openid email profile"), ("prompt", "none")],
        ))
        .await;
    assert_eq!(error_of(&silent), "consent_required");
    let html = consent_page(&world, &mut browser, &app, &more).await;
    assert_eq!(listed(&html), ["profile"], "only what is new");
    assert!(html.contains("See your name"));
    let code = World::code_of(&answer(&world, &mut browser, &html, "allow").await);
    assert_eq!(
        world.exchange(&app, &code).await["scope"],
        "openid email profile"
    );

    let token = account_token(&world.app, EMAIL).await;
    let consents = consents_of(&world.app, &token).await;
    assert_eq!(
        consents[0]["scopes"],
        json!(["openid", "email", "profile"]),
        "the union"
    );
    World::code_of(&browser.get(&world.authorize_url(&app, &more)).await);
    world.app.stop().await;
}

#[tokio::test]
async fn prompt_consent_always_shows_the_page_for_every_scope_first_party_apps_too() {
    let world = World::new().await;
    let third = world.client("Photo Printer", third_party()).await;
    let first = world.client("Our App", ClientSpec::default()).await;
    let mut browser = HttpBrowser::for_pages();
    sign_in_and_allow(&world, &mut browser, &third, &[]).await;

    let html = consent_page(&world, &mut browser, &third, &[("prompt", "consent")]).await;
    assert_eq!(
        listed(&html),
        ["openid", "email"],
        "everything, though allowed"
    );
    assert!(
        !hidden_fields(&html)
            .iter()
            .any(|(name, _)| name == "prompt"),
        "prompt=consent is met by this page"
    );
    World::code_of(&answer(&world, &mut browser, &html, "allow").await);

    // A first-party app is never asked, but prompt=consent shows it the page too...
    World::code_of(&browser.get(&world.authorize_url(&first, &[])).await);
    let html = consent_page(&world, &mut browser, &first, &[("prompt", "consent")]).await;
    assert!(html.contains("Our App"));
    assert_eq!(listed(&html), ["openid", "email"]);
    World::code_of(&answer(&world, &mut browser, &html, "allow").await);
    // ...and a denial there is a denial.
    let html = consent_page(&world, &mut browser, &first, &[("prompt", "consent")]).await;
    assert_eq!(
        error_of(&answer(&world, &mut browser, &html, "deny").await),
        "access_denied"
    );

    // Nothing is recorded for a first-party app: its consent would change nothing.
    let token = account_token(&world.app, EMAIL).await;
    let consents = consents_of(&world.app, &token).await;
    let ids: Vec<&str> = consents
        .as_array()
        .expect("list")
        .iter()
        .map(|c| c["client_id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, [third.as_str()]);
    world.app.stop().await;
}

#[tokio::test]
async fn prompt_none_with_consent_needed_answers_consent_required_with_the_state() {
    let world = World::new().await;
    let app = world.client("Photo Printer", third_party()).await;
    let first = world.client("Our App", ClientSpec::default()).await;
    let mut browser = HttpBrowser::for_pages();
    // Signed in at Tessera through the first-party app: the session is live.
    World::code_of(&world.sign_in(&mut browser, &first, &[]).await);

    let silent = browser
        .get(&world.authorize_url(&app, &[("prompt", "none")]))
        .await;
    assert_eq!(error_of(&silent), "consent_required");
    // Without prompt=none, the page (no login page: the session stands).
    let html = consent_page(&world, &mut browser, &app, &[]).await;
    World::code_of(&answer(&world, &mut browser, &html, "allow").await);
    World::code_of(
        &browser
            .get(&world.authorize_url(&app, &[("prompt", "none")]))
            .await,
    );
    world.app.stop().await;
}

#[tokio::test]
async fn a_third_party_app_asking_for_no_scope_is_still_asked_about_once() {
    // Its tokens say who the person is (`sub`) even with no scope: not without consent.
    let world = World::new().await;
    let (app, _) = world
        .app
        .create_client(ClientSpec {
            name: "Tracker".into(),
            public: true,
            grant_types: vec!["authorization_code".into()],
            redirect_uris: vec![REDIRECT.into()],
            consent: Some("required".into()),
            ..ClientSpec::default()
        })
        .await;
    let first = world.client("Our App", ClientSpec::default()).await;
    let mut browser = HttpBrowser::for_pages();
    World::code_of(&world.sign_in(&mut browser, &first, &[]).await);

    let no_scope = [("scope", "")];
    let silent = browser
        .get(&world.authorize_url(&app, &[no_scope[0], ("prompt", "none")]))
        .await;
    assert_eq!(error_of(&silent), "consent_required");
    let html = consent_page(&world, &mut browser, &app, &no_scope).await;
    assert!(listed(&html).is_empty());
    assert!(html.contains("Know that it is you"), "{html}");
    let code = World::code_of(&answer(&world, &mut browser, &html, "allow").await);
    let tokens = world.exchange(&app, &code).await;
    assert_eq!(tokens["scope"], "");
    World::code_of(&browser.get(&world.authorize_url(&app, &no_scope)).await);
    world.app.stop().await;
}

#[tokio::test]
async fn offline_access_is_in_a_third_party_token_response_only_after_the_person_allowed_it() {
    let world = World::new().await;
    let app = world.client("Photo Printer", third_party()).await;
    let mut browser = HttpBrowser::for_pages();

    let code = sign_in_and_allow(&world, &mut browser, &app, &[("scope", "openid")]).await;
    let tokens = world.exchange(&app, &code).await;
    assert_eq!(tokens["scope"], "openid");

    let offline = [("scope", "openid offline_access")];
    let silent = browser
        .get(&world.authorize_url(&app, &[offline[0], ("prompt", "none")]))
        .await;
    assert_eq!(
        error_of(&silent),
        "consent_required",
        "never granted silently"
    );
    let html = consent_page(&world, &mut browser, &app, &offline).await;
    assert_eq!(listed(&html), ["offline_access"]);
    assert!(html.contains("Stay connected to your account when you are not using it"));
    // Denied: the app gets nothing, offline_access least of all.
    assert_eq!(
        error_of(&answer(&world, &mut browser, &html, "deny").await),
        "access_denied"
    );

    let html = consent_page(&world, &mut browser, &app, &offline).await;
    let code = World::code_of(&answer(&world, &mut browser, &html, "allow").await);
    let tokens = world.exchange(&app, &code).await;
    assert_eq!(tokens["scope"], "openid offline_access");
    assert!(tokens["refresh_token"].is_string());
    world.app.stop().await;
}

/// Signs `email` in on the login page of `/authorize` (`prompt=login`), in `browser`.
async fn sign_in_as(
    world: &World,
    browser: &mut HttpBrowser,
    client_id: &str,
    email: &str,
) -> reqwest::Response {
    let page = browser
        .get(&world.authorize_url(client_id, &[("prompt", "login")]))
        .await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("html");
    let mut form = hidden_fields(&html);
    form.push(("csrf_token".into(), csrf_field(&html)));
    form.push(("email".into(), email.into()));
    form.push(("password".into(), PASSWORD.into()));
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    browser.post_form(&world.app.url("/authorize"), &form).await
}

#[tokio::test]
async fn a_first_party_refresh_family_ends_with_the_browser_session_unless_offline_access() {
    let world = World::new().await;
    world
        .app
        .create_user("bob@example.com", PASSWORD, &[])
        .await;
    let app = world.client("Our App", ClientSpec::default()).await;
    let mut browser = HttpBrowser::for_pages();

    let code = World::code_of(
        &world
            .sign_in(&mut browser, &app, &[("scope", "openid")])
            .await,
    );
    let bound = world.exchange(&app, &code).await;
    let code = World::code_of(
        &browser
            .get(&world.authorize_url(&app, &[("scope", "openid offline_access")]))
            .await,
    );
    let offline = world.exchange(&app, &code).await;
    assert_eq!(
        offline["scope"], "openid offline_access",
        "first-party: no page"
    );

    // Someone else signs in, in this browser: Ann's session ends.
    World::code_of(&sign_in_as(&world, &mut browser, &app, "bob@example.com").await);

    let ended = refresh(
        &world.app,
        &app,
        bound["refresh_token"].as_str().expect("rt"),
    )
    .await;
    assert_eq!(ended.status(), 400, "bound to the session, ended with it");
    let body: Value = ended.json().await.expect("json");
    assert_eq!(body["error"], "invalid_grant");
    let lives = refresh(
        &world.app,
        &app,
        offline["refresh_token"].as_str().expect("rt"),
    )
    .await;
    assert_eq!(lives.status(), 200, "offline_access outlives the session");
    world.app.stop().await;
}

#[tokio::test]
async fn revoking_a_consent_ends_the_apps_refresh_tokens_and_asks_again() {
    let world = World::new().await;
    let app = world.client("Photo Printer", third_party()).await;
    let other = world.client("Calendar", third_party()).await;
    let mut browser = HttpBrowser::for_pages();

    let code = sign_in_and_allow(
        &world,
        &mut browser,
        &app,
        &[("scope", "openid offline_access")],
    )
    .await;
    let offline = world.exchange(&app, &code).await;
    let code = World::code_of(
        &browser
            .get(&world.authorize_url(&app, &[("scope", "openid")]))
            .await,
    );
    let bound = world.exchange(&app, &code).await;
    let in_flight = World::code_of(
        &browser
            .get(&world.authorize_url(&app, &[("scope", "openid")]))
            .await,
    );
    let html = consent_page(&world, &mut browser, &other, &[]).await;
    let code = World::code_of(&answer(&world, &mut browser, &html, "allow").await);
    let others = world.exchange(&other, &code).await;

    let token = account_token(&world.app, EMAIL).await;
    assert_eq!(
        consents_of(&world.app, &token)
            .await
            .as_array()
            .expect("list")
            .len(),
        2
    );
    let revoked = revoke(&world.app, &token, &app).await;
    assert_eq!(revoked.status(), 204);

    for (name, tokens) in [("offline_access", &offline), ("session-bound", &bound)] {
        let response = refresh(
            &world.app,
            &app,
            tokens["refresh_token"].as_str().expect("rt"),
        )
        .await;
        assert_eq!(response.status(), 400, "the {name} family ended");
    }
    let late = world
        .app
        .client
        .post(world.app.url("/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", in_flight.as_str()),
            ("redirect_uri", REDIRECT),
            ("client_id", app.as_str()),
            ("code_verifier", crate::testkit::VERIFIER),
        ])
        .send()
        .await
        .expect("request");
    assert_eq!(late.status(), 400, "a code in flight buys nothing");
    // The other app is untouched.
    let response = refresh(
        &world.app,
        &other,
        others["refresh_token"].as_str().expect("rt"),
    )
    .await;
    assert_eq!(response.status(), 200);

    let consents = consents_of(&world.app, &token).await;
    assert_eq!(consents.as_array().expect("list").len(), 1);
    assert_eq!(consents[0]["client_id"], other.as_str());
    assert!(
        world
            .app
            .audit_events(&world.user_id)
            .await
            .contains(&"consent_revoked".to_string())
    );

    // The next /authorize asks again, for everything.
    let silent = browser
        .get(&world.authorize_url(&app, &[("prompt", "none")]))
        .await;
    assert_eq!(error_of(&silent), "consent_required");
    let html = consent_page(&world, &mut browser, &app, &[]).await;
    assert_eq!(listed(&html), ["openid", "email"]);

    // Gone now: a second revocation finds nothing.
    let again = revoke(&world.app, &token, &app).await;
    assert_eq!(again.status(), 404);
    let body: Value = again.json().await.expect("json");
    assert_eq!(body["error"], "not_found");
    world.app.stop().await;
}

#[tokio::test]
async fn nobody_sees_or_revokes_another_persons_consent() {
    let world = World::new().await;
    world
        .app
        .create_user("bob@example.com", PASSWORD, &[])
        .await;
    let app = world.client("Photo Printer", third_party()).await;
    let mut browser = HttpBrowser::for_pages();
    sign_in_and_allow(&world, &mut browser, &app, &[]).await;

    let bob = account_token(&world.app, "bob@example.com").await;
    assert_eq!(consents_of(&world.app, &bob).await, json!([]));
    let response = revoke(&world.app, &bob, &app).await;
    assert_eq!(response.status(), 404);
    assert_eq!(
        response.json::<Value>().await.expect("json")["error"],
        "not_found"
    );
    let ann = account_token(&world.app, EMAIL).await;
    assert_eq!(
        consents_of(&world.app, &ann)
            .await
            .as_array()
            .expect("list")
            .len(),
        1,
        "Ann's consent stands"
    );
    let unknown = revoke(&world.app, &ann, "no-such-client").await;
    assert_eq!(unknown.status(), 404);

    // Only a token for Tessera with the account scope: none, or an app's token, is refused.
    let bare = world
        .app
        .client
        .get(world.app.url("/account/consents"))
        .send()
        .await
        .expect("request");
    assert_eq!(bare.status(), 401);
    let code = World::code_of(&browser.get(&world.authorize_url(&app, &[])).await);
    let apps = world.exchange(&app, &code).await;
    let access = apps["access_token"].as_str().expect("access token");
    let listed = world
        .app
        .client
        .get(world.app.url("/account/consents"))
        .bearer_auth(access)
        .send()
        .await
        .expect("request");
    assert_eq!(
        listed.status(),
        403,
        "the app's own token has no account scope"
    );
    let revoked = revoke(&world.app, access, &app).await;
    assert_eq!(
        revoked.status(),
        403,
        "an app cannot withdraw its own consent"
    );
    world.app.stop().await;
}

#[tokio::test]
async fn a_consent_form_without_its_csrf_token_or_from_another_site_is_refused() {
    let world = World::new().await;
    let app = world.client("Photo Printer", third_party()).await;
    let mut browser = HttpBrowser::for_pages();
    let html = consent_page_of(world.sign_in(&mut browser, &app, &[]).await).await;

    let mut form = hidden_fields(&html);
    form.push(("decision".into(), "allow".into()));
    let without: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let refused = browser
        .post_form(&world.app.url("/authorize/consent"), &without)
        .await;
    assert_eq!(refused.status(), 403, "no token");
    assert!(refused.headers().get("location").is_none());

    let wrong = answer_with(
        &world,
        &mut browser,
        &html,
        "allow",
        &[("csrf_token", "not-the-cookie")],
    )
    .await;
    assert_eq!(wrong.status(), 403, "a token that is not the cookie's");

    let mut with_token = hidden_fields(&html);
    with_token.push(("csrf_token".into(), csrf_field(&html)));
    with_token.push(("decision".into(), "allow".into()));
    let cross_site = browser
        .prepare(
            browser
                .http
                .post(world.app.url("/authorize/consent"))
                .header("origin", "https://evil.example")
                .form(&with_token),
        )
        .send()
        .await
        .expect("request");
    assert_eq!(cross_site.status(), 403, "another site's Origin");
    let cookieless = HttpBrowser::for_pages()
        .post_form(
            &world.app.url("/authorize/consent"),
            &with_token
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect::<Vec<_>>(),
        )
        .await;
    assert_eq!(cookieless.status(), 403, "a forged form has no cookie");

    // Nothing granted by any of them; the real form still works.
    let silent = browser
        .get(&world.authorize_url(&app, &[("prompt", "none")]))
        .await;
    assert_eq!(error_of(&silent), "consent_required");
    World::code_of(&answer(&world, &mut browser, &html, "allow").await);
    world.app.stop().await;
}

#[tokio::test]
async fn a_consent_posted_after_someone_else_signed_in_grants_nothing() {
    let world = World::new().await;
    world
        .app
        .create_user("bob@example.com", PASSWORD, &[])
        .await;
    let app = world.client("Photo Printer", third_party()).await;
    let mut browser = HttpBrowser::for_pages();
    // Tab 1: Ann's consent page.
    let anns = consent_page_of(world.sign_in(&mut browser, &app, &[]).await).await;
    // Tab 2: Bob signs in, in the same browser, and reaches his own consent page.
    let bobs =
        consent_page_of(sign_in_as(&world, &mut browser, &app, "bob@example.com").await).await;
    assert!(bobs.contains("bob@example.com"));

    // Ann's form (even with the CSRF token that now matches the cookie) names her session,
    // which has ended: nothing for Bob, nothing for Ann.
    let stale = answer_with(
        &world,
        &mut browser,
        &anns,
        "allow",
        &[("csrf_token", csrf_field(&bobs).as_str())],
    )
    .await;
    assert_eq!(stale.status(), 403);
    assert!(stale.headers().get("location").is_none(), "no code");
    let silent = browser
        .get(&world.authorize_url(&app, &[("prompt", "none")]))
        .await;
    assert_eq!(error_of(&silent), "consent_required", "Bob allowed nothing");
    let ann = account_token(&world.app, EMAIL).await;
    assert_eq!(consents_of(&world.app, &ann).await, json!([]));

    // Bob's own form, in his session, works.
    let bobs = consent_page(&world, &mut browser, &app, &[]).await;
    World::code_of(&answer(&world, &mut browser, &bobs, "allow").await);

    // A form whose session has ended (log out everywhere) grants nothing either.
    let mut browser = HttpBrowser::for_pages();
    let html = consent_page_of(world.sign_in(&mut browser, &app, &[]).await).await;
    let out = world
        .app
        .client
        .post(world.app.url("/logout-everywhere"))
        .bearer_auth(&ann)
        .send()
        .await
        .expect("request");
    assert!(out.status().is_success(), "{}", out.status());
    let ended = answer(&world, &mut browser, &html, "allow").await;
    assert_eq!(ended.status(), 403);
    assert!(ended.headers().get("location").is_none());
    world.app.stop().await;
}

#[tokio::test]
async fn a_consent_for_an_app_or_redirect_uri_that_fails_validation_is_a_page_never_a_redirect() {
    let world = World::new().await;
    let app = world.client("Photo Printer", third_party()).await;
    let mut browser = HttpBrowser::for_pages();
    let html = consent_page_of(world.sign_in(&mut browser, &app, &[]).await).await;

    for decision in ["allow", "deny"] {
        for changes in [
            [("redirect_uri", "https://evil.example/cb")],
            [("client_id", "no-such-client")],
        ] {
            let response = answer_with(&world, &mut browser, &html, decision, &changes).await;
            assert_eq!(response.status(), 400, "{decision} {changes:?}");
            assert!(
                response.headers().get("location").is_none(),
                "{decision} {changes:?}: never a redirect"
            );
        }
    }
    // An invalid parameter of a valid app goes back to the app.
    let bad = answer_with(
        &world,
        &mut browser,
        &html,
        "allow",
        &[("scope", "payroll")],
    )
    .await;
    assert_eq!(error_of(&bad), "invalid_scope");
    world.app.stop().await;
}

#[tokio::test]
async fn a_scope_withdrawn_while_the_page_was_open_is_asked_for_again() {
    let world = World::new().await;
    let app = world.client("Photo Printer", third_party()).await;
    let mut browser = HttpBrowser::for_pages();
    sign_in_and_allow(&world, &mut browser, &app, &[("scope", "openid")]).await;
    let html = consent_page(&world, &mut browser, &app, &[("scope", "openid email")]).await;
    assert_eq!(listed(&html), ["email"]);

    // Meanwhile, in another tab, the person withdraws the consent.
    let token = account_token(&world.app, EMAIL).await;
    assert_eq!(revoke(&world.app, &token, &app).await.status(), 204);
    // "Allow" on the open page covered email alone: the page again, for both.
    let again = consent_page_of(answer(&world, &mut browser, &html, "allow").await).await;
    assert_eq!(listed(&again), ["openid", "email"]);
    World::code_of(&answer(&world, &mut browser, &again, "allow").await);
    assert_eq!(
        consents_of(&world.app, &token).await[0]["scopes"],
        json!(["openid", "email"])
    );
    world.app.stop().await;
}

#[tokio::test]
async fn the_consent_page_escapes_the_app_name_and_the_descriptions() {
    let env = TestEnv::new();
    let mut settings = env.settings();
    settings.scopes.insert(
        "notes".into(),
        ScopeSettings {
            description: Some("Read <img src=x onerror=alert(2)> your notes".into()),
        },
    );
    settings.scopes.insert(
        "email".into(),
        ScopeSettings {
            description: Some("Know your address, as the operator says".into()),
        },
    );
    let app = env.spawn_with(settings).await;
    let world = World::with(env, app).await;
    let (client, _) = world
        .app
        .create_client(ClientSpec {
            name: "<script>alert(1)</script> & \"Co\"".into(),
            public: true,
            grant_types: vec!["authorization_code".into()],
            redirect_uris: vec![REDIRECT.into()],
            scopes: ["openid", "email", "profile", "offline_access", "notes"]
                .map(String::from)
                .to_vec(),
            consent: Some("required".into()),
            ..ClientSpec::default()
        })
        .await;
    let mut browser = HttpBrowser::for_pages();
    let scope = [("scope", "openid email profile offline_access notes")];
    let html = consent_page_of(world.sign_in(&mut browser, &client, &scope).await).await;

    assert!(!html.contains("<script>alert"), "{html}");
    assert!(
        html.contains("&#60;script&#62;alert(1)&#60;/script&#62; &#38; &#34;Co&#34;"),
        "{html}"
    );
    assert!(!html.contains("<img"), "{html}");
    assert!(
        html.contains("Read &#60;img src=x onerror=alert(2)&#62; your notes"),
        "{html}"
    );
    assert_eq!(
        listed(&html),
        ["openid", "email", "profile", "offline_access", "notes"]
    );
    // The operator's description replaces the built-in one; the others keep theirs.
    assert!(html.contains("Know your address, as the operator says"));
    assert!(!html.contains("See your email address"));
    assert!(html.contains("Know who you are on this site"));
    assert!(html.contains("See your name"));
    assert!(html.contains("Stay connected to your account when you are not using it"));
    World::code_of(&answer(&world, &mut browser, &html, "allow").await);
    world.app.stop().await;
}

#[tokio::test]
async fn the_admin_api_registers_a_third_party_client_and_shows_it() {
    let env = TestEnv::new();
    let app = env.spawn().await;
    app.create_user("root@example.com", PASSWORD, &["admin"])
        .await;
    let client = app.first_party_client().await;
    let response = app
        .password_login(
            (&client.0, &client.1),
            "root@example.com",
            PASSWORD,
            "admin",
        )
        .await;
    let admin = response.json::<Value>().await.expect("json")["access_token"]
        .as_str()
        .expect("token")
        .to_string();
    let post = |body: Value| {
        let (app, admin) = (&app, &admin);
        async move {
            app.client
                .post(app.url("/admin/clients"))
                .bearer_auth(admin)
                .json(&body)
                .send()
                .await
                .expect("request")
        }
    };
    let spec = json!({
        "name": "Photo Printer",
        "public": true,
        "grant_types": ["authorization_code"],
        "redirect_uris": [REDIRECT],
        "scopes": ["openid"],
        "consent": "required",
    });
    let created = post(spec.clone()).await;
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.expect("json");
    assert_eq!(created["consent"], "required");
    let first = post(json!({"name": "Ours", "grant_types": ["client_credentials"]})).await;
    assert_eq!(
        first.json::<Value>().await.expect("json")["consent"],
        "first_party"
    );

    let listed: Value = app
        .client
        .get(app.url("/admin/clients"))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    let shown = listed
        .as_array()
        .expect("list")
        .iter()
        .find(|c| c["client_id"] == created["client_id"])
        .expect("listed")
        .clone();
    assert_eq!(shown["consent"], "required");

    let mut bad = spec.clone();
    bad["consent"] = json!("sometimes");
    assert_eq!(post(bad).await.status(), 422);
    let mut password = spec;
    password["public"] = json!(false);
    password["grant_types"] = json!(["password"]);
    let refused = post(password).await;
    assert_eq!(
        refused.status(),
        422,
        "a third-party app never sees the person's password"
    );
    app.stop().await;
}

#[test]
fn the_command_line_registers_a_third_party_client_and_lists_it() {
    let env = TestEnv::new();
    let base = [
        "client",
        "add",
        "--name",
        "Photo Printer",
        "--public",
        "--grant-types",
        "authorization_code",
        "--redirect-uri",
        REDIRECT,
    ];
    let mut args = base.to_vec();
    args.extend(["--consent", "required"]);
    let created = stdout_json(&env.cli(&args, None));
    assert_eq!(created["consent"], "required");
    let first = stdout_json(&env.cli(&base, None));
    assert_eq!(first["consent"], "first_party", "the default");

    let listed = stdout_json(&env.cli(&["client", "list"], None));
    let shown = listed
        .as_array()
        .expect("list")
        .iter()
        .find(|c| c["client_id"] == created["client_id"])
        .expect("listed")
        .clone();
    assert_eq!(shown["consent"], "required");

    let mut bad = base.to_vec();
    bad.extend(["--consent", "sometimes"]);
    assert!(!env.cli(&bad, None).status.success());
    let password = [
        "client",
        "add",
        "--name",
        "Scraper",
        "--grant-types",
        "password",
        "--consent",
        "required",
    ];
    let refused = env.cli(&password, None);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("password"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}
