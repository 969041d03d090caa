//! The browser session: one sign-in serves every app, the OpenID Connect parameters steer it.

use tessera::clients::ClientSpec;

use super::World;
use crate::testkit::fixtures::{claims_of, location, query_of};
use crate::testkit::http::HttpBrowser;

#[tokio::test]
async fn signed_in_to_app_a_app_b_gets_a_code_with_no_page() {
    let world = World::new().await;
    let app_a = world.client("App A", ClientSpec::default()).await;
    let app_b = world.client("App B", ClientSpec::default()).await;
    let mut browser = HttpBrowser::for_pages();

    let code_a = World::code_of(&world.sign_in(&mut browser, &app_a, &[]).await);
    let tokens_a = world.exchange(&app_a, &code_a).await;
    let id_a = claims_of(tokens_a["id_token"].as_str().expect("id token"));

    let silent = browser.get(&world.authorize_url(&app_b, &[])).await;
    let code_b = World::code_of(&silent);
    let tokens_b = world.exchange(&app_b, &code_b).await;
    let id_b = claims_of(tokens_b["id_token"].as_str().expect("id token"));

    assert_eq!(id_a["sub"], world.user_id.as_str());
    assert_eq!(id_a["sub"], id_b["sub"]);
    assert!(id_a["sid"].is_string(), "{id_a}");
    assert_eq!(id_a["sid"], id_b["sid"], "one session, one sid");
    assert_eq!(id_a["auth_time"], id_b["auth_time"], "no new sign-in");
    assert_eq!(id_b["amr"], serde_json::json!(["pwd"]));

    // Another browser has no session: it gets the page.
    let mut stranger = HttpBrowser::for_pages();
    let page = stranger.get(&world.authorize_url(&app_b, &[])).await;
    assert_eq!(page.status(), 200);
    world.app.stop().await;
}

#[tokio::test]
async fn prompt_none_answers_login_required_without_a_session_and_a_code_with_one() {
    let world = World::new().await;
    let app = world.client("App", ClientSpec::default()).await;
    let mut browser = HttpBrowser::for_pages();

    let refused = browser
        .get(&world.authorize_url(&app, &[("prompt", "none")]))
        .await;
    assert_eq!(refused.status(), 303, "never a page");
    let query = query_of(&location(&refused));
    assert_eq!(query["error"], "login_required");
    assert_eq!(query["state"], "st-1");

    World::code_of(&world.sign_in(&mut browser, &app, &[]).await);
    let silent = browser
        .get(&world.authorize_url(&app, &[("prompt", "none")]))
        .await;
    World::code_of(&silent);
    world.app.stop().await;
}

/// The 303 with a code removes the login form's CSRF cookie only from a browser that has one:
/// a signed-in browser's silent `/authorize` sets no cookie at all, and one that left a login
/// page open (`prompt=login`) has that page's cookie removed by its next code.
#[tokio::test]
async fn a_silent_code_sets_no_cookie_unless_a_login_form_was_left_open() {
    let world = World::new().await;
    let app = world.client("App", ClientSpec::default()).await;
    let mut browser = HttpBrowser::for_pages();
    World::code_of(&world.sign_in(&mut browser, &app, &[]).await);

    let silent = browser.get(&world.authorize_url(&app, &[])).await;
    World::code_of(&silent);
    assert!(
        silent.headers().get("set-cookie").is_none(),
        "{:?}",
        silent.headers()
    );

    let page = browser
        .get(&world.authorize_url(&app, &[("prompt", "login")]))
        .await;
    assert_eq!(page.status(), 200);
    let silent = browser.get(&world.authorize_url(&app, &[])).await;
    World::code_of(&silent);
    let set: Vec<&str> = silent
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().expect("ascii"))
        .collect();
    assert!(
        set.iter()
            .any(|c| c.starts_with("tessera_csrf=;") && c.contains("Max-Age=0")),
        "the open form's CSRF cookie is removed: {set:?}"
    );
    world.app.stop().await;
}

/// Many browsers' silent `/authorize` at once. On SQLite their codes share commits (group
/// commit, `tessera_db_grouped_jobs_total` counts them), and still every answer carries a code of
/// its own, stored, that exchanges for tokens. PostgreSQL commits each alone.
#[tokio::test]
async fn concurrent_silent_authorizations_each_get_a_code_of_their_own() {
    let world = World::new().await;
    let app = world.client("App", ClientSpec::default()).await;
    let mut browser = HttpBrowser::for_pages();
    World::code_of(&world.sign_in(&mut browser, &app, &[]).await);
    let url = world.authorize_url(&app, &[]);
    let mut codes = std::collections::HashSet::new();
    let mut answered = 0;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let burst = (0..32).map(|_| browser.prepare(browser.http.get(&url)).send());
        for response in futures::future::join_all(burst).await {
            codes.insert(World::code_of(&response.expect("answer")));
            answered += 1;
        }
        let samples = crate::metrics::scrape(&world.app, &world.app.address).await;
        let grouped = crate::metrics::value(&samples, "tessera_db_grouped_jobs_total");
        if world.env.db.is_postgres() {
            assert_eq!(grouped, 0.0, "PostgreSQL commits each job alone");
            break;
        }
        if grouped > 0.0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{answered} concurrent requests and no commit shared"
        );
    }
    assert_eq!(codes.len(), answered, "a code of its own for each");
    for code in &codes {
        let tokens = world.exchange(&app, code).await;
        assert!(tokens["id_token"].is_string(), "{tokens}");
    }
    world.app.stop().await;
}
