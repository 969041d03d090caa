//! The passkeys page's guards, without a browser (the ceremonies themselves are driven in
//! Chromium, `browser::passkeys`): a post without the page's CSRF token is refused, another
//! person's session can neither rename nor remove your passkey, and removing your last second
//! factor waits for a confirmation.

use tessera::clients::ClientSpec;
use tessera::mfa::passkey_store::{self, PasskeyRow};

use crate::sso::World;
use crate::testkit::PASSWORD;
use crate::testkit::fixtures::csrf_field;
use crate::testkit::http::HttpBrowser;

const OTHER: &str = "bob@example.com";

/// A passkey row for `user_id` as registration leaves one (the credential is never parsed by
/// rename or remove).
async fn planted_passkey(world: &World, user_id: &str, name: &str) -> String {
    let row = PasskeyRow {
        id: tessera::db::new_id(),
        user_id: user_id.to_string(),
        credential_id: tessera::db::new_id(),
        name: name.to_string(),
        credential: "{}".to_string(),
        backup_eligible: 0,
        created_at: 1,
        last_used_at: None,
    };
    let id = row.id.clone();
    world
        .app
        .state
        .services
        .db
        .run(move |conn| passkey_store::insert(conn, &row).map_err(tessera::db::DbError::Query))
        .await
        .expect("planted");
    id
}

async fn names(world: &World, user_id: &str) -> Vec<String> {
    let user_id = user_id.to_string();
    world
        .app
        .state
        .services
        .db
        .run(move |conn| tessera::mfa::passkey::list(conn, &user_id))
        .await
        .expect("rows")
        .into_iter()
        .map(|row| row.name)
        .collect()
}

/// A browser signed in as `email`, and the passkeys page's CSRF token.
async fn signed_in(world: &World, client_id: &str, email: &str) -> (HttpBrowser, String) {
    let mut browser = HttpBrowser::for_pages();
    let page = browser.get(&world.authorize_url(client_id, &[])).await;
    let html = page.text().await.expect("html");
    let response = world
        .submit_login_with(
            &mut browser,
            &html,
            &[("email", email), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(response.status(), 303, "signed in");
    let page = browser.get(&world.app.url("/account/passkeys")).await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("html");
    let csrf = csrf_field(&html);
    (browser, csrf)
}

#[tokio::test]
async fn another_persons_session_and_a_forged_form_change_nothing() {
    let world = World::new().await;
    let client = world.client("Notes", ClientSpec::default()).await;
    let mine = planted_passkey(&world, &world.user_id, "Ann's key").await;
    let bob_id = world.app.create_user(OTHER, PASSWORD, &[]).await;
    planted_passkey(&world, &bob_id, "Bob's key").await;

    // No session: the page says to sign in.
    let mut stranger = HttpBrowser::for_pages();
    let page = stranger.get(&world.app.url("/account/passkeys")).await;
    assert_eq!(page.status(), 401);

    let (mut bob, csrf) = signed_in(&world, &client, OTHER).await;
    let url = world.app.url("/account/passkeys/rename");
    let renamed = bob
        .post_form(
            &url,
            &[("csrf_token", &csrf), ("id", &mine), ("name", "Bob's now")],
        )
        .await;
    assert_eq!(renamed.status(), 404, "not Bob's passkey");
    // Every render of the page rotates its CSRF token.
    let csrf = csrf_field(&renamed.text().await.expect("html"));
    let url = world.app.url("/account/passkeys/remove");
    let removed = bob
        .post_form(
            &url,
            &[("csrf_token", &csrf), ("id", &mine), ("confirm", "yes")],
        )
        .await;
    assert_eq!(removed.status(), 404, "not Bob's passkey");
    assert_eq!(names(&world, &world.user_id).await, vec!["Ann's key"]);

    // Ann's own session, but a form without (or with another) CSRF token.
    let (mut ann, csrf) = signed_in(&world, &client, crate::sso::EMAIL).await;
    let url = world.app.url("/account/passkeys/rename");
    let forged = ann.post_form(&url, &[("id", &mine), ("name", "x")]).await;
    assert_eq!(forged.status(), 403);
    let forged = ann
        .post_form(
            &url,
            &[("csrf_token", "guess"), ("id", &mine), ("name", "x")],
        )
        .await;
    assert_eq!(forged.status(), 403);
    let url = world.app.url("/account/passkeys/remove");
    let forged = ann
        .post_form(&url, &[("id", &mine), ("confirm", "yes")])
        .await;
    assert_eq!(forged.status(), 403);
    let url = world.app.url("/account/passkeys/options");
    let forged = ann.post_form(&url, &[("x", "y")]).await;
    assert!(
        forged.status() == 403 || forged.status() == 503,
        "{}",
        forged.status()
    );
    assert_eq!(names(&world, &world.user_id).await, vec!["Ann's key"]);

    // With the token: renamed (trimmed), and the last factor's removal asks first.
    let url = world.app.url("/account/passkeys/rename");
    let renamed = ann
        .post_form(
            &url,
            &[("csrf_token", &csrf), ("id", &mine), ("name", "  Phone ")],
        )
        .await;
    assert_eq!(renamed.status(), 303);
    assert_eq!(names(&world, &world.user_id).await, vec!["Phone"]);
    let url = world.app.url("/account/passkeys/remove");
    let asked = ann
        .post_form(&url, &[("csrf_token", &csrf), ("id", &mine)])
        .await;
    assert_eq!(asked.status(), 200);
    let html = asked.text().await.expect("html");
    assert!(html.contains("last second factor"), "{html}");
    assert_eq!(names(&world, &world.user_id).await, vec!["Phone"]);
    let csrf = csrf_field(&html);
    let removed = ann
        .post_form(
            &url,
            &[("csrf_token", &csrf), ("id", &mine), ("confirm", "yes")],
        )
        .await;
    assert_eq!(removed.status(), 303);
    assert!(names(&world, &world.user_id).await.is_empty());
    assert!(
        world
            .app
            .audit_events(&world.user_id)
            .await
            .iter()
            .any(|e| e == "mfa_removed")
    );
    world.app.stop().await;
}
