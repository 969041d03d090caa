use serde_json::Value;

use crate::testkit::PASSWORD;
use crate::testkit::TestEnv;
use crate::testkit::csrf_field;

async fn count(app: &crate::testkit::TestApp, event: &'static str) -> i64 {
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
    assert_eq!(
        forwarded_attempts(&[], "").await,
        [400, 400, 400, 429, 429],
        "a client cannot pick its IP"
    );
}

/// Five wrong passwords, each forwarded for another address, as `proxies` are trusted and with
/// `hops` (other proxies' addresses) after the client's in X-Forwarded-For; the statuses.
async fn forwarded_attempts(proxies: &[&str], hops: &str) -> Vec<u16> {
    let env = TestEnv::new();
    let mut settings = env.settings();
    settings.throttle.ip_free_attempts = 3;
    settings.server.trusted_proxies =
        tessera::domain::TrustedProxies::parse(proxies).expect("proxies");
    let app = env.spawn_with(settings).await;
    let client = app.first_party_client().await;
    let mut statuses = Vec::new();
    for i in 0..5 {
        let response = app
            .client
            .post(app.url("/token"))
            .basic_auth(&client.0, Some(&client.1))
            .header("X-Forwarded-For", format!("203.0.113.{i}{hops}"))
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
    app.stop().await;
    statuses
}

/// Behind a Kubernetes ingress the proxies' addresses change; a range of them is trusted, and
/// only what it contains.
#[tokio::test]
async fn a_range_of_trusted_proxies_is_believed_and_only_from_inside_it() {
    assert_eq!(
        forwarded_attempts(&["127.0.0.0/8"], "").await,
        [400; 5],
        "each forwarded address is counted on its own"
    );
    assert_eq!(
        forwarded_attempts(&["127.0.0.0/8"], ", 127.3.2.1").await,
        [400; 5],
        "a second proxy inside the range is skipped"
    );
    assert_eq!(
        forwarded_attempts(&["10.0.0.0/8", "::1"], "").await,
        [400, 400, 400, 429, 429],
        "a peer outside every range cannot pick its IP"
    );
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

/// The login page's CSRF field and cookie, for a request that comes through the trusted proxy
/// from `ip`.
async fn open_login_page(
    app: &crate::testkit::TestApp,
    params: &[(&str, String)],
    ip: &str,
) -> (String, String) {
    let response = app
        .client
        .get(app.url("/authorize"))
        .query(params)
        .header("X-Forwarded-For", ip)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .expect("ascii")
        .split(';')
        .next()
        .expect("pair")
        .to_string();
    let html = response.text().await.expect("html");
    let csrf = csrf_field(&html);
    (csrf, cookie)
}

/// Signs in on the login page from `ip`, presenting `device` (a `name=value` cookie pair) if
/// given: the response, and the device cookie it sets, if any.
async fn page_sign_in(
    app: &crate::testkit::TestApp,
    params: &[(&str, String)],
    ip: &str,
    device: Option<&str>,
    password: &str,
) -> (reqwest::Response, Option<String>) {
    let (csrf, csrf_cookie) = open_login_page(app, params, ip).await;
    let mut form: Vec<(&str, String)> = params.to_vec();
    form.push(("csrf_token", csrf));
    form.push(("email", "ann@example.com".into()));
    form.push(("password", password.into()));
    let cookies = match device {
        Some(device) => format!("{csrf_cookie}; {device}"),
        None => csrf_cookie,
    };
    let response = app
        .client
        .post(app.url("/authorize"))
        .header("X-Forwarded-For", ip)
        .header("Origin", &app.address)
        .header("Cookie", cookies)
        .form(&form)
        .send()
        .await
        .expect("request");
    let device = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.contains("tessera_device=") && !v.contains("Max-Age=0"))
        .map(String::from);
    (response, device)
}

async fn spa_request(app: &crate::testkit::TestApp) -> Vec<(&'static str, String)> {
    let redirect = "http://127.0.0.1:9/callback";
    let client_id = app
        .create_client(tessera::clients::ClientSpec {
            name: "Notes".into(),
            public: true,
            grant_types: vec!["authorization_code".into()],
            redirect_uris: vec![redirect.into()],
            scopes: ["openid", "email"].map(String::from).to_vec(),
            ..tessera::clients::ClientSpec::default()
        })
        .await
        .0;
    vec![
        ("response_type", "code".into()),
        ("client_id", client_id),
        ("redirect_uri", redirect.into()),
        ("scope", "openid email".into()),
        ("state", "s".into()),
        (
            "code_challenge",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
        ),
        ("code_challenge_method", "S256".into()),
    ]
}

async fn grant_from(
    app: &crate::testkit::TestApp,
    client: &(String, String),
    ip: &str,
    password: &str,
) -> u16 {
    app.client
        .post(app.url("/token"))
        .basic_auth(&client.0, Some(&client.1))
        .header("X-Forwarded-For", ip)
        .form(&[
            ("grant_type", "password"),
            ("username", "ann@example.com"),
            ("password", password),
        ])
        .send()
        .await
        .expect("request")
        .status()
        .as_u16()
}

/// Issue 14, item 6: ten addresses exhaust the account-wide counter; the owner still gets in
/// at once from an address she signed in from before, and from her browser (its device
/// cookie) on an address never seen; a stranger with the right password but neither is still
/// held back, and the per-address counter still holds on a known address.
#[tokio::test]
async fn targeted_lockout_spares_the_owners_known_ips_and_devices() {
    let env = TestEnv::new();
    let mut settings = env.settings();
    settings.server.trusted_proxies =
        tessera::domain::TrustedProxies::parse(&["127.0.0.1"]).expect("a proxy");
    let app = env.spawn_with(settings).await;
    app.create_user("ann@example.com", PASSWORD, &[]).await;
    let client = app.first_party_client().await;
    let params = spa_request(&app).await;

    // The owner signs in once on the login page at home: that browser and address are known.
    let (response, device) = page_sign_in(&app, &params, "198.51.100.7", None, PASSWORD).await;
    assert_eq!(response.status(), 303);
    let device = device.expect("a device cookie on success");
    assert!(
        device.contains("HttpOnly") && device.contains("SameSite=Strict"),
        "{device}"
    );
    let device = device.split(';').next().expect("pair").to_string();
    // And once with the password grant from the office.
    assert_eq!(
        grant_from(&app, &client, "198.51.100.8", PASSWORD).await,
        200
    );

    // Ten attackers, five guesses each: the account-wide counter is spent.
    for attacker in 1..=10 {
        for guess in 0..6 {
            let status = grant_from(
                &app,
                &client,
                &format!("203.0.113.{attacker}"),
                &format!("guess {guess}"),
            )
            .await;
            assert!(status == 400 || status == 429, "{status}");
        }
    }
    assert_eq!(
        grant_from(&app, &client, "203.0.113.77", "one more guess").await,
        429,
        "a new attacker address is held back by the account-wide counter"
    );
    // A stranger with the right password, but a new address and no device cookie: refused.
    assert_eq!(grant_from(&app, &client, "192.0.2.50", PASSWORD).await, 429);
    let (response, _) = page_sign_in(&app, &params, "192.0.2.51", None, PASSWORD).await;
    assert_eq!(response.status(), 429);

    // The owner, from a known address: in at once, by either way of signing in.
    assert_eq!(
        grant_from(&app, &client, "198.51.100.8", PASSWORD).await,
        200
    );
    let (response, _) = page_sign_in(&app, &params, "198.51.100.7", None, PASSWORD).await;
    assert_eq!(response.status(), 303);
    // From her browser on an address never seen (a café): in at once too.
    let (response, rotated) =
        page_sign_in(&app, &params, "192.0.2.99", Some(&device), PASSWORD).await;
    assert_eq!(
        response.status(),
        303,
        "a known device skips the account-wide counter"
    );
    let rotated = rotated.expect("the device cookie is renewed");
    assert!(
        !rotated.starts_with(&format!("{device};")),
        "a new value each sign-in"
    );
    // The owner's sign-ins did not clear the attackers' account-wide count.
    assert_eq!(
        grant_from(&app, &client, "203.0.113.78", "yet another guess").await,
        429
    );
    assert_eq!(grant_from(&app, &client, "192.0.2.52", PASSWORD).await, 429);
    // A device value that is not (or no longer) known counts for nothing.
    let (response, _) = page_sign_in(&app, &params, "192.0.2.53", Some(&device), PASSWORD).await;
    assert_eq!(response.status(), 429, "the old device value was replaced");

    // The per-address counter still applies to a known address.
    for guess in 0..5 {
        assert_eq!(
            grant_from(&app, &client, "198.51.100.8", &format!("slip {guess}")).await,
            400
        );
    }
    assert_eq!(
        grant_from(&app, &client, "198.51.100.8", PASSWORD).await,
        429
    );
    app.stop().await;
}

async fn throttle_rows(app: &crate::testkit::TestApp) -> Vec<String> {
    use diesel::prelude::*;
    use tessera::db::schema::login_throttles;
    app.state
        .services
        .db
        .run(|conn| {
            login_throttles::table
                .select(login_throttles::throttle_key)
                .load::<String>(conn)
                .map_err(tessera::db::DbError::from)
        })
        .await
        .expect("rows")
}

/// Issue 14, item 9: an address the IP counter refuses writes no per-account counters, so a
/// blocked guesser cannot grow the table with one row pair per username it makes up.
#[tokio::test]
async fn a_blocked_ip_writes_no_counters_for_the_usernames_it_tries() {
    let env = TestEnv::new();
    let mut settings = env.settings();
    settings.throttle.ip_free_attempts = 3;
    let app = env.spawn_with(settings).await;
    let client = app.first_party_client().await;
    for i in 0..20 {
        app.password_login(
            (&client.0, &client.1),
            &format!("made-up-{i}@example.com"),
            "whatever pass",
            "api",
        )
        .await;
    }
    let rows = throttle_rows(&app).await;
    assert_eq!(
        rows.iter().filter(|k| k.starts_with("ip:")).count(),
        1,
        "{rows:?}"
    );
    assert_eq!(
        rows.len(),
        1 + 2 * 3,
        "the IP's row, and a pair and an account row for the 3 attempts it was allowed: {rows:?}"
    );
    app.stop().await;
}
