//! RS256 signing keys: generated in-process, their private halves kept where `keys.store` says
//! (`store.rs`: PKCS#8 PEM files (0600) in the keys directory, or sealed in the database),
//! their lifecycle state kept in the `signing_keys` table, published as a JWKS.
//!
//! Where the truth lives: the database says which key is `next`, `active`, `retiring` or
//! `retired`; the store holds the private halves. Replicas share both, so they agree.

mod error;
mod files;
pub mod lifecycle;
pub mod store;

use std::sync::{Arc, RwLock};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use diesel::Connection;
use serde::Serialize;
use tessera_proto::{Jwk, JwkSet};

use crate::config::KeySettings;
use crate::db::models::SigningKeyRow;
use crate::db::repo::signing_keys;
use crate::db::{DbConnection, DbError};

pub const ALGORITHM: &str = "RS256";

pub use error::KeyError;
pub use store::KeyMaterialStore;

impl From<diesel::result::Error> for KeyError {
    fn from(e: diesel::result::Error) -> Self {
        KeyError::Db(DbError::Query(e))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyState {
    /// Published so caches learn it, not yet signing.
    Next,
    /// Signs every new token.
    Active,
    /// Published so tokens it signed still verify; signs nothing new.
    Retiring,
    /// Gone from the JWKS.
    Retired,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Next => "next",
            KeyState::Active => "active",
            KeyState::Retiring => "retiring",
            KeyState::Retired => "retired",
        }
    }

    pub fn parse(s: &str) -> Result<KeyState, KeyError> {
        match s {
            "next" => Ok(KeyState::Next),
            "active" => Ok(KeyState::Active),
            "retiring" => Ok(KeyState::Retiring),
            "retired" => Ok(KeyState::Retired),
            other => Err(KeyError::UnknownState(other.to_string())),
        }
    }
}

/// A key pair parsed once at load; signing never re-parses it.
pub struct SigningKey {
    kid: String,
    state: KeyState,
    key_pair: KeyPair,
    /// The public half as a JWK (RFC 7517): exactly the members a verifier needs, nothing
    /// private.
    jwk: Jwk,
    decoding: jsonwebtoken::DecodingKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    fn from_key_pair(key_pair: KeyPair, state: KeyState) -> SigningKey {
        let public = key_pair.public_key();
        let n = URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero());
        let e = URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero());
        let kid = thumbprint(&n, &e);
        let decoding = jsonwebtoken::DecodingKey::from_rsa_raw_components(
            public.modulus().big_endian_without_leading_zero(),
            public.exponent().big_endian_without_leading_zero(),
        );
        SigningKey {
            decoding,
            jwk: Jwk {
                kty: "RSA".into(),
                use_: Some("sig".into()),
                key_ops: None,
                alg: Some(ALGORITHM.into()),
                kid: Some(kid.clone()),
                n: Some(n),
                e: Some(e),
            },
            kid,
            state,
            key_pair,
        }
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn state(&self) -> KeyState {
        self.state
    }

    pub fn jwk(&self) -> &Jwk {
        &self.jwk
    }

    /// RSASSA-PKCS1-v1_5 with SHA-256 over `message` (JWA RS256).
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        let mut signature = vec![0; self.key_pair.public_modulus_len()];
        self.key_pair
            .sign(
                &RSA_PKCS1_SHA256,
                &aws_lc_rs::rand::SystemRandom::new(),
                message,
                &mut signature,
            )
            .map_err(|_| KeyError::Sign)?;
        Ok(signature)
    }
}

/// RFC 7638 thumbprint of an RSA public key: SHA-256 over the required members in
/// lexicographic order, no whitespace, base64url.
pub fn thumbprint(n: &str, e: &str) -> String {
    let canonical = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
    let digest = ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes());
    URL_SAFE_NO_PAD.encode(digest.as_ref())
}

/// The published keys with the JWKS already serialised, so serving it costs no work.
#[derive(Debug)]
pub struct KeyRing {
    keys: Vec<Arc<SigningKey>>,
    active: Arc<SigningKey>,
    jwks: bytes::Bytes,
    etag: String,
}

impl KeyRing {
    fn new(keys: Vec<SigningKey>) -> Result<KeyRing, KeyError> {
        let mut keys: Vec<Arc<SigningKey>> = keys.into_iter().map(Arc::new).collect();
        // The active key first: naive clients that take keys[0] still verify new tokens.
        keys.sort_by_key(|k| match k.state {
            KeyState::Active => 0,
            KeyState::Next => 1,
            KeyState::Retiring => 2,
            KeyState::Retired => 3,
        });
        let active = keys
            .iter()
            .find(|k| k.state == KeyState::Active)
            .cloned()
            .ok_or(KeyError::NoActive)?;
        let published = JwkSet {
            keys: keys
                .iter()
                .filter(|k| k.state != KeyState::Retired)
                .map(|k| k.jwk.clone())
                .collect(),
        };
        let jwks = serde_json::to_vec(&published).map_err(|_| KeyError::Generate)?;
        let digest = ring::digest::digest(&ring::digest::SHA256, &jwks);
        let etag = format!("\"{}\"", URL_SAFE_NO_PAD.encode(&digest.as_ref()[..18]));
        Ok(KeyRing {
            keys,
            active,
            jwks: jwks.into(),
            etag,
        })
    }

    pub fn active(&self) -> &Arc<SigningKey> {
        &self.active
    }

    pub fn keys(&self) -> &[Arc<SigningKey>] {
        &self.keys
    }

    /// The verification key for `kid`, if that key is published.
    pub fn decoding_key(&self, kid: &str) -> Option<&jsonwebtoken::DecodingKey> {
        self.keys
            .iter()
            .find(|k| k.kid == kid && k.state != KeyState::Retired)
            .map(|k| &k.decoding)
    }

    /// The JWKS document (`{"keys":[…]}`), serialised once.
    pub fn jwks_json(&self) -> &bytes::Bytes {
        &self.jwks
    }

    /// A strong ETag over the JWKS bytes.
    pub fn etag(&self) -> &str {
        &self.etag
    }
}

/// The key ring the server reads on every request; swapped whole when keys change.
#[derive(Debug)]
pub struct KeyStore {
    ring: RwLock<Arc<KeyRing>>,
}

impl KeyStore {
    pub fn new(ring: KeyRing) -> KeyStore {
        KeyStore {
            ring: RwLock::new(Arc::new(ring)),
        }
    }

    pub fn current(&self) -> Arc<KeyRing> {
        match self.ring.read() {
            Ok(ring) => ring.clone(),
            // A writer never panics while holding the lock (it only swaps an Arc), but if one
            // did, the ring inside is still whole.
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn replace(&self, ring: KeyRing) {
        let ring = Arc::new(ring);
        match self.ring.write() {
            Ok(mut slot) => *slot = ring,
            Err(poisoned) => *poisoned.into_inner() = ring,
        }
    }
}

fn key_size(bits: u32) -> KeySize {
    match bits {
        4096 => KeySize::Rsa4096,
        3072 => KeySize::Rsa3072,
        _ => KeySize::Rsa2048,
    }
}

/// Generates a key pair, stores its private half and records it in `state`; the private half
/// is removed again if the row cannot be written.
fn create_key(
    conn: &mut DbConnection,
    settings: &KeySettings,
    store: &KeyMaterialStore,
    state: KeyState,
    now: i64,
    record: impl FnOnce(&mut DbConnection, &SigningKeyRow) -> Result<(), KeyError>,
) -> Result<String, KeyError> {
    let key_pair =
        KeyPair::generate(key_size(settings.rsa_bits)).map_err(|_| KeyError::Generate)?;
    let pkcs8 = key_pair.as_der().map_err(|_| KeyError::Generate)?;
    let key = SigningKey::from_key_pair(key_pair, state);
    let row = SigningKeyRow {
        kid: key.kid.clone(),
        algorithm: ALGORITHM.to_string(),
        state: state.as_str().to_string(),
        created_at: now,
        activated_at: (state == KeyState::Active).then_some(now),
        retiring_at: None,
        retired_at: None,
    };
    store.write(conn, &row.kid, &row.algorithm, pkcs8.as_ref(), now)?;
    if let Err(e) = record(conn, &row) {
        store.discard(conn, &row.kid);
        return Err(e);
    }
    tracing::info!(kid = %key.kid, state = state.as_str(), "created signing key");
    Ok(key.kid)
}

/// Loads the published keys, generating the first active key if there is none.
pub fn load_or_init(conn: &mut DbConnection, settings: &KeySettings) -> Result<KeyRing, KeyError> {
    let store = KeyMaterialStore::open(settings)?;
    store.prepare()?;
    let rows = signing_keys::list_published(conn)?;
    if !rows.iter().any(|r| r.state == KeyState::Active.as_str()) {
        let created = create_key(
            conn,
            settings,
            &store,
            KeyState::Active,
            crate::db::now(),
            |conn, row| Ok(signing_keys::insert(conn, row)?),
        );
        match created {
            Ok(_) => {}
            // Another replica starting at the same moment won the one-active-key index.
            Err(KeyError::Db(DbError::Query(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _,
            )))) => tracing::info!("another process created the first key; using it"),
            Err(e) => return Err(e),
        }
    }
    load(conn, &store)
}

/// Reads every published key from the database and its private half from `store`.
pub fn load(conn: &mut DbConnection, store: &KeyMaterialStore) -> Result<KeyRing, KeyError> {
    let rows = signing_keys::list_published(conn)?;
    let mut keys = Vec::with_capacity(rows.len());
    for row in rows {
        let state = KeyState::parse(&row.state)?;
        let path = store.location(&row.kid);
        let der = store.read(conn, &row)?;
        let key_pair =
            KeyPair::from_pkcs8(&der).map_err(|_| KeyError::Parse { path: path.clone() })?;
        let key = SigningKey::from_key_pair(key_pair, state);
        if key.kid != row.kid {
            return Err(KeyError::Mismatch {
                path,
                actual: key.kid,
            });
        }
        keys.push(key);
    }
    KeyRing::new(keys)
}

/// What `rotate` did, for the CLI to report.
#[derive(Debug, Serialize)]
pub struct Rotation {
    /// The key that became active, if a `next` key was waiting.
    pub activated: Option<String>,
    /// The key that moved from active to retiring.
    pub retiring: Option<String>,
    /// The new `next` key, published from now on and active from the next rotation.
    pub next: String,
}

/// Advances the lifecycle one step: a waiting `next` key becomes active (the active one
/// retiring), and a fresh `next` key is created. A key therefore always appears in the JWKS at
/// least one rotation before it signs; unless `force`, a `next` key is promoted only once it
/// has been published for `KeySettings::publish_before_signing_secs` (else `TooEarly`).
pub fn rotate(
    conn: &mut DbConnection,
    settings: &KeySettings,
    now: i64,
    force: bool,
) -> Result<Rotation, KeyError> {
    let store = KeyMaterialStore::open(settings)?;
    store.prepare()?;
    // Checked before a key is generated, so a refusal costs nothing; checked again below in
    // the transaction that acts on it.
    let rows = signing_keys::list_published(conn)?;
    if !force {
        check_ready(&rows, settings, now)?;
    }
    let mut outcome = (None, None);
    let next = create_key(conn, settings, &store, KeyState::Next, now, |conn, row| {
        conn.transaction(|conn| {
            let rows = signing_keys::list_published(conn)?;
            let waiting = rows.iter().find(|r| r.state == KeyState::Next.as_str());
            let active = rows.iter().find(|r| r.state == KeyState::Active.as_str());
            if let Some(waiting) = waiting {
                if !force {
                    check_ready(&rows, settings, now)?;
                }
                // Each update must hit exactly its row: if another process rotated meanwhile,
                // the counts differ and nothing of this rotation is kept.
                if let Some(active) = active
                    && signing_keys::retire_active_key(conn, &active.kid, now)? != 1
                {
                    return Err(KeyError::Conflict);
                }
                if signing_keys::activate(conn, &waiting.kid, now)? != 1 {
                    return Err(KeyError::Conflict);
                }
                outcome = (Some(waiting.kid.clone()), active.map(|a| a.kid.clone()));
            }
            signing_keys::insert(conn, row).map_err(|e| match e {
                diesel::result::Error::DatabaseError(
                    diesel::result::DatabaseErrorKind::UniqueViolation,
                    _,
                ) => KeyError::Conflict,
                other => other.into(),
            })?;
            Ok::<_, KeyError>(())
        })
    })?;
    Ok(Rotation {
        activated: outcome.0,
        retiring: outcome.1,
        next,
    })
}

/// `TooEarly` if the waiting `next` key has not been published long enough.
pub fn check_ready(
    rows: &[SigningKeyRow],
    settings: &KeySettings,
    now: i64,
) -> Result<(), KeyError> {
    let Some(waiting) = rows.iter().find(|r| r.state == KeyState::Next.as_str()) else {
        return Ok(());
    };
    let published_secs = now - waiting.created_at;
    let required_secs = settings.publish_before_signing_secs();
    // Strictly more: times are whole seconds, so "3 s later" may be 2.1 s of real time.
    if published_secs <= required_secs {
        return Err(KeyError::TooEarly {
            kid: waiting.kid.clone(),
            published_secs,
            required_secs,
            wait_secs: required_secs - published_secs + 1,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbprint_matches_rfc7638_example() {
        // RFC 7638 §3.1.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        assert_eq!(
            thumbprint(n, "AQAB"),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn a_signature_verifies_with_the_published_jwk() {
        let key_pair = KeyPair::generate(KeySize::Rsa2048).expect("generate");
        let key = SigningKey::from_key_pair(key_pair, KeyState::Active);
        let signature = key.sign(b"payload").expect("sign");
        let n = URL_SAFE_NO_PAD
            .decode(key.jwk.n.as_deref().expect("n"))
            .expect("n");
        let e = URL_SAFE_NO_PAD
            .decode(key.jwk.e.as_deref().expect("e"))
            .expect("e");
        let public = aws_lc_rs::signature::RsaPublicKeyComponents { n: &n, e: &e };
        public
            .verify(
                &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
                b"payload",
                &signature,
            )
            .expect("verifies");
        assert!(
            public
                .verify(
                    &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
                    b"other",
                    &signature
                )
                .is_err()
        );
    }
}
