//! Property tests (proptest) on the two parsers hostile input reaches first: the token
//! endpoint's form parameters and access-token verification. Bounded (a fixed number of cases
//! each, a few seconds in all) so they run in CI; `fuzz/` has cargo-fuzz targets for long runs
//! by hand. PROPTEST_CASES raises the case count for a longer local run.

use proptest::prelude::*;
use serde_json::json;
use tessera::grants::Params;
use tessera::keys::KeyRing;
use tessera::tokens::{VerifyError, decode_access_token, sign, verify_access_token};

const ISSUER: &str = "https://id.example.com";
const NOW: i64 = 1_800_000_000;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(cases),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Bytes biased toward what breaks form parsers: separators, escapes, control and non-UTF-8.
fn form_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            3 => prop::sample::select(b"=&%+;".to_vec()),
            2 => prop::sample::select(b"0123456789abcdefABCDEF".to_vec()),
            2 => prop::sample::select(b"grant_typepasswordrefresh_tokenscopeusername".to_vec()),
            1 => any::<u8>(),
        ],
        0..400,
    )
}

proptest! {
    #![proptest_config(config(20_000))]

    #[test]
    fn any_form_body_parses_or_is_refused_for_its_cause(body in form_bytes()) {
        let pairs: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
        parses_exactly_the_valid_pairs(pairs)?;
    }

    /// Pairs no form decoder produced: any characters (control and multi-byte included), so
    /// the check does not lean on what `form_urlencoded` happens to emit.
    #[test]
    fn any_parameter_pairs_parse_or_are_refused_for_their_cause(
        pairs in prop::collection::vec(
            (
                prop_oneof![3 => Just("scope".to_string()), 1 => ".{0,12}"],
                prop_oneof![1 => Just(String::new()), 4 => ".{0,40}"],
            ),
            0..12,
        )
    ) {
        parses_exactly_the_valid_pairs(pairs)?;
    }
}

/// `Params::parse` accepts a set of pairs exactly when no name repeats and no name or value
/// holds a control character, and then hands back each non-empty value under its name.
fn parses_exactly_the_valid_pairs(pairs: Vec<(String, String)>) -> Result<(), TestCaseError> {
    match Params::parse(pairs.clone()) {
        Ok(params) => {
            let mut names: Vec<&str> = pairs.iter().map(|(n, _)| n.as_str()).collect();
            names.sort_unstable();
            names.dedup();
            prop_assert_eq!(names.len(), pairs.len(), "a repeated name was accepted");
            for (name, value) in &pairs {
                prop_assert!(!name.chars().chain(value.chars()).any(char::is_control));
                if value.is_empty() {
                    prop_assert_eq!(params.get(name), None);
                } else {
                    prop_assert_eq!(params.get(name), Some(value.as_str()));
                }
            }
        }
        Err(_) => {
            let repeated = pairs
                .iter()
                .enumerate()
                .any(|(i, (n, _))| pairs[..i].iter().any(|(m, _)| m == n));
            let control = pairs
                .iter()
                .any(|(n, v)| n.chars().chain(v.chars()).any(char::is_control));
            prop_assert!(repeated || control, "refused without cause: {:?}", pairs);
        }
    }
    Ok(())
}

/// The signing keys of a real provider, generated as `tessera serve` does.
fn key_ring() -> std::sync::Arc<KeyRing> {
    static RING: std::sync::OnceLock<std::sync::Arc<KeyRing>> = std::sync::OnceLock::new();
    RING.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut settings = crate::testkit::test_settings(
            &format!("sqlite://{}", dir.path().join("t.db").display()),
            &dir.path().join("keys"),
        );
        settings.database.max_connections = 1;
        let db = tessera::db::Database::connect(&settings.database).expect("database");
        let mut conn = db.get().expect("connection");
        let ring = tessera::keys::load_or_init(&mut conn, &settings.keys).expect("keys");
        std::sync::Arc::new(ring)
    })
    .clone()
}

fn valid_token(ring: &KeyRing) -> String {
    sign(
        ring.active(),
        "at+jwt",
        &json!({
            "iss": ISSUER, "sub": "user-1", "aud": [ISSUER, "api"], "exp": NOW + 600,
            "iat": NOW, "jti": "j1", "client_id": "c1", "scope": "openid api"
        }),
    )
    .expect("sign")
}

/// Bytes a JWT is made of, plus a few that are not.
fn jwt_chars() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            8 => prop::sample::select(
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".chars().collect::<Vec<_>>()
            ),
            2 => Just('.'),
            1 => any::<char>(),
        ],
        0..600,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

#[test]
fn the_valid_token_verifies() {
    let ring = key_ring();
    let token = valid_token(&ring);
    let claims = verify_access_token(&token, &ring, ISSUER, NOW).expect("valid");
    assert_eq!(claims.sub, "user-1");
}

proptest! {
    #![proptest_config(config(4_000))]

    #[test]
    fn arbitrary_strings_never_verify(token in jwt_chars()) {
        let ring = key_ring();
        prop_assert!(decode_access_token(&token, &ring, ISSUER, NOW).is_err());
    }

    /// One character changed, inserted or removed anywhere in a valid token: refused, or (a
    /// base64 character whose changed bits are padding) the very same claims, never others.
    #[test]
    fn a_mutated_token_is_refused_or_means_the_same(
        position in any::<prop::sample::Index>(),
        replacement in prop::sample::select(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ ".chars().collect::<Vec<_>>()
        ),
        operation in 0u8..3,
    ) {
        let ring = key_ring();
        let token = valid_token(&ring);
        let mut chars: Vec<char> = token.chars().collect();
        let at = position.index(chars.len());
        match operation {
            0 => chars[at] = replacement,
            1 => chars.insert(at, replacement),
            _ => { chars.remove(at); }
        }
        let mutated: String = chars.into_iter().collect();
        prop_assume!(mutated != token);
        if let Ok(claims) = verify_access_token(&mutated, &ring, ISSUER, NOW) {
            let original = verify_access_token(&token, &ring, ISSUER, NOW).expect("valid");
            prop_assert_eq!(claims.sub, original.sub);
            prop_assert_eq!(claims.scope, original.scope);
            prop_assert_eq!(claims.exp, original.exp);
        }
    }

    /// Headers and claims an attacker chooses, signed or not: only what a key of ours signed
    /// as at+jwt RS256 for this issuer, unexpired, gets through.
    #[test]
    fn forged_headers_and_claims_are_refused(
        alg in prop::sample::select(vec!["none", "HS256", "RS256", "ES256", "PS256", "rs256", ""]),
        typ in prop::sample::select(vec!["at+jwt", "JWT", "", "application/at+jwt"]),
        kid in prop::sample::select(vec!["", "../../etc/passwd", "' OR 1=1 --", "x"]),
        exp in prop_oneof![Just(NOW - 1), Just(NOW), Just(i64::MAX), Just(i64::MIN), Just(NOW + 60)],
        iss in prop::sample::select(vec![ISSUER, "https://evil.example", ""]),
        signature in "[A-Za-z0-9_-]{0,40}",
    ) {
        use base64::Engine;
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let ring = key_ring();
        let header = json!({ "alg": alg, "typ": typ, "kid": kid });
        let claims = json!({
            "iss": iss, "sub": "admin", "aud": [ISSUER], "exp": exp, "iat": NOW,
            "jti": "j", "client_id": "c", "scope": "admin", "roles": ["admin"]
        });
        let token = format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string()),
            signature
        );
        prop_assert!(verify_access_token(&token, &ring, ISSUER, NOW).is_err());
        // Signed by our real key, it passes only with the right type, issuer and expiry.
        let signed = sign(ring.active(), typ, &claims).expect("sign");
        let verdict = verify_access_token(&signed, &ring, ISSUER, NOW);
        let acceptable = !typ.is_empty() && typ != "JWT" && iss == ISSUER && exp > NOW;
        prop_assert_eq!(verdict.is_ok(), acceptable, "{:?}", verdict);
        if (NOW - 1..=NOW).contains(&exp) && !typ.is_empty() && typ != "JWT" && iss == ISSUER {
            prop_assert_eq!(verdict.err(), Some(VerifyError::Expired));
        }
    }
}
