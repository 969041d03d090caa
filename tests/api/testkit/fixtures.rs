//! What many tests share: the password their users sign in with, the PKCE pair and redirect
//! URI of their apps, and ways to read what came back (JWT claims, redirect targets).

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use super::app::TestApp;

/// The password of every test user that has one.
pub const PASSWORD: &str = "correct horse battery";

/// A PKCE code verifier (RFC 7636 §4.1: 43 to 128 characters).
pub const VERIFIER: &str = "a-long-random-pkce-verifier-of-at-least-forty-three-characters";

/// A registered redirect URI nothing listens on: tests read the redirect, never follow it.
pub const REDIRECT: &str = "http://127.0.0.1:9/callback";

/// The S256 code challenge of `verifier`.
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        verifier.as_bytes(),
    ))
}

/// A JWT's claims, unverified (for tests that verified it elsewhere or do not need to).
/// The `amr` of a token's claims, as names.
pub fn amr_of(claims: &Value) -> Vec<String> {
    claims["amr"]
        .as_array()
        .expect("amr")
        .iter()
        .filter_map(|m| m.as_str().map(String::from))
        .collect()
}

pub fn claims_of(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url"))
        .expect("JSON claims")
}

/// The `Location` of a redirect.
pub fn location(response: &reqwest::Response) -> String {
    response.headers()["location"]
        .to_str()
        .expect("ascii")
        .to_string()
}

/// The query parameters of a URL or path.
pub fn query_of(url: &str) -> HashMap<String, String> {
    let query = url.split_once('?').map(|(_, q)| q).unwrap_or_default();
    form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}

/// Verifies a JWT with `ring` against the published JWKS: an RSA implementation independent
/// of the server's (aws-lc-rs signs, jsonwebtoken verifies there). Returns (header, claims).
pub async fn verify_independently(app: &TestApp, token: &str) -> (Value, Value) {
    let jwks: Value = app
        .get("/.well-known/jwks.json")
        .await
        .json()
        .await
        .expect("jwks");
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "compact JWS");
    let decode = |part: &str| -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("json")
    };
    let header = decode(parts[0]);
    assert_eq!(header["alg"], "RS256");
    let kid = header["kid"].as_str().expect("kid");
    let jwk = jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["kid"] == kid)
        .expect("signing key published");
    let n = URL_SAFE_NO_PAD
        .decode(jwk["n"].as_str().expect("n"))
        .expect("n");
    let e = URL_SAFE_NO_PAD
        .decode(jwk["e"].as_str().expect("e"))
        .expect("e");
    let signature = URL_SAFE_NO_PAD.decode(parts[2]).expect("signature");
    ring::signature::RsaPublicKeyComponents { n: &n, e: &e }
        .verify(
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            format!("{}.{}", parts[0], parts[1]).as_bytes(),
            &signature,
        )
        .expect("signature verifies");
    (header, decode(parts[1]))
}

/// Every `.rs` file under `dir`, for the tests that read the sources themselves.
pub fn rust_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).expect("a source directory") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            found.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
    found
}

/// The form's hidden CSRF token, as a page renders it.
pub fn csrf_field(html: &str) -> String {
    let marker = r#"name="csrf_token" value=""#;
    let start = html.find(marker).expect("csrf field") + marker.len();
    html[start..].split('"').next().expect("value").to_string()
}

/// Mail on, through the SMTP server at `smtp_url`, with the outbox looked at often.
pub fn mail_through(settings: &mut tessera::config::Settings, smtp_url: &str) {
    settings.smtp.url = smtp_url.to_string();
    settings.smtp.from = "Tessera <no-reply@tessera.test>".into();
    settings.smtp.timeout_secs = 5;
    settings.mail.poll_interval_ms = 50;
}
