use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;

use crate::keys::{ALGORITHM, KeyError, SigningKey};

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("cannot encode token claims: {0}")]
    Encode(#[from] serde_json::Error),
    #[error(transparent)]
    Key(#[from] KeyError),
}

#[derive(Serialize)]
struct Header<'a> {
    alg: &'static str,
    typ: &'a str,
    kid: &'a str,
}

/// A compact JWS (RFC 7515) over `claims`, signed RS256 by `key`, with `typ` in the header
/// (`at+jwt` for access tokens per RFC 9068, `JWT` for ID tokens).
pub fn sign<C: Serialize>(key: &SigningKey, typ: &str, claims: &C) -> Result<String, TokenError> {
    let header = serde_json::to_vec(&Header {
        alg: ALGORITHM,
        typ,
        kid: key.kid(),
    })?;
    let payload = serde_json::to_vec(claims)?;
    let mut token = String::with_capacity((header.len() + payload.len()) * 4 / 3 + 360);
    URL_SAFE_NO_PAD.encode_string(&header, &mut token);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
    let signature = key.sign(token.as_bytes())?;
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(&signature, &mut token);
    Ok(token)
}
