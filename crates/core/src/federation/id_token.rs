//! Checking an upstream's ID token (OIDC Core §3.1.3.7): RS256 signature by a published key,
//! `iss`, `aud` (and `azp`), `exp`/`iat`, and the `nonce` this sign-in sent.

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use super::upstream_error::UpstreamError;

/// Allowed difference between the upstream's clock and ours, in seconds.
const CLOCK_SKEW_SECS: u64 = 60;

/// Who the upstream says signed in.
#[derive(Debug, Clone)]
pub struct UpstreamIdentity {
    pub subject: String,
    pub email: Option<String>,
    /// Only `true` when the upstream asserts it; absent counts as unverified.
    pub email_verified: bool,
    pub name: Option<String>,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    /// A string or a list; jsonwebtoken has checked we are in it.
    #[serde(default)]
    aud: serde_json::Value,
    #[serde(default)]
    azp: Option<String>,
    #[serde(default)]
    nonce: Option<String>,
    #[serde(default)]
    email: Option<String>,
    /// A boolean by the spec; some providers send the string "true".
    #[serde(default)]
    email_verified: Option<serde_json::Value>,
    #[serde(default)]
    name: Option<String>,
}

/// The `kid` in the token's header, which picks the key to verify it with.
pub fn key_id(token: &str) -> Result<String, UpstreamError> {
    let header = jsonwebtoken::decode_header(token)
        .map_err(|e| UpstreamError(format!("the ID token is malformed: {e}")))?;
    // Only RS256: `none` and HMAC (with the public key as secret) are the classic forgeries.
    if header.alg != Algorithm::RS256 {
        return Err(UpstreamError(format!(
            "the ID token is signed with {:?}, not RS256",
            header.alg
        )));
    }
    header
        .kid
        .ok_or_else(|| UpstreamError("the ID token names no key (kid)".into()))
}

pub fn verify(
    token: &str,
    key: &DecodingKey,
    issuers: &[&str],
    client_id: &str,
    expected_nonce: &str,
) -> Result<UpstreamIdentity, UpstreamError> {
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_issuer(issuers);
    validation.set_audience(&[client_id]);
    validation.leeway = CLOCK_SKEW_SECS;
    validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
    let claims = jsonwebtoken::decode::<Claims>(token, key, &validation)
        .map_err(|e| UpstreamError(format!("the ID token is not valid: {e}")))?
        .claims;
    // §3.1.3.7 items 4-5: with several audiences, `azp` must name us; when present, always.
    let several = claims.aud.as_array().is_some_and(|list| list.len() > 1);
    match claims.azp.as_deref() {
        Some(azp) if azp != client_id => {
            return Err(UpstreamError(
                "the ID token was issued to another party (azp)".into(),
            ));
        }
        None if several => {
            return Err(UpstreamError(
                "the ID token has several audiences and no azp".into(),
            ));
        }
        _ => {}
    }
    let nonce_ok = claims.nonce.as_deref().is_some_and(|nonce| {
        crate::crypto::constant_time_eq(nonce.as_bytes(), expected_nonce.as_bytes())
    });
    if !nonce_ok {
        return Err(UpstreamError(
            "the ID token's nonce is not the one this sign-in sent".into(),
        ));
    }
    if claims.sub.is_empty() || claims.sub.len() > 255 {
        return Err(UpstreamError(
            "the ID token's sub is empty or too long".into(),
        ));
    }
    let email_verified = match claims.email_verified {
        Some(serde_json::Value::Bool(b)) => b,
        Some(serde_json::Value::String(s)) => s == "true",
        _ => false,
    };
    Ok(UpstreamIdentity {
        subject: claims.sub,
        email: claims.email.filter(|e| !e.is_empty()),
        email_verified,
        name: claims.name.filter(|n| !n.is_empty()),
    })
}
