//! Reading a JWKS (RFC 7517) into verification keys, and the cache lifetime its response allows.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey};
use tessera_proto::{Jwk, JwkSet};

/// A published key with the one algorithm a token signed by it may name.
pub struct Key {
    pub alg: Algorithm,
    pub decoding: DecodingKey,
}

/// The algorithm a JWK is for, from its type and curve: RSA keys verify RS256, P-256 EC keys
/// ES256 and Ed25519 OKP keys EdDSA. A key whose `alg` names anything else is `None`.
fn algorithm_of(jwk: &Jwk) -> Option<Algorithm> {
    let (alg, name) = match (jwk.kty.as_str(), jwk.crv.as_deref()) {
        ("RSA", _) => (Algorithm::RS256, "RS256"),
        ("EC", Some("P-256")) => (Algorithm::ES256, "ES256"),
        ("OKP", Some("Ed25519")) => (Algorithm::EdDSA, "EdDSA"),
        _ => return None,
    };
    jwk.alg.as_deref().is_none_or(|a| a == name).then_some(alg)
}

/// The verification key a JWK describes, if its members are well-formed.
fn decoding_key(jwk: &Jwk, alg: Algorithm) -> Option<DecodingKey> {
    match alg {
        Algorithm::RS256 => {
            DecodingKey::from_rsa_components(jwk.n.as_deref()?, jwk.e.as_deref()?).ok()
        }
        Algorithm::ES256 => {
            let (x, y) = (jwk.x.as_deref()?, jwk.y.as_deref()?);
            // 32 bytes each (43 base64url characters), or the point is not on P-256's size.
            (x.len() == 43 && y.len() == 43)
                .then(|| DecodingKey::from_ec_components(x, y).ok())
                .flatten()
        }
        Algorithm::EdDSA => {
            let x = jwk.x.as_deref()?;
            (x.len() == 43)
                .then(|| DecodingKey::from_ed_components(x).ok())
                .flatten()
        }
        _ => None,
    }
}

/// The keys a JWKS offers for RS256, ES256 and EdDSA verification, by `kid`.
///
/// A key is usable only if it is RSA, P-256 EC or Ed25519 OKP, names no algorithm other than
/// the one of its type, is not reserved for encryption (`use` other than `sig`), allows
/// `verify` if it lists `key_ops`, and has a `kid` (tokens choose their key by `kid`; guessing
/// among several would invite confusion). Other keys are left out, so a token naming one of
/// them fails as signed by an unknown key.
pub fn parse(body: &[u8]) -> Result<HashMap<String, Arc<Key>>, String> {
    let document: JwkSet = serde_json::from_slice(body).map_err(|e| format!("not a JWKS: {e}"))?;
    let mut keys = HashMap::new();
    for jwk in document.keys {
        let usable = jwk.use_.as_deref().is_none_or(|u| u == "sig")
            && jwk
                .key_ops
                .as_ref()
                .is_none_or(|ops| ops.iter().any(|op| op == "verify"));
        let (Some(alg), true) = (algorithm_of(&jwk), usable) else {
            continue;
        };
        let Some(kid) = jwk.kid.clone() else {
            continue;
        };
        match decoding_key(&jwk, alg) {
            Some(decoding) => {
                keys.insert(kid, Arc::new(Key { alg, decoding }));
            }
            None => tracing::warn!(%kid, "JWKS key with malformed members ignored"),
        }
    }
    Ok(keys)
}

/// `max-age` from a Cache-Control header, `Some(0)` for `no-store`/`no-cache`, `None` when the
/// header says nothing about freshness.
pub fn max_age(cache_control: Option<&str>) -> Option<Duration> {
    let header = cache_control?;
    let mut found = None;
    for directive in header.split(',') {
        let directive = directive.trim();
        let (name, value) = match directive.split_once('=') {
            Some((name, value)) => (name.trim(), Some(value.trim().trim_matches('"'))),
            None => (directive, None),
        };
        if name.eq_ignore_ascii_case("no-store") || name.eq_ignore_ascii_case("no-cache") {
            return Some(Duration::ZERO);
        }
        if name.eq_ignore_ascii_case("max-age")
            && let Some(secs) = value.and_then(|v| v.parse::<u64>().ok())
        {
            found = Some(Duration::from_secs(secs));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age_is_read_from_cache_control() {
        assert_eq!(
            max_age(Some("public, max-age=300")),
            Some(Duration::from_secs(300))
        );
        assert_eq!(
            max_age(Some("max-age=\"60\"")),
            Some(Duration::from_secs(60))
        );
        assert_eq!(max_age(Some("no-store")), Some(Duration::ZERO));
        assert_eq!(max_age(Some("public")), None);
        assert_eq!(max_age(Some("max-age=soon")), None);
        assert_eq!(max_age(None), None);
    }

    #[test]
    fn keys_that_do_not_fit_their_algorithm_are_left_out() {
        let n = "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw";
        // RFC 7515 Appendix A.3's P-256 key and RFC 8037 Appendix A's Ed25519 key.
        let (x, y) = (
            "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
            "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
        );
        let ed = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
        let body = serde_json::json!({ "keys": [
            { "kty": "RSA", "kid": "good", "alg": "RS256", "use": "sig", "n": n, "e": "AQAB" },
            { "kty": "RSA", "kid": "no-alg", "n": n, "e": "AQAB" },
            { "kty": "RSA", "kid": "ps256", "alg": "PS256", "n": n, "e": "AQAB" },
            { "kty": "RSA", "kid": "enc", "use": "enc", "n": n, "e": "AQAB" },
            { "kty": "RSA", "kid": "sign-only", "key_ops": ["sign"], "n": n, "e": "AQAB" },
            { "kty": "RSA", "n": n, "e": "AQAB" },
            { "kty": "EC", "kid": "ec-short", "crv": "P-256", "x": "AA", "y": "AA" },
            { "kty": "EC", "kid": "es256", "alg": "ES256", "crv": "P-256", "x": x, "y": y },
            { "kty": "EC", "kid": "es384", "alg": "ES384", "crv": "P-384", "x": x, "y": y },
            { "kty": "EC", "kid": "ec-as-rs", "alg": "RS256", "crv": "P-256", "x": x, "y": y },
            { "kty": "OKP", "kid": "ed", "alg": "EdDSA", "crv": "Ed25519", "x": ed },
            { "kty": "OKP", "kid": "x25519", "crv": "X25519", "x": ed },
            { "kty": "OKP", "kid": "okp-as-es", "alg": "ES256", "crv": "Ed25519", "x": ed },
            { "kty": "RSA", "kid": "rsa-as-ed", "alg": "EdDSA", "n": n, "e": "AQAB" },
            { "kty": "oct", "kid": "secret", "k": "c2VjcmV0" }
        ]});
        let keys = parse(&serde_json::to_vec(&body).unwrap_or_default()).unwrap_or_default();
        let mut kids: Vec<&str> = keys.keys().map(String::as_str).collect();
        kids.sort();
        assert_eq!(kids, ["ed", "es256", "good", "no-alg"]);
        assert_eq!(keys["ed"].alg, Algorithm::EdDSA);
        assert_eq!(keys["es256"].alg, Algorithm::ES256);
        assert_eq!(keys["good"].alg, Algorithm::RS256);
    }
}
