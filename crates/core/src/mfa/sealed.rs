//! Secrets Tessera must read back (a TOTP secret), sealed with AES-256-GCM under a key kept
//! outside the database: `secrets.key` in the keys directory, 32 random bytes made on first
//! start with mode 0600, like the signing keys. A dump of the database alone opens nothing.
//!
//! `ring::aead` does the sealing: ring is already how Tessera signs and hashes, so no new crate
//! is needed. Each seal takes a fresh random 96-bit nonce, stored in front of the ciphertext;
//! the owner's id is the associated data, so a sealed value copied into another person's row
//! does not open there.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};

use crate::crypto::{RandomError, random_bytes};

const KEY_FILE: &str = "secrets.key";
/// The stored form's version, so a later key or cipher can be told apart.
const PREFIX: &str = "v1.";

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a secrets key (32 bytes, base64); restore it from a backup")]
    BadKey { path: PathBuf },
    #[error(transparent)]
    Random(#[from] RandomError),
    /// Not sealed by this key for this owner: a wrong key file, a row moved, or tampering.
    #[error("a sealed secret does not open with this key")]
    Unreadable,
}

/// The key that seals and opens secrets.
pub struct SecretBox {
    key: LessSafeKey,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(..)")
    }
}

impl SecretBox {
    /// Reads `secrets.key` from `dir`, or makes it (0600) on first start.
    pub fn load_or_create(dir: &Path) -> Result<SecretBox, SealError> {
        let path = dir.join(KEY_FILE);
        let io = |action: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |source| SealError::Io {
                action,
                path,
                source,
            }
        };
        if !path.exists() {
            fs::create_dir_all(dir).map_err(io("cannot create the keys directory", dir))?;
            let bytes: [u8; 32] = random_bytes()?;
            // Replicas sharing the directory may start together: each writes its own temporary
            // file, and a hard link (which fails when the name exists) makes the first one the
            // key; the others read the winner's, so all of them seal with one key.
            let nonce: [u8; 8] = random_bytes()?;
            let temp = dir.join(format!(".{KEY_FILE}.{}.tmp", crate::crypto::hex(&nonce)));
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&temp)
                .map_err(io("cannot write", &temp))?;
            file.write_all(format!("{}\n", STANDARD.encode(bytes)).as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(io("cannot write", &temp))?;
            let linked = fs::hard_link(&temp, &path);
            let _ = fs::remove_file(&temp);
            match linked {
                Ok(()) => {
                    tracing::info!(path = %path.display(), "made the key that seals TOTP secrets")
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(source) => {
                    return Err(SealError::Io {
                        action: "cannot write",
                        path,
                        source,
                    });
                }
            }
        }
        if let Ok(meta) = fs::metadata(&path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(path = %path.display(), "secrets key is readable by others; chmod 600 it");
        }
        let text = fs::read_to_string(&path).map_err(io("cannot read", &path))?;
        let bad = || SealError::BadKey { path: path.clone() };
        let bytes = STANDARD.decode(text.trim()).map_err(|_| bad())?;
        if bytes.len() != 32 {
            return Err(bad());
        }
        SecretBox::from_key(&bytes).ok_or_else(bad)
    }

    /// From the 32 bytes the database store keeps (`keys::store::secrets_key`).
    pub fn from_secret(bytes: &[u8]) -> Option<SecretBox> {
        SecretBox::from_key(bytes)
    }

    fn from_key(bytes: &[u8]) -> Option<SecretBox> {
        let key = UnboundKey::new(&AES_256_GCM, bytes).ok()?;
        Some(SecretBox {
            key: LessSafeKey::new(key),
        })
    }

    /// `secret`, sealed for `owner`: text for a database column.
    pub fn seal(&self, owner: &str, secret: &[u8]) -> Result<String, SealError> {
        let nonce_bytes: [u8; NONCE_LEN] = random_bytes()?;
        let mut sealed = secret.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce_bytes),
                Aad::from(owner.as_bytes()),
                &mut sealed,
            )
            .map_err(|_| SealError::Unreadable)?;
        let mut stored = nonce_bytes.to_vec();
        stored.extend_from_slice(&sealed);
        Ok(format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(stored)))
    }

    /// The secret sealed for `owner` in `stored`.
    pub fn open(&self, owner: &str, stored: &str) -> Result<Vec<u8>, SealError> {
        let bytes = stored
            .strip_prefix(PREFIX)
            .and_then(|b64| URL_SAFE_NO_PAD.decode(b64).ok())
            .filter(|bytes| bytes.len() > NONCE_LEN)
            .ok_or(SealError::Unreadable)?;
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Unreadable)?;
        let mut sealed = sealed.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(owner.as_bytes()), &mut sealed)
            .map_err(|_| SealError::Unreadable)?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret_box() -> (tempfile::TempDir, SecretBox) {
        let dir = tempfile::tempdir().unwrap();
        let sealed = SecretBox::load_or_create(dir.path()).unwrap();
        (dir, sealed)
    }

    #[test]
    fn a_sealed_secret_opens_for_its_owner_only() {
        let (_dir, key) = secret_box();
        let sealed = key
            .seal("user-a", b"twenty bytes secret!")
            .unwrap_or_default();
        assert!(!sealed.contains("twenty"));
        assert_eq!(
            key.open("user-a", &sealed).ok().as_deref(),
            Some(&b"twenty bytes secret!"[..])
        );
        assert!(matches!(
            key.open("user-b", &sealed),
            Err(SealError::Unreadable)
        ));
        // Two seals of the same secret differ: the nonce is fresh each time.
        assert_ne!(
            key.seal("user-a", b"same").ok(),
            key.seal("user-a", b"same").ok()
        );
    }

    #[test]
    fn another_key_or_a_changed_byte_opens_nothing() {
        let (_a, key_a) = secret_box();
        let (_b, key_b) = secret_box();
        let sealed = key_a.seal("u", b"secret").unwrap_or_default();
        assert!(key_b.open("u", &sealed).is_err());
        let mut tampered = sealed.clone().into_bytes();
        let last = tampered.len() - 1;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap_or_default();
        assert!(key_a.open("u", &tampered).is_err());
        assert!(key_a.open("u", "v1.").is_err());
        assert!(key_a.open("u", "not sealed").is_err());
    }

    #[test]
    fn the_key_file_is_made_once_private_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let first = SecretBox::load_or_create(dir.path()).unwrap();
        let sealed = first.seal("u", b"kept").unwrap_or_default();
        let mode = fs::metadata(dir.path().join(KEY_FILE))
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or(0);
        assert_eq!(mode, 0o600);
        let again = SecretBox::load_or_create(dir.path()).unwrap();
        assert_eq!(again.open("u", &sealed).ok().as_deref(), Some(&b"kept"[..]));
    }

    #[test]
    fn replicas_starting_together_share_one_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        let boxes: Vec<SecretBox> = (0..8)
            .map(|_| {
                let path = path.clone();
                std::thread::spawn(move || SecretBox::load_or_create(&path))
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap().unwrap())
            .collect();
        let sealed = boxes[0].seal("u", b"one key").unwrap();
        for other in &boxes {
            assert_eq!(other.open("u", &sealed).unwrap(), b"one key");
        }
        let names: Vec<_> = fs::read_dir(&path)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            names,
            vec![std::ffi::OsString::from(KEY_FILE)],
            "no temporary file is left"
        );
    }

    #[test]
    fn a_damaged_key_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(KEY_FILE), "c2hvcnQ=\n").unwrap();
        let err = SecretBox::load_or_create(dir.path())
            .err()
            .map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("is not a secrets key")));
    }
}
