use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::testkit::TestEnv;

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Claims {
    iss: String,
    sub: String,
    aud: String,
    exp: i64,
    iat: i64,
}

#[tokio::test]
async fn jwks_publishes_only_public_keys_of_each_algorithm_with_cache_headers() {
    let env = TestEnv::new();
    let app = env.spawn().await;
    let response = app.get("/.well-known/jwks.json").await;
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["cache-control"], "public, max-age=300");
    assert!(headers.contains_key("etag"));
    let body: Value = response.json().await.expect("json");
    let keys = body["keys"].as_array().expect("keys array");
    assert_eq!(keys.len(), 3, "one key per algorithm");
    let members_of = |key: &Value| {
        let mut members: Vec<String> = key.as_object().expect("object").keys().cloned().collect();
        members.sort();
        members
    };
    let key = &keys[0];
    assert_eq!(
        members_of(key),
        ["alg", "e", "kid", "kty", "n", "use"],
        "nothing private"
    );
    assert_eq!(
        key["kty"], "RSA",
        "RS256 first, for clients that take keys[0]"
    );
    assert_eq!(key["use"], "sig");
    assert_eq!(key["alg"], "RS256");
    let n = URL_SAFE_NO_PAD
        .decode(key["n"].as_str().expect("n"))
        .expect("base64url n");
    assert_eq!(n.len(), 256, "2048-bit modulus");
    let okp = keys.iter().find(|k| k["kty"] == "OKP").expect("OKP key");
    assert_eq!(
        members_of(okp),
        ["alg", "crv", "kid", "kty", "use", "x"],
        "no `d`"
    );
    assert_eq!(
        (&okp["alg"], &okp["crv"], &okp["use"]),
        (&"EdDSA".into(), &"Ed25519".into(), &"sig".into())
    );
    let x = URL_SAFE_NO_PAD
        .decode(okp["x"].as_str().expect("x"))
        .expect("x");
    assert_eq!(x.len(), 32);
    let ec = keys.iter().find(|k| k["kty"] == "EC").expect("EC key");
    assert_eq!(
        members_of(ec),
        ["alg", "crv", "kid", "kty", "use", "x", "y"],
        "no `d`"
    );
    assert_eq!(
        (&ec["alg"], &ec["crv"], &ec["use"]),
        (&"ES256".into(), &"P-256".into(), &"sig".into())
    );
    for coordinate in ["x", "y"] {
        let bytes = URL_SAFE_NO_PAD
            .decode(ec[coordinate].as_str().expect("coordinate"))
            .expect("base64url");
        assert_eq!(bytes.len(), 32, "{coordinate}");
    }
    // Kids are RFC 7638 thumbprints over exactly the required members.
    for (key, canonical) in [
        (
            okp,
            format!(
                r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
                okp["x"].as_str().expect("x")
            ),
        ),
        (
            ec,
            format!(
                r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
                ec["x"].as_str().expect("x"),
                ec["y"].as_str().expect("y")
            ),
        ),
    ] {
        let digest = ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes());
        assert_eq!(key["kid"], URL_SAFE_NO_PAD.encode(digest.as_ref()));
    }
    app.stop().await;
}

#[tokio::test]
async fn jwks_kid_is_the_rfc7638_thumbprint() {
    let env = TestEnv::new();
    let app = env.spawn().await;
    let body: Value = app
        .get("/.well-known/jwks.json")
        .await
        .json()
        .await
        .expect("json");
    let key = &body["keys"][0];
    let canonical = format!(
        r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
        key["e"].as_str().expect("e"),
        key["n"].as_str().expect("n")
    );
    let digest = ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes());
    assert_eq!(
        key["kid"].as_str(),
        Some(URL_SAFE_NO_PAD.encode(digest).as_str())
    );
    app.stop().await;
}

#[tokio::test]
async fn jwks_honours_if_none_match() {
    let env = TestEnv::new();
    let app = env.spawn().await;
    let first = app.get("/.well-known/jwks.json").await;
    let etag = first.headers()["etag"].to_str().expect("ascii").to_string();
    for tag in [
        etag.clone(),
        format!("W/{etag}"),
        format!("\"other\", {etag}"),
        "*".into(),
    ] {
        let again = app
            .client
            .get(app.url("/.well-known/jwks.json"))
            .header("If-None-Match", &tag)
            .send()
            .await
            .expect("request");
        assert_eq!(again.status(), 304, "If-None-Match: {tag}");
        assert_eq!(again.headers()["etag"].to_str().expect("ascii"), etag);
        assert!(again.bytes().await.expect("body").is_empty());
    }
    let stale = app
        .client
        .get(app.url("/.well-known/jwks.json"))
        .header("If-None-Match", "\"stale\"")
        .send()
        .await
        .expect("request");
    assert_eq!(stale.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn a_token_the_server_signed_verifies_against_the_published_jwks() {
    let env = TestEnv::new();
    let app = env.spawn().await;
    let now = chrono::Utc::now().timestamp();
    let claims = Claims {
        iss: app.issuer.clone(),
        sub: "user-1".into(),
        aud: "api".into(),
        exp: now + 300,
        iat: now,
    };
    let ring = app.state.services.keys.current();
    let token = tessera::tokens::sign(ring.active(), "at+jwt", &claims).expect("signs");

    let jwks: JwkSet = app
        .get("/.well-known/jwks.json")
        .await
        .json()
        .await
        .expect("a JWK set");
    let header = jsonwebtoken::decode_header(&token).expect("header");
    assert_eq!(header.alg, Algorithm::RS256);
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    let jwk = jwks
        .find(header.kid.as_deref().expect("kid"))
        .expect("the signing key is published");
    let key = DecodingKey::from_jwk(jwk).expect("usable key");
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_issuer(&[&app.issuer]);
    validation.set_audience(&["api"]);
    let decoded = jsonwebtoken::decode::<Claims>(&token, &key, &validation).expect("verifies");
    assert_eq!(decoded.claims, claims);

    // The same key refuses a token whose payload was altered after signing.
    let mut parts: Vec<String> = token.split('.').map(String::from).collect();
    let mut forged = claims;
    forged.sub = "admin".into();
    parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).expect("json"));
    assert!(jsonwebtoken::decode::<Claims>(&parts.join("."), &key, &validation).is_err());
    app.stop().await;
}

#[tokio::test]
async fn discovery_documents_describe_this_issuer() {
    let env = TestEnv::new();
    let app = env.spawn().await;
    for path in [
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
    ] {
        let response = app.get(path).await;
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(response.headers()["content-type"], "application/json");
        let doc: Value = response.json().await.expect("json");
        // OIDC Discovery §4.3 / RFC 8414 §3.3: the issuer is exactly the one the document
        // was fetched under.
        assert_eq!(doc["issuer"], app.address.as_str(), "{path}");
        assert_eq!(doc["jwks_uri"], app.url("/.well-known/jwks.json"), "{path}");
        assert!(doc["response_types_supported"].is_array(), "{path}");
    }
    let oidc: Value = app
        .get("/.well-known/openid-configuration")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        oidc["subject_types_supported"],
        serde_json::json!(["public"])
    );
    assert_eq!(
        oidc["id_token_signing_alg_values_supported"],
        serde_json::json!(["RS256", "EdDSA", "ES256"])
    );
    app.stop().await;
}

/// Nothing advertised that does not work: every endpoint or URI either document names is
/// served by this server (not a 404), whatever later changes add to the documents.
#[tokio::test]
async fn every_advertised_url_is_served() {
    let env = TestEnv::new();
    let app = env.spawn().await;
    let mut checked = 0;
    for path in [
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
    ] {
        let doc: Value = app.get(path).await.json().await.expect("json");
        for (name, value) in doc.as_object().expect("object") {
            if !(name.ends_with("_endpoint") || name.ends_with("_uri")) {
                continue;
            }
            let url = value.as_str().expect("a URL");
            assert!(
                url.starts_with(&app.issuer),
                "{name} = {url} is under the issuer"
            );
            let get = app.client.get(url).send().await.expect("request").status();
            let post = app.client.post(url).send().await.expect("request").status();
            assert!(
                get != 404 && post != 404 && !get.is_server_error() && !post.is_server_error(),
                "{name} = {url}: GET {get}, POST {post}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 2, "at least the jwks_uri of each document");
    app.stop().await;
}

#[tokio::test]
async fn public_metadata_may_be_read_cross_origin() {
    let env = TestEnv::new();
    let app = env.spawn().await;
    let response = app
        .client
        .get(app.url("/.well-known/jwks.json"))
        .header("Origin", "https://spa.example.com")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["access-control-allow-origin"], "*");
    assert!(
        !response
            .headers()
            .contains_key("access-control-allow-credentials")
    );
    app.stop().await;
}
