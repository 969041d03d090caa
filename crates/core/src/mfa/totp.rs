//! Time-based one-time passwords (RFC 6238 over RFC 4226's HOTP): HMAC-SHA1, 6 digits, a 30 s
//! step, and one step of drift either way, which is what authenticator apps expect. HMAC comes
//! from ring, which Tessera already uses; the algorithm itself is a dozen lines, and the RFC's
//! own vectors test it.

use ring::hmac;

use crate::crypto::{RandomError, constant_time_eq, random_bytes};

pub const DIGITS: u32 = 6;
pub const STEP_SECS: i64 = 30;
/// Steps accepted either side of now.
const DRIFT_STEPS: i64 = 1;

/// A TOTP shared secret: 160 random bits, as RFC 4226 §4 recommends.
pub struct TotpSecret(Vec<u8>);

impl std::fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSecret(..)")
    }
}

impl TotpSecret {
    pub fn generate() -> Result<TotpSecret, RandomError> {
        Ok(TotpSecret(random_bytes::<20>()?.to_vec()))
    }

    pub fn from_bytes(bytes: Vec<u8>) -> TotpSecret {
        TotpSecret(bytes)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Base32 without padding: what a person types into an app that cannot scan.
    pub fn base32(&self) -> String {
        data_encoding::BASE32_NOPAD.encode(&self.0)
    }

    /// The `otpauth://` URI of the Key Uri Format that authenticator apps scan.
    pub fn otpauth_uri(&self, issuer: &str, account: &str) -> String {
        let label = format!("{issuer}:{account}");
        let label: String = url::form_urlencoded::byte_serialize(label.as_bytes()).collect();
        let issuer: String = url::form_urlencoded::byte_serialize(issuer.as_bytes()).collect();
        format!(
            "otpauth://totp/{}?secret={}&issuer={issuer}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
            label.replace('+', "%20"),
            self.base32(),
        )
    }

    /// The code for `step` with `digits` digits (RFC 4226 §5.3).
    pub fn code(&self, step: i64, digits: u32) -> String {
        let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &self.0);
        let tag = hmac::sign(&key, &step.to_be_bytes());
        let mac = tag.as_ref();
        let offset = usize::from(mac[mac.len() - 1] & 0x0f);
        let binary = u32::from_be_bytes([
            mac[offset] & 0x7f,
            mac[offset + 1],
            mac[offset + 2],
            mac[offset + 3],
        ]);
        let value = binary % 10u32.pow(digits);
        format!("{value:0width$}", width = digits as usize)
    }

    /// The code a person's app shows at `now`.
    pub fn code_at(&self, now: i64) -> String {
        self.code(step_of(now), DIGITS)
    }

    /// The step `code` belongs to, if it is the code of a step within the drift of `now`.
    /// Every candidate is compared, in constant time, so the timing tells nothing.
    pub fn matching_step(&self, code: &str, now: i64) -> Option<i64> {
        let code = code.trim();
        let current = step_of(now);
        let mut found = None;
        for step in current - DRIFT_STEPS..=current + DRIFT_STEPS {
            if constant_time_eq(self.code(step, DIGITS).as_bytes(), code.as_bytes()) {
                found = Some(step);
            }
        }
        found
    }
}

pub fn step_of(now: i64) -> i64 {
    now.div_euclid(STEP_SECS)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B, the SHA-1 rows: the seed "12345678901234567890", 8 digits.
    #[test]
    fn rfc_6238_appendix_b_vectors() {
        let secret = TotpSecret::from_bytes(b"12345678901234567890".to_vec());
        for (time, expected) in [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ] {
            assert_eq!(secret.code(step_of(time), 8), expected, "T = {time}");
        }
    }

    /// RFC 4226 Appendix D: HOTP values for counters 0..9, 6 digits.
    #[test]
    fn rfc_4226_appendix_d_vectors() {
        let secret = TotpSecret::from_bytes(b"12345678901234567890".to_vec());
        let expected = [
            "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583",
            "399871", "520489",
        ];
        for (counter, code) in expected.iter().enumerate() {
            assert_eq!(secret.code(counter as i64, 6), *code);
        }
    }

    #[test]
    fn one_step_of_drift_either_way_and_no_more() {
        let secret = TotpSecret::generate().unwrap();
        let now = 1_800_000_015;
        let step = step_of(now);
        assert_eq!(secret.matching_step(&secret.code_at(now), now), Some(step));
        assert_eq!(
            secret.matching_step(&secret.code(step - 1, DIGITS), now),
            Some(step - 1)
        );
        assert_eq!(
            secret.matching_step(&secret.code(step + 1, DIGITS), now),
            Some(step + 1)
        );
        for far in [step - 2, step + 2] {
            let code = secret.code(far, DIGITS);
            // A far code may equal a near one by chance (1 in 10^6): only then may it match.
            let collides = (step - 1..=step + 1).any(|s| secret.code(s, DIGITS) == code);
            assert_eq!(secret.matching_step(&code, now).is_some(), collides);
        }
        assert_eq!(secret.matching_step("", now), None);
        assert_eq!(secret.matching_step("12345", now), None);
    }

    #[test]
    fn the_uri_names_issuer_account_and_parameters() {
        let secret = TotpSecret::from_bytes(vec![0u8; 20]);
        let uri = secret.otpauth_uri("Tessera", "a b@example.com");
        assert_eq!(
            uri,
            "otpauth://totp/Tessera%3Aa%20b%40example.com?secret=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\
             &issuer=Tessera&algorithm=SHA1&digits=6&period=30"
        );
    }
}
