//! Password hashing: argon2id, PHC strings, parameters from config. Slow on purpose, so callers
//! on the server run it on a bounded pool, never on an async worker.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use std::collections::HashSet;
use std::sync::OnceLock;

use crate::config::PasswordSettings;

pub const MAX_LENGTH: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("invalid argon2 parameters: {0}")]
    Params(String),
    #[error("password hashing failed: {0}")]
    Hash(String),
}

#[derive(Clone)]
pub struct Hasher {
    argon2: Argon2<'static>,
    params: Params,
}

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Hasher({:?})", self.params)
    }
}

/// The outcome of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verified {
    No,
    Yes,
    /// Correct, but hashed under other parameters: store a fresh hash.
    YesRehash,
}

impl Hasher {
    pub fn new(settings: &PasswordSettings) -> Result<Hasher, PasswordError> {
        let params = Params::new(
            settings.argon2_memory_kib,
            settings.argon2_iterations,
            settings.argon2_parallelism,
            None,
        )
        .map_err(|e| PasswordError::Params(e.to_string()))?;
        Ok(Hasher {
            argon2: Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone()),
            params,
        })
    }

    pub fn hash(&self, password: &str) -> Result<String, PasswordError> {
        let salt_bytes =
            crate::crypto::random_bytes::<16>().map_err(|e| PasswordError::Hash(e.to_string()))?;
        let salt =
            SaltString::encode_b64(&salt_bytes).map_err(|e| PasswordError::Hash(e.to_string()))?;
        self.argon2
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| PasswordError::Hash(e.to_string()))
    }

    pub fn is_parsable(&self, phc: &str) -> bool {
        PasswordHash::new(phc).is_ok()
    }

    /// Checks `password` against a PHC string; a malformed stored hash counts as a mismatch.
    pub fn verify(&self, password: &str, phc: &str) -> Verified {
        let Ok(parsed) = PasswordHash::new(phc) else {
            return Verified::No;
        };
        if self
            .argon2
            .verify_password(password.as_bytes(), &parsed)
            .is_err()
        {
            return Verified::No;
        }
        let current = parsed.algorithm.as_str() == Algorithm::Argon2id.ident().as_str()
            && Params::try_from(&parsed).is_ok_and(|p| {
                p.m_cost() == self.params.m_cost()
                    && p.t_cost() == self.params.t_cost()
                    && p.p_cost() == self.params.p_cost()
            });
        if current {
            Verified::Yes
        } else {
            Verified::YesRehash
        }
    }
}

/// The 11,611 most common passwords of eight or more characters (lower-cased), taken from the
/// zxcvbn frequency lists (MIT licence), which rank passwords seen in public breaches.
const COMMON_PASSWORDS: &str = include_str!("common_passwords.txt");

fn is_common(password: &str) -> bool {
    static SET: OnceLock<HashSet<&'static str>> = OnceLock::new();
    SET.get_or_init(|| COMMON_PASSWORDS.lines().collect())
        .contains(password.to_lowercase().as_str())
}

/// The rules every new password meets; the error says what is wrong, never echoing it.
pub fn check_policy(password: &str, email: &str, min_length: usize) -> Result<(), String> {
    let chars = password.chars().count();
    if chars < min_length {
        return Err(format!("must be at least {min_length} characters"));
    }
    if chars > MAX_LENGTH {
        return Err(format!("must be at most {MAX_LENGTH} characters"));
    }
    if password.trim().eq_ignore_ascii_case(email.trim()) {
        return Err("must not be the email address".into());
    }
    if is_common(password) {
        return Err("is one of the most commonly used passwords; choose another".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(memory: u32) -> PasswordSettings {
        PasswordSettings {
            argon2_memory_kib: memory,
            argon2_iterations: 1,
            argon2_parallelism: 1,
            min_length: 8,
            hash_threads: 1,
            hash_queue: 4,
        }
    }

    #[test]
    fn hashes_verify_and_notice_old_parameters() {
        let old = Hasher::new(&settings(1024)).expect("params");
        let new = Hasher::new(&settings(2048)).expect("params");
        let hash = old.hash("correct horse").expect("hash");
        assert!(hash.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"), "{hash}");
        assert_eq!(old.verify("correct horse", &hash), Verified::Yes);
        assert_eq!(old.verify("wrong horse", &hash), Verified::No);
        assert_eq!(new.verify("correct horse", &hash), Verified::YesRehash);
        assert_eq!(new.verify("correct horse", "not a hash"), Verified::No);
        assert_ne!(hash, old.hash("correct horse").expect("hash"), "salted");
    }

    #[test]
    fn policy() {
        let email = "ann@example.com";
        assert!(check_policy("short", email, 8).is_err());
        assert!(check_policy("long enough", email, 8).is_ok());
        assert!(check_policy(&"x".repeat(1025), email, 8).is_err());
        assert!(check_policy("Ann@Example.com", email, 8).is_err());
        assert!(
            check_policy("PASSWORD1", email, 8).is_err(),
            "common, any case"
        );
        assert!(check_policy("trustno1", email, 8).is_err());
        assert!(check_policy("correct horse battery", email, 8).is_ok());
    }
}
