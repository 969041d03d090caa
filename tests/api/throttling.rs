use serde_json::Value;

use crate::helpers::TestEnv;

const PASSWORD: &str = "correct horse battery";

async fn count(app: &crate::helpers::TestApp, event: &'static str) -> i64 {
    app.state
        .services
        .db
        .run(move |conn| {
            tessera::db::repo::audit::count(conn, event).map_err(tessera::db::DbError::from)
        })
        .await
        .expect("count")
}

#[tokio::test]
async fn parallel_wrong_passwords_cannot_exceed_the_limit() {
    let env = TestEnv::new();
    // The test clock stands still: the back-off opened by the fifth attempt cannot run out
    // mid-burst on a slow machine.
    let app = env.spawn().await;
    app.create_user("ann@example.com", PASSWORD, &[]).await;
    let client = app.first_party_client().await;

    let attempts = (0..20).map(|i| {
        let app = &app;
        let client = &client;
        async move {
            app.password_login(
                (&client.0, &client.1),
                "ann@example.com",
                &format!("wrong {i}"),
                "api",
            )
            .await
        }
    });
    let responses = futures::future::join_all(attempts).await;
    let mut checked = 0;
    let mut throttled = 0;
    for response in responses {
        match response.status().as_u16() {
            400 => checked += 1,
            429 => {
                throttled += 1;
                let wait: i64 = response.headers()["retry-after"]
                    .to_str()
                    .expect("ascii")
                    .parse()
                    .expect("seconds");
                assert!(wait >= 1);
                let body: Value = response.json().await.expect("json");
                assert_eq!(body["error"], "too_many_requests");
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(
        checked, 5,
        "exactly the free attempts reach a password check"
    );
    assert_eq!(throttled, 15);
    assert_eq!(count(&app, "login_failure").await, 5);
    assert_eq!(count(&app, "login_throttled").await, 15);

    // Even the right password waits out the back-off ...
    let response = app
        .password_login((&client.0, &client.1), "ann@example.com", PASSWORD, "api")
        .await;
    assert_eq!(response.status(), 429);
    // ... and is let in once it has passed; that clears the account's count.
    app.clock.advance(2);
    let response = app
        .password_login((&client.0, &client.1), "ann@example.com", PASSWORD, "api")
        .await;
    assert_eq!(response.status(), 200);
    let response = app
        .password_login(
            (&client.0, &client.1),
            "ann@example.com",
            "wrong again",
            "api",
        )
        .await;
    assert_eq!(response.status(), 400, "a fresh count after success");
    app.stop().await;
}

#[tokio::test]
async fn backoff_grows_then_the_window_forgets() {
    let env = TestEnv::new();
    let app = env.spawn().await;
    app.create_user("ann@example.com", PASSWORD, &[]).await;
    let client = app.first_party_client().await;
    let login = |password: &'static str| {
        let app = &app;
        let client = &client;
        async move {
            app.password_login((&client.0, &client.1), "ann@example.com", password, "api")
                .await
        }
    };
    for _ in 0..5 {
        assert_eq!(login("wrong password").await.status(), 400);
    }
    let mut last_wait = 0;
    for _ in 0..4 {
        let throttled = login("wrong password").await;
        assert_eq!(throttled.status(), 429);
        let wait: i64 = throttled.headers()["retry-after"]
            .to_str()
            .expect("ascii")
            .parse()
            .expect("secs");
        assert!(wait > last_wait, "back-off grows: {wait} after {last_wait}");
        last_wait = wait;
        app.clock.advance(wait);
        assert_eq!(login("wrong password").await.status(), 400);
    }
    // Never a permanent lock: after the window the account starts afresh.
    app.clock.advance(app.settings.throttle.window_secs);
    assert_eq!(login(PASSWORD).await.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn one_ip_has_a_ceiling_across_accounts() {
    let env = TestEnv::new();
    let mut settings = env.settings();
    settings.throttle.ip_free_attempts = 3;
    let app = env.spawn_with(settings).await;
    let client = app.first_party_client().await;
    let mut statuses = Vec::new();
    for i in 0..5 {
        let response = app
            .password_login(
                (&client.0, &client.1),
                &format!("user{i}@example.com"),
                "whatever pass",
                "api",
            )
            .await;
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses, [400, 400, 400, 429, 429]);
    app.stop().await;
}

#[tokio::test]
async fn a_guesser_elsewhere_cannot_lock_the_owner_out() {
    let env = TestEnv::new();
    let app = env.spawn().await;
    app.create_user("ann@example.com", PASSWORD, &[]).await;
    let client = app.first_party_client().await;
    // The attacker's connections come from 127.0.0.2 (loopback, another source address).
    let attacker = reqwest::Client::builder()
        .local_address("127.0.0.2".parse::<std::net::IpAddr>().expect("ip"))
        .build()
        .expect("client");
    let mut throttled = 0;
    for i in 0..10 {
        let response = attacker
            .post(app.url("/token"))
            .basic_auth(&client.0, Some(&client.1))
            .form(&[
                ("grant_type", "password"),
                ("username", "ann@example.com"),
                ("password", &format!("guess {i}")),
            ])
            .send()
            .await
            .expect("request");
        if response.status() == 429 {
            throttled += 1;
        }
    }
    assert!(throttled >= 5, "the guesser is slowed: {throttled}");
    let response = app
        .password_login((&client.0, &client.1), "ann@example.com", PASSWORD, "api")
        .await;
    assert_eq!(
        response.status(),
        200,
        "the owner, from her own address, gets in"
    );
    app.stop().await;
}

#[tokio::test]
async fn forwarded_for_is_ignored_from_untrusted_peers() {
    let env = TestEnv::new();
    let mut settings = env.settings();
    settings.throttle.ip_free_attempts = 3;
    let app = env.spawn_with(settings).await;
    let client = app.first_party_client().await;
    let mut statuses = Vec::new();
    for i in 0..5 {
        let response = app
            .client
            .post(app.url("/token"))
            .basic_auth(&client.0, Some(&client.1))
            .header("X-Forwarded-For", format!("203.0.113.{i}"))
            .form(&[
                ("grant_type", "password"),
                ("username", &format!("user{i}@example.com")),
                ("password", "whatever pass"),
            ])
            .send()
            .await
            .expect("request");
        statuses.push(response.status().as_u16());
    }
    assert_eq!(
        statuses,
        [400, 400, 400, 429, 429],
        "a client cannot pick its IP"
    );
    app.stop().await;
}

#[tokio::test]
async fn hostile_usernames_get_a_clear_error_not_a_500() {
    let env = TestEnv::new();
    let app = env.spawn().await;
    let client = app.first_party_client().await;
    let long = "x".repeat(10_000);
    for (username, expected) in [
        ("ann\0@example.com", "invalid_request"),
        (long.as_str(), "invalid_grant"),
        ("' OR 1=1; --", "invalid_grant"),
    ] {
        let response = app
            .password_login((&client.0, &client.1), username, "some password", "api")
            .await;
        assert_eq!(
            response.status(),
            400,
            "{}",
            &username[..username.len().min(20)]
        );
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["error"], expected);
    }
    let response = app
        .token(("client\0id", "x"), &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(response.status(), 401);
    app.stop().await;
}
