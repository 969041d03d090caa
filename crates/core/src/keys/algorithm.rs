//! The key material of each signing algorithm: generated or parsed from PKCS#8 once, signing
//! directly with aws-lc-rs, and described as a public JWK whose kid is its RFC 7638
//! thumbprint.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{self, KeySize};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, ED25519, EcdsaKeyPair,
    Ed25519KeyPair, KeyPair as _, ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tessera_proto::Jwk;

use super::error::KeyError;
use crate::domain::SigningAlg;

/// A private key of one of the algorithms Tessera signs with.
pub enum KeyPair {
    Rsa(rsa::KeyPair),
    Ed25519(Ed25519KeyPair),
    P256(EcdsaKeyPair),
}

fn rsa_size(bits: u32) -> KeySize {
    match bits {
        4096 => KeySize::Rsa4096,
        3072 => KeySize::Rsa3072,
        _ => KeySize::Rsa2048,
    }
}

impl KeyPair {
    /// A fresh key for `alg` and its PKCS#8 DER (the form every key is stored in).
    pub fn generate(alg: SigningAlg, rsa_bits: u32) -> Result<(KeyPair, Vec<u8>), KeyError> {
        let generated = match alg {
            SigningAlg::Rs256 => rsa::KeyPair::generate(rsa_size(rsa_bits))
                .ok()
                .and_then(|k| {
                    let der = k.as_der().ok()?.as_ref().to_vec();
                    Some((KeyPair::Rsa(k), der))
                }),
            SigningAlg::EdDsa => Ed25519KeyPair::generate().ok().and_then(|k| {
                let der = k.to_pkcs8().ok()?.as_ref().to_vec();
                Some((KeyPair::Ed25519(k), der))
            }),
            SigningAlg::Es256 => EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                .ok()
                .and_then(|k| {
                    let der = k.to_pkcs8v1().ok()?.as_ref().to_vec();
                    Some((KeyPair::P256(k), der))
                }),
        };
        generated.ok_or(KeyError::Generate(alg))
    }

    /// Parses a stored PKCS#8 key of `alg`; `None` if it is not one.
    pub fn from_pkcs8(alg: SigningAlg, der: &[u8]) -> Option<KeyPair> {
        match alg {
            SigningAlg::Rs256 => rsa::KeyPair::from_pkcs8(der).ok().map(KeyPair::Rsa),
            SigningAlg::EdDsa => Ed25519KeyPair::from_pkcs8(der).ok().map(KeyPair::Ed25519),
            SigningAlg::Es256 => EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
                .ok()
                .map(KeyPair::P256),
        }
    }

    pub fn alg(&self) -> SigningAlg {
        match self {
            KeyPair::Rsa(_) => SigningAlg::Rs256,
            KeyPair::Ed25519(_) => SigningAlg::EdDsa,
            KeyPair::P256(_) => SigningAlg::Es256,
        }
    }

    /// The JWS signature over `message` (RFC 7518 §3.3 and §3.4, RFC 8037 §3.1): for ES256
    /// the fixed-width r || s, not DER.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        match self {
            KeyPair::Rsa(key) => {
                let mut signature = vec![0; key.public_modulus_len()];
                key.sign(
                    &RSA_PKCS1_SHA256,
                    &aws_lc_rs::rand::SystemRandom::new(),
                    message,
                    &mut signature,
                )
                .map_err(|_| KeyError::Sign)?;
                Ok(signature)
            }
            KeyPair::Ed25519(key) => Ok(key.sign(message).as_ref().to_vec()),
            KeyPair::P256(key) => key
                .sign(&aws_lc_rs::rand::SystemRandom::new(), message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| KeyError::Sign),
        }
    }

    /// The public half parsed once for verifying this key's signatures, with the parameters
    /// jsonwebtoken verifies the algorithm with (RS256: PKCS#1 v1.5 over SHA-256, moduli of
    /// 2048 to 8192 bits; ES256: r || s; EdDSA: Ed25519). Parsing it once keeps the RSA
    /// Montgomery set-up, which verifying from the modulus and exponent rebuilds every time.
    pub fn verifier(&self) -> Result<ParsedPublicKey, KeyError> {
        let parsed = match self {
            KeyPair::Rsa(key) => {
                ParsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, key.public_key().as_ref())
            }
            KeyPair::Ed25519(key) => ParsedPublicKey::new(&ED25519, key.public_key().as_ref()),
            KeyPair::P256(key) => {
                ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, key.public_key().as_ref())
            }
        };
        parsed.map_err(|_| KeyError::Verifier(self.alg()))
    }

    /// The public JWK, with its thumbprint as kid, and the key verification uses.
    pub fn public(&self) -> (Jwk, jsonwebtoken::DecodingKey) {
        let alg = self.alg();
        let mut jwk = Jwk {
            kty: alg.key_type().into(),
            use_: Some("sig".into()),
            alg: Some(alg.as_str().into()),
            ..Jwk::default()
        };
        let decoding = match self {
            KeyPair::Rsa(key) => {
                let public = key.public_key();
                let n = public.modulus().big_endian_without_leading_zero();
                let e = public.exponent().big_endian_without_leading_zero();
                jwk.n = Some(URL_SAFE_NO_PAD.encode(n));
                jwk.e = Some(URL_SAFE_NO_PAD.encode(e));
                jsonwebtoken::DecodingKey::from_rsa_raw_components(n, e)
            }
            KeyPair::Ed25519(key) => {
                let x = key.public_key().as_ref();
                jwk.crv = Some("Ed25519".into());
                jwk.x = Some(URL_SAFE_NO_PAD.encode(x));
                jsonwebtoken::DecodingKey::from_ed_der(x)
            }
            KeyPair::P256(key) => {
                // The uncompressed point: 0x04 || x || y, 32 bytes each.
                let point = key.public_key().as_ref();
                let coordinates = point.get(1..).unwrap_or_default();
                let (x, y) = coordinates.split_at(coordinates.len() / 2);
                jwk.crv = Some("P-256".into());
                jwk.x = Some(URL_SAFE_NO_PAD.encode(x));
                jwk.y = Some(URL_SAFE_NO_PAD.encode(y));
                jsonwebtoken::DecodingKey::from_ec_der(point)
            }
        };
        jwk.kid = Some(thumbprint(&jwk));
        (jwk, decoding)
    }
}

/// RFC 7638 thumbprint of a public JWK: SHA-256 over its required members in lexicographic
/// order, no whitespace, base64url. RSA: e, kty, n; EC: crv, kty, x, y (§3.2); OKP: crv, kty,
/// x (RFC 8037 §2). The values are base64url or fixed names, so none needs escaping.
pub fn thumbprint(jwk: &Jwk) -> String {
    let member = |v: &Option<String>| v.clone().unwrap_or_default();
    let kty = jwk.kty.as_str();
    let canonical = match kty {
        "RSA" => format!(
            r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
            member(&jwk.e),
            member(&jwk.n)
        ),
        "EC" => format!(
            r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
            member(&jwk.crv),
            member(&jwk.x),
            member(&jwk.y)
        ),
        _ => format!(
            r#"{{"crv":"{}","kty":"{kty}","x":"{}"}}"#,
            member(&jwk.crv),
            member(&jwk.x)
        ),
    };
    let digest = ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes());
    URL_SAFE_NO_PAD.encode(digest.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn okp_thumbprint_matches_rfc8037_example() {
        // RFC 8037 Appendix A.3.
        let jwk = Jwk {
            kty: "OKP".into(),
            crv: Some("Ed25519".into()),
            x: Some("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo".into()),
            ..Jwk::default()
        };
        assert_eq!(
            thumbprint(&jwk),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }

    #[test]
    fn rsa_thumbprint_matches_rfc7638_example() {
        // RFC 7638 §3.1.
        let jwk = Jwk {
            kty: "RSA".into(),
            n: Some("0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw".into()),
            e: Some("AQAB".into()),
            ..Jwk::default()
        };
        assert_eq!(
            thumbprint(&jwk),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn each_algorithm_round_trips_through_pkcs8_and_verifies_with_its_jwk() {
        use jsonwebtoken::crypto::verify;
        for alg in SigningAlg::ALL {
            let (key, der) = KeyPair::generate(alg, 2048).expect("generate");
            let parsed = KeyPair::from_pkcs8(alg, &der).expect("parses");
            let (jwk, decoding) = parsed.public();
            assert_eq!(jwk, key.public().0, "{alg}: same key after PKCS#8");
            assert_eq!(jwk.alg.as_deref(), Some(alg.as_str()));
            assert_eq!(jwk.kty, alg.key_type());
            let signature = parsed.sign(b"header.payload").expect("sign");
            if alg == SigningAlg::Es256 {
                assert_eq!(signature.len(), 64, "ES256 is r || s, not DER");
            }
            let jose = match alg {
                SigningAlg::Rs256 => jsonwebtoken::Algorithm::RS256,
                SigningAlg::EdDsa => jsonwebtoken::Algorithm::EdDSA,
                SigningAlg::Es256 => jsonwebtoken::Algorithm::ES256,
            };
            let encoded = URL_SAFE_NO_PAD.encode(&signature);
            assert!(verify(&encoded, b"header.payload", &decoding, jose).expect("verify"));
            assert!(!verify(&encoded, b"header.other", &decoding, jose).unwrap_or(false));
            // The parsed verifier agrees with jsonwebtoken's.
            let verifier = parsed.verifier().expect("verifier");
            assert!(verifier.verify_sig(b"header.payload", &signature).is_ok());
            assert!(verifier.verify_sig(b"header.other", &signature).is_err());
            for other in SigningAlg::ALL.into_iter().filter(|o| *o != alg) {
                let (other_key, _) = KeyPair::generate(other, 2048).expect("generate");
                let foreign = other_key.sign(b"header.payload").expect("sign");
                assert!(
                    verifier.verify_sig(b"header.payload", &foreign).is_err(),
                    "{alg} verifier accepted a {other} signature"
                );
            }
            // A key of another algorithm does not parse as this one.
            for other in SigningAlg::ALL.into_iter().filter(|o| *o != alg) {
                assert!(
                    KeyPair::from_pkcs8(other, &der).is_none(),
                    "{alg} as {other}"
                );
            }
        }
    }
}
