//! Sign-in through an upstream OpenID Connect provider (Google's flow), against a fake
//! provider on loopback that speaks the real protocol.

use std::time::{Duration, Instant};

use serde_json::Value;
use tessera::clients::ClientSpec;
use tessera::config::Secret;

use crate::testkit::upstream::{self, FakeUpstream, Identity, Knobs};
use crate::testkit::verify_independently;
use crate::testkit::{
    HttpBrowser, PASSWORD, VERIFIER, claims_of, location, pkce_challenge, query_of,
};
use crate::testkit::{TestApp, TestEnv};

pub(crate) const REDIRECT: &str = "http://127.0.0.1:9/app/callback";

pub(crate) struct World {
    pub(crate) app: TestApp,
    pub(crate) upstream: FakeUpstream,
    pub(crate) client_id: String,
    _env: TestEnv,
}

pub(crate) async fn world() -> World {
    world_with(|settings, issuer| {
        settings.google.client_id = upstream::CLIENT_ID.into();
        settings.google.client_secret = Secret::new(upstream::CLIENT_SECRET);
        settings.google.issuer = issuer.into();
    })
    .await
}

pub(crate) async fn world_with(
    configure: impl FnOnce(&mut tessera::config::Settings, &str),
) -> World {
    let env = TestEnv::new();
    let upstream = FakeUpstream::start().await;
    let mut settings = env.settings();
    configure(&mut settings, &upstream.issuer);
    settings.federation.http_timeout_secs = 1;
    let app = env.spawn_with(settings).await;
    let client_id = app
        .create_client(ClientSpec {
            name: "Notes".into(),
            public: true,
            grant_types: vec!["authorization_code".into(), "refresh_token".into()],
            redirect_uris: vec![REDIRECT.into()],
            scopes: ["openid", "email", "profile"].map(String::from).to_vec(),
            ..ClientSpec::default()
        })
        .await
        .0;
    World {
        app,
        upstream,
        client_id,
        _env: env,
    }
}

pub(crate) fn app_request(client_id: &str) -> Vec<(&'static str, String)> {
    vec![
        ("response_type", "code".into()),
        ("client_id", client_id.into()),
        ("redirect_uri", REDIRECT.into()),
        ("scope", "openid email profile".into()),
        ("state", "app-state-1".into()),
        ("nonce", "app-nonce-1".into()),
        ("code_challenge", pkce_challenge(VERIFIER)),
        ("code_challenge_method", "S256".into()),
    ]
}

/// Follows the flow from the app's authorization request to Tessera's callback answer, and
/// returns that answer (normally a redirect to the app).
async fn through_upstream(world: &World, browser: &mut HttpBrowser) -> reqwest::Response {
    let callback = to_callback(world, browser).await;
    browser.get(&callback).await
}

/// The URL the upstream sends the browser back to, not yet followed.
async fn to_callback(world: &World, browser: &mut HttpBrowser) -> String {
    to_callback_at(world, browser, "google").await
}

async fn to_callback_at(world: &World, browser: &mut HttpBrowser, idp: &str) -> String {
    let mut params = app_request(&world.client_id);
    params.push(("idp", idp.into()));
    let start = browser
        .get(&format!(
            "{}?{}",
            world.app.url("/authorize"),
            serde_urlencoded(&params)
        ))
        .await;
    assert_eq!(start.status(), 303, "{:?}", start.text().await);
    let to_upstream = location(&start);
    assert!(
        to_upstream.starts_with(&world.upstream.issuer),
        "{to_upstream}"
    );
    let cookie = start.headers()["set-cookie"].to_str().expect("ascii");
    assert!(
        cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Lax")
            && cookie.contains("Path=/auth/"),
        "{cookie}"
    );
    let sent = query_of(&to_upstream);
    assert_eq!(sent["scope"], "openid email profile");
    assert_eq!(sent["code_challenge_method"], "S256");
    assert_eq!(
        sent["redirect_uri"],
        format!("{}/auth/{idp}/callback", world.app.issuer)
    );
    let back = browser.get(&to_upstream).await;
    assert_eq!(back.status(), 302, "{:?}", back.text().await);
    location(&back)
}

pub(crate) fn serde_urlencoded(params: &[(&str, String)]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        query.append_pair(k, v);
    }
    query.finish()
}

pub(crate) async fn exchange(world: &World, code: &str, verifier: &str) -> reqwest::Response {
    world
        .app
        .client
        .post(world.app.url("/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("client_id", world.client_id.as_str()),
            ("code_verifier", verifier),
        ])
        .send()
        .await
        .expect("request")
}

/// The whole flow: returns the token response of the app's code exchange.
async fn sign_in(world: &World) -> Value {
    let mut browser = HttpBrowser::new();
    let answer = through_upstream(world, &mut browser).await;
    assert_eq!(answer.status(), 303, "{:?}", answer.text().await);
    let to_app = location(&answer);
    assert!(to_app.starts_with(&format!("{REDIRECT}?")), "{to_app}");
    let back = query_of(&to_app);
    assert_eq!(back["state"], "app-state-1");
    let response = exchange(world, &back["code"], VERIFIER).await;
    assert_eq!(response.status(), 200);
    response.json().await.expect("json")
}

pub(crate) async fn user_count(app: &TestApp) -> usize {
    app.state
        .services
        .db
        .run(|conn| tessera::db::repo::users::list(conn).map_err(tessera::db::DbError::from))
        .await
        .expect("users")
        .len()
}

#[tokio::test]
async fn google_sign_in_ends_in_tessera_tokens_with_a_stable_subject() {
    let world = world().await;
    let tokens = sign_in(&world).await;
    let access = tokens["access_token"].as_str().expect("access token");
    let (_, claims) = verify_independently(&world.app, access).await;
    assert_eq!(claims["iss"], world.app.issuer.as_str());
    let id = claims_of(tokens["id_token"].as_str().expect("id token"));
    assert_eq!(id["nonce"], "app-nonce-1");
    assert_eq!(id["email"], "gina@example.com");
    assert_eq!(id["email_verified"], true);
    assert_eq!(id["sub"], claims["sub"]);
    assert!(tokens["refresh_token"].is_string());
    // Google's own tokens never reach the app.
    assert!(!tokens.to_string().contains("upstream-access-token"));

    let again = sign_in(&world).await;
    let (_, second) =
        verify_independently(&world.app, again["access_token"].as_str().expect("at")).await;
    assert_eq!(second["sub"], claims["sub"], "same person, same sub");
    assert_eq!(user_count(&world.app).await, 1);
    let user_id = claims["sub"].as_str().expect("sub");
    let events = world.app.audit_events(user_id).await;
    assert_eq!(events, ["federated_user_created", "federated_login"]);
    world.upstream.stop().await;
}

#[tokio::test]
async fn the_login_page_offers_the_upstream_and_signing_in_directly_works() {
    let world = world().await;
    let page = world
        .app
        .client
        .get(world.app.url("/authorize"))
        .query(&app_request(&world.client_id))
        .send()
        .await
        .expect("request");
    let html = page.text().await.expect("html");
    assert!(html.contains("Sign in with Google"), "{html}");
    assert!(
        html.contains(r#"href="/auth/google/login?response_type=code&#38;client_id="#),
        "{html}"
    );
    // The password form is still there, CSRF-protected.
    assert!(html.contains(r#"name="csrf_token""#));

    // The button's link starts the same flow.
    let mut browser = HttpBrowser::new();
    let start = browser
        .get(&format!(
            "{}?{}",
            world.app.url("/auth/google/login"),
            serde_urlencoded(&app_request(&world.client_id))
        ))
        .await;
    assert_eq!(start.status(), 303);
    assert!(location(&start).starts_with(&world.upstream.issuer));

    // Directly, with no app waiting: a page saying who signed in.
    let mut browser = HttpBrowser::new();
    let start = browser.get(&world.app.url("/auth/google/login")).await;
    assert_eq!(start.status(), 303);
    let back = browser.get(&location(&start)).await;
    let done = browser.get(&location(&back)).await;
    assert_eq!(done.status(), 200);
    assert!(
        done.text()
            .await
            .expect("html")
            .contains("gina@example.com")
    );
    world.upstream.stop().await;
}

#[tokio::test]
async fn without_an_upstream_nothing_google_is_shown_or_served() {
    let env = TestEnv::new();
    let app = env.spawn().await;
    let (client_id, _) = app
        .create_client(ClientSpec {
            name: "Notes".into(),
            public: true,
            grant_types: vec!["authorization_code".into()],
            redirect_uris: vec![REDIRECT.into()],
            scopes: ["openid", "email", "profile"].map(String::from).to_vec(),
            ..ClientSpec::default()
        })
        .await;
    let html = app
        .client
        .get(app.url("/authorize"))
        .query(&app_request(&client_id))
        .send()
        .await
        .expect("request")
        .text()
        .await
        .expect("html");
    assert!(
        !html.contains("Google") && !html.contains("/auth/"),
        "{html}"
    );
    for path in ["/auth/google/login", "/auth/google/callback?state=x&code=y"] {
        let response = app.get(path).await;
        assert_eq!(response.status(), 404, "{path}");
    }
    let mut params = app_request(&client_id);
    params.push(("idp", "google".into()));
    let response = app
        .client
        .get(app.url("/authorize"))
        .query(&params)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 303);
    let back = query_of(&location(&response));
    assert_eq!(back["error"], "invalid_request");
}

#[tokio::test]
async fn a_tampered_replayed_expired_or_foreign_state_issues_nothing() {
    let world = world().await;

    // Tampered.
    let mut browser = HttpBrowser::new();
    let callback = to_callback(&world, &mut browser).await;
    let tampered = callback.replace("state=", "state=x");
    let answer = browser.get(&tampered).await;
    assert_eq!(answer.status(), 400);
    assert!(answer.headers().get("location").is_none());

    // Replayed: the first use works, the second is refused.
    let mut browser = HttpBrowser::new();
    let callback = to_callback(&world, &mut browser).await;
    assert_eq!(browser.get(&callback).await.status(), 303);
    let replay = browser.get(&callback).await;
    assert_eq!(replay.status(), 400);

    // Another browser (no binding cookie), with a fresh, valid state.
    let mut browser = HttpBrowser::new();
    let callback = to_callback(&world, &mut browser).await;
    let mut stranger = HttpBrowser::new();
    assert_eq!(stranger.get(&callback).await.status(), 400);
    // ... and a stranger with a cookie of its own.
    let _ = to_callback(&world, &mut stranger).await;
    assert_eq!(stranger.get(&callback).await.status(), 400);

    // Expired: ten minutes pass at the upstream.
    let mut browser = HttpBrowser::new();
    let callback = to_callback(&world, &mut browser).await;
    world.app.clock.advance(601);
    assert_eq!(browser.get(&callback).await.status(), 400);

    // Only the one good sign-in reached the token endpoint and made an account.
    assert_eq!(world.upstream.token_requests(), 1);
    assert_eq!(user_count(&world.app).await, 1);
    world.upstream.stop().await;
}

#[tokio::test]
async fn id_tokens_that_fail_a_check_are_refused() {
    let world = world().await;
    let cases = [
        (
            "nonce",
            Knobs {
                wrong_nonce: true,
                ..Knobs::default()
            },
        ),
        (
            "aud",
            Knobs {
                wrong_aud: true,
                ..Knobs::default()
            },
        ),
        (
            "iss",
            Knobs {
                wrong_iss: true,
                ..Knobs::default()
            },
        ),
        (
            "signature",
            Knobs {
                bad_signature: true,
                ..Knobs::default()
            },
        ),
        (
            "exp",
            Knobs {
                expired: true,
                ..Knobs::default()
            },
        ),
    ];
    for (what, knobs) in cases {
        world.upstream.set_knobs(knobs);
        let mut browser = HttpBrowser::new();
        let answer = through_upstream(&world, &mut browser).await;
        assert_eq!(answer.status(), 502, "bad {what}");
        assert!(answer.headers().get("location").is_none(), "bad {what}");
        let page = answer.text().await.expect("html");
        assert!(page.contains("did not complete"), "{page}");
    }
    assert_eq!(user_count(&world.app).await, 0, "nobody signed in");
    world.upstream.set_knobs(Knobs::default());
    sign_in(&world).await;
    world.upstream.stop().await;
}

#[tokio::test]
async fn an_upstream_token_endpoint_that_fails_or_hangs_gives_a_clear_error_quickly() {
    let world = world().await;
    for knobs in [
        Knobs {
            token_status: Some(503),
            ..Knobs::default()
        },
        Knobs {
            token_status: Some(500),
            ..Knobs::default()
        },
        Knobs {
            token_delay: Duration::from_secs(5),
            ..Knobs::default()
        },
    ] {
        world.upstream.set_knobs(knobs.clone());
        let mut browser = HttpBrowser::new();
        let callback = to_callback(&world, &mut browser).await;
        let started = Instant::now();
        let answer = browser.get(&callback).await;
        assert!(started.elapsed() < Duration::from_secs(4), "{knobs:?} hung");
        assert_eq!(answer.status(), 502, "{knobs:?}");
        let page = answer.text().await.expect("html");
        assert!(
            page.contains("did not complete") && !page.contains("token endpoint"),
            "{page}"
        );
    }
    world.upstream.stop().await;
}

/// Issue 14 item 14: the token endpoint's answer is capped at 1 MiB, as discovery and the JWKS
/// are, so a hostile upstream cannot make Tessera buffer without bound.
#[tokio::test]
async fn an_upstream_token_answer_over_one_mebibyte_is_refused() {
    let world = world().await;
    world.upstream.set_knobs(Knobs {
        token_padding: 2 * 1024 * 1024,
        ..Knobs::default()
    });
    let mut browser = HttpBrowser::new();
    let answer = through_upstream(&world, &mut browser).await;
    assert_eq!(answer.status(), 502);
    assert!(
        answer
            .text()
            .await
            .expect("html")
            .contains("did not complete")
    );
    assert_eq!(
        user_count(&world.app).await,
        0,
        "no account from a refused answer"
    );

    world.upstream.set_knobs(Knobs {
        token_padding: 512 * 1024,
        ..Knobs::default()
    });
    let mut browser = HttpBrowser::new();
    let answer = through_upstream(&world, &mut browser).await;
    assert_eq!(
        answer.status(),
        303,
        "an answer under the cap still signs in"
    );
    world.upstream.stop().await;
}

/// Issue 14 item 18: loopback is all of 127.0.0.0/8, so a provider under test on 127.0.0.2
/// is accepted over plain http by the configuration (it was refused as "plain http only for
/// localhost"). The real binary, so that the configuration is loaded and checked as in
/// production.
#[tokio::test]
async fn a_plain_http_upstream_on_another_loopback_address_works() {
    let env = TestEnv::new();
    let upstream = FakeUpstream::start_on("127.0.0.2").await;
    assert!(upstream.issuer.starts_with("http://127.0.0.2:"));
    let server = crate::testkit::ServerProcess::start_with(
        &env,
        &[
            ("TESSERA_GOOGLE_CLIENT_ID", upstream::CLIENT_ID),
            ("TESSERA_GOOGLE_CLIENT_SECRET", upstream::CLIENT_SECRET),
            ("TESSERA_GOOGLE_ISSUER", &upstream.issuer),
        ],
    );
    let mut browser = HttpBrowser::new();
    let to_upstream = browser
        .get(&format!("{}/auth/google/login", server.address))
        .await;
    assert_eq!(to_upstream.status(), 303);
    let at_upstream = location(&to_upstream);
    assert!(at_upstream.starts_with(&upstream.issuer), "{at_upstream}");
    let back = browser.get(&at_upstream).await;
    let signed_in = browser.get(&location(&back)).await;
    assert_eq!(signed_in.status(), 200);
    assert!(
        signed_in
            .text()
            .await
            .expect("html")
            .contains("gina@example.com")
    );
    server.stop();
    upstream.stop().await;
}

#[tokio::test]
async fn a_person_declining_at_the_upstream_goes_back_to_the_app_with_access_denied() {
    let world = world().await;
    world.upstream.set_knobs(Knobs {
        deny: true,
        ..Knobs::default()
    });
    let mut browser = HttpBrowser::new();
    let answer = through_upstream(&world, &mut browser).await;
    assert_eq!(answer.status(), 303);
    let to_app = location(&answer);
    assert!(to_app.starts_with(REDIRECT), "{to_app}");
    let back = query_of(&to_app);
    assert_eq!(back["error"], "access_denied");
    assert_eq!(back["state"], "app-state-1");
    assert!(!back.contains_key("code"));
    world.upstream.stop().await;
}

pub(crate) async fn unverified_user(app: &TestApp, email: &str) -> String {
    let account = tessera::accounts::NewAccount::validate(email, None, &[], false).expect("valid");
    let hash = app
        .state
        .services
        .hashes
        .hash(PASSWORD.into())
        .await
        .expect("hash");
    app.state
        .services
        .db
        .run(move |conn| tessera::accounts::create(conn, &account, Some(&hash)))
        .await
        .expect("created")
        .id
        .into_string()
}

#[tokio::test]
async fn an_existing_account_is_linked_only_when_both_sides_verified_the_email() {
    let world = world().await;
    // Both verified, and the account has a password: nothing is linked before the person
    // proves that account on the link page (tests/api/linking.rs follows it through).
    let verified_id = world
        .app
        .create_user("gina@example.com", PASSWORD, &[])
        .await;
    let mut browser = HttpBrowser::new();
    let answer = through_upstream(&world, &mut browser).await;
    assert_eq!(answer.status(), 303);
    assert_eq!(location(&answer), "/auth/link");
    assert!(world.app.audit_events(&verified_id).await.is_empty());

    // Google does not vouch for the address: a separate account, the password one untouched.
    world.upstream.set_identity(Identity {
        sub: "200".into(),
        email: "gina@example.com".into(),
        email_verified: false,
        name: "Not Gina".into(),
    });
    let tokens = sign_in(&world).await;
    let id = claims_of(tokens["id_token"].as_str().expect("id"));
    assert_ne!(id["sub"], verified_id.as_str());
    // It shows the address without owning it, so its tokens do not carry it (item 21).
    assert!(id.get("email").is_none(), "{id}");
    assert!(id.get("email_verified").is_none(), "{id}");

    // The Tessera account's address was never verified: a separate account, which takes the
    // address over from the unverified one (item 4).
    let unverified_id = unverified_user(&world.app, "hal@example.com").await;
    world.upstream.set_identity(Identity {
        sub: "300".into(),
        email: "hal@example.com".into(),
        email_verified: true,
        name: "Hal".into(),
    });
    let tokens = sign_in(&world).await;
    let id = claims_of(tokens["id_token"].as_str().expect("id"));
    assert_ne!(id["sub"], unverified_id.as_str());
    assert_eq!(id["email"], "hal@example.com");
    assert_eq!(
        world.app.audit_events(&unverified_id).await,
        ["email_released"]
    );

    // Gina's password account signs in by email as before; Hal's unverified one no more.
    let (client, secret) = world.app.first_party_client().await;
    for (email, status) in [("gina@example.com", 200), ("hal@example.com", 400)] {
        let response = world
            .app
            .password_login((&client, &secret), email, PASSWORD, "openid")
            .await;
        assert_eq!(response.status(), status, "{email}");
    }
    assert_eq!(user_count(&world.app).await, 4);
    world.upstream.stop().await;
}

#[tokio::test]
async fn tessera_codes_from_an_upstream_sign_in_are_single_use_and_pkce_bound() {
    let world = world().await;
    let mut browser = HttpBrowser::new();
    let answer = through_upstream(&world, &mut browser).await;
    let code = query_of(&location(&answer))["code"].clone();
    let wrong = exchange(
        &world,
        &code,
        "a-different-verifier-that-is-also-forty-three-chars",
    )
    .await;
    assert_eq!(wrong.status(), 400);
    let body: Value = wrong.json().await.expect("json");
    assert_eq!(body["error"], "invalid_grant");

    let mut browser = HttpBrowser::new();
    let answer = through_upstream(&world, &mut browser).await;
    let code = query_of(&location(&answer))["code"].clone();
    let first = exchange(&world, &code, VERIFIER).await;
    assert_eq!(first.status(), 200);
    let tokens: Value = first.json().await.expect("json");
    let again = exchange(&world, &code, VERIFIER).await;
    assert_eq!(again.status(), 400);
    // The replay revoked what the code issued.
    let refresh = world
        .app
        .client
        .post(world.app.url("/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            (
                "refresh_token",
                tokens["refresh_token"].as_str().expect("rt"),
            ),
            ("client_id", world.client_id.as_str()),
        ])
        .send()
        .await
        .expect("request");
    assert_eq!(refresh.status(), 400);
    world.upstream.stop().await;
}

#[tokio::test]
async fn a_redirect_uri_not_registered_gets_a_page_and_never_reaches_the_upstream() {
    let world = world().await;
    let mut params: Vec<(&str, String)> = app_request(&world.client_id)
        .into_iter()
        .map(|(k, v)| {
            if k == "redirect_uri" {
                (k, "https://evil.example/cb".to_string())
            } else {
                (k, v)
            }
        })
        .collect();
    for entry in [
        format!(
            "{}?{}",
            world.app.url("/auth/google/login"),
            serde_urlencoded(&params)
        ),
        {
            params.push(("idp", "google".into()));
            format!(
                "{}?{}",
                world.app.url("/authorize"),
                serde_urlencoded(&params)
            )
        },
    ] {
        let mut browser = HttpBrowser::new();
        let response = browser.get(&entry).await;
        assert_eq!(response.status(), 400, "{entry}");
        assert!(response.headers().get("location").is_none());
    }
    world.upstream.stop().await;
}

#[tokio::test]
async fn more_upstreams_come_from_configuration_each_with_a_button() {
    let world = world_with(|settings, issuer| {
        settings.upstreams.insert(
            "acme".into(),
            tessera::config::UpstreamSettings {
                display_name: Some("Acme SSO".into()),
                issuer: issuer.into(),
                client_id: upstream::CLIENT_ID.into(),
                client_secret: Secret::new(upstream::CLIENT_SECRET),
                trust_email: false,
            },
        );
    })
    .await;
    let html = world
        .app
        .client
        .get(world.app.url("/authorize"))
        .query(&app_request(&world.client_id))
        .send()
        .await
        .expect("request")
        .text()
        .await
        .expect("html");
    assert!(html.contains("Sign in with Acme SSO"), "{html}");
    assert!(!html.contains("Google"), "Google is not configured: {html}");
    assert_eq!(world.app.get("/auth/google/login").await.status(), 404);

    let mut browser = HttpBrowser::new();
    let callback = to_callback_at(&world, &mut browser, "acme").await;
    assert!(callback.contains("/auth/acme/callback?"), "{callback}");
    let answer = browser.get(&callback).await;
    assert_eq!(answer.status(), 303);
    let code = query_of(&location(&answer))["code"].clone();
    assert_eq!(exchange(&world, &code, VERIFIER).await.status(), 200);
    world.upstream.stop().await;
}

#[tokio::test]
async fn a_disabled_account_cannot_sign_in_through_the_upstream() {
    let world = world().await;
    let tokens = sign_in(&world).await;
    let user_id = claims_of(tokens["id_token"].as_str().expect("id"))["sub"]
        .as_str()
        .expect("sub")
        .to_string();
    world
        .app
        .state
        .services
        .db
        .run(move |conn| {
            tessera::usecases::users::disable(
                conn,
                &tessera::usecases::Actor::Operator,
                &user_id,
                0,
            )
        })
        .await
        .expect("disabled");
    let mut browser = HttpBrowser::new();
    let answer = through_upstream(&world, &mut browser).await;
    assert_eq!(answer.status(), 403);
    assert!(answer.headers().get("location").is_none());
    world.upstream.stop().await;
}

#[tokio::test]
async fn the_upstreams_keys_are_cached_and_refetched_once_when_it_rotates() {
    let world = world().await;
    sign_in(&world).await;
    sign_in(&world).await;
    assert_eq!(world.upstream.jwks_requests(), 1, "cached between sign-ins");

    world.upstream.rotate_keys();
    sign_in(&world).await;
    assert_eq!(
        world.upstream.jwks_requests(),
        2,
        "an unknown kid refetched the keys"
    );

    // Tokens naming keys that do not exist are refused, and do not refetch again so soon
    // after the rotation's refetch.
    world.upstream.set_knobs(Knobs {
        unknown_kid: true,
        ..Knobs::default()
    });
    for _ in 0..3 {
        let mut browser = HttpBrowser::new();
        assert_eq!(through_upstream(&world, &mut browser).await.status(), 502);
    }
    assert_eq!(world.upstream.jwks_requests(), 2);
    world.upstream.stop().await;
}

async fn federation_states(app: &TestApp) -> i64 {
    use diesel::prelude::*;
    use tessera::db::schema::federation_states;
    app.state
        .services
        .db
        .run(|conn| {
            federation_states::table
                .count()
                .get_result::<i64>(conn)
                .map_err(tessera::db::DbError::from)
        })
        .await
        .expect("count")
}

/// Issue 14, item 9: each start of an upstream sign-in stores a pending state, so starts are
/// counted per client address: past the limit they are refused (429) and store nothing.
#[tokio::test]
async fn upstream_sign_in_starts_are_limited_per_ip() {
    let world = world_with(|settings, issuer| {
        settings.google.client_id = upstream::CLIENT_ID.into();
        settings.google.client_secret = Secret::new(upstream::CLIENT_SECRET);
        settings.google.issuer = issuer.into();
        settings.federation.sign_ins_per_ip = 4;
        settings.server.trusted_proxies =
            tessera::domain::TrustedProxies::parse(&["127.0.0.1"]).expect("a proxy");
    })
    .await;
    let start = |ip: &'static str| {
        let app = &world.app;
        async move {
            app.client
                .get(app.url("/auth/google/login"))
                .header("X-Forwarded-For", ip)
                .send()
                .await
                .expect("request")
        }
    };
    for _ in 0..4 {
        assert_eq!(start("203.0.113.9").await.status(), 303);
    }
    let mut refused = 0;
    for _ in 0..20 {
        let response = start("203.0.113.9").await;
        if response.status() == 429 {
            refused += 1;
            assert!(response.headers().contains_key("retry-after"));
            assert!(response.headers().get("location").is_none());
        }
    }
    assert_eq!(refused, 20, "every start past the limit is refused");
    assert_eq!(federation_states(&world.app).await, 4);
    // The same limit covers /authorize?idp=, which starts the same way.
    let mut params = app_request(&world.client_id);
    params.push(("idp", "google".into()));
    let via_authorize = world
        .app
        .client
        .get(world.app.url("/authorize"))
        .query(&params)
        .header("X-Forwarded-For", "203.0.113.9")
        .send()
        .await
        .expect("request");
    assert_eq!(via_authorize.status(), 429);
    // Another address starts as usual.
    assert_eq!(start("203.0.113.10").await.status(), 303);
    assert_eq!(federation_states(&world.app).await, 5);
    world.upstream.stop().await;
}
