//! Logout tokens (OpenID Connect Back-Channel Logout 1.0 §2.6) against a loopback JWKS
//! publisher: a good one verifies, and each rule of §2.6 refuses the token that breaks it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde_json::{Value, json};
use support::{JwksServer, TestKey, now, signing_input};
use tessera_verify::{LogoutClaims, Verifier, VerifyError};

const CLIENT: &str = "app-1";
const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

fn verifier(server: &JwksServer) -> Verifier {
    Verifier::builder(&server.issuer)
        .audience(CLIENT)
        .jwks_url(server.jwks_url())
        .build()
        .expect("builds")
}

/// A logout token's claims as Tessera sends them.
fn claims(issuer: &str) -> Value {
    let now = now();
    json!({
        "iss": issuer, "aud": CLIENT, "iat": now, "exp": now + 120, "jti": "m-1",
        "events": { EVENT: {} }, "sub": "user-1", "sid": "session-1"
    })
}

fn logout_token(key: &TestKey, claims: &Value) -> String {
    key.sign(
        &json!({ "alg": "RS256", "typ": "logout+jwt", "kid": key.kid }),
        claims,
    )
}

async fn refused(verifier: &Verifier, token: &str) -> VerifyError {
    match verifier.verify_logout_token(token).await {
        Ok(claims) => panic!("accepted: {claims:?}"),
        Err(e) => e,
    }
}

fn without(claims: &Value, name: &str) -> Value {
    let mut claims = claims.clone();
    claims.as_object_mut().unwrap().remove(name);
    claims
}

fn with(claims: &Value, name: &str, value: Value) -> Value {
    let mut claims = claims.clone();
    claims[name] = value;
    claims
}

#[tokio::test]
async fn a_logout_token_verifies_and_names_the_user_and_session() {
    let key = TestKey::generate("k1");
    let server = JwksServer::start(&[&key], "max-age=300").await;
    let verifier = verifier(&server);
    let good = claims(&server.issuer);
    let verified: LogoutClaims = verifier
        .verify_logout_token(&logout_token(&key, &good))
        .await
        .expect("valid");
    assert_eq!(verified.iss, server.issuer);
    assert!(verified.aud.contains(CLIENT));
    assert_eq!(verified.jti, "m-1");
    assert_eq!(verified.sub.as_deref(), Some("user-1"));
    assert_eq!(verified.sid.as_deref(), Some("session-1"));
    assert_eq!(verified.nonce, None);

    // sub alone or sid alone is enough (§2.4); an aud list naming the client too; the long
    // form of the type; other events beside ours.
    for claims in [
        without(&good, "sid"),
        without(&good, "sub"),
        with(&good, "aud", json!([CLIENT, "another-app"])),
        with(
            &good,
            "events",
            json!({ EVENT: {}, "https://example.com/other": { "x": 1 } }),
        ),
    ] {
        assert!(
            verifier
                .verify_logout_token(&logout_token(&key, &claims))
                .await
                .is_ok(),
            "{claims}"
        );
    }
    let long_form = key.sign(
        &json!({ "alg": "RS256", "typ": "application/logout+jwt", "kid": "k1" }),
        &good,
    );
    assert!(verifier.verify_logout_token(&long_form).await.is_ok());
}

#[tokio::test]
async fn every_rule_of_section_2_6_refuses_the_token_that_breaks_it() {
    let key = TestKey::generate("k1");
    let server = JwksServer::start(&[&key], "max-age=300").await;
    let verifier = verifier(&server);
    let good = claims(&server.issuer);

    // Step 2: the signature. A tampered payload; a key the issuer never published.
    let token = logout_token(&key, &good);
    let mut parts: Vec<String> = token.split('.').map(String::from).collect();
    parts[1] = signing_input(&json!({}), &with(&good, "sub", json!("someone-else")))
        .split('.')
        .nth(1)
        .unwrap()
        .to_string();
    assert_eq!(
        refused(&verifier, &parts.join(".")).await,
        VerifyError::Signature
    );
    let stranger = TestKey::generate("k2");
    assert_eq!(
        refused(&verifier, &logout_token(&stranger, &good)).await,
        VerifyError::UnknownKey
    );
    // Step 3: RS256 only; alg none is refused before any key is looked at.
    let none = format!(
        "{}.",
        signing_input(
            &json!({ "alg": "none", "typ": "logout+jwt", "kid": "k1" }),
            &good
        )
    );
    assert_eq!(
        refused(&verifier, &none).await,
        VerifyError::Algorithm("none".into())
    );
    // §2.4: typed logout+jwt, so an access token or an ID token of the same issuer and
    // claims does not pass for one.
    for typ in [Some("at+jwt"), Some("JWT"), None] {
        let mut header = json!({ "alg": "RS256", "kid": "k1" });
        if let Some(typ) = typ {
            header["typ"] = json!(typ);
        }
        assert_eq!(
            refused(&verifier, &key.sign(&header, &good)).await,
            VerifyError::NotALogoutToken,
            "{typ:?}"
        );
    }
    // A logout token is not an access token either.
    assert_eq!(
        verifier
            .verify(&logout_token(&key, &good))
            .await
            .expect_err("not an access token"),
        VerifyError::WrongType
    );

    // Step 4: iss, aud, exp, iat.
    let cases = [
        (
            with(&good, "iss", json!("https://evil.example")),
            VerifyError::WrongIssuer,
        ),
        (
            with(&good, "aud", json!("another-app")),
            VerifyError::WrongAudience,
        ),
        (with(&good, "exp", json!(now() - 60)), VerifyError::Expired),
        (without(&good, "exp"), VerifyError::Claims),
        (without(&good, "iat"), VerifyError::Claims),
        (
            with(&good, "iat", json!(now() + 60)),
            VerifyError::NotYetValid,
        ),
        // Step 5: sub, sid, or both.
        (
            without(&without(&good, "sub"), "sid"),
            VerifyError::Logout("it names neither sub nor sid"),
        ),
        // Step 6: events, holding the back-channel logout event.
        (without(&good, "events"), VerifyError::Claims),
        (
            with(&good, "events", json!({ "https://example.com/other": {} })),
            VerifyError::Claims,
        ),
        (with(&good, "events", json!([EVENT])), VerifyError::Claims),
        // Step 7: no nonce, so an ID token's claims never pass.
        (
            with(&good, "nonce", json!("n-1")),
            VerifyError::Logout("it carries a nonce"),
        ),
        // jti is required (§2.4).
        (without(&good, "jti"), VerifyError::Claims),
    ];
    for (claims, expected) in cases {
        assert_eq!(
            refused(&verifier, &logout_token(&key, &claims)).await,
            expected,
            "{claims}"
        );
    }
    // Within the (default 5 s) leeway, a clock a little ahead or behind still passes.
    let skewed = with(
        &with(&good, "iat", json!(now() + 2)),
        "exp",
        json!(now() - 2),
    );
    assert!(
        verifier
            .verify_logout_token(&logout_token(&key, &skewed))
            .await
            .is_ok()
    );
}
