//! Where the private halves of signing keys live (`keys.store`): the one seam between the key
//! lifecycle and its storage.
//!
//! - `Files`: PKCS#8 PEM files in `keys.dir` (`files.rs`); replicas share the directory.
//! - `Database`: the `signing_key_material` table, each key sealed with AES-256-GCM under the
//!   key-encryption key (KEK), which is given to the process (environment or a file) and never
//!   stored. Replicas then share nothing but the database. Each seal takes a fresh random
//!   96-bit nonce; the associated data is the kid and the algorithm, so a sealed key moved to
//!   another row does not open; `kek_id` (a truncated SHA-256 of the KEK, which says nothing
//!   of it) names the KEK a row is sealed under, so the right one is picked and a wrong one is
//!   named as such at start-up.
//!
//! Changing the KEK: give the new one as the KEK and the old one as the previous KEK, run
//! `tessera keys rewrap` (every row resealed under the new KEK in one transaction), then drop
//! the old one. Until the rewrap, both open.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use diesel::Connection;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use serde::Serialize;

use super::error::KeyError;
pub use super::error::StoreError;
use super::files;
use crate::config::{KeySettings, KeyStoreKind, Secret};
use crate::crypto::random_bytes;
use crate::db::DbConnection;
use crate::db::models::SigningKeyRow;
use crate::db::repo::signing_key_material::{self, KeyMaterialRow};
use crate::db::repo::signing_keys;

/// The sealed form's version, so a later cipher can be told apart.
const PREFIX: &str = "v1.";
/// What the KEK id is the hash of, besides the KEK: this id means nothing elsewhere.
const KEK_ID_CONTEXT: &[u8] = b"tessera key-encryption key id v1\0";
/// The row holding the key that seals TOTP secrets (`mfa::SecretBox`) with the database store.
/// It is no signing key, so no `signing_keys` row names it (and a kid, a 43-character
/// thumbprint, never looks like this), and it is sealed under the KEK like them.
pub const SECRETS_KEY_ROW: &str = "totp-secrets-key";
/// The algorithm in its associated data: the AES-256-GCM key it is.
pub const SECRETS_KEY_ALGORITHM: &str = "A256GCM";
/// The secrets key's file in `keys.dir` (`mfa::sealed`), taken over by the database store.
const SECRETS_KEY_FILE: &str = "secrets.key";

/// A key-encryption key and its public name.
pub struct Kek {
    id: String,
    key: LessSafeKey,
}

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kek")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Kek {
    /// From the base64 text (surrounding white space ignored); `setting` names it in errors.
    pub fn parse(text: &str, setting: &'static str) -> Result<Kek, StoreError> {
        let text = text.trim();
        let bytes = STANDARD
            .decode(text)
            .or_else(|_| STANDARD_NO_PAD.decode(text))
            .map_err(|_| StoreError::BadKek(setting))?;
        if bytes.len() != 32 {
            return Err(StoreError::BadKek(setting));
        }
        let key = UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| StoreError::BadKek(setting))?;
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(KEK_ID_CONTEXT);
        ctx.update(&bytes);
        let id = crate::crypto::hex(&ctx.finish().as_ref()[..8]);
        Ok(Kek {
            id,
            key: LessSafeKey::new(key),
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    fn aad(kid: &str, algorithm: &str) -> Vec<u8> {
        format!("tessera signing key v1\0{kid}\0{algorithm}").into_bytes()
    }

    /// `pkcs8_der` sealed for the key `kid` of `algorithm`: text for the `sealed` column.
    pub fn seal(&self, kid: &str, algorithm: &str, pkcs8_der: &[u8]) -> Result<String, StoreError> {
        let nonce: [u8; NONCE_LEN] = random_bytes()?;
        let mut sealed = pkcs8_der.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(Kek::aad(kid, algorithm)),
                &mut sealed,
            )
            .map_err(|_| StoreError::Unreadable {
                kid: kid.to_string(),
                kek_id: self.id.clone(),
            })?;
        let mut stored = nonce.to_vec();
        stored.extend_from_slice(&sealed);
        Ok(format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(stored)))
    }

    /// The PKCS#8 DER sealed in `stored` for `kid` and `algorithm`.
    pub fn open(&self, kid: &str, algorithm: &str, stored: &str) -> Result<Vec<u8>, StoreError> {
        let unreadable = || StoreError::Unreadable {
            kid: kid.to_string(),
            kek_id: self.id.clone(),
        };
        let bytes = stored
            .strip_prefix(PREFIX)
            .and_then(|b64| URL_SAFE_NO_PAD.decode(b64).ok())
            .filter(|bytes| bytes.len() > NONCE_LEN)
            .ok_or_else(unreadable)?;
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| unreadable())?;
        let mut sealed = sealed.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(Kek::aad(kid, algorithm)), &mut sealed)
            .map_err(|_| unreadable())?;
        Ok(plain.to_vec())
    }
}

/// The KEK that seals, and the one before it, which still opens until `rewrap`.
#[derive(Debug)]
pub struct Keks {
    current: Kek,
    previous: Option<Kek>,
}

impl Keks {
    /// From the settings; `NoKek` if none is given.
    pub fn from_settings(settings: &KeySettings) -> Result<Keks, StoreError> {
        let current = read_kek(
            "keys.encryption_key",
            settings.encryption_key.as_ref(),
            settings.encryption_key_file.as_deref(),
        )?
        .ok_or(StoreError::NoKek)?;
        let previous = read_kek(
            "keys.previous_encryption_key",
            settings.previous_encryption_key.as_ref(),
            settings.previous_encryption_key_file.as_deref(),
        )?;
        Ok(Keks { current, previous })
    }

    pub fn current(&self) -> &Kek {
        &self.current
    }

    /// The KEK a row says it is sealed under, if given.
    fn for_row(&self, kid: &str, kek_id: &str) -> Result<&Kek, StoreError> {
        [Some(&self.current), self.previous.as_ref()]
            .into_iter()
            .flatten()
            .find(|kek| kek.id == kek_id)
            .ok_or_else(|| StoreError::UnknownKek {
                kid: kid.to_string(),
                kek_id: kek_id.to_string(),
                current: self.current.id.clone(),
                previous: match &self.previous {
                    Some(previous) => format!(" and the previous one {}", previous.id),
                    None => " and no previous one".to_string(),
                },
            })
    }

    fn open(&self, row: &SigningKeyRow, material: &KeyMaterialRow) -> Result<Vec<u8>, StoreError> {
        self.for_row(&row.kid, &material.kek_id)?
            .open(&row.kid, &row.algorithm, &material.sealed)
    }
}

fn read_kek(
    setting: &'static str,
    value: Option<&Secret>,
    file: Option<&Path>,
) -> Result<Option<Kek>, StoreError> {
    let value = value.filter(|v| !v.is_empty());
    let file = file.filter(|f| !f.as_os_str().is_empty());
    match (value, file) {
        (Some(_), Some(_)) => Err(StoreError::BothGiven(setting)),
        (Some(value), None) => Kek::parse(value.expose(), setting).map(Some),
        (None, Some(path)) => {
            use std::os::unix::fs::PermissionsExt;
            let text = std::fs::read_to_string(path).map_err(|source| StoreError::KekFile {
                path: path.to_path_buf(),
                source,
            })?;
            if let Ok(meta) = std::fs::metadata(path)
                && meta.permissions().mode() & 0o077 != 0
            {
                tracing::warn!(
                    path = %path.display(),
                    "key-encryption key file is readable by others; chmod 600 it"
                );
            }
            Kek::parse(&text, setting).map(Some)
        }
        (None, None) => Ok(None),
    }
}

/// Where the private keys are, as `keys.store` says.
#[derive(Debug)]
pub enum KeyMaterialStore {
    Files(PathBuf),
    Database(Box<Keks>),
}

impl KeyMaterialStore {
    /// The store the settings name, its KEK read and checked (not yet against any row).
    pub fn open(settings: &KeySettings) -> Result<KeyMaterialStore, KeyError> {
        Ok(match settings.store {
            KeyStoreKind::Files => KeyMaterialStore::Files(settings.dir.clone()),
            KeyStoreKind::Database => {
                KeyMaterialStore::Database(Box::new(Keks::from_settings(settings)?))
            }
        })
    }

    /// Makes the place ready to write to (the files store's directory).
    pub fn prepare(&self) -> Result<(), KeyError> {
        match self {
            KeyMaterialStore::Files(dir) => files::ensure_dir(dir),
            KeyMaterialStore::Database(_) => Ok(()),
        }
    }

    /// Stores a new key's private half, before its `signing_keys` row is written.
    pub fn write(
        &self,
        conn: &mut DbConnection,
        kid: &str,
        algorithm: &str,
        pkcs8_der: &[u8],
        now: i64,
    ) -> Result<(), KeyError> {
        match self {
            KeyMaterialStore::Files(dir) => files::write_private_key(dir, kid, pkcs8_der).map(drop),
            KeyMaterialStore::Database(keks) => {
                let row = KeyMaterialRow {
                    kid: kid.to_string(),
                    kek_id: keks.current.id.clone(),
                    sealed: keks.current.seal(kid, algorithm, pkcs8_der)?,
                    created_at: now,
                };
                Ok(signing_key_material::insert(conn, &row)?)
            }
        }
    }

    /// Undoes `write` when the key's row could not be written; best effort.
    pub fn discard(&self, conn: &mut DbConnection, kid: &str) {
        match self {
            KeyMaterialStore::Files(dir) => {
                let _ = std::fs::remove_file(files::key_path(dir, kid));
            }
            KeyMaterialStore::Database(_) => {
                if let Err(error) = signing_key_material::delete(conn, kid) {
                    tracing::warn!(%kid, %error, "unused sealed signing key not deleted");
                }
            }
        }
    }

    /// The PKCS#8 DER of the key `row` describes.
    pub fn read(&self, conn: &mut DbConnection, row: &SigningKeyRow) -> Result<Vec<u8>, KeyError> {
        match self {
            KeyMaterialStore::Files(dir) => {
                let path = files::key_path(dir, &row.kid);
                files::read_private_key(&path).map_err(|e| match e {
                    KeyError::Io { source, .. }
                        if source.kind() == std::io::ErrorKind::NotFound =>
                    {
                        KeyError::Missing {
                            kid: row.kid.clone(),
                            state: row.state.clone(),
                            path: path.clone(),
                        }
                    }
                    other => other,
                })
            }
            KeyMaterialStore::Database(keks) => {
                let material = signing_key_material::find(conn, &row.kid)?.ok_or_else(|| {
                    StoreError::NoMaterial {
                        kid: row.kid.clone(),
                        state: row.state.clone(),
                    }
                })?;
                Ok(keks.open(row, &material)?)
            }
        }
    }

    /// Where the key `kid` is kept, for error messages.
    pub fn location(&self, kid: &str) -> PathBuf {
        match self {
            KeyMaterialStore::Files(dir) => files::key_path(dir, kid),
            KeyMaterialStore::Database(_) => PathBuf::from(format!("signing_key_material[{kid}]")),
        }
    }
}

/// Deletes the private half of every retired key still stored; returns their kids. Needs no
/// KEK: the files store deletes files, the database store rows.
pub fn remove_retired(
    conn: &mut DbConnection,
    settings: &KeySettings,
) -> Result<Vec<String>, KeyError> {
    match settings.store {
        KeyStoreKind::Files => {
            let mut deleted = Vec::new();
            for kid in signing_keys::list_retired(conn)? {
                match files::remove_private_key(&settings.dir, &kid) {
                    Ok(true) => deleted.push(kid),
                    Ok(false) => {}
                    // The rest of the tick matters more; the next one tries again.
                    Err(error) => tracing::warn!(%kid, %error, "retired key file not deleted"),
                }
            }
            Ok(deleted)
        }
        KeyStoreKind::Database => Ok(signing_key_material::delete_retired(conn)?),
    }
}

/// The 32 bytes that seal TOTP secrets, with the database store: sealed under the KEK in the
/// `SECRETS_KEY_ROW` row, so replicas share it without a shared directory. The first start
/// with the database store takes over `keys.dir`'s `secrets.key` if there is one (so secrets
/// sealed before keep opening), or makes a random key; replicas starting at once agree through
/// the row's primary key. `None` with the files store, which keeps the key in `keys.dir`.
pub fn secrets_key(
    conn: &mut DbConnection,
    settings: &KeySettings,
    now: i64,
) -> Result<Option<Vec<u8>>, KeyError> {
    match KeyMaterialStore::open(settings)? {
        KeyMaterialStore::Files(_) => Ok(None),
        KeyMaterialStore::Database(keks) => Ok(Some(
            secrets_key_in_database(conn, &keks, &settings.dir, now)?.0,
        )),
    }
}

/// The secrets key from its row, stored first if missing; whether this call stored it.
fn secrets_key_in_database(
    conn: &mut DbConnection,
    keks: &Keks,
    dir: &Path,
    now: i64,
) -> Result<(Vec<u8>, bool), KeyError> {
    let open = |material: &KeyMaterialRow| -> Result<Vec<u8>, KeyError> {
        Ok(keks.for_row(SECRETS_KEY_ROW, &material.kek_id)?.open(
            SECRETS_KEY_ROW,
            SECRETS_KEY_ALGORITHM,
            &material.sealed,
        )?)
    };
    let from_file = read_secrets_key_file(dir)?;
    if let Some(material) = signing_key_material::find(conn, SECRETS_KEY_ROW)? {
        let key = open(&material)?;
        // A leftover file that is not the database's key means two keys sealed secrets: say so
        // rather than let the file's secrets stop opening unnoticed.
        if from_file
            .as_ref()
            .is_some_and(|file| !crate::crypto::constant_time_eq(file, &key))
        {
            return Err(StoreError::SecretsKeyDiffers {
                path: dir.join(SECRETS_KEY_FILE),
            }
            .into());
        }
        return Ok((key, false));
    }
    let key = match from_file {
        Some(bytes) => bytes,
        // A fresh key would open none of the secrets already sealed.
        None if crate::mfa::store::any_totp(conn)? => {
            return Err(StoreError::SecretsKeyMissing {
                path: dir.join(SECRETS_KEY_FILE),
            }
            .into());
        }
        None => random_bytes::<32>().map_err(StoreError::from)?.to_vec(),
    };
    let row = KeyMaterialRow {
        kid: SECRETS_KEY_ROW.to_string(),
        kek_id: keks.current.id.clone(),
        sealed: keks
            .current
            .seal(SECRETS_KEY_ROW, SECRETS_KEY_ALGORITHM, &key)?,
        created_at: now,
    };
    match signing_key_material::insert(conn, &row) {
        Ok(()) => {
            tracing::info!("the key that seals TOTP secrets is now in the database");
            Ok((key, true))
        }
        // Another replica stored one first: everyone uses that one.
        Err(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _,
        )) => {
            let material =
                signing_key_material::find(conn, SECRETS_KEY_ROW)?.ok_or(KeyError::Conflict)?;
            Ok((open(&material)?, false))
        }
        Err(e) => Err(e.into()),
    }
}

/// `keys.dir`'s `secrets.key`, if there is one.
fn read_secrets_key_file(dir: &Path) -> Result<Option<Vec<u8>>, KeyError> {
    let path = dir.join(SECRETS_KEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => STANDARD
            .decode(text.trim())
            .ok()
            .filter(|bytes| bytes.len() == 32)
            .map(Some)
            .ok_or_else(|| StoreError::BadSecretsKey { path }.into()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(StoreError::SecretsKeyFile { path, source }.into()),
    }
}

/// What `import_files` did.
#[derive(Debug, Serialize)]
pub struct Imported {
    /// Keys copied from their files into the database.
    pub imported: Vec<String>,
    /// Keys the database already held (a second run imports nothing).
    pub already_stored: Vec<String>,
    /// Whether `secrets.key` (which seals TOTP secrets) was copied in by this run.
    pub secrets_key_imported: bool,
    /// The directory the files were read from; they are left in place.
    pub dir: PathBuf,
}

/// Copies the private key of every published key from `keys.dir` into the database, sealed
/// under the current KEK, in one transaction, then runs `check` in it (the use case loads every
/// key from the database as a server would, so a file holding another key than its name is
/// refused before anything is kept). Idempotent; the files are left where they are.
pub fn import_files(
    conn: &mut DbConnection,
    settings: &KeySettings,
    now: i64,
    check: impl Fn(&mut DbConnection) -> Result<(), KeyError>,
) -> Result<Imported, KeyError> {
    let KeyMaterialStore::Database(keks) = KeyMaterialStore::open(settings)? else {
        return Err(StoreError::NotDatabase.into());
    };
    let files = KeyMaterialStore::Files(settings.dir.clone());
    let store = KeyMaterialStore::Database(keks);
    conn.transaction(|conn| {
        let mut done = Imported {
            imported: Vec::new(),
            already_stored: Vec::new(),
            secrets_key_imported: false,
            dir: settings.dir.clone(),
        };
        let KeyMaterialStore::Database(keks) = &store else {
            return Err(StoreError::NotDatabase.into());
        };
        let (_, stored) = secrets_key_in_database(conn, keks, &settings.dir, now)?;
        done.secrets_key_imported = stored && settings.dir.join(SECRETS_KEY_FILE).exists();
        for row in signing_keys::list_published(conn)? {
            if signing_key_material::find(conn, &row.kid)?.is_some() {
                done.already_stored.push(row.kid);
                continue;
            }
            let der = files.read(conn, &row)?;
            store.write(conn, &row.kid, &row.algorithm, &der, now)?;
            done.imported.push(row.kid);
        }
        check(conn)?;
        Ok::<_, KeyError>(done)
    })
}

/// What `rewrap` did.
#[derive(Debug, Serialize)]
pub struct Rewrapped {
    /// The KEK every key is now sealed under.
    pub kek_id: String,
    /// Keys resealed under it.
    pub rewrapped: Vec<String>,
    /// Keys already sealed under it.
    pub unchanged: Vec<String>,
}

/// Reseals every stored key under the current KEK, in one transaction: a key sealed under a
/// KEK that is neither the current nor the previous one stops it, and nothing changes.
pub fn rewrap(conn: &mut DbConnection, settings: &KeySettings) -> Result<Rewrapped, KeyError> {
    let KeyMaterialStore::Database(keks) = KeyMaterialStore::open(settings)? else {
        return Err(StoreError::NotDatabase.into());
    };
    conn.transaction(|conn| {
        let algorithms: std::collections::HashMap<String, String> = signing_keys::list_all(conn)?
            .into_iter()
            .map(|row| (row.kid, row.algorithm))
            .collect();
        let mut done = Rewrapped {
            kek_id: keks.current.id.clone(),
            rewrapped: Vec::new(),
            unchanged: Vec::new(),
        };
        for material in signing_key_material::list(conn)? {
            if material.kek_id == keks.current.id {
                done.unchanged.push(material.kid);
                continue;
            }
            // A row without its key (an interrupted creation) has no algorithm to open with.
            let Some(algorithm) = algorithms
                .get(&material.kid)
                .map(String::as_str)
                .or((material.kid == SECRETS_KEY_ROW).then_some(SECRETS_KEY_ALGORITHM))
            else {
                continue;
            };
            let der = keks.for_row(&material.kid, &material.kek_id)?.open(
                &material.kid,
                algorithm,
                &material.sealed,
            )?;
            let sealed = keks.current.seal(&material.kid, algorithm, &der)?;
            let changed = signing_key_material::reseal(
                conn,
                &material.kid,
                &material.kek_id,
                &keks.current.id,
                &sealed,
            )?;
            if changed != 1 {
                return Err(KeyError::Conflict);
            }
            done.rewrapped.push(material.kid);
        }
        Ok::<_, KeyError>(done)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kek(byte: u8) -> Kek {
        Kek::parse(&STANDARD.encode([byte; 32]), "test").expect("kek")
    }

    #[test]
    fn a_sealed_key_opens_under_its_kek_for_its_kid_and_algorithm_only() {
        let a = kek(1);
        let sealed = a.seal("kid-1", "RS256", b"pkcs8 der bytes").expect("seal");
        assert_eq!(
            a.open("kid-1", "RS256", &sealed).expect("open"),
            b"pkcs8 der bytes"
        );
        assert!(a.open("kid-2", "RS256", &sealed).is_err(), "another row");
        assert!(
            a.open("kid-1", "ES256", &sealed).is_err(),
            "another algorithm"
        );
        assert!(
            kek(2).open("kid-1", "RS256", &sealed).is_err(),
            "another KEK"
        );
        assert_ne!(
            a.seal("kid-1", "RS256", b"same").ok(),
            a.seal("kid-1", "RS256", b"same").ok(),
            "a fresh nonce each time"
        );
        let mut tampered = sealed.into_bytes();
        let last = tampered.len() - 1;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).expect("utf-8");
        assert!(a.open("kid-1", "RS256", &tampered).is_err());
    }

    #[test]
    fn only_32_bytes_of_base64_make_a_kek_and_its_id_is_not_the_key() {
        let short = STANDARD.encode([0u8; 31]);
        for bad in ["", "c2hvcnQ=", "not base64 at all!", short.as_str()] {
            assert!(
                matches!(
                    Kek::parse(bad, "keys.encryption_key"),
                    Err(StoreError::BadKek(_))
                ),
                "{bad:?}"
            );
        }
        let text = STANDARD.encode([7u8; 32]);
        let parsed = Kek::parse(&format!("  {text}\n"), "k").expect("trimmed");
        assert_eq!(parsed.id().len(), 16);
        assert!(!text.contains(parsed.id()));
        assert_eq!(parsed.id(), kek(7).id());
        assert_ne!(parsed.id(), kek(8).id());
        assert!(!format!("{parsed:?}").contains(&text));
    }
}
