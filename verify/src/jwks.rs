//! Reading a JWKS (RFC 7517) into verification keys, and the cache lifetime its response allows.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::DecodingKey;
use tessera_proto::JwkSet;

/// The keys a JWKS offers for RS256 verification, by `kid`.
///
/// A key is usable only if it is RSA, names no algorithm other than RS256, is not reserved for
/// encryption (`use` other than `sig`), allows `verify` if it lists `key_ops`, and has a `kid`
/// (tokens choose their key by `kid`; guessing among several would invite confusion). Other
/// keys are left out, so a token naming one of them fails as signed by an unknown key.
pub fn parse(body: &[u8]) -> Result<HashMap<String, Arc<DecodingKey>>, String> {
    let document: JwkSet = serde_json::from_slice(body).map_err(|e| format!("not a JWKS: {e}"))?;
    let mut keys = HashMap::new();
    for jwk in document.keys {
        let usable = jwk.kty == "RSA"
            && jwk.alg.as_deref().is_none_or(|alg| alg == "RS256")
            && jwk.use_.as_deref().is_none_or(|u| u == "sig")
            && jwk
                .key_ops
                .as_ref()
                .is_none_or(|ops| ops.iter().any(|op| op == "verify"));
        let (Some(kid), Some(n), Some(e), true) = (jwk.kid, jwk.n, jwk.e, usable) else {
            continue;
        };
        match DecodingKey::from_rsa_components(&n, &e) {
            Ok(key) => {
                keys.insert(kid, Arc::new(key));
            }
            Err(_) => tracing::warn!(%kid, "JWKS key with malformed n or e ignored"),
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
    fn keys_that_do_not_fit_rs256_signatures_are_left_out() {
        let n = "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw";
        let body = serde_json::json!({ "keys": [
            { "kty": "RSA", "kid": "good", "alg": "RS256", "use": "sig", "n": n, "e": "AQAB" },
            { "kty": "RSA", "kid": "no-alg", "n": n, "e": "AQAB" },
            { "kty": "RSA", "kid": "ps256", "alg": "PS256", "n": n, "e": "AQAB" },
            { "kty": "RSA", "kid": "enc", "use": "enc", "n": n, "e": "AQAB" },
            { "kty": "RSA", "kid": "sign-only", "key_ops": ["sign"], "n": n, "e": "AQAB" },
            { "kty": "RSA", "n": n, "e": "AQAB" },
            { "kty": "EC", "kid": "ec", "crv": "P-256", "x": "AA", "y": "AA" },
            { "kty": "oct", "kid": "secret", "k": "c2VjcmV0" }
        ]});
        let keys = parse(&serde_json::to_vec(&body).unwrap_or_default()).unwrap_or_default();
        let mut kids: Vec<&str> = keys.keys().map(String::as_str).collect();
        kids.sort();
        assert_eq!(kids, ["good", "no-alg"]);
    }
}
