//! A person who must use a second factor (`accounts.mfa = "required"`) and has none sets up
//! an authenticator app during sign-in: the second-step page shows the app's QR code and key,
//! the first code turns it on, the recovery codes are shown once, and the way on to the app
//! then finds a session with both factors. The attacker's side: the pending step's enrolment
//! answer cannot confirm an app the person began elsewhere, and nothing is made before the
//! right code.

use serde_json::Value;
use tessera::clients::ClientSpec;
use tessera::mfa::TotpSecret;

use super::World;
use crate::testkit::app::TestEnv;
use crate::testkit::fixtures::claims_of;
use crate::testkit::http::HttpBrowser;
use crate::testkit::mfa;

const TESSERA_MFA: &str = "urn:tessera:acr:mfa";

async fn required_world() -> World {
    let env = TestEnv::new();
    let mut settings = env.settings();
    settings.accounts.mfa = tessera::config::MfaPolicy::Required;
    let app = env.spawn_with(settings).await;
    World::with(env, app).await
}

/// The secret the enrolment page shows, as an app would read it.
fn shown_secret(html: &str) -> TotpSecret {
    let shown = mfa::text_of(html, "totp-secret").unwrap_or_else(|| panic!("no secret in {html}"));
    mfa::secret_from_page(&shown)
}

async fn totp_confirmed(world: &World) -> Option<bool> {
    let user_id = world.user_id.clone();
    world
        .app
        .state
        .services
        .db
        .run(move |conn| {
            Ok::<_, tessera::db::DbError>(tessera::mfa::store::find_totp(conn, &user_id)?)
        })
        .await
        .expect("totp row")
        .map(|row| row.confirmed_at.is_some())
}

/// Required, and no factor: the password leads to the enrolment page (QR code and key), no
/// session yet. A wrong code shows the same key again (401); the right one turns the app on,
/// shows ten recovery codes once, sets the session cookie, and the page's link on to
/// `/authorize` gets a code whose tokens say `otp` and `mfa`. The next sign-in asks for the
/// app's code: the enrolment is done.
#[tokio::test]
async fn a_person_who_must_use_mfa_sets_up_an_app_while_signing_in() {
    let world = required_world().await;
    let app = world.client("App", ClientSpec::default()).await;
    let mut browser = HttpBrowser::for_pages();
    let step = world.sign_in(&mut browser, &app, &[]).await;
    assert_eq!(step.status(), 200);
    assert!(!browser.cookies.contains_key("tessera_session"));
    assert!(browser.cookies.contains_key("tessera_mfa"));
    let html = step.text().await.expect("html");
    assert!(html.contains(r#"id="totp-qr""#), "{html}");
    assert!(html.contains(r#"name="enrol_totp""#), "{html}");
    let secret = shown_secret(&html);
    assert_eq!(totp_confirmed(&world).await, Some(false));

    let wrong = super::mfa::submit_second_factor(
        &world,
        &mut browser,
        &html,
        "enrol_totp",
        &mfa::wrong_code(&secret, world.app.clock.now()),
    )
    .await;
    assert_eq!(wrong.status(), 401);
    let html = wrong.text().await.expect("html");
    assert!(html.contains("That code is not right"), "{html}");
    assert_eq!(
        shown_secret(&html).base32(),
        secret.base32(),
        "the same key, shown again"
    );
    assert!(!browser.cookies.contains_key("tessera_session"));
    assert_eq!(totp_confirmed(&world).await, Some(false));

    let now = world.app.clock.now();
    let done = super::mfa::submit_second_factor(
        &world,
        &mut browser,
        &html,
        "enrol_totp",
        &secret.code_at(now),
    )
    .await;
    assert_eq!(done.status(), 200, "the recovery codes page");
    let html = done.text().await.expect("html");
    let codes = html.matches(r#"<li class="recovery-code">"#).count();
    assert_eq!(codes, 10, "{html}");
    assert!(browser.cookies.contains_key("tessera_session"));
    assert_eq!(totp_confirmed(&world).await, Some(true));
    let events = world.app.audit_events(&world.user_id).await;
    assert!(events.iter().any(|e| e == "mfa_enrolled"), "{events:?}");

    let link = html
        .split(r#"id="continue""#)
        .nth(1)
        .and_then(|rest| rest.split("href=\"").nth(1))
        .and_then(|rest| rest.split('"').next())
        .expect("a link on");
    let link = link.replace("&#38;", "&").replace("&amp;", "&");
    assert!(link.starts_with("/authorize?"), "{link}");
    let on = browser.get(&world.app.url(&link)).await;
    let tokens = world.exchange(&app, &World::code_of(&on)).await;
    let id = claims_of(tokens["id_token"].as_str().expect("id token"));
    let amr = crate::testkit::fixtures::amr_of(&id);
    let amr: Vec<&str> = amr.iter().map(String::as_str).collect();
    assert!(
        amr.contains(&"pwd") && amr.contains(&"otp") && amr.contains(&"mfa"),
        "{amr:?}"
    );
    assert_eq!(id["acr"], TESSERA_MFA);

    // The next sign-in, in another browser, asks for the app's code, not for a new app.
    let mut later = HttpBrowser::for_pages();
    let step = world.sign_in(&mut later, &app, &[]).await;
    let html = step.text().await.expect("html");
    assert!(html.contains(r#"name="totp""#), "{html}");
    assert!(!html.contains(r#"name="enrol_totp""#), "{html}");
    world.app.stop().await;
}

/// An enrolment answer is taken only from someone asked to enrol: once the person has an
/// app, someone with their password only, asked for its code, cannot use the pending step to
/// turn on an app of their own. The answer is refused, shows no key, and changes nothing.
#[tokio::test]
async fn an_enrolment_answer_is_refused_to_a_person_asked_for_a_code() {
    let world = required_world().await;
    let app = world.client("App", ClientSpec::default()).await;
    // Enrolled during a first sign-in.
    let mut first = HttpBrowser::for_pages();
    let step = world.sign_in(&mut first, &app, &[]).await;
    let html = step.text().await.expect("html");
    let secret = shown_secret(&html);
    let now = world.app.clock.now();
    let done = super::mfa::submit_second_factor(
        &world,
        &mut first,
        &html,
        "enrol_totp",
        &secret.code_at(now),
    )
    .await;
    assert_eq!(done.status(), 200);

    // Someone with the password only: asked for the app's code, they post an enrolment.
    let mut attacker = HttpBrowser::for_pages();
    let step = world.sign_in(&mut attacker, &app, &[]).await;
    let html = step.text().await.expect("html");
    assert!(html.contains(r#"name="totp""#), "{html}");
    let refused =
        super::mfa::submit_second_factor(&world, &mut attacker, &html, "enrol_totp", "123456")
            .await;
    assert_eq!(refused.status(), 403);
    let page = refused.text().await.expect("html");
    assert!(!page.contains("totp-secret"), "{page}");
    assert!(!attacker.cookies.contains_key("tessera_session"));
    assert_eq!(totp_confirmed(&world).await, Some(true));
    world.app.stop().await;
}

/// The enrolment page is a second step like any: without its pending cookie the right code
/// makes nothing, and after 5 minutes it has expired.
#[tokio::test]
async fn an_enrolment_without_its_cookie_or_too_late_makes_nothing() {
    let world = required_world().await;
    let app = world.client("App", ClientSpec::default()).await;
    let mut browser = HttpBrowser::for_pages();
    let step = world.sign_in(&mut browser, &app, &[]).await;
    let html = step.text().await.expect("html");
    let secret = shown_secret(&html);

    let mut other = HttpBrowser::for_pages();
    other.cookies = browser.cookies.clone();
    other.cookies.remove("tessera_mfa");
    let now = world.app.clock.now();
    let refused = super::mfa::submit_second_factor(
        &world,
        &mut other,
        &html,
        "enrol_totp",
        &secret.code_at(now),
    )
    .await;
    assert_eq!(refused.status(), 403);

    world.app.clock.advance(tessera::mfa::pending::TTL_SECS + 1);
    let now = world.app.clock.now();
    let late = super::mfa::submit_second_factor(
        &world,
        &mut browser,
        &html,
        "enrol_totp",
        &secret.code_at(now),
    )
    .await;
    assert_eq!(late.status(), 403);
    assert!(!browser.cookies.contains_key("tessera_session"));
    assert_eq!(totp_confirmed(&world).await, Some(false), "not turned on");
    world.app.stop().await;
}

/// A client registered with `require_mfa` needs a multi-factor session even when the policy
/// is optional: a password-only session made at another app answers that app silently, but
/// this one gets the enrolment page (the person has no factor) and, with `prompt=none`,
/// `interaction_required`. Once set up there, the same session (upgraded) answers both; and
/// the password grant of such a client is refused with the MFA message.
#[tokio::test]
async fn a_client_that_requires_mfa_steps_up_a_password_session() {
    let world = World::new().await;
    let plain = world.client("Plain", ClientSpec::default()).await;
    let strict = world
        .client(
            "Strict",
            ClientSpec {
                require_mfa: true,
                ..ClientSpec::default()
            },
        )
        .await;
    let mut browser = HttpBrowser::for_pages();
    let first = world.sign_in(&mut browser, &plain, &[]).await;
    let tokens = world.exchange(&plain, &World::code_of(&first)).await;
    let id = claims_of(tokens["id_token"].as_str().expect("id token"));
    assert_eq!(id["amr"], serde_json::json!(["pwd"]));
    let sid = id["sid"].as_str().expect("sid").to_string();

    let silent = browser
        .get(&world.authorize_url(&strict, &[("prompt", "none")]))
        .await;
    let location = crate::testkit::fixtures::location(&silent);
    assert!(
        location.contains("error=interaction_required"),
        "{location}"
    );

    let step = browser.get(&world.authorize_url(&strict, &[])).await;
    assert_eq!(step.status(), 200);
    let html = step.text().await.expect("html");
    assert!(html.contains(r#"name="enrol_totp""#), "{html}");
    assert!(
        !html.contains(r#"name="password""#),
        "no password again: {html}"
    );
    let secret = shown_secret(&html);
    let now = world.app.clock.now();
    let done = super::mfa::submit_second_factor(
        &world,
        &mut browser,
        &html,
        "enrol_totp",
        &secret.code_at(now),
    )
    .await;
    assert_eq!(done.status(), 200);
    let on = browser.get(&world.authorize_url(&strict, &[])).await;
    let tokens = world.exchange(&strict, &World::code_of(&on)).await;
    let id = claims_of(tokens["id_token"].as_str().expect("id token"));
    assert_eq!(id["acr"], TESSERA_MFA);
    assert_eq!(id["sid"], sid.as_str(), "the same session, upgraded");
    let again = browser.get(&world.authorize_url(&plain, &[])).await;
    World::code_of(&again);

    let (password_client, client_secret) = world
        .app
        .create_client(ClientSpec {
            name: "Strict first party".into(),
            grant_types: vec!["password".into()],
            scopes: vec!["openid".into()],
            require_mfa: true,
            ..ClientSpec::default()
        })
        .await;
    let other = world
        .app
        .create_user("bo@example.com", crate::testkit::PASSWORD, &[])
        .await;
    assert!(!other.is_empty());
    let refused = world
        .app
        .password_login(
            (&password_client, &client_secret.expect("confidential")),
            "bo@example.com",
            crate::testkit::PASSWORD,
            "openid",
        )
        .await;
    assert_eq!(refused.status(), 400);
    let body: Value = refused.json().await.expect("json");
    assert_eq!(
        body["error_description"],
        "multi-factor authentication is required; use the authorization code flow"
    );
    world.app.stop().await;
}

/// The consent form is no way around a client's `require_mfa`: a password-only session's
/// consent page for one third-party app, posted with another app's id (one that requires
/// MFA), gets no code but the second step (here, setting up an app).
#[tokio::test]
async fn a_consent_form_does_not_skip_a_clients_mfa_requirement() {
    let world = World::new().await;
    let third_party = |require_mfa| ClientSpec {
        consent: Some("required".into()),
        require_mfa,
        ..ClientSpec::default()
    };
    let plain = world.client("Plain", third_party(false)).await;
    let strict = world.client("Strict", third_party(true)).await;
    let mut browser = HttpBrowser::for_pages();
    let consent = world.sign_in(&mut browser, &plain, &[]).await;
    assert_eq!(consent.status(), 200);
    let html = consent.text().await.expect("html");
    assert!(html.contains("/authorize/consent"), "{html}");
    let mut form: Vec<(String, String)> = super::hidden_fields(&html)
        .into_iter()
        .map(|(k, v)| {
            if k == "client_id" {
                (k, strict.clone())
            } else {
                (k, v)
            }
        })
        .collect();
    form.push((
        "csrf_token".into(),
        crate::testkit::fixtures::csrf_field(&html),
    ));
    form.push(("decision".into(), "allow".into()));
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let posted = browser
        .post_form(&world.app.url("/authorize/consent"), &form)
        .await;
    assert_ne!(posted.status(), 303, "no code for the strict app");
    let page = posted.text().await.expect("html");
    assert!(page.contains(r#"name="enrol_totp""#), "{page}");
    world.app.stop().await;
}
