//! The OpenID Connect request parameters that steer the browser session at `/authorize`
//! (Core §3.1.2.1): `max_age`, `prompt=login` / `select_account`, `login_hint`,
//! `id_token_hint`; and malformed values, which go back to the app once the client and the
//! redirect URI are known, and are shown on a page (never a redirect) before.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use tessera::clients::ClientSpec;

use super::{EMAIL, World};
use crate::testkit::fixtures::{PASSWORD, REDIRECT, claims_of, location, query_of};
use crate::testkit::http::HttpBrowser;

const BOB: &str = "bob@example.com";

/// The login page, or `None` when `/authorize` went straight back to the app with a code.
async fn login_page_for(
    world: &World,
    browser: &mut HttpBrowser,
    client: &str,
    extra: &[(&str, &str)],
) -> Option<String> {
    let response = browser.get(&world.authorize_url(client, extra)).await;
    match response.status().as_u16() {
        200 => {
            let html = response.text().await.expect("html");
            assert!(html.contains(r#"name="password""#), "{html}");
            Some(html)
        }
        303 => {
            World::code_of(&response);
            None
        }
        other => panic!("/authorize answered {other}"),
    }
}

/// Signs in through the page and exchanges the code: the ID token's claims.
async fn id_claims_after(
    world: &World,
    browser: &mut HttpBrowser,
    client: &str,
    html: &str,
) -> Value {
    let response = world.submit_login(browser, html, PASSWORD).await;
    let tokens = world.exchange(client, &World::code_of(&response)).await;
    claims_of(tokens["id_token"].as_str().expect("id token"))
}

/// A silent `/authorize` (no page) and its code exchanged: the token response.
async fn silently(
    world: &World,
    browser: &mut HttpBrowser,
    client: &str,
    extra: &[(&str, &str)],
) -> Value {
    let response = browser.get(&world.authorize_url(client, extra)).await;
    world.exchange(client, &World::code_of(&response)).await
}

fn id_of(tokens: &Value) -> Value {
    claims_of(tokens["id_token"].as_str().expect("id token"))
}

#[tokio::test]
async fn max_age_older_than_the_sign_in_forces_the_login_page_and_auth_time_moves() {
    let world = World::new().await;
    let app = world.client("App", ClientSpec::default()).await;
    let clock = world.app.clock.clone();
    let mut browser = HttpBrowser::for_pages();
    let t0 = clock.now();
    let first = world.sign_in(&mut browser, &app, &[]).await;
    let first = id_of(&world.exchange(&app, &World::code_of(&first)).await);
    assert_eq!(first["auth_time"], t0);

    clock.advance(100);
    // A sign-in younger than max_age stands.
    let young_enough = id_of(&silently(&world, &mut browser, &app, &[("max_age", "500")]).await);
    assert_eq!(young_enough["auth_time"], t0);
    assert_eq!(young_enough["sid"], first["sid"]);
    let young_enough = id_of(&silently(&world, &mut browser, &app, &[("max_age", "100")]).await);
    assert_eq!(
        young_enough["auth_time"], t0,
        "exactly max_age old still stands"
    );

    // An older one does not: the page, and the new sign-in's time.
    let html = login_page_for(&world, &mut browser, &app, &[("max_age", "99")])
        .await
        .expect("the login page");
    let again = id_claims_after(&world, &mut browser, &app, &html).await;
    assert_eq!(again["auth_time"], t0 + 100, "auth_time moves");
    assert_eq!(again["sid"], first["sid"], "the same session, renewed");
    let later = id_of(&silently(&world, &mut browser, &app, &[("max_age", "99")]).await);
    assert_eq!(later["auth_time"], t0 + 100);

    // prompt=none cannot show the page: the app hears login_required.
    clock.advance(100);
    let refused = browser
        .get(&world.authorize_url(&app, &[("prompt", "none"), ("max_age", "10")]))
        .await;
    assert_eq!(refused.status(), 303);
    let query = query_of(&location(&refused));
    assert_eq!(query["error"], "login_required");
    assert_eq!(query["state"], "st-1");
    world.app.stop().await;
}

#[tokio::test]
async fn max_age_zero_prompt_login_and_select_account_always_show_the_login_page() {
    let world = World::new().await;
    let app = world.client("App", ClientSpec::default()).await;
    let clock = world.app.clock.clone();
    let mut browser = HttpBrowser::for_pages();
    World::code_of(&world.sign_in(&mut browser, &app, &[]).await);

    for extra in [
        ("max_age", "0"),
        ("prompt", "login"),
        ("prompt", "select_account"),
    ] {
        clock.advance(1);
        // Even straight after a sign-in through that very page.
        for _ in 0..2 {
            let html = login_page_for(&world, &mut browser, &app, &[extra])
                .await
                .unwrap_or_else(|| panic!("{extra:?} went past the login page"));
            let signed_in = id_claims_after(&world, &mut browser, &app, &html).await;
            assert_eq!(signed_in["auth_time"], clock.now(), "{extra:?}");
        }
    }
    // Without them the session stands.
    assert!(
        login_page_for(&world, &mut browser, &app, &[])
            .await
            .is_none()
    );
    world.app.stop().await;
}

#[tokio::test]
async fn login_hint_prefills_the_email_field_escaped() {
    let world = World::new().await;
    let app = world.client("App", ClientSpec::default()).await;
    let mut browser = HttpBrowser::for_pages();

    let html = login_page_for(&world, &mut browser, &app, &[("login_hint", EMAIL)])
        .await
        .expect("the login page");
    assert!(
        html.contains(&format!(
            r#"name="email" type="email" autocomplete="username" value="{EMAIL}""#
        )),
        "{html}"
    );
    // The field is filled, so the cursor waits in the password field.
    assert!(
        html.contains(r#"autocomplete="current-password" required autofocus"#),
        "{html}"
    );

    let hostile = r#""><script>alert(1)</script><input value=""#;
    let html = login_page_for(&world, &mut browser, &app, &[("login_hint", hostile)])
        .await
        .expect("the login page");
    assert!(!html.contains("<script>alert(1)"), "{html}");
    // The hint stays inside the email field's value.
    let value = html
        .split(r#"name="email" type="email" autocomplete="username" value=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the email field's value");
    assert!(!value.contains(['<', '>']), "{value}");
    let decoded = [
        ("&#34;", "\""),
        ("&quot;", "\""),
        ("&#60;", "<"),
        ("&lt;", "<"),
        ("&#62;", ">"),
        ("&gt;", ">"),
        ("&amp;", "&"),
    ]
    .iter()
    .fold(value.to_string(), |text, (entity, char)| {
        text.replace(entity, char)
    });
    assert_eq!(decoded, hostile, "the hint, escaped");
    assert!(
        html.contains(&format!("{value}\" required>")),
        "the field ends where it should: {html}"
    );

    // A hint is no sign-in: the person still proves who they are, and may be someone else.
    let bob = world.app.create_user(BOB, PASSWORD, &[]).await;
    let html = login_page_for(&world, &mut browser, &app, &[("login_hint", EMAIL)])
        .await
        .expect("the login page");
    let response = world
        .submit_login_with(
            &mut browser,
            &html,
            &[("email", BOB), ("password", PASSWORD)],
        )
        .await;
    let signed_in = id_of(&world.exchange(&app, &World::code_of(&response)).await);
    assert_eq!(signed_in["sub"], bob.as_str());
    world.app.stop().await;
}

#[tokio::test]
async fn an_id_token_hint_of_another_user_is_login_required_silently_and_the_page_otherwise() {
    let world = World::new().await;
    let app = world.client("App", ClientSpec::default()).await;
    world.app.create_user(BOB, PASSWORD, &[]).await;

    let mut bobs = HttpBrowser::for_pages();
    let html = login_page_for(&world, &mut bobs, &app, &[])
        .await
        .expect("the login page");
    let response = world
        .submit_login_with(&mut bobs, &html, &[("email", BOB), ("password", PASSWORD)])
        .await;
    let bob = world.exchange(&app, &World::code_of(&response)).await;
    let bob_hint = bob["id_token"].as_str().expect("id token").to_string();

    let mut browser = HttpBrowser::for_pages();
    let response = world.sign_in(&mut browser, &app, &[]).await;
    let ann = world.exchange(&app, &World::code_of(&response)).await;
    let ann_hint = ann["id_token"].as_str().expect("id token").to_string();

    let refused = browser
        .get(&world.authorize_url(&app, &[("prompt", "none"), ("id_token_hint", &bob_hint)]))
        .await;
    assert_eq!(refused.status(), 303, "never a page");
    let query = query_of(&location(&refused));
    assert_eq!(query["error"], "login_required");
    assert_eq!(query["state"], "st-1");
    assert!(!query.contains_key("code"));

    let html = login_page_for(&world, &mut browser, &app, &[("id_token_hint", &bob_hint)])
        .await
        .expect("the page asks to sign in again");
    let signed_in = id_claims_after(&world, &mut browser, &app, &html).await;
    assert_eq!(signed_in["sub"], world.user_id.as_str());

    // The signed-in person's own hint: a code, silently or not, expired hint or not.
    for extra in [vec![("prompt", "none")], vec![]] {
        let mut extra = extra;
        extra.push(("id_token_hint", &ann_hint));
        let tokens = silently(&world, &mut browser, &app, &extra).await;
        assert_eq!(id_of(&tokens)["sub"], world.user_id.as_str());
    }
    world
        .app
        .clock
        .advance(world.app.settings.tokens.id_token_ttl_secs + 60);
    let tokens = silently(
        &world,
        &mut browser,
        &app,
        &[("prompt", "none"), ("id_token_hint", &ann_hint)],
    )
    .await;
    assert_eq!(id_of(&tokens)["sub"], world.user_id.as_str());
    world.app.stop().await;
}

/// An ID token with its claims changed and its signature kept.
fn tampered(id_token: &str, sub: &str) -> String {
    let parts: Vec<&str> = id_token.split('.').collect();
    let mut claims = claims_of(id_token);
    claims["sub"] = Value::String(sub.into());
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    format!("{}.{payload}.{}", parts[0], parts[2])
}

#[tokio::test]
async fn malformed_oidc_parameters_go_back_to_the_app_as_invalid_request_with_the_state() {
    let world = World::new().await;
    let app = world.client("App", ClientSpec::default()).await;
    let mut browser = HttpBrowser::for_pages();
    let response = world.sign_in(&mut browser, &app, &[]).await;
    let tokens = world.exchange(&app, &World::code_of(&response)).await;
    let id_token = tokens["id_token"].as_str().expect("id token");
    let access_token = tokens["access_token"].as_str().expect("access token");
    let forged = tampered(id_token, "someone-else");

    let cases: Vec<(&str, &str)> = vec![
        ("prompt", "bogus"),
        ("prompt", "login bogus"),
        ("prompt", "none login"),
        ("prompt", "none consent"),
        ("max_age", "-1"),
        ("max_age", "abc"),
        ("max_age", "1.5"),
        ("max_age", "+5"),
        ("max_age", "99999999999999999999999"),
        ("id_token_hint", "not-a-jwt"),
        ("id_token_hint", "a.b.c"),
        ("id_token_hint", &forged),
        // An access token is not an ID token.
        ("id_token_hint", access_token),
    ];
    // With the session and without: a live session does not turn a bad request into a code.
    for signed_in in [true, false] {
        let mut stranger = HttpBrowser::for_pages();
        let browser = if signed_in {
            &mut browser
        } else {
            &mut stranger
        };
        for case in &cases {
            let response = browser.get(&world.authorize_url(&app, &[*case])).await;
            assert_eq!(response.status(), 303, "{case:?}");
            let target = location(&response);
            assert!(target.starts_with(REDIRECT), "{case:?}: {target}");
            let query = query_of(&target);
            assert_eq!(query["error"], "invalid_request", "{case:?}");
            assert_eq!(query["state"], "st-1", "{case:?}");
            assert!(!query.contains_key("code"), "{case:?}");
            assert!(!query["error_description"].is_empty());
        }
    }
    world.app.stop().await;
}

#[tokio::test]
async fn malformed_parameters_before_the_client_and_redirect_uri_are_known_get_a_page() {
    let world = World::new().await;
    let app = world.client("App", ClientSpec::default()).await;
    let mut browser = HttpBrowser::for_pages();
    World::code_of(&world.sign_in(&mut browser, &app, &[]).await);

    let evil = "https://evil.example/callback";
    for case in [
        ("prompt", "bogus"),
        ("prompt", "none login"),
        ("max_age", "-1"),
        ("max_age", "abc"),
        ("id_token_hint", "not-a-jwt"),
    ] {
        for wrong in [
            vec![("client_id", "no-such-client")],
            vec![("redirect_uri", evil)],
            vec![("client_id", "no-such-client"), ("redirect_uri", evil)],
        ] {
            let mut extra = wrong.clone();
            extra.push(case);
            let response = browser.get(&world.authorize_url(&app, &extra)).await;
            assert_eq!(response.status(), 400, "{case:?} {wrong:?}");
            assert!(
                response.headers().get("location").is_none(),
                "never a redirect to an unvalidated URI"
            );
            let content_type = response.headers()["content-type"]
                .to_str()
                .expect("ascii")
                .to_string();
            assert!(content_type.starts_with("text/html"), "{content_type}");
            let html = response.text().await.expect("html");
            assert!(!html.contains(evil), "{html}");
        }
    }
    world.app.stop().await;
}

#[tokio::test]
async fn unknown_parameters_are_ignored() {
    let world = World::new().await;
    let app = world.client("App", ClientSpec::default()).await;
    let unknown = [
        ("ui_locales", "de"),
        ("claims_locales", "fr"),
        ("acr_values", "urn:example:loa:2"),
        ("display", "popup"),
        ("x-anything", "<b>hi</b>"),
        ("registration", "{\"x\":1}"),
        // Sent without a value: as if omitted (RFC 6749 §3.1).
        ("max_age", ""),
        ("prompt", ""),
    ];
    let mut browser = HttpBrowser::for_pages();
    let html = login_page_for(&world, &mut browser, &app, &unknown)
        .await
        .expect("the login page");
    assert!(!html.contains("<b>hi</b>"));
    let signed_in = id_claims_after(&world, &mut browser, &app, &html).await;
    assert_eq!(signed_in["sub"], world.user_id.as_str());

    // With the session: a code, silently or not.
    let tokens = silently(&world, &mut browser, &app, &unknown).await;
    assert_eq!(id_of(&tokens)["sub"], world.user_id.as_str());
    let mut silent: Vec<(&str, &str)> = unknown
        .iter()
        .copied()
        .filter(|(k, _)| *k != "prompt")
        .collect();
    silent.push(("prompt", "none"));
    let tokens = silently(&world, &mut browser, &app, &silent).await;
    assert_eq!(id_of(&tokens)["sub"], world.user_id.as_str());
    world.app.stop().await;
}
