//! Multi-factor sign-in, as far as the browser session and tokens see it: `amr` and `acr`
//! in tokens, `acr_values` at `/authorize`, and discovery's `acr_values_supported`.

use serde_json::Value;
use tessera::clients::ClientSpec;

use super::World;
use crate::testkit::fixtures::{PASSWORD, claims_of, location, query_of};
use crate::testkit::http::HttpBrowser;
use crate::testkit::mfa;

const TESSERA_MFA: &str = "urn:tessera:acr:mfa";
const PAPE_MFA: &str = "http://schemas.openid.net/pape/policies/2007/06/multi-factor";

/// Both discovery documents list the two multi-factor classes; the OpenID one lists `acr`
/// among its claims.
#[tokio::test]
async fn discovery_advertises_both_multi_factor_acr_values() {
    let world = World::new().await;
    for path in [
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
    ] {
        let doc: Value = world
            .app
            .client
            .get(world.app.url(path))
            .send()
            .await
            .expect("discovery")
            .json()
            .await
            .expect("json");
        assert_eq!(
            doc["acr_values_supported"],
            serde_json::json!([TESSERA_MFA, PAPE_MFA]),
            "{path}"
        );
    }
    let openid: Value = world
        .app
        .client
        .get(world.app.url("/.well-known/openid-configuration"))
        .send()
        .await
        .expect("discovery")
        .json()
        .await
        .expect("json");
    let claims = openid["claims_supported"].as_array().expect("claims");
    assert!(claims.iter().any(|c| c == "acr"), "{claims:?}");
    world.app.stop().await;
}

/// A password alone is one factor: `amr` says `pwd`, and neither token carries an `acr`, even
/// when the app asked for multi-factor (`acr_values` is a voluntary request: the app sees from
/// the missing `acr` that it was not met).
#[tokio::test]
async fn a_password_sign_in_carries_pwd_and_no_acr() {
    let world = World::new().await;
    let app = world.client("App", ClientSpec::default()).await;
    let mut browser = HttpBrowser::for_pages();
    let response = world.sign_in(&mut browser, &app, &[]).await;
    let tokens = world.exchange(&app, &World::code_of(&response)).await;
    let id = claims_of(tokens["id_token"].as_str().expect("id token"));
    assert_eq!(id["amr"], serde_json::json!(["pwd"]));
    assert!(id.get("acr").is_none(), "{id}");
    let access = claims_of(tokens["access_token"].as_str().expect("access token"));
    assert!(access.get("acr").is_none(), "{access}");
    world.app.stop().await;
}

/// Inside a password-only session, `prompt=none` with `acr_values` asking for multi-factor
/// cannot be met without a page: back to the app with `interaction_required` and its state,
/// no code. Unknown acr values are ignored (the same request without a known one gets a code),
/// and either known value counts.
#[tokio::test]
async fn prompt_none_with_an_unmet_acr_is_interaction_required() {
    let world = World::new().await;
    let app = world.client("App", ClientSpec::default()).await;
    let mut browser = HttpBrowser::for_pages();
    World::code_of(&world.sign_in(&mut browser, &app, &[]).await);
    for asked in [TESSERA_MFA, PAPE_MFA, &format!("urn:other {PAPE_MFA}")] {
        let refused = browser
            .get(&world.authorize_url(&app, &[("prompt", "none"), ("acr_values", asked)]))
            .await;
        assert_eq!(refused.status(), 303, "never a page");
        let query = query_of(&location(&refused));
        assert_eq!(query["error"], "interaction_required", "{asked}");
        assert_eq!(query.get("state").map(String::as_str), Some("st-1"));
        assert!(!query.contains_key("code"));
    }
    let silent = browser
        .get(&world.authorize_url(
            &app,
            &[("prompt", "none"), ("acr_values", "urn:other:loa:1")],
        ))
        .await;
    World::code_of(&silent);
    world.app.stop().await;
}

/// With `accounts.mfa = "required"` the password grant, which has no second step, is refused
/// with a clear `invalid_grant`, but only once the password was right: a wrong one gets the
/// usual answer, so the refusal tells a guesser nothing.
#[tokio::test]
async fn the_password_grant_is_refused_when_mfa_is_required() {
    let env = crate::testkit::app::TestEnv::new();
    let mut settings = env.settings();
    settings.accounts.mfa = tessera::config::MfaPolicy::Required;
    let app = env.spawn_with(settings).await;
    let world = World::with(env, app).await;
    let (id, secret) = world.app.first_party_client().await;
    let refused = world
        .app
        .password_login(
            (&id, &secret),
            super::EMAIL,
            crate::testkit::fixtures::PASSWORD,
            "openid",
        )
        .await;
    assert_eq!(refused.status(), 400);
    let body: Value = refused.json().await.expect("json");
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(
        body["error_description"],
        "multi-factor authentication is required; use the authorization code flow"
    );
    let wrong = world
        .app
        .password_login((&id, &secret), super::EMAIL, "not the password", "openid")
        .await;
    let body: Value = wrong.json().await.expect("json");
    assert_eq!(body["error"], "invalid_grant");
    assert_ne!(
        body["error_description"],
        "multi-factor authentication is required; use the authorization code flow"
    );
    world.app.stop().await;
}

/// With the default `accounts.mfa = "optional"` and no second factor, the password grant
/// works as before, and its tokens carry `amr: ["pwd"]` and no `acr`.
#[tokio::test]
async fn the_password_grant_works_when_mfa_is_optional() {
    let world = World::new().await;
    let (id, secret) = world.app.first_party_client().await;
    let ok = world
        .app
        .password_login(
            (&id, &secret),
            super::EMAIL,
            crate::testkit::fixtures::PASSWORD,
            "openid",
        )
        .await;
    assert_eq!(ok.status(), 200);
    let tokens: Value = ok.json().await.expect("json");
    let id_token = claims_of(tokens["id_token"].as_str().expect("id token"));
    assert_eq!(id_token["amr"], serde_json::json!(["pwd"]));
    assert!(id_token.get("acr").is_none());
    world.app.stop().await;
}

/// A person with an authenticator app (set up through the use cases, as the account page
/// does), an app, and a browser that typed the password at the app's `/authorize`.
struct SecondStep {
    world: World,
    app: String,
    secret: tessera::mfa::TotpSecret,
    recovery: Vec<String>,
    browser: HttpBrowser,
    /// The response to the password: the second-step page, for the test to look at.
    step: reqwest::Response,
}

impl SecondStep {
    async fn new() -> SecondStep {
        let world = World::new().await;
        let app = world.client("App", ClientSpec::default()).await;
        let mfa::Enrolled {
            secret,
            recovery_codes: recovery,
            ..
        } = mfa::enrol_totp(&world.app, &world.user_id, super::EMAIL).await;
        let mut browser = HttpBrowser::for_pages();
        let step = world.sign_in(&mut browser, &app, &[]).await;
        SecondStep {
            world,
            app,
            secret,
            recovery,
            browser,
            step,
        }
    }
}

/// Posts the second-step form of `html` with `field` = `code`.
pub(super) async fn submit_second_factor(
    world: &World,
    browser: &mut HttpBrowser,
    html: &str,
    field: &str,
    code: &str,
) -> reqwest::Response {
    // Each factor has its own form with the same hidden fields: the first form's.
    let first_form = html.split("</form>").next().unwrap_or(html);
    let mut form = super::hidden_fields(first_form);
    form.push((
        "csrf_token".into(),
        crate::testkit::fixtures::csrf_field(html),
    ));
    form.push((field.into(), code.into()));
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    browser
        .post_form(&world.app.url("/authorize/second-factor"), &form)
        .await
}

/// A person with an authenticator app: the password leads to the second-step page, not to the
/// app, and no session is made yet (a fresh `/authorize` still shows the login page). A wrong
/// code gets the page again with a message (401); the right one gets the code, and the tokens
/// say `amr: [pwd, otp, mfa]` and `acr: urn:tessera:acr:mfa`. The pending step is then spent:
/// posting again with it is refused, and so is the same code at a new sign-in (replay).
#[tokio::test]
async fn a_person_with_totp_is_asked_for_a_code_after_the_password() {
    let SecondStep {
        world,
        app,
        secret,
        recovery,
        mut browser,
        step,
    } = SecondStep::new().await;
    let now = world.app.clock.now();
    assert_eq!(step.status(), 200, "the second-step page, not the app");
    assert!(
        browser.cookies.contains_key("tessera_mfa"),
        "{:?}",
        browser.cookies
    );
    assert!(
        !browser.cookies.contains_key("tessera_session"),
        "no session yet"
    );
    let html = step.text().await.expect("html");
    assert!(
        html.contains("Second step") && html.contains(r#"name="totp""#),
        "{html}"
    );
    assert!(html.contains(r#"name="recovery_code""#), "{html}");

    let wrong = mfa::wrong_code(&secret, now);
    let wrong = submit_second_factor(&world, &mut browser, &html, "totp", &wrong).await;
    assert_eq!(wrong.status(), 401);
    let html = wrong.text().await.expect("html");
    assert!(html.contains("That code is not right"), "{html}");

    // What the browser holds as it posts the right code (the success drops the pending
    // step's cookie and the form's CSRF cookie: a replay needs a copy taken before).
    let copied = browser.cookies.clone();
    let done =
        submit_second_factor(&world, &mut browser, &html, "totp", &secret.code_at(now)).await;
    let tokens = world.exchange(&app, &World::code_of(&done)).await;
    let id = claims_of(tokens["id_token"].as_str().expect("id token"));
    assert_eq!(id["amr"], serde_json::json!(["pwd", "otp", "mfa"]));
    assert_eq!(id["acr"], TESSERA_MFA);
    let access = claims_of(tokens["access_token"].as_str().expect("access token"));
    assert_eq!(access["acr"], TESSERA_MFA);
    let events = world.app.audit_events(&world.user_id).await;
    assert!(
        events.iter().any(|e| e == "second_factor_refused"),
        "{events:?}"
    );
    assert!(
        events.iter().any(|e| e == "second_factor_accepted"),
        "{events:?}"
    );

    // The pending step was spent: the same cookies and form buy nothing, even with a code of
    // the next step that nobody has used (which stays unspent).
    assert!(copied.contains_key("tessera_mfa") && copied.contains_key("tessera_csrf"));
    let mut replayed = HttpBrowser::for_pages();
    replayed.cookies = copied;
    let spent_step = mfa::totp_row(&world.app, &world.user_id)
        .await
        .expect("row")
        .2;
    let next = secret.code_at(now + 30);
    let again = submit_second_factor(&world, &mut replayed, &html, "totp", &next).await;
    assert_eq!(again.status(), 403);
    let page = again.text().await.expect("html");
    assert!(page.contains("already used"), "{page}");
    assert!(!replayed.cookies.contains_key("tessera_session"));
    let row = mfa::totp_row(&world.app, &world.user_id)
        .await
        .expect("row");
    assert_eq!(row.2, spent_step, "the next step's code was not spent");

    // A new sign-in elsewhere: the code already used in its window is refused; a recovery code
    // stands in, once.
    let mut other = HttpBrowser::for_pages();
    let step = world.sign_in(&mut other, &app, &[]).await;
    let html = step.text().await.expect("html");
    let replay =
        submit_second_factor(&world, &mut other, &html, "totp", &secret.code_at(now)).await;
    assert_eq!(replay.status(), 401, "a used code is refused");
    let html = replay.text().await.expect("html");
    let by_recovery =
        submit_second_factor(&world, &mut other, &html, "recovery_code", &recovery[0]).await;
    World::code_of(&by_recovery);
    let mut third = HttpBrowser::for_pages();
    let step = world.sign_in(&mut third, &app, &[]).await;
    let html = step.text().await.expect("html");
    let reused =
        submit_second_factor(&world, &mut third, &html, "recovery_code", &recovery[0]).await;
    assert_eq!(reused.status(), 401, "a recovery code is good once");
    world.app.stop().await;
}

/// The pending step's cookie from another browser is worth nothing without the page's CSRF
/// cookie; a browser without the pending cookie, or with one of its own making, gets no
/// sign-in from a right code; and none of these spends the code or the step: the person's own
/// browser then signs in with that same code.
#[tokio::test]
async fn a_second_step_without_its_cookie_is_refused() {
    let SecondStep {
        world,
        secret,
        mut browser,
        step,
        ..
    } = SecondStep::new().await;
    let now = world.app.clock.now();
    let html = second_step_page(step, "the sign-in").await;
    let mut attacker = HttpBrowser::for_pages();
    attacker.cookies = browser.cookies.clone();
    attacker.cookies.remove("tessera_mfa");
    let refused =
        submit_second_factor(&world, &mut attacker, &html, "totp", &secret.code_at(now)).await;
    assert_eq!(refused.status(), 403);
    assert!(!attacker.cookies.contains_key("tessera_session"));

    // The pending cookie alone, in another cookie jar (the page's form copied, not its CSRF
    // cookie): the form is not this browser's.
    let mut stolen = HttpBrowser::for_pages();
    stolen
        .cookies
        .insert("tessera_mfa".into(), browser.cookies["tessera_mfa"].clone());
    let refused =
        submit_second_factor(&world, &mut stolen, &html, "totp", &secret.code_at(now)).await;
    assert_eq!(refused.status(), 403);
    let page = refused.text().await.expect("html");
    assert!(page.contains("did not come from this site"), "{page}");
    assert!(!stolen.cookies.contains_key("tessera_session"));

    // A pending cookie of the attacker's own making, with the page's CSRF pair.
    let mut forged = HttpBrowser::for_pages();
    forged.cookies = browser.cookies.clone();
    forged.cookies.insert("tessera_mfa".into(), "x".repeat(43));
    let refused =
        submit_second_factor(&world, &mut forged, &html, "totp", &secret.code_at(now)).await;
    assert_eq!(refused.status(), 403);
    assert!(!forged.cookies.contains_key("tessera_session"));
    assert_eq!(live_sessions(&world).await, 0);

    let done =
        submit_second_factor(&world, &mut browser, &html, "totp", &secret.code_at(now)).await;
    World::code_of(&done);
    world.app.stop().await;
}

/// Step-up: a password-only session (made before the person set up an app), then a request
/// with `acr_values` for multi-factor shows the second-step page instead of a code; the right
/// code upgrades that same session (same `sid`), whose tokens then carry `acr`; afterwards the
/// same request is answered silently.
#[tokio::test]
async fn acr_values_step_up_an_existing_password_session() {
    let world = World::new().await;
    let app = world.client("App", ClientSpec::default()).await;
    let mut browser = HttpBrowser::for_pages();
    let first = world.sign_in(&mut browser, &app, &[]).await;
    let tokens = world.exchange(&app, &World::code_of(&first)).await;
    let sid = claims_of(tokens["id_token"].as_str().expect("id token"))["sid"].clone();
    let mfa::Enrolled { secret, .. } =
        mfa::enrol_totp(&world.app, &world.user_id, super::EMAIL).await;
    let now = world.app.clock.now();

    let step = browser
        .get(&world.authorize_url(&app, &[("acr_values", PAPE_MFA)]))
        .await;
    assert_eq!(step.status(), 200, "the second-step page");
    let html = step.text().await.expect("html");
    assert!(html.contains("Second step"), "{html}");
    let done =
        submit_second_factor(&world, &mut browser, &html, "totp", &secret.code_at(now)).await;
    let tokens = world.exchange(&app, &World::code_of(&done)).await;
    let id = claims_of(tokens["id_token"].as_str().expect("id token"));
    assert_eq!(id["amr"], serde_json::json!(["pwd", "otp", "mfa"]));
    assert_eq!(id["acr"], TESSERA_MFA);
    assert_eq!(id["sid"], sid, "the same session, upgraded");

    // Someone with a second factor cannot skip it through the password grant.
    let (client, client_secret) = world.app.first_party_client().await;
    let refused = world
        .app
        .password_login(
            (&client, &client_secret),
            super::EMAIL,
            crate::testkit::fixtures::PASSWORD,
            "openid",
        )
        .await;
    let body: Value = refused.json().await.expect("json");
    assert_eq!(
        body["error_description"],
        "multi-factor authentication is required; use the authorization code flow"
    );

    let silent = browser
        .get(&world.authorize_url(&app, &[("prompt", "none"), ("acr_values", TESSERA_MFA)]))
        .await;
    World::code_of(&silent);
    world.app.stop().await;
}

/// The second-step page `response` must be (not a code, not the login page): its HTML.
async fn second_step_page(response: reqwest::Response, when: &str) -> String {
    assert_eq!(response.status(), 200, "{when}: the second-step page");
    let html = response.text().await.expect("html");
    assert!(
        html.contains("Second step") && html.contains(r#"name="totp""#),
        "{when}: {html}"
    );
    assert!(!html.contains(r#"name="password""#), "{when}: {html}");
    html
}

/// The ID token's claims that the code in `response` (a redirect to the app) buys `app`.
async fn id_claims(world: &World, app: &str, response: &reqwest::Response) -> Value {
    let tokens = world.exchange(app, &World::code_of(response)).await;
    claims_of(tokens["id_token"].as_str().expect("id token"))
}

/// The person's browser sessions that have not ended.
async fn live_sessions(world: &World) -> i64 {
    use diesel::prelude::*;
    use tessera::db::schema::browser_sessions;
    let user_id = world.user_id.clone();
    world
        .app
        .query(move |c| {
            browser_sessions::table
                .filter(browser_sessions::user_id.eq(user_id))
                .filter(browser_sessions::ended_at.is_null())
                .count()
                .get_result(c)
        })
        .await
}

/// Inside a session made with password and app, `prompt=login`, `max_age=0` and a `max_age`
/// the sign-in is older than (the test clock moves) each ask for both factors again: the login
/// page, then after the password the second step, not a code; the new sign-in's `auth_time`
/// is the new one. A `max_age` the sign-in is younger than is met with no page (the contrast:
/// the session itself stands).
#[tokio::test]
async fn prompt_login_and_max_age_ask_for_both_factors_again() {
    let SecondStep {
        world,
        app,
        secret,
        mut browser,
        step,
        ..
    } = SecondStep::new().await;
    let html = second_step_page(step, "the first sign-in").await;
    let now = world.app.clock.now();
    let done =
        submit_second_factor(&world, &mut browser, &html, "totp", &secret.code_at(now)).await;
    let id = id_claims(&world, &app, &done).await;
    assert_eq!(id["amr"], serde_json::json!(["pwd", "otp", "mfa"]));
    let mut auth_time = id["auth_time"].as_i64().expect("auth_time");
    assert_eq!(auth_time, now);

    world.app.clock.advance(120);
    let silent = browser
        .get(&world.authorize_url(&app, &[("max_age", "3600")]))
        .await;
    let id = id_claims(&world, &app, &silent).await;
    assert_eq!(id["auth_time"], auth_time, "the same sign-in");
    assert_eq!(id["acr"], TESSERA_MFA);

    for asked in [("prompt", "login"), ("max_age", "0"), ("max_age", "60")] {
        // A new step of the app's codes, and a sign-in older than 60 seconds.
        world.app.clock.advance(120);
        let login = browser.get(&world.authorize_url(&app, &[asked])).await;
        assert_eq!(login.status(), 200, "{asked:?}: the login page");
        let html = login.text().await.expect("html");
        assert!(html.contains(r#"name="password""#), "{asked:?}: {html}");
        let step = world.submit_login(&mut browser, &html, PASSWORD).await;
        let html = second_step_page(step, &format!("{asked:?} after the password")).await;
        let now = world.app.clock.now();
        let done =
            submit_second_factor(&world, &mut browser, &html, "totp", &secret.code_at(now)).await;
        let id = id_claims(&world, &app, &done).await;
        assert_eq!(
            id["amr"],
            serde_json::json!(["pwd", "otp", "mfa"]),
            "{asked:?}"
        );
        assert_eq!(id["acr"], TESSERA_MFA, "{asked:?}");
        let new_time = id["auth_time"].as_i64().expect("auth_time");
        assert!(
            new_time > auth_time,
            "{asked:?}: {new_time} after {auth_time}"
        );
        assert_eq!(new_time, now, "{asked:?}");
        auth_time = new_time;
    }
    world.app.stop().await;
}

/// A second step left for longer than its five minutes (`mfa::pending::TTL_SECS`, on the test
/// clock) is refused with the "expired" page even with a right code, makes no session, and
/// drops its cookie; the code it was given is not spent by the refusal (a new sign-in takes
/// it).
#[tokio::test]
async fn an_expired_second_step_is_refused_and_makes_no_session() {
    let SecondStep {
        world,
        app,
        secret,
        mut browser,
        step,
        ..
    } = SecondStep::new().await;
    let html = second_step_page(step, "the sign-in").await;

    world.app.clock.advance(tessera::mfa::pending::TTL_SECS + 1);
    let code = secret.code_at(world.app.clock.now());
    let refused = submit_second_factor(&world, &mut browser, &html, "totp", &code).await;
    assert_eq!(refused.status(), 403);
    assert!(
        !refused.headers().contains_key("location"),
        "a page, not a redirect"
    );
    let page = refused.text().await.expect("html");
    assert!(page.contains("This sign-in has expired"), "{page}");
    assert!(!browser.cookies.contains_key("tessera_session"));
    assert!(
        !browser.cookies.contains_key("tessera_mfa"),
        "the pending step's cookie goes: {:?}",
        browser.cookies
    );
    assert_eq!(live_sessions(&world).await, 0, "no session was made");
    let again = browser.get(&world.authorize_url(&app, &[])).await;
    assert_eq!(again.status(), 200);
    assert!(
        again
            .text()
            .await
            .expect("html")
            .contains(r#"name="password""#)
    );

    // The refused step did not spend the code: a new sign-in takes it.
    let mut other = HttpBrowser::for_pages();
    let step = world.sign_in(&mut other, &app, &[]).await;
    let html = second_step_page(step, "a new sign-in").await;
    let done = submit_second_factor(&world, &mut other, &html, "totp", &code).await;
    World::code_of(&done);
    assert_eq!(live_sessions(&world).await, 1);
    world.app.stop().await;
}

/// Wrong codes at the second step count against the throttle of the account (from this IP):
/// after `throttle.account_free_attempts` of them, 429 with `Retry-After`. While the wait
/// lasts even the right code is refused, also at a new sign-in in another browser (the count
/// is the account's, not the pending step's); after it, the right code goes through.
#[tokio::test]
async fn wrong_codes_at_the_second_step_are_throttled() {
    let SecondStep {
        world,
        app,
        secret,
        mut browser,
        step,
        ..
    } = SecondStep::new().await;
    let free = world.app.settings.throttle.account_free_attempts;
    assert!(free > 1, "a throttle that allows a typo");
    let mut html = second_step_page(step, "the sign-in").await;
    let wrong = mfa::wrong_code(&secret, world.app.clock.now());
    for n in 1..=free {
        let refused = submit_second_factor(&world, &mut browser, &html, "totp", &wrong).await;
        assert_eq!(refused.status(), 401, "wrong code {n} of {free}");
        html = refused.text().await.expect("html");
        assert!(html.contains("That code is not right"), "{html}");
    }
    let throttled = submit_second_factor(&world, &mut browser, &html, "totp", &wrong).await;
    assert_eq!(throttled.status(), 429, "after {free} wrong codes");
    let wait: i64 = throttled.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("Retry-After in seconds");
    assert!(wait >= 1, "{wait}");
    let page = throttled.text().await.expect("html");
    assert!(page.contains("Too many wrong answers"), "{page}");

    let right = secret.code_at(world.app.clock.now());
    let refused = submit_second_factor(&world, &mut browser, &html, "totp", &right).await;
    assert_eq!(refused.status(), 429, "a right code during the wait");
    assert!(refused.headers().contains_key("retry-after"));
    let mut other = HttpBrowser::for_pages();
    let step = world.sign_in(&mut other, &app, &[]).await;
    let other_html = second_step_page(step, "a new sign-in while throttled").await;
    let refused = submit_second_factor(&world, &mut other, &other_html, "totp", &right).await;
    assert_eq!(
        refused.status(),
        429,
        "the account is throttled, not the step"
    );
    assert!(!other.cookies.contains_key("tessera_session"));
    assert!(!browser.cookies.contains_key("tessera_session"));
    assert_eq!(live_sessions(&world).await, 0);

    world.app.clock.advance(wait);
    let right = secret.code_at(world.app.clock.now());
    let done = submit_second_factor(&world, &mut browser, &html, "totp", &right).await;
    let id = id_claims(&world, &app, &done).await;
    assert_eq!(id["acr"], TESSERA_MFA);
    world.app.stop().await;
}
