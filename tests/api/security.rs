//! /account/security over HTTP, on both databases: setting up an authenticator app through the
//! page, and the attacks on it. The secret is not in the database row; a code works once; a
//! recovery code works once and a new set voids the old; wrong codes are throttled; a form
//! without its CSRF token, or from another site, or without a session changes nothing; and one
//! person's session cannot touch another's factors.

use diesel::prelude::*;
use tessera::clients::ClientSpec;
use tessera::db::schema::recovery_codes;
use tessera::mfa::TotpSecret;
use tessera::mfa::totp::DIGITS;

use crate::sso::World;
use crate::testkit::mfa::{
    Enrolled, Page, begin_on_page, enrol_on_page, post_security, recovery_codes_of, security_page,
    text_of, totp_row,
};
use crate::testkit::{HttpBrowser, PASSWORD, csrf_field};

/// A world with a person signed in in `browser` (a session cookie).
async fn signed_in(world: &World, browser: &mut HttpBrowser) {
    let client_id = world.client("App", ClientSpec::default()).await;
    let response = world.sign_in(browser, &client_id, &[]).await;
    World::code_of(&response);
}

/// Sets up and confirms; the page with the first recovery codes, the secret, and the step the
/// confirming code was of.
async fn enrol(world: &World, browser: &mut HttpBrowser) -> (Page, TotpSecret, i64) {
    let (page, Enrolled { secret, step, .. }) = enrol_on_page(&world.app, browser).await;
    (page, secret, step)
}

fn wrong_code(world: &World, secret: &TotpSecret) -> String {
    crate::testkit::mfa::wrong_code(secret, world.app.clock.now())
}

/// Posts the removal form of `html` with `code`, and `confirm` if given.
async fn remove_totp(
    world: &World,
    browser: &mut HttpBrowser,
    html: &str,
    code: &str,
    confirm: Option<&str>,
) -> Page {
    let mut fields = vec![("code", code)];
    fields.extend(confirm.map(|c| ("confirm", c)));
    post_security(
        &world.app,
        browser,
        "/account/security/totp/remove",
        html,
        &fields,
    )
    .await
}

#[tokio::test]
async fn without_a_session_the_page_says_to_sign_in_and_its_forms_change_nothing() {
    let world = World::new().await;
    let mut browser = HttpBrowser::for_pages();
    let page = security_page(&world.app, &mut browser).await;
    assert_eq!(page.status, 401);
    assert!(page.html.contains("not signed in"), "{}", page.html);
    // A CSRF pair of its own making, but no session.
    browser
        .cookies
        .insert("tessera_security_csrf".into(), "x".repeat(43));
    let forged = format!(r#"name="csrf_token" value="{}""#, "x".repeat(43));
    let page = post_security(
        &world.app,
        &mut browser,
        "/account/security/totp",
        &forged,
        &[],
    )
    .await;
    assert_eq!(page.status, 401, "{}", page.html);
    assert_eq!(totp_row(&world.app, &world.user_id).await, None);
}

#[tokio::test]
async fn the_row_holds_the_secret_sealed_and_nothing_of_it_in_the_clear() {
    let world = World::new().await;
    let mut browser = HttpBrowser::for_pages();
    signed_in(&world, &mut browser).await;
    let (page, secret) = begin_on_page(&world.app, &mut browser).await;
    let shown = text_of(&page.html, "totp-secret").expect("secret");
    let (sealed, confirmed_at, _) = totp_row(&world.app, &world.user_id).await.expect("a row");
    assert_eq!(confirmed_at, None, "not a factor before its first code");
    let raw = secret.as_bytes();
    let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    use base64::Engine;
    for encoded in [
        shown.clone(),
        shown.to_lowercase(),
        hex.clone(),
        hex.to_uppercase(),
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(raw),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw),
    ] {
        assert!(!sealed.contains(&encoded), "{sealed} holds {encoded}");
    }
    // Nor are the raw bytes anywhere in what the column decodes to.
    let body = sealed
        .strip_prefix("v1.")
        .expect("the sealed form's version");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(body)
        .expect("sealed text is base64url after its prefix");
    assert!(
        bytes.len() >= raw.len() + 12 + 16,
        "nonce + ciphertext + tag"
    );
    assert!(!bytes.windows(raw.len()).any(|w| w == raw));
    assert!(!bytes.windows(8).any(|w| raw.windows(8).any(|r| r == w)));
    // Opening the page again shows the same setup (unsealed from the row), not a new secret.
    let again = security_page(&world.app, &mut browser).await;
    assert_eq!(text_of(&again.html, "totp-secret"), Some(shown));
}

#[tokio::test]
async fn setting_up_shows_recovery_codes_once_and_a_code_works_once() {
    let world = World::new().await;
    let mut browser = HttpBrowser::for_pages();
    signed_in(&world, &mut browser).await;
    let (page, secret, step) = enrol(&world, &mut browser).await;
    let codes = recovery_codes_of(&page.html);
    for code in &codes {
        assert_eq!(code.len(), 19, "{code}");
    }
    let (_, confirmed_at, last_used) = totp_row(&world.app, &world.user_id).await.expect("row");
    assert!(confirmed_at.is_some());
    assert_eq!(last_used, step);
    // Shown once: the page opened again lists none of them.
    let page = security_page(&world.app, &mut browser).await;
    assert!(recovery_codes_of(&page.html).is_empty());
    assert!(page.html.contains("An authenticator app is set up"));
    for code in &codes {
        assert!(!page.html.contains(code.as_str()));
    }
    // The recovery codes are stored hashed: no row holds a code as typed.
    let user_id = world.user_id.clone();
    let stored: Vec<String> = world
        .app
        .query(move |c| {
            recovery_codes::table
                .filter(recovery_codes::user_id.eq(user_id))
                .select(recovery_codes::code_hash)
                .load(c)
        })
        .await;
    assert_eq!(stored.len(), 10);
    for code in &codes {
        let plain = code.replace('-', "");
        assert!(stored.iter().all(|h| !h.contains(&plain) && h != code));
    }
    // The code that confirmed the app, replayed: refused, and nothing changes.
    let replay = post_security(
        &world.app,
        &mut browser,
        "/account/security/recovery-codes",
        &page.html,
        &[("code", &secret.code(step, DIGITS))],
    )
    .await;
    assert_eq!(replay.status, 400, "{}", replay.html);
    assert!(recovery_codes_of(&replay.html).is_empty());
    // A code of a later step (within the drift) is taken once, then refused.
    let later = secret.code(step + 1, DIGITS);
    let fresh = post_security(
        &world.app,
        &mut browser,
        "/account/security/recovery-codes",
        &page.html,
        &[("code", &later)],
    )
    .await;
    assert_eq!(fresh.status, 200, "{}", fresh.html);
    assert_eq!(recovery_codes_of(&fresh.html).len(), 10);
    let again = post_security(
        &world.app,
        &mut browser,
        "/account/security/recovery-codes",
        &page.html,
        &[("code", &later)],
    )
    .await;
    assert_eq!(again.status, 400, "{}", again.html);
    let events = world.app.audit_events(&world.user_id).await;
    for event in ["mfa_enrolled", "recovery_codes_generated"] {
        assert!(events.iter().any(|e| e == event), "{event} in {events:?}");
    }
}

#[tokio::test]
async fn a_recovery_code_works_once_and_a_new_set_voids_the_old() {
    let world = World::new().await;
    let mut browser = HttpBrowser::for_pages();
    signed_in(&world, &mut browser).await;
    let (page, _, _) = enrol(&world, &mut browser).await;
    let first = recovery_codes_of(&page.html);
    // Spend one directly, as the sign-in step would: good once.
    let svc = world.app.state.services.clone();
    let redeem = |code: String| {
        let (svc, user_id) = (svc.clone(), world.user_id.clone());
        let now = world.app.clock.now();
        async move {
            svc.db
                .run(move |conn| {
                    let attempt = tessera::mfa::CodeAttempt {
                        user_id: &user_id,
                        ip: Some("192.0.2.7"),
                        client_id: None,
                        purpose: "sign_in",
                    };
                    tessera::mfa::redeem_recovery_code(
                        conn,
                        &svc.settings.throttle,
                        attempt,
                        &code,
                        now,
                    )
                })
                .await
                .expect("redeem")
        }
    };
    assert_eq!(
        redeem(first[0].to_lowercase().replace('-', " ")).await,
        tessera::mfa::CodeCheck::Accepted(9),
        "typed in lower case with spaces"
    );
    assert_eq!(
        redeem(first[0].clone()).await,
        tessera::mfa::CodeCheck::Refused
    );
    // The page counts 9 left; a new set (asked for with one of the old codes) voids the rest.
    let page = security_page(&world.app, &mut browser).await;
    assert_eq!(
        text_of(&page.html, "recovery-codes-left").as_deref(),
        Some("9")
    );
    let renewed = post_security(
        &world.app,
        &mut browser,
        "/account/security/recovery-codes",
        &page.html,
        &[("code", &first[1])],
    )
    .await;
    assert_eq!(renewed.status, 200, "{}", renewed.html);
    let second = recovery_codes_of(&renewed.html);
    assert_eq!(second.len(), 10);
    assert!(second.iter().all(|code| !first.contains(code)));
    // A few (wrong codes count against the throttle like any).
    for old in &first[2..4] {
        assert_eq!(
            redeem(old.clone()).await,
            tessera::mfa::CodeCheck::Refused,
            "{old} is void"
        );
    }
    assert_eq!(
        redeem(second[0].clone()).await,
        tessera::mfa::CodeCheck::Accepted(9)
    );
    let events = world.app.audit_events(&world.user_id).await;
    assert!(
        events.iter().any(|e| e == "recovery_code_used"),
        "{events:?}"
    );
}

#[tokio::test]
async fn wrong_codes_at_confirmation_are_throttled() {
    let world = World::new().await;
    let mut browser = HttpBrowser::for_pages();
    signed_in(&world, &mut browser).await;
    let (page, secret) = begin_on_page(&world.app, &mut browser).await;
    let wrong = wrong_code(&world, &secret);
    let mut statuses = Vec::new();
    let mut throttled = None;
    for _ in 0..40 {
        let answer = post_security(
            &world.app,
            &mut browser,
            "/account/security/totp/confirm",
            &page.html,
            &[("code", &wrong)],
        )
        .await;
        statuses.push(answer.status);
        if answer.status == 429 {
            throttled = Some(answer);
            break;
        }
        assert_eq!(answer.status, 400, "{}", answer.html);
        assert!(answer.html.contains("not right"), "{}", answer.html);
    }
    let throttled = throttled.unwrap_or_else(|| panic!("never throttled: {statuses:?}"));
    assert!(throttled.html.contains("Too many wrong codes"));
    // While throttled, even the right code is not looked at, and the app stays unconfirmed.
    let right = post_security(
        &world.app,
        &mut browser,
        "/account/security/totp/confirm",
        &page.html,
        &[("code", &secret.code_at(world.app.clock.now()))],
    )
    .await;
    assert_eq!(right.status, 429, "{}", right.html);
    let (_, confirmed_at, _) = totp_row(&world.app, &world.user_id).await.expect("row");
    assert_eq!(confirmed_at, None);
    let events = world.app.audit_events(&world.user_id).await;
    assert!(events.iter().any(|e| e == "second_factor_refused"));
    assert!(!events.iter().any(|e| e == "mfa_enrolled"));
}

#[tokio::test]
async fn a_form_without_its_csrf_token_or_from_another_site_changes_nothing() {
    let world = World::new().await;
    let mut browser = HttpBrowser::for_pages();
    signed_in(&world, &mut browser).await;
    let page = security_page(&world.app, &mut browser).await;
    let csrf = csrf_field(&page.html);
    // No token in the form (the cookie alone, as a cross-site form would send it if it could).
    let response = browser
        .post_form(&world.app.url("/account/security/totp"), &[])
        .await;
    assert_eq!(response.status(), 403);
    // A token that is not the cookie's.
    let response = browser
        .post_form(
            &world.app.url("/account/security/totp"),
            &[("csrf_token", "y".repeat(43).as_str())],
        )
        .await;
    assert_eq!(response.status(), 403);
    // The right token, but posted from another site.
    let request = browser.prepare(
        browser
            .http
            .post(world.app.url("/account/security/totp"))
            .header("origin", "https://evil.example")
            .form(&[("csrf_token", csrf.as_str())]),
    );
    assert_eq!(request.send().await.expect("post").status(), 403);
    assert_eq!(totp_row(&world.app, &world.user_id).await, None);
    // And the right token from this site works.
    let response = browser
        .post_form(
            &world.app.url("/account/security/totp"),
            &[("csrf_token", csrf.as_str())],
        )
        .await;
    assert_eq!(response.status(), 200);
    assert!(totp_row(&world.app, &world.user_id).await.is_some());
}

#[tokio::test]
async fn one_persons_session_cannot_touch_anothers_factors() {
    let world = World::new().await;
    let mut ann = HttpBrowser::for_pages();
    signed_in(&world, &mut ann).await;
    let (_, secret, step) = enrol(&world, &mut ann).await;
    // Bob signs in in his own browser and uses Ann's current code on his page.
    let bob_id = world
        .app
        .create_user("bob@example.com", PASSWORD, &[])
        .await;
    let mut bob = HttpBrowser::for_pages();
    let client_id = world.client("Bob's app", ClientSpec::default()).await;
    let login = bob.get(&world.authorize_url(&client_id, &[])).await;
    let html = login.text().await.expect("html");
    let response = world
        .submit_login_with(
            &mut bob,
            &html,
            &[("email", "bob@example.com"), ("password", PASSWORD)],
        )
        .await;
    World::code_of(&response);
    let page = security_page(&world.app, &mut bob).await;
    assert!(page.html.contains("bob@example.com"), "{}", page.html);
    assert!(page.html.contains("No authenticator app is set up"));
    let removal = post_security(
        &world.app,
        &mut bob,
        "/account/security/totp/remove",
        &page.html,
        &[("code", &secret.code(step + 1, DIGITS))],
    )
    .await;
    assert_eq!(removal.status, 409, "{}", removal.html);
    let (_, confirmed_at, last_used) = totp_row(&world.app, &world.user_id).await.expect("Ann's");
    assert!(confirmed_at.is_some());
    assert_eq!(last_used, step, "Ann's code was not spent by Bob's page");
    assert_eq!(totp_row(&world.app, &bob_id).await, None);
    // A session alone (left open, or stolen) cannot remove it: a wrong code changes nothing.
    let page = security_page(&world.app, &mut ann).await;
    let removal = post_security(
        &world.app,
        &mut ann,
        "/account/security/totp/remove",
        &page.html,
        &[("code", &wrong_code(&world, &secret)), ("confirm", "yes")],
    )
    .await;
    assert_eq!(removal.status, 400, "{}", removal.html);
    assert!(totp_row(&world.app, &world.user_id).await.is_some());
    // Ann herself removes it with that code (her last factor: confirmed).
    let removal = post_security(
        &world.app,
        &mut ann,
        "/account/security/totp/remove",
        &page.html,
        &[("code", &secret.code(step + 1, DIGITS)), ("confirm", "yes")],
    )
    .await;
    assert_eq!(removal.status, 200, "{}", removal.html);
    assert_eq!(totp_row(&world.app, &world.user_id).await, None);
    let events = world.app.audit_events(&world.user_id).await;
    assert!(events.iter().any(|e| e == "mfa_removed"), "{events:?}");
}

/// Removing the authenticator app when it is the last second factor (no passkey) asks first,
/// as removing the last passkey does: the first post, right code or not, changes nothing and
/// spends no code; it answers with the question and a form that asks for a code again. A
/// wrong code with the confirmation still changes nothing; a right one removes the app and
/// the recovery codes. With a passkey left, nothing is asked.
#[tokio::test]
async fn removing_the_last_second_factor_asks_for_confirmation_first() {
    let world = World::new().await;
    let mut ann = HttpBrowser::for_pages();
    signed_in(&world, &mut ann).await;
    let (page, secret, step) = enrol(&world, &mut ann).await;
    assert!(!page.html.contains("confirm-remove"), "not asked unasked");
    let page = security_page(&world.app, &mut ann).await;
    let asked = remove_totp(
        &world,
        &mut ann,
        &page.html,
        &secret.code(step + 1, DIGITS),
        None,
    )
    .await;
    assert_eq!(asked.status, 200, "{}", asked.html);
    assert!(
        asked.html.contains(r#"id="confirm-remove""#),
        "{}",
        asked.html
    );
    assert!(
        asked.html.contains("This is your last second factor"),
        "{}",
        asked.html
    );
    assert!(
        asked.html.contains(r#"name="confirm" value="yes""#),
        "{}",
        asked.html
    );
    let (_, confirmed_at, last_used) = totp_row(&world.app, &world.user_id).await.expect("kept");
    assert!(confirmed_at.is_some());
    assert_eq!(last_used, step, "the code was not spent by the question");
    let events = world.app.audit_events(&world.user_id).await;
    assert!(!events.iter().any(|e| e == "mfa_removed"), "{events:?}");

    let wrong = remove_totp(
        &world,
        &mut ann,
        &asked.html,
        &wrong_code(&world, &secret),
        Some("yes"),
    )
    .await;
    assert_eq!(wrong.status, 400, "{}", wrong.html);
    assert!(totp_row(&world.app, &world.user_id).await.is_some());
    // Anything but "yes" is no confirmation.
    let unsure = remove_totp(
        &world,
        &mut ann,
        &asked.html,
        &secret.code(step + 1, DIGITS),
        Some("1"),
    )
    .await;
    assert!(
        unsure.html.contains(r#"id="confirm-remove""#),
        "{}",
        unsure.html
    );
    assert!(totp_row(&world.app, &world.user_id).await.is_some());

    let removed = remove_totp(
        &world,
        &mut ann,
        &asked.html,
        &secret.code(step + 1, DIGITS),
        Some("yes"),
    )
    .await;
    assert_eq!(removed.status, 200, "{}", removed.html);
    assert!(
        removed.html.contains("Your authenticator app is removed"),
        "{}",
        removed.html
    );
    assert!(!removed.html.contains("confirm-remove"), "{}", removed.html);
    assert_eq!(totp_row(&world.app, &world.user_id).await, None);
    let user_id = world.user_id.clone();
    let codes: i64 = world
        .app
        .query(move |c| {
            recovery_codes::table
                .filter(recovery_codes::user_id.eq(user_id))
                .count()
                .get_result(c)
        })
        .await;
    assert_eq!(codes, 0, "the recovery codes go with the last factor");

    // With a passkey left the app is not the last factor: removed at once.
    world.plant_passkey().await;
    let (_, secret, step) = enrol(&world, &mut ann).await;
    let page = security_page(&world.app, &mut ann).await;
    let removed = remove_totp(
        &world,
        &mut ann,
        &page.html,
        &secret.code(step + 1, DIGITS),
        None,
    )
    .await;
    assert_eq!(removed.status, 200, "{}", removed.html);
    assert!(!removed.html.contains("confirm-remove"), "{}", removed.html);
    assert_eq!(totp_row(&world.app, &world.user_id).await, None);
}
