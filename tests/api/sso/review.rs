//! Attacks on single sign-on found in review: each test is one that failed before its fix.

use std::time::Duration;

use tessera::clients::ClientSpec;

use super::World;
use crate::testkit::fixtures::{REDIRECT, VERIFIER, location, query_of};
use crate::testkit::http::HttpBrowser;

/// A browser session that is being ended (its `end` has run in a transaction not yet
/// committed: a logout, a revoke from the list) while one of its codes is exchanged. The
/// exchange must wait for the end and then be refused: on PostgreSQL it used to read the
/// session as live, mint tokens and a refresh family the end had already looked for and not
/// seen, so the family outlived its session and the app was never sent its logout.
#[tokio::test]
async fn a_code_exchanged_while_its_session_is_being_ended_buys_nothing() {
    let world = World::new().await;
    let app = world
        .client(
            "App",
            ClientSpec {
                backchannel_logout_uri: Some("http://127.0.0.1:9/bc".into()),
                ..ClientSpec::default()
            },
        )
        .await;
    let mut browser = HttpBrowser::for_pages();
    // One sign-in (its code used up), so the session exists; then a code in flight.
    let first = World::code_of(&world.sign_in(&mut browser, &app, &[]).await);
    world.exchange(&app, &first).await;
    let code = World::code_of(&browser.get(&world.authorize_url(&app, &[])).await);
    let user_id = world.user_id.clone();
    let now = world.app.clock.now();
    let session_id = world
        .app
        .query(move |conn| tessera::sso::store::live_of_user(conn, &user_id, now))
        .await
        .into_iter()
        .next()
        .expect("a live session")
        .id;

    // The end, in a transaction held open until the test says so.
    let (ended_tx, ended_rx) = tokio::sync::oneshot::channel::<()>();
    let (commit_tx, commit_rx) = std::sync::mpsc::channel::<()>();
    let db = world.app.state.services.db.clone();
    let mut ended_tx = Some(ended_tx);
    let ending = tokio::spawn(async move {
        db.run(move |conn| {
            use diesel::Connection;
            conn.transaction(|conn| {
                let ended =
                    tessera::sso::end(conn, &session_id, tessera::sso::EndReason::Revoked, now)?;
                if let Some(ended) = ended_tx.take() {
                    let _ = ended.send(());
                }
                let _ = commit_rx.recv_timeout(Duration::from_secs(30));
                Ok::<_, tessera::db::DbError>(ended)
            })
        })
        .await
        .expect("the end")
    });
    ended_rx.await.expect("the end ran");

    let client = world.app.client.clone();
    let url = world.app.url("/token");
    let (app_id, code_owned) = (app.clone(), code.clone());
    let exchange = tokio::spawn(async move {
        client
            .post(url)
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code_owned.as_str()),
                ("redirect_uri", REDIRECT),
                ("client_id", app_id.as_str()),
                ("code_verifier", VERIFIER),
            ])
            .send()
            .await
            .expect("token request")
    });
    // Give the exchange every chance to finish before the end commits (it must not, or must
    // be refused); then let the end commit.
    let mut exchange = exchange;
    let early = tokio::time::timeout(Duration::from_secs(2), &mut exchange).await;
    commit_tx.send(()).expect("commit");
    assert!(
        ending.await.expect("join"),
        "the session was live and ended"
    );
    let response = match early {
        Ok(done) => done.expect("join"),
        Err(_) => exchange.await.expect("join"),
    };
    let status = response.status();
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(
        status,
        400,
        "a code of a session ended meanwhile bought tokens (refresh token: {})",
        body["refresh_token"].is_string()
    );
    assert_eq!(body["error"], "invalid_grant");
    world.app.stop().await;
}

/// `prompt=none` must never show a page, an upstream provider's included: with `idp=` and no
/// session, the app gets `login_required` (it used to be sent to the upstream's login page).
#[tokio::test]
async fn prompt_none_with_an_idp_answers_login_required_instead_of_leaving_for_the_upstream() {
    let world = crate::federation::world().await;
    let mut params = crate::federation::app_request(&world.client_id);
    params.push(("idp", "google".into()));
    params.push(("prompt", "none".into()));
    let response = world
        .app
        .client
        .get(world.app.url("/authorize"))
        .query(&params)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 303, "never a page");
    let to = location(&response);
    assert!(
        to.starts_with(crate::federation::REDIRECT),
        "back to the app, not to the upstream: {to}"
    );
    let query = query_of(&to);
    assert_eq!(query["error"], "login_required");
    assert_eq!(query["state"], "app-state-1");
    assert_eq!(world.upstream.token_requests(), 0);
    world.upstream.stop().await;
}
