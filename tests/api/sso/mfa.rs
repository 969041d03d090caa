//! Multi-factor sign-in, as far as the browser session and tokens see it: `amr` and `acr`
//! in tokens, `acr_values` at `/authorize`, and discovery's `acr_values_supported`.

use serde_json::Value;
use tessera::clients::ClientSpec;

use super::World;
use crate::testkit::fixtures::{claims_of, location, query_of};
use crate::testkit::http::HttpBrowser;

const TESSERA_MFA: &str = "urn:tessera:acr:mfa";
const PAPE_MFA: &str = "http://schemas.openid.net/pape/policies/2007/06/multi-factor";

/// Both discovery documents list the two multi-factor classes; the OpenID one lists `acr`
/// among its claims.
#[tokio::test]
async fn discovery_advertises_both_multi_factor_acr_values() {
    let world = World::new().await;
    for path in [
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
    ] {
        let doc: Value = world
            .app
            .client
            .get(world.app.url(path))
            .send()
            .await
            .expect("discovery")
            .json()
            .await
            .expect("json");
        assert_eq!(
            doc["acr_values_supported"],
            serde_json::json!([TESSERA_MFA, PAPE_MFA]),
            "{path}"
        );
    }
    let openid: Value = world
        .app
        .client
        .get(world.app.url("/.well-known/openid-configuration"))
        .send()
        .await
        .expect("discovery")
        .json()
        .await
        .expect("json");
    let claims = openid["claims_supported"].as_array().expect("claims");
    assert!(claims.iter().any(|c| c == "acr"), "{claims:?}");
    world.app.stop().await;
}

/// A password alone is one factor: `amr` says `pwd`, and neither token carries an `acr`, even
/// when the app asked for multi-factor (`acr_values` is a voluntary request: the app sees from
/// the missing `acr` that it was not met).
#[tokio::test]
async fn a_password_sign_in_carries_pwd_and_no_acr() {
    let world = World::new().await;
    let app = world.client("App", ClientSpec::default()).await;
    let mut browser = HttpBrowser::for_pages();
    let response = world.sign_in(&mut browser, &app, &[]).await;
    let tokens = world.exchange(&app, &World::code_of(&response)).await;
    let id = claims_of(tokens["id_token"].as_str().expect("id token"));
    assert_eq!(id["amr"], serde_json::json!(["pwd"]));
    assert!(id.get("acr").is_none(), "{id}");
    let access = claims_of(tokens["access_token"].as_str().expect("access token"));
    assert!(access.get("acr").is_none(), "{access}");
    world.app.stop().await;
}

/// Inside a password-only session, `prompt=none` with `acr_values` asking for multi-factor
/// cannot be met without a page: back to the app with `interaction_required` and its state,
/// no code. Unknown acr values are ignored (the same request without a known one gets a code),
/// and either known value counts.
#[tokio::test]
async fn prompt_none_with_an_unmet_acr_is_interaction_required() {
    let world = World::new().await;
    let app = world.client("App", ClientSpec::default()).await;
    let mut browser = HttpBrowser::for_pages();
    World::code_of(&world.sign_in(&mut browser, &app, &[]).await);
    for asked in [TESSERA_MFA, PAPE_MFA, &format!("urn:other {PAPE_MFA}")] {
        let refused = browser
            .get(&world.authorize_url(&app, &[("prompt", "none"), ("acr_values", asked)]))
            .await;
        assert_eq!(refused.status(), 303, "never a page");
        let query = query_of(&location(&refused));
        assert_eq!(query["error"], "interaction_required", "{asked}");
        assert_eq!(query.get("state").map(String::as_str), Some("st-1"));
        assert!(!query.contains_key("code"));
    }
    let silent = browser
        .get(&world.authorize_url(
            &app,
            &[("prompt", "none"), ("acr_values", "urn:other:loa:1")],
        ))
        .await;
    World::code_of(&silent);
    world.app.stop().await;
}

/// With `accounts.mfa = "required"` the password grant, which has no second step, is refused
/// with a clear `invalid_grant`, but only once the password was right: a wrong one gets the
/// usual answer, so the refusal tells a guesser nothing.
#[tokio::test]
async fn the_password_grant_is_refused_when_mfa_is_required() {
    let env = crate::testkit::app::TestEnv::new();
    let mut settings = env.settings();
    settings.accounts.mfa = tessera::config::MfaPolicy::Required;
    let app = env.spawn_with(settings).await;
    let world = World::with(env, app).await;
    let (id, secret) = world.app.first_party_client().await;
    let refused = world
        .app
        .password_login(
            (&id, &secret),
            super::EMAIL,
            crate::testkit::fixtures::PASSWORD,
            "openid",
        )
        .await;
    assert_eq!(refused.status(), 400);
    let body: Value = refused.json().await.expect("json");
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(
        body["error_description"],
        "multi-factor authentication is required; use the authorization code flow"
    );
    let wrong = world
        .app
        .password_login((&id, &secret), super::EMAIL, "not the password", "openid")
        .await;
    let body: Value = wrong.json().await.expect("json");
    assert_eq!(body["error"], "invalid_grant");
    assert_ne!(
        body["error_description"],
        "multi-factor authentication is required; use the authorization code flow"
    );
    world.app.stop().await;
}

/// With the default `accounts.mfa = "optional"` and no second factor, the password grant
/// works as before, and its tokens carry `amr: ["pwd"]` and no `acr`.
#[tokio::test]
async fn the_password_grant_works_when_mfa_is_optional() {
    let world = World::new().await;
    let (id, secret) = world.app.first_party_client().await;
    let ok = world
        .app
        .password_login(
            (&id, &secret),
            super::EMAIL,
            crate::testkit::fixtures::PASSWORD,
            "openid",
        )
        .await;
    assert_eq!(ok.status(), 200);
    let tokens: Value = ok.json().await.expect("json");
    let id_token = claims_of(tokens["id_token"].as_str().expect("id token"));
    assert_eq!(id_token["amr"], serde_json::json!(["pwd"]));
    assert!(id_token.get("acr").is_none());
    world.app.stop().await;
}
