use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, Validation};
use serde::Serialize;

use super::claims::AccessClaims;
use crate::domain::SigningAlg;
use crate::keys::{KeyError, KeyRing, SigningKey};

/// The JOSE `typ` of access tokens (RFC 9068 §2.1).
pub const ACCESS_TOKEN_TYPE: &str = "at+jwt";

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("cannot encode token claims: {0}")]
    Encode(#[from] serde_json::Error),
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// Why an access token was refused; the text is safe to show the client.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token is not an access token")]
    WrongType,
    #[error("the token was signed by an unknown key")]
    UnknownKey,
    #[error("the token is expired")]
    Expired,
    #[error("the token is not meant for this server")]
    WrongAudience,
    #[error("the token is invalid")]
    Invalid,
}

#[derive(Serialize)]
struct Header<'a> {
    alg: &'static str,
    typ: &'a str,
    kid: &'a str,
}

/// A compact JWS (RFC 7515) over `claims`, signed by `key` with its algorithm, with `alg`, `kid`
/// and `typ` in the header (`at+jwt` for access tokens per RFC 9068, `JWT` for ID tokens).
pub fn sign<C: Serialize>(key: &SigningKey, typ: &str, claims: &C) -> Result<String, TokenError> {
    let header = serde_json::to_vec(&Header {
        alg: key.alg().as_str(),
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

/// Verifies an access token for use at this provider's own endpoints: `decode_access_token`'s
/// checks plus this provider among its audiences (a token minted for another resource server
/// must not be replayed here, RFC 9068 §4).
pub fn verify_access_token(
    token: &str,
    ring: &KeyRing,
    issuer: &str,
    now: i64,
) -> Result<AccessClaims, VerifyError> {
    let claims = decode_access_token(token, ring, issuer, now)?;
    if claims.aud.contains(issuer) {
        Ok(claims)
    } else {
        Err(VerifyError::WrongAudience)
    }
}

/// Checks that `token` is one of our unexpired access tokens: a published key and the
/// algorithm of that key, `typ` at+jwt, our issuer. Used as is by introspection and revocation, which serve every
/// audience.
pub fn decode_access_token(
    token: &str,
    ring: &KeyRing,
    issuer: &str,
    now: i64,
) -> Result<AccessClaims, VerifyError> {
    let (key, alg) = our_key(token, ring, |typ| {
        typ.eq_ignore_ascii_case(ACCESS_TOKEN_TYPE)
            || typ.eq_ignore_ascii_case("application/at+jwt")
    })?;
    let mut validation = Validation::new(alg);
    validation.set_issuer(&[issuer]);
    validation.validate_aud = false;
    validation.leeway = 0;
    validation.set_required_spec_claims(&["exp", "iss", "sub"]);
    let data =
        jsonwebtoken::decode::<AccessClaims>(token, key, &validation).map_err(|e| {
            match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => VerifyError::Expired,
                _ => VerifyError::Invalid,
            }
        })?;
    // jsonwebtoken reads the clock itself; check against ours too, so tests can move it.
    if data.claims.exp <= now {
        return Err(VerifyError::Expired);
    }
    Ok(data.claims)
}

/// Reads one of this provider's own ID tokens given back as a hint (`id_token_hint` at
/// `/authorize` and `/logout`): a key still in the ring and its algorithm, `typ` JWT, our issuer, and a
/// valid signature. Expired ones are accepted (OpenID Connect Core §3.1.2.1, RP-Initiated
/// Logout §2): the hint says who the app believes is signed in, not that anyone is.
pub fn decode_id_token_hint(
    token: &str,
    ring: &KeyRing,
    issuer: &str,
) -> Result<super::claims::IdClaims, VerifyError> {
    let (key, alg) = our_key(token, ring, |typ| typ.eq_ignore_ascii_case("JWT"))?;
    let mut validation = Validation::new(alg);
    validation.set_issuer(&[issuer]);
    validation.validate_aud = false;
    validation.validate_exp = false;
    validation.set_required_spec_claims(&["iss", "sub", "aud"]);
    jsonwebtoken::decode::<super::claims::IdClaims>(token, key, &validation)
        .map(|data| data.claims)
        .map_err(|_| VerifyError::Invalid)
}

/// The JOSE name jsonwebtoken knows the algorithm by.
pub fn jose_algorithm(alg: SigningAlg) -> Algorithm {
    match alg {
        SigningAlg::Rs256 => Algorithm::RS256,
        SigningAlg::EdDsa => Algorithm::EdDSA,
        SigningAlg::Es256 => Algorithm::ES256,
    }
}

/// The key in our ring that `token`'s header names, if the header is one we sign: the `alg`
/// of that very key (so a token cannot claim HS256, `none`, or another key type's algorithm
/// with our kid) and a `typ` that `typ_ok` accepts.
fn our_key<'r>(
    token: &str,
    ring: &'r KeyRing,
    typ_ok: impl Fn(&str) -> bool,
) -> Result<(&'r jsonwebtoken::DecodingKey, Algorithm), VerifyError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| VerifyError::Malformed)?;
    if !SigningAlg::ALL
        .into_iter()
        .any(|alg| jose_algorithm(alg) == header.alg)
    {
        return Err(VerifyError::Invalid);
    }
    if !header.typ.as_deref().is_some_and(typ_ok) {
        return Err(VerifyError::WrongType);
    }
    let key = header
        .kid
        .as_deref()
        .and_then(|kid| ring.published_key(kid))
        .ok_or(VerifyError::UnknownKey)?;
    let alg = jose_algorithm(key.alg());
    if alg != header.alg {
        return Err(VerifyError::Invalid);
    }
    Ok((key.decoding_key(), alg))
}
