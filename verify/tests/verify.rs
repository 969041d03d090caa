//! tessera-verify against a loopback JWKS publisher: every rejection the crate promises, and
//! the cache's behaviour (max-age, single-flight refetch, serving while the issuer is down).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;
use support::{JwksServer, TestKey, claims, now, signing_input};
use tessera_verify::{Verifier, VerifyError};

fn verifier(server: &JwksServer) -> Verifier {
    Verifier::builder(&server.issuer)
        .audience("notes")
        .jwks_url(server.jwks_url())
        .cache_floor(Duration::from_secs(1))
        .build()
        .expect("builds")
}

async fn refused(verifier: &Verifier, token: &str) -> VerifyError {
    match verifier.verify(token).await {
        Ok(claims) => panic!("accepted: {claims:?}"),
        Err(e) => e,
    }
}

#[tokio::test]
async fn a_good_token_verifies_and_exposes_its_claims() {
    let key = TestKey::generate("k1");
    let server = JwksServer::start(&[&key], "public, max-age=300").await;
    let verifier = verifier(&server);
    let claims = verifier
        .verify(&key.token(&claims(&server.issuer)))
        .await
        .expect("valid");
    assert_eq!(claims.sub, "user-1");
    assert_eq!(claims.client_id, "c1");
    assert!(claims.has_scope("notes") && !claims.has_scope("note"));
    assert!(claims.has_role("admin"));
    assert_eq!(
        claims.aud.as_slice(),
        ["notes".to_string(), server.issuer.clone()]
    );
    // A single-string aud is accepted too (RFC 7519 §4.1.3).
    let mut one = support::claims(&server.issuer);
    one["aud"] = json!("notes");
    assert!(verifier.verify(&key.token(&one)).await.is_ok());
}

/// Tessera signs RS256, EdDSA and ES256 (issue 18): each verifies against its published key,
/// and a token whose `alg` is not its key's is refused before any signature is checked, even
/// when it was signed with the named key's algorithm under another header.
#[tokio::test]
async fn tokens_of_each_algorithm_verify_and_an_alg_that_is_not_its_keys_is_refused() {
    let (rsa, ed, ec) = (
        TestKey::generate("rsa"),
        TestKey::ed25519("ed"),
        TestKey::p256("ec"),
    );
    let server = JwksServer::start(&[&rsa, &ed, &ec], "max-age=300").await;
    let verifier = verifier(&server);
    let good = claims(&server.issuer);
    for key in [&rsa, &ed, &ec] {
        let token = key.token(&good);
        let verified = verifier.verify(&token).await;
        assert!(verified.is_ok(), "{}: {verified:?}", key.alg());
        // A flipped signature byte is refused for each.
        let mut bad = token.into_bytes();
        let last = bad.len() - 2;
        bad[last] = if bad[last] == b'A' { b'B' } else { b'A' };
        let bad = String::from_utf8(bad).unwrap();
        assert_eq!(
            refused(&verifier, &bad).await,
            VerifyError::Signature,
            "{}",
            key.alg()
        );
    }
    // Every alg/kid pairing that is not the key's own: refused as the wrong algorithm.
    for key in [&rsa, &ed, &ec] {
        for alg in ["RS256", "EdDSA", "ES256"]
            .into_iter()
            .filter(|a| *a != key.alg())
        {
            let header = json!({ "alg": alg, "typ": "at+jwt", "kid": key.kid });
            let token = key.sign(&header, &good);
            assert_eq!(
                refused(&verifier, &token).await,
                VerifyError::Algorithm(alg.into()),
                "{alg} with the {} key",
                key.alg()
            );
        }
    }
    // An ES256 signature (64 bytes, r || s) in DER form is not accepted.
    let token = ec.token(&good);
    let (input, signature) = token.rsplit_once('.').unwrap();
    let raw = URL_SAFE_NO_PAD.decode(signature).unwrap();
    let mut der = vec![0x30, 68, 0x02, 32];
    der.extend_from_slice(&raw[..32]);
    der.extend_from_slice(&[0x02, 32]);
    der.extend_from_slice(&raw[32..]);
    let der_token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(der));
    assert_eq!(refused(&verifier, &der_token).await, VerifyError::Signature);
    // HS256 with the EdDSA key's public bytes as the secret.
    let input = signing_input(
        &json!({ "alg": "HS256", "typ": "at+jwt", "kid": "ed" }),
        &good,
    );
    let secret = ed.jwk()["x"].as_str().unwrap().to_string();
    let tag = aws_lc_rs::hmac::sign(
        &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret.as_bytes()),
        input.as_bytes(),
    );
    let hs = format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()));
    assert_eq!(
        refused(&verifier, &hs).await,
        VerifyError::Algorithm("HS256".into())
    );
}

#[tokio::test]
async fn discovery_finds_the_jwks() {
    let key = TestKey::generate("k1");
    let server = JwksServer::start(&[&key], "max-age=300").await;
    let verifier = Verifier::builder(&server.issuer)
        .audience("notes")
        .build()
        .expect("builds");
    verifier.refresh().await.expect("discovers and fetches");
    assert!(
        verifier
            .verify(&key.token(&claims(&server.issuer)))
            .await
            .is_ok()
    );
    // An issuer whose discovery document names another issuer is not trusted.
    let impostor = Verifier::builder(format!("{}/", server.issuer))
        .audience("notes")
        .build()
        .expect("builds");
    assert!(impostor.refresh().await.is_err());
}

#[tokio::test]
async fn every_kind_of_bad_token_is_refused() {
    let key = TestKey::generate("k1");
    let server = JwksServer::start(&[&key], "max-age=300").await;
    let verifier = verifier(&server);
    let issuer = server.issuer.clone();
    let good = claims(&issuer);

    // alg none, no signature.
    let none = format!(
        "{}.",
        signing_input(
            &json!({ "alg": "none", "typ": "at+jwt", "kid": "k1" }),
            &good
        )
    );
    assert_eq!(
        refused(&verifier, &none).await,
        VerifyError::Algorithm("none".into())
    );

    // HS256 with the public key's modulus, and its JWK text, as the HMAC secret.
    for secret in [key.n().into_bytes(), key.jwk().to_string().into_bytes()] {
        let input = signing_input(
            &json!({ "alg": "HS256", "typ": "at+jwt", "kid": "k1" }),
            &good,
        );
        let tag = aws_lc_rs::hmac::sign(
            &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &secret),
            input.as_bytes(),
        );
        let hs = format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()));
        assert_eq!(
            refused(&verifier, &hs).await,
            VerifyError::Algorithm("HS256".into())
        );
    }

    // A tampered payload under the original signature.
    let token = key.token(&good);
    let mut parts: Vec<&str> = token.split('.').collect();
    let mut elevated = good.clone();
    elevated["sub"] = json!("someone-else");
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&elevated).unwrap());
    parts[1] = &payload;
    assert_eq!(
        refused(&verifier, &parts.join(".")).await,
        VerifyError::Signature
    );

    // Expired beyond the leeway; not yet valid beyond it.
    let mut expired = good.clone();
    expired["exp"] = json!(now() - 60);
    assert_eq!(
        refused(&verifier, &key.token(&expired)).await,
        VerifyError::Expired
    );
    let mut early = good.clone();
    early["nbf"] = json!(now() + 60);
    assert_eq!(
        refused(&verifier, &key.token(&early)).await,
        VerifyError::NotYetValid
    );
    // Within the (default 5 s) leeway both still pass.
    let mut skewed = good.clone();
    skewed["exp"] = json!(now() - 2);
    skewed["nbf"] = json!(now() + 2);
    assert!(verifier.verify(&key.token(&skewed)).await.is_ok());

    // Wrong issuer, wrong audience, missing exp.
    let mut other_iss = good.clone();
    other_iss["iss"] = json!("https://evil.example");
    assert_eq!(
        refused(&verifier, &key.token(&other_iss)).await,
        VerifyError::WrongIssuer
    );
    let mut other_aud = good.clone();
    other_aud["aud"] = json!(["billing"]);
    assert_eq!(
        refused(&verifier, &key.token(&other_aud)).await,
        VerifyError::WrongAudience
    );
    let mut no_exp = good.clone();
    no_exp.as_object_mut().unwrap().remove("exp");
    assert_eq!(
        refused(&verifier, &key.token(&no_exp)).await,
        VerifyError::Claims
    );
    // The other claims RFC 9068 §2.2 requires.
    for claim in ["iat", "jti", "client_id"] {
        let mut missing = good.clone();
        missing.as_object_mut().unwrap().remove(claim);
        assert_eq!(
            refused(&verifier, &key.token(&missing)).await,
            VerifyError::Claims,
            "{claim}"
        );
    }

    // An ID token (typ JWT), or no typ at all, is not an access token.
    for header in [
        json!({ "alg": "RS256", "typ": "JWT", "kid": "k1" }),
        json!({ "alg": "RS256", "kid": "k1" }),
    ] {
        assert_eq!(
            refused(&verifier, &key.sign(&header, &good)).await,
            VerifyError::WrongType
        );
    }
    // application/at+jwt is the long form of the same type (RFC 9068 §4).
    let long_form = key.sign(
        &json!({ "alg": "RS256", "typ": "application/at+jwt", "kid": "k1" }),
        &good,
    );
    assert!(verifier.verify(&long_form).await.is_ok());
    // A critical header extension we do not understand.
    let critical = key.sign(
        &json!({ "alg": "RS256", "typ": "at+jwt", "kid": "k1", "crit": ["exp"] }),
        &good,
    );
    assert_eq!(
        refused(&verifier, &critical).await,
        VerifyError::UnsupportedHeader
    );

    // A key the issuer never published, and a published kid whose key signed nothing here.
    let stranger = TestKey::generate("k2");
    assert_eq!(
        refused(&verifier, &stranger.token(&good)).await,
        VerifyError::UnknownKey
    );
    let impostor = TestKey::generate("k1");
    assert_eq!(
        refused(&verifier, &impostor.token(&good)).await,
        VerifyError::Signature
    );

    // Garbage.
    for junk in ["", "abc", "a.b", "a.b.c.d", "!!.!!.!!"] {
        assert_eq!(refused(&verifier, junk).await, VerifyError::Malformed);
    }
}

#[tokio::test]
async fn keys_whose_alg_or_use_do_not_fit_are_not_used() {
    let enc = TestKey::generate("enc");
    let ps = TestKey::generate("ps");
    let mut enc_jwk = enc.jwk();
    enc_jwk["use"] = json!("enc");
    let mut ps_jwk = ps.jwk();
    ps_jwk["alg"] = json!("PS256");
    let server = JwksServer::start(&[], "max-age=300").await;
    server.publish_raw(json!({ "keys": [enc_jwk, ps_jwk] }));
    let verifier = verifier(&server);
    for key in [&enc, &ps] {
        assert_eq!(
            refused(&verifier, &key.token(&claims(&server.issuer))).await,
            VerifyError::UnknownKey
        );
    }
}

#[tokio::test]
async fn max_age_decides_when_the_cache_refreshes_in_the_background() {
    let old = TestKey::generate("old");
    let new = TestKey::generate("new");
    let server = JwksServer::start(&[&old], "public, max-age=2").await;
    let verifier = verifier(&server);
    verifier.refresh().await.expect("first fetch");
    assert_eq!(server.jwks_hits(), 1);
    server.publish(&[&old, &new]);
    // Within three quarters of max-age nothing is refetched...
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(server.jwks_hits(), 1, "a fresh cache makes no request");
    // ...after it the background refresh has fetched the new key before any token needs it.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(server.jwks_hits() >= 2, "refreshed before expiry");
    assert!(
        verifier
            .verify(&new.token(&claims(&server.issuer)))
            .await
            .is_ok()
    );
    assert_eq!(
        verifier.stats().unknown_kid_fetches,
        0,
        "the new kid was never unknown"
    );
}

#[tokio::test]
async fn a_long_max_age_is_capped_by_the_ceiling_and_a_short_one_raised_to_the_floor() {
    let key = TestKey::generate("k1");
    let server = JwksServer::start(&[&key], "max-age=86400").await;
    let capped = Verifier::builder(&server.issuer)
        .audience("notes")
        .jwks_url(server.jwks_url())
        .cache_floor(Duration::from_secs(1))
        .cache_ceiling(Duration::from_secs(2))
        .build()
        .expect("builds");
    capped.refresh().await.expect("fetch");
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert!(server.jwks_hits() >= 2, "the ceiling forces a refresh");

    let quick = JwksServer::start(&[&key], "no-cache").await;
    let floored = Verifier::builder(&quick.issuer)
        .audience("notes")
        .jwks_url(quick.jwks_url())
        .cache_floor(Duration::from_secs(30))
        .build()
        .expect("builds");
    floored.refresh().await.expect("fetch");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(quick.jwks_hits(), 1, "the floor holds no-cache back");
}

#[tokio::test]
async fn a_hundred_concurrent_unknown_kid_misses_make_one_fetch() {
    let old = TestKey::generate("old");
    let new = TestKey::generate("new");
    let server = JwksServer::start(&[&old], "max-age=300").await;
    let verifier = Verifier::builder(&server.issuer)
        .audience("notes")
        .jwks_url(server.jwks_url())
        .unknown_kid_refetch_interval(Duration::from_secs(1))
        .build()
        .expect("builds");
    verifier.refresh().await.expect("first fetch");
    server.publish(&[&old, &new]);
    server.set_delay(Duration::from_millis(300));
    let token = new.token(&claims(&server.issuer));
    let results = futures::future::join_all((0..100).map(|_| {
        let (verifier, token) = (verifier.clone(), token.clone());
        tokio::spawn(async move { verifier.verify(&token).await })
    }))
    .await;
    let accepted = results
        .into_iter()
        .filter(|r| matches!(r, Ok(Ok(_))))
        .count();
    assert_eq!(accepted, 100);
    assert_eq!(
        server.jwks_hits(),
        2,
        "one initial fetch, one shared refetch"
    );
    assert_eq!(verifier.stats().unknown_kid_fetches, 1);

    // A kid that stays unknown refetches at most once per interval.
    server.set_delay(Duration::ZERO);
    let stranger = TestKey::generate("stranger");
    let forged = stranger.token(&claims(&server.issuer));
    for _ in 0..20 {
        assert_eq!(refused(&verifier, &forged).await, VerifyError::UnknownKey);
    }
    assert_eq!(
        server.jwks_hits(),
        2,
        "still within the interval of the last refetch"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for _ in 0..20 {
        assert_eq!(refused(&verifier, &forged).await, VerifyError::UnknownKey);
    }
    assert_eq!(
        server.jwks_hits(),
        3,
        "one refetch for twenty forged tokens"
    );
}

#[tokio::test]
async fn cached_keys_keep_serving_while_the_issuer_is_down() {
    let key = TestKey::generate("k1");
    let server = JwksServer::start(&[&key], "max-age=1").await;
    let verifier = verifier(&server);
    verifier.refresh().await.expect("first fetch");
    server.stop().await;
    // Well past max-age: background refreshes fail, the cached key stays.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        verifier.stats().failed_fetches >= 1,
        "{:?}",
        verifier.stats()
    );
    assert!(verifier.refresh().await.is_err());
    let claims = verifier
        .verify(&key.token(&claims(&server.issuer)))
        .await
        .expect("served from cache");
    assert_eq!(claims.sub, "user-1");
    // An unknown kid while the issuer is down is refused promptly, not hung.
    let stranger = TestKey::generate("stranger");
    let started = std::time::Instant::now();
    assert_eq!(
        refused(&verifier, &stranger.token(&support::claims(&server.issuer))).await,
        VerifyError::UnknownKey
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(verifier.stats().keys, 1);
}

#[test]
fn configuration_mistakes_are_reported() {
    assert!(Verifier::builder("https://id.example.com").build().is_err());
    assert!(
        Verifier::builder("id.example.com")
            .audience("a")
            .build()
            .is_err()
    );
    assert!(
        Verifier::builder("https://id.example.com")
            .audience("a")
            .cache_floor(Duration::from_secs(10))
            .cache_ceiling(Duration::from_secs(5))
            .build()
            .is_err()
    );
}
