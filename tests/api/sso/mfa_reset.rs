//! The operator's MFA reset, for a person who lost every factor: `POST
//! /admin/users/{id}/mfa/reset` and `tessera user mfa reset --email`, one use case. Afterwards
//! the person signs in with the password alone (no second step), nothing they were signed in
//! with works (browser session, refresh tokens, access tokens), nothing under way with their
//! old factors can finish, and the trail says who did it. Only an administrator may.

use diesel::prelude::*;
use serde_json::Value;
use tessera::clients::ClientSpec;
use tessera::db::schema::{
    audit_events, mfa_pending, passkeys, recovery_codes, webauthn_ceremonies,
};

use super::World;
use super::mfa::submit_second_factor;
use crate::testkit::fixtures::{PASSWORD, location, query_of};
use crate::testkit::http::HttpBrowser;

const ADMIN: &str = "root@example.com";

/// A passkey and a ceremony under way for the world's person, written as the passkey pages
/// would.
async fn plant_passkey(world: &World) {
    world.plant_passkey().await;
    let (user_id, now) = (world.user_id.clone(), world.app.clock.now());
    world
        .app
        .query(move |conn| {
            tessera::mfa::passkey_store::insert_ceremony(
                conn,
                &tessera::mfa::passkey_store::CeremonyRow {
                    id: tessera::crypto::sha256_hex(b"ceremony"),
                    user_id: Some(user_id),
                    kind: "registration".into(),
                    state: "{}".into(),
                    created_at: now,
                    expires_at: now + 300,
                },
            )
        })
        .await;
}

/// How many rows of the person's factors and steps under way are left: recovery codes,
/// passkeys, second steps, ceremonies.
async fn leftovers(world: &World) -> [i64; 4] {
    let user_id = world.user_id.clone();
    world
        .app
        .query(move |conn| {
            Ok([
                recovery_codes::table
                    .filter(recovery_codes::user_id.eq(&user_id))
                    .count()
                    .get_result(conn)?,
                passkeys::table
                    .filter(passkeys::user_id.eq(&user_id))
                    .count()
                    .get_result(conn)?,
                mfa_pending::table
                    .filter(mfa_pending::user_id.eq(&user_id))
                    .count()
                    .get_result(conn)?,
                webauthn_ceremonies::table
                    .filter(webauthn_ceremonies::user_id.eq(&user_id))
                    .count()
                    .get_result(conn)?,
            ])
        })
        .await
}

/// The `detail` of the person's `mfa_reset` audit events, oldest first.
async fn reset_events(world: &World) -> Vec<Value> {
    let user_id = world.user_id.clone();
    let rows: Vec<Option<String>> = world
        .app
        .query(move |conn| {
            audit_events::table
                .filter(audit_events::user_id.eq(user_id))
                .filter(audit_events::event.eq("mfa_reset"))
                .select(audit_events::detail)
                .load(conn)
        })
        .await;
    rows.iter()
        .map(|d| serde_json::from_str(d.as_deref().expect("a detail")).expect("JSON"))
        .collect()
}

async fn access_token(world: &World, email: &str, scope: &str) -> String {
    let client = world.app.first_party_client().await;
    let response = world
        .app
        .password_login((&client.0, &client.1), email, PASSWORD, scope)
        .await;
    assert_eq!(response.status(), 200, "{email} signs in");
    let body: Value = response.json().await.expect("json");
    body["access_token"].as_str().expect("token").to_string()
}

async fn reset(world: &World, token: &str, user_id: &str) -> reqwest::Response {
    world
        .app
        .client
        .post(world.app.url(&format!("/admin/users/{user_id}/mfa/reset")))
        .bearer_auth(token)
        .send()
        .await
        .expect("request")
}

async fn refresh(world: &World, client_id: &str, token: &Value) -> u16 {
    world
        .app
        .client
        .post(world.app.url("/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", token.as_str().expect("a refresh token")),
            ("client_id", client_id),
        ])
        .send()
        .await
        .expect("request")
        .status()
        .as_u16()
}

/// A person with an authenticator app, recovery codes and a passkey, signed in (a browser
/// session with a refresh token and an `offline_access` one), and with a second sign-in
/// waiting at its second step. The administrator resets: every factor and step under way is
/// gone, every session ended, the trail names the administrator; the next sign-in asks for
/// the password alone.
#[tokio::test]
async fn after_an_mfa_reset_the_password_alone_signs_in_and_old_sessions_are_over() {
    let world = World::new().await;
    let admin_id = world.app.create_user(ADMIN, PASSWORD, &["admin"]).await;
    let admin = access_token(&world, ADMIN, "admin").await;
    let app = world.client("App", ClientSpec::default()).await;
    let secret = crate::testkit::mfa::enrol_totp(&world.app, &world.user_id, super::EMAIL)
        .await
        .secret;
    plant_passkey(&world).await;
    let now = world.app.clock.now();

    let mut browser = HttpBrowser::for_pages();
    let step = world.sign_in(&mut browser, &app, &[]).await;
    let html = step.text().await.expect("html");
    let done =
        submit_second_factor(&world, &mut browser, &html, "totp", &secret.code_at(now)).await;
    let online = world.exchange(&app, &World::code_of(&done)).await;
    let offline_code = browser
        .get(&world.authorize_url(&app, &[("scope", "openid offline_access")]))
        .await;
    let offline = world.exchange(&app, &World::code_of(&offline_code)).await;
    let access = online["access_token"].as_str().expect("access token");
    assert_eq!(world.app.userinfo_status(access).await, 200);
    // Another sign-in, left at its second step.
    let mut waiting = HttpBrowser::for_pages();
    let pending = world.sign_in(&mut waiting, &app, &[]).await;
    assert_eq!(pending.status(), 200, "the second-step page");
    let pending_html = pending.text().await.expect("html");
    assert_eq!(
        leftovers(&world).await,
        [10, 1, 2, 1],
        "the one taken is used, not gone"
    );

    let response = reset(&world, &admin, &world.user_id).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["user_id"], world.user_id.as_str());
    assert_eq!(body["totp"], true);
    assert_eq!(body["recovery_codes"], 10);
    assert_eq!(body["passkeys"], 1);
    assert_eq!(body["ended_sessions"], 1);
    assert_eq!(body["revoked_refresh_families"], 2);
    assert_eq!(leftovers(&world).await, [0, 0, 0, 0]);
    let events = reset_events(&world).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["by"], admin_id.as_str());
    assert_eq!(events[0]["passkeys"], 1);

    // Nothing they were signed in with works.
    let silent = browser
        .get(&world.authorize_url(&app, &[("prompt", "none")]))
        .await;
    assert_eq!(silent.status(), 303);
    assert_eq!(query_of(&location(&silent))["error"], "login_required");
    assert_eq!(refresh(&world, &app, &online["refresh_token"]).await, 400);
    assert_eq!(refresh(&world, &app, &offline["refresh_token"]).await, 400);
    assert_eq!(world.app.userinfo_status(access).await, 401);
    // The step left waiting cannot finish, whatever code it is given.
    let late = submit_second_factor(
        &world,
        &mut waiting,
        &pending_html,
        "totp",
        &secret.code_at(now + 30),
    )
    .await;
    assert!(
        !waiting.cookies.contains_key("tessera_session"),
        "{}",
        late.status()
    );

    // The password alone signs in now: no second step.
    let mut fresh = HttpBrowser::for_pages();
    let signed_in = world.sign_in(&mut fresh, &app, &[]).await;
    let tokens = world.exchange(&app, &World::code_of(&signed_in)).await;
    let id = crate::testkit::fixtures::claims_of(tokens["id_token"].as_str().expect("id"));
    assert_eq!(id["amr"], serde_json::json!(["pwd"]));
    world.app.stop().await;
}

/// Only an administrator resets: no token, the person's own token, or a token without the
/// admin scope changes nothing; an unknown user is a JSON 404, and nothing is written.
#[tokio::test]
async fn only_an_administrator_resets_and_an_unknown_user_is_not_found() {
    let world = World::new().await;
    let admin_id = world.app.create_user(ADMIN, PASSWORD, &["admin"]).await;
    // Tokens first: the password grant is refused to someone with a second factor.
    let mut tokens = Vec::new();
    for (email, scope) in [(super::EMAIL, "openid"), (ADMIN, "openid")] {
        tokens.push((email, scope, access_token(&world, email, scope).await));
    }
    crate::testkit::mfa::enrol_totp(&world.app, &world.user_id, super::EMAIL).await;
    let before = leftovers(&world).await;
    let url = world
        .app
        .url(&format!("/admin/users/{}/mfa/reset", world.user_id));
    let anonymous = world.app.client.post(&url).send().await.expect("request");
    assert_eq!(anonymous.status(), 401);
    for (email, scope, token) in &tokens {
        let refused = reset(&world, token, &world.user_id).await;
        assert!(
            [401, 403].contains(&refused.status().as_u16()),
            "{email} {scope}: {}",
            refused.status()
        );
    }
    assert_eq!(leftovers(&world).await, before);
    assert!(reset_events(&world).await.is_empty());

    let admin = access_token(&world, ADMIN, "admin").await;
    let unknown = reset(&world, &admin, "no-such-user").await;
    assert_eq!(unknown.status(), 404);
    let body: Value = unknown.json().await.expect("a JSON body");
    assert_eq!(body["error"], "not_found");

    // An administrator's token outlives the role only as a refusal.
    let (root, now) = (admin_id.clone(), world.app.clock.now());
    world
        .app
        .state
        .services
        .db
        .run(move |conn| {
            let operator = tessera::usecases::Actor::Operator;
            tessera::usecases::users::set_roles(conn, &operator, &root, &[], now)
        })
        .await
        .expect("role taken away");
    let refused = reset(&world, &admin, &world.user_id).await;
    assert_eq!(refused.status(), 403);
    assert_eq!(leftovers(&world).await, before);
    assert!(reset_events(&world).await.is_empty());
    world.app.stop().await;
}

/// `tessera user mfa reset --email`: the same use case from the command line (audited as the
/// operator's); an unknown address is a clear error and a non-zero exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_resets_mfa_by_email() {
    let world = World::new().await;
    let app = world.client("App", ClientSpec::default()).await;
    crate::testkit::mfa::enrol_totp(&world.app, &world.user_id, super::EMAIL).await;
    let mut browser = HttpBrowser::for_pages();
    let step = world.sign_in(&mut browser, &app, &[]).await;
    assert_eq!(step.status(), 200, "a second step before the reset");

    let out = tokio::task::block_in_place(|| {
        world
            .env
            .cli(&["user", "mfa", "reset", "--email", super::EMAIL], None)
    });
    let body = crate::testkit::stdout_json(&out);
    assert_eq!(body["totp"], true);
    assert_eq!(body["recovery_codes"], 10);
    assert_eq!(leftovers(&world).await, [0, 0, 0, 0]);
    let events = reset_events(&world).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["by"], "cli");
    let mut fresh = HttpBrowser::for_pages();
    World::code_of(&world.sign_in(&mut fresh, &app, &[]).await);

    let unknown = tokio::task::block_in_place(|| {
        world.env.cli(
            &["user", "mfa", "reset", "--email", "nobody@example.com"],
            None,
        )
    });
    assert!(!unknown.status.success());
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        stderr.contains("no user with email nobody@example.com"),
        "{stderr}"
    );
    world.app.stop().await;
}
