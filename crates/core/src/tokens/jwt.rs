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
/// algorithm of that key, `typ` at+jwt, our issuer. Used as is by introspection and revocation,
/// which serve every audience.
///
/// The checks are jsonwebtoken's `decode` with `Validation::new(alg)`, issuer set, no audience,
/// leeway 0, `exp`, `iss` and `sub` required (`nbf` not checked, as jsonwebtoken's default),
/// in its order and with its outcomes, but done here so that the header is decoded once (not
/// three times) and the signature is checked with the key parsed once at load (`SigningKey::
/// verifies`) rather than rebuilt from the modulus and exponent on every call.
pub fn decode_access_token(
    token: &str,
    ring: &KeyRing,
    issuer: &str,
    now: i64,
) -> Result<AccessClaims, VerifyError> {
    let (parts, key) = our_key(token, ring, |typ| {
        typ.eq_ignore_ascii_case(ACCESS_TOKEN_TYPE)
            || typ.eq_ignore_ascii_case("application/at+jwt")
    })?;
    let signature = URL_SAFE_NO_PAD
        .decode(parts.signature)
        .map_err(|_| VerifyError::Invalid)?;
    if !key.verifies(parts.message.as_bytes(), &signature) {
        return Err(VerifyError::Invalid);
    }
    let payload = URL_SAFE_NO_PAD
        .decode(parts.payload)
        .map_err(|_| VerifyError::Invalid)?;
    let claims: AccessClaims =
        serde_json::from_slice(&payload).map_err(|_| VerifyError::Invalid)?;
    // jsonwebtoken reads `exp` as an unsigned number: a negative one counts as missing.
    if claims.exp < 0 {
        return Err(VerifyError::Invalid);
    }
    // jsonwebtoken's expiry check, against the system clock (leeway 0).
    let system_now = i64::try_from(jsonwebtoken::get_current_timestamp()).unwrap_or(i64::MAX);
    if claims.exp < system_now {
        return Err(VerifyError::Expired);
    }
    if claims.iss != issuer {
        return Err(VerifyError::Invalid);
    }
    // Against our clock too, so tests can move it.
    if claims.exp <= now {
        return Err(VerifyError::Expired);
    }
    Ok(claims)
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
    let (_, key) = our_key(token, ring, |typ| typ.eq_ignore_ascii_case("JWT"))?;
    let mut validation = Validation::new(jose_algorithm(key.alg()));
    validation.set_issuer(&[issuer]);
    validation.validate_aud = false;
    validation.validate_exp = false;
    validation.set_required_spec_claims(&["iss", "sub", "aud"]);
    jsonwebtoken::decode::<super::claims::IdClaims>(token, key.decoding_key(), &validation)
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

/// A compact JWS split as jsonwebtoken splits it (at the last two dots).
struct Parts<'t> {
    /// The signing input: the encoded header and payload with the dot between them.
    message: &'t str,
    payload: &'t str,
    signature: &'t str,
}

/// The key in our ring that `token`'s header names, if the header is one we sign: the `alg`
/// of that very key (so a token cannot claim HS256, `none`, or another key type's algorithm
/// with our kid) and a `typ` that `typ_ok` accepts. The header is read as jsonwebtoken reads
/// it (its `Header`), once.
fn our_key<'t, 'r>(
    token: &'t str,
    ring: &'r KeyRing,
    typ_ok: impl Fn(&str) -> bool,
) -> Result<(Parts<'t>, &'r SigningKey), VerifyError> {
    let (message, signature) = token.rsplit_once('.').ok_or(VerifyError::Malformed)?;
    let (encoded_header, payload) = message.rsplit_once('.').ok_or(VerifyError::Malformed)?;
    let header: jsonwebtoken::Header = URL_SAFE_NO_PAD
        .decode(encoded_header)
        .ok()
        .and_then(|json| serde_json::from_slice(&json).ok())
        .ok_or(VerifyError::Malformed)?;
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
    if jose_algorithm(key.alg()) != header.alg {
        return Err(VerifyError::Invalid);
    }
    Ok((
        Parts {
            message,
            payload,
            signature,
        },
        key,
    ))
}
