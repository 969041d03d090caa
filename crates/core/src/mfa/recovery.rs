//! Recovery codes: ten per set, each 80 random bits written as 16 base32 letters and digits in
//! groups of four, shown once and kept only as SHA-256 hashes. They are random, not chosen by a
//! person, so a fast hash is enough: there is no dictionary to try. Each works once; a new set
//! voids the old one.

use crate::crypto::{RandomError, random_bytes, sha256_hex};

pub const CODES_PER_SET: usize = 10;

/// A fresh set: the codes to show once.
pub fn generate() -> Result<Vec<String>, RandomError> {
    (0..CODES_PER_SET)
        .map(|_| {
            let bytes: [u8; 10] = random_bytes()?;
            let text = data_encoding::BASE32_NOPAD.encode(&bytes);
            Ok(text
                .as_bytes()
                .chunks(4)
                .map(|group| String::from_utf8_lossy(group).into_owned())
                .collect::<Vec<_>>()
                .join("-"))
        })
        .collect()
}

/// The stored form of a code as a person may type it: dashes, spaces and case do not matter.
pub fn hash(code: &str) -> String {
    let normalized: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    sha256_hex(normalized.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_is_ten_distinct_codes_of_80_bits() {
        let codes = generate().unwrap();
        assert_eq!(codes.len(), CODES_PER_SET);
        for code in &codes {
            assert_eq!(code.len(), 19, "{code}");
            let letters: String = code.chars().filter(|c| *c != '-').collect();
            // 16 base32 characters carry 16 × 5 = 80 bits.
            assert_eq!(
                data_encoding::BASE32_NOPAD
                    .decode(letters.as_bytes())
                    .map(|b| b.len())
                    .ok(),
                Some(10)
            );
        }
        let mut unique = codes.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), CODES_PER_SET);
    }

    #[test]
    fn typing_does_not_matter_but_every_letter_does() {
        assert_eq!(hash("ABCD-EFGH-IJKL-MNOP"), hash("abcd efgh ijkl mnop"));
        assert_ne!(hash("ABCD-EFGH-IJKL-MNOP"), hash("ABCD-EFGH-IJKL-MNOQ"));
    }
}
