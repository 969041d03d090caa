//! The JWS algorithms Tessera signs with (RFC 7518 §3.1, RFC 8037 §3.1).

use super::invalid::Invalid;

/// How a token is signed: which key of the ring signs it, and the JOSE `alg` in its header.
/// A client names one (`signing_alg`); RS256 is the default, as before there was a choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SigningAlg {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    #[default]
    Rs256,
    /// Ed25519 (JWA `EdDSA`, RFC 8037).
    EdDsa,
    /// ECDSA on P-256 with SHA-256, the signature as r || s (RFC 7518 §3.4).
    Es256,
}

impl SigningAlg {
    /// Every algorithm, in the order the JWKS and discovery list them.
    pub const ALL: [SigningAlg; 3] = [SigningAlg::Rs256, SigningAlg::EdDsa, SigningAlg::Es256];

    /// The JOSE name, exactly as registered (case matters: `rs256` is not RS256).
    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlg::Rs256 => "RS256",
            SigningAlg::EdDsa => "EdDSA",
            SigningAlg::Es256 => "ES256",
        }
    }

    /// The JWK `kty` of this algorithm's keys.
    pub fn key_type(self) -> &'static str {
        match self {
            SigningAlg::Rs256 => "RSA",
            SigningAlg::EdDsa => "OKP",
            SigningAlg::Es256 => "EC",
        }
    }

    /// Its place in `ALL`, for tables indexed by algorithm.
    pub fn index(self) -> usize {
        match self {
            SigningAlg::Rs256 => 0,
            SigningAlg::EdDsa => 1,
            SigningAlg::Es256 => 2,
        }
    }

    pub fn parse(value: &str) -> Result<SigningAlg, Invalid> {
        SigningAlg::ALL
            .into_iter()
            .find(|alg| alg.as_str() == value)
            .ok_or_else(|| {
                Invalid(format!(
                    "signing_alg: {value:?} is not one of RS256, EdDSA, ES256"
                ))
            })
    }

    /// The stored form; anything else is RS256, as before the column existed.
    pub fn from_stored(value: &str) -> SigningAlg {
        SigningAlg::parse(value).unwrap_or_default()
    }
}

/// From its JOSE name, as the admin API's JSON gives it: anything else is refused while the
/// body is read (a 400), with the names that would do.
impl<'de> serde::Deserialize<'de> for SigningAlg {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        SigningAlg::parse(&name).map_err(serde::de::Error::custom)
    }
}

impl std::fmt::Display for SigningAlg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_nothing_else_parses() {
        for alg in SigningAlg::ALL {
            assert_eq!(SigningAlg::parse(alg.as_str()), Ok(alg));
            assert_eq!(SigningAlg::ALL[alg.index()], alg);
        }
        for bad in [
            "", "none", "HS256", "rs256", "eddsa", "PS256", "ES384", "Ed25519",
        ] {
            assert!(SigningAlg::parse(bad).is_err(), "{bad}");
        }
    }
}
