//! Password hashing: argon2id, PHC strings, parameters from config. Slow on purpose, so callers
//! on the server run it on a bounded pool, never on an async worker.

use argon2::password_hash::{Output, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

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
        let salt =
            crate::crypto::random_bytes::<16>().map_err(|e| PasswordError::Hash(e.to_string()))?;
        let mut output = [0u8; 32];
        compute(
            &self.argon2,
            &self.params,
            password.as_bytes(),
            &salt,
            &mut output,
        )?;
        let salt = SaltString::encode_b64(&salt).map_err(|e| PasswordError::Hash(e.to_string()))?;
        let output = Output::new(&output).map_err(|e| PasswordError::Hash(e.to_string()))?;
        Ok(format!(
            "${}$v=19$m={},t={},p={}${}${}",
            Algorithm::Argon2id.ident(),
            self.params.m_cost(),
            self.params.t_cost(),
            self.params.p_cost(),
            salt.as_str(),
            output
        ))
    }

    pub fn is_parsable(&self, phc: &str) -> bool {
        PasswordHash::new(phc).is_ok()
    }

    /// Checks `password` against a PHC string; a malformed stored hash counts as a mismatch.
    pub fn verify(&self, password: &str, phc: &str) -> Verified {
        let Ok(parsed) = PasswordHash::new(phc) else {
            return Verified::No;
        };
        let (Ok(algorithm), Ok(params), Some(salt), Some(expected)) = (
            Algorithm::try_from(parsed.algorithm),
            Params::try_from(&parsed),
            parsed.salt,
            parsed.hash,
        ) else {
            return Verified::No;
        };
        let version = parsed
            .version
            .and_then(|v| Version::try_from(v).ok())
            .unwrap_or_default();
        let mut salt_buf = [0u8; 64];
        let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
            return Verified::No;
        };
        let mut output = vec![0u8; expected.len()];
        let argon2 = Argon2::new(algorithm, version, params.clone());
        if compute(&argon2, &params, password.as_bytes(), salt, &mut output).is_err()
            || !crate::crypto::constant_time_eq(&output, expected.as_bytes())
        {
            return Verified::No;
        }
        let current = algorithm == Algorithm::Argon2id
            && version == Version::V0x13
            && params.m_cost() == self.params.m_cost()
            && params.t_cost() == self.params.t_cost()
            && params.p_cost() == self.params.p_cost();
        if current {
            Verified::Yes
        } else {
            Verified::YesRehash
        }
    }
}

/// argon2's working memory (19 MiB at the default cost), one buffer per hash running. A buffer
/// is reused from one hash to the next while logins keep coming: allocating it per hash costs
/// page faults and zeroing, about a sixth of a hash on these machines. Once no hash has needed
/// it for `IDLE_MEMORY_RELEASE`, `release_idle_memory` gives it back to the system, so a login
/// storm leaves no lasting footprint (issue 18: RSS stayed at 54 MiB after four logins).
static SCRATCH: Mutex<Vec<Scratch>> = Mutex::new(Vec::new());

/// How long an unused argon2 buffer is kept for the next hash.
pub const IDLE_MEMORY_RELEASE: Duration = Duration::from_secs(2);

struct Scratch {
    blocks: Vec<Block>,
    last_used: Instant,
}

fn scratch() -> std::sync::MutexGuard<'static, Vec<Scratch>> {
    // The lock only guards a list of buffers; one left mid-update by a panic is still a list.
    SCRATCH.lock().unwrap_or_else(PoisonError::into_inner)
}

fn take_scratch(block_count: usize) -> Vec<Block> {
    let reused = {
        let mut pool = scratch();
        pool.iter()
            .position(|s| s.blocks.len() == block_count)
            .map(|i| pool.swap_remove(i).blocks)
    };
    reused.unwrap_or_else(|| {
        large_blocks_return_to_the_system_when_freed();
        vec![Block::default(); block_count]
    })
}

/// glibc raises its mmap threshold to the size of the largest block freed (up to 32 MiB): after
/// the first argon2 buffer is freed, the next ones come from the heap, and freeing them keeps
/// their pages in the process. A fixed threshold keeps every buffer of 1 MiB or more in its own
/// mapping, which `free` unmaps.
fn large_blocks_return_to_the_system_when_freed() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: mallopt only sets an allocator parameter; it is called once, before the
        // buffers it concerns are allocated, and any value is valid for M_MMAP_THRESHOLD.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
        }
    });
}

/// Frees the argon2 buffers no hash has used for `idle`; returns how many.
pub fn release_idle_memory(idle: Duration) -> usize {
    let released: Vec<Scratch> = {
        let mut pool = scratch();
        let (keep, release) = pool.drain(..).partition(|s| s.last_used.elapsed() < idle);
        *pool = keep;
        release
    };
    released.len()
}

/// Frees idle argon2 buffers every second until the process ends.
pub fn spawn_idle_memory_release() {
    tokio::spawn(async {
        let mut ticker = tokio::time::interval(Duration::from_secs(1));
        loop {
            ticker.tick().await;
            release_idle_memory(IDLE_MEMORY_RELEASE);
        }
    });
}

fn compute(
    argon2: &Argon2<'_>,
    params: &Params,
    password: &[u8],
    salt: &[u8],
    output: &mut [u8],
) -> Result<(), PasswordError> {
    let mut blocks = take_scratch(params.block_count());
    let result = argon2
        .hash_password_into_with_memory(password, salt, output, &mut blocks[..])
        .map_err(|e| PasswordError::Hash(e.to_string()));
    scratch().push(Scratch {
        blocks,
        last_used: Instant::now(),
    });
    result
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

    fn rss_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").expect("status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("VmRSS")
    }

    #[test]
    fn an_idle_argon2_buffer_goes_back_to_the_system() {
        // A size no other test hashes with, so the pool's buffer of it is this test's.
        let kib = 19 * 1024 + 8;
        let hasher = Hasher::new(&settings(kib)).expect("params");
        let of_this_size = || {
            scratch()
                .iter()
                .filter(|s| s.blocks.len() == kib as usize)
                .count()
        };
        // Twice: the second buffer is the one glibc would have kept on its heap.
        for round in 0..2 {
            hasher.hash("correct horse").expect("hash");
            assert_eq!(of_this_size(), 1, "round {round}: kept for the next hash");
            assert_eq!(release_idle_memory(Duration::from_secs(3600)), 0);
            let before = rss_kib();
            release_idle_memory(Duration::ZERO);
            let freed = before.saturating_sub(rss_kib());
            assert_eq!(of_this_size(), 0, "round {round}");
            assert!(
                freed > 15 * 1024,
                "round {round}: only {freed} KiB of a {kib} KiB buffer went back"
            );
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
    fn hashes_interoperate_with_the_argon2_crates_own_phc_code() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let ours = Hasher::new(&settings(1024)).expect("params");
        let hash = ours.hash("correct horse").expect("hash");
        let parsed = PasswordHash::new(&hash).expect("a PHC string");
        assert!(
            Argon2::default()
                .verify_password(b"correct horse", &parsed)
                .is_ok()
        );
        assert!(
            Argon2::default()
                .verify_password(b"wrong horse", &parsed)
                .is_err()
        );

        let params = Params::new(1024, 1, 1, None).expect("params");
        let theirs = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password(
                b"correct horse",
                &SaltString::encode_b64(b"sixteen byte salt").expect("salt"),
            )
            .expect("hash")
            .to_string();
        assert_eq!(ours.verify("correct horse", &theirs), Verified::Yes);
        assert_eq!(ours.verify("wrong horse", &theirs), Verified::No);
        // argon2i and older cost parameters verify, and ask for a fresh hash.
        let argon2i = Argon2::new(
            Algorithm::Argon2i,
            Version::V0x13,
            Params::new(1024, 1, 1, None).expect("params"),
        )
        .hash_password(
            b"correct horse",
            &SaltString::encode_b64(b"sixteen byte salt").expect("salt"),
        )
        .expect("hash")
        .to_string();
        assert_eq!(ours.verify("correct horse", &argon2i), Verified::YesRehash);
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
