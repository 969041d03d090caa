//! Signing keys (RS256, EdDSA, ES256): generated in-process, their private halves kept where
//! `keys.store` says (`store.rs`: PKCS#8 PEM files (0600) in the keys directory, or sealed in
//! the database), their lifecycle state kept in the `signing_keys` table, published as a JWKS.
//!
//! Where the truth lives: the database says which key is `next`, `active`, `retiring` or
//! `retired`; the store holds the private halves. Replicas share both, so they agree. Each
//! algorithm has its own lifecycle: one active key per algorithm, one waiting `next` key per
//! algorithm. All three algorithms always have an active key (created at the first start, or
//! at the first start of a version that knows the algorithm), so a client switched to any of
//! them signs at once.

mod algorithm;
mod error;
mod files;
pub mod lifecycle;
pub mod store;

use std::sync::{Arc, RwLock};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use diesel::Connection;
use serde::Serialize;
use tessera_proto::{Jwk, JwkSet};

use crate::config::KeySettings;
use crate::db::models::SigningKeyRow;
use crate::db::repo::signing_keys;
use crate::db::{DbConnection, DbError};
use crate::domain::SigningAlg;

pub use algorithm::{KeyPair, thumbprint};
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
    /// For jsonwebtoken (ID token hints).
    decoding: jsonwebtoken::DecodingKey,
    /// The public half parsed once: what access-token verification uses.
    verifier: aws_lc_rs::signature::ParsedPublicKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg())
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    fn from_key_pair(key_pair: KeyPair, state: KeyState) -> Result<SigningKey, KeyError> {
        let (jwk, decoding) = key_pair.public();
        let verifier = key_pair.verifier()?;
        Ok(SigningKey {
            kid: jwk.kid.clone().unwrap_or_default(),
            decoding,
            verifier,
            jwk,
            state,
            key_pair,
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn alg(&self) -> SigningAlg {
        self.key_pair.alg()
    }

    pub fn state(&self) -> KeyState {
        self.state
    }

    pub fn jwk(&self) -> &Jwk {
        &self.jwk
    }

    /// What verifies this key's signatures.
    pub fn decoding_key(&self) -> &jsonwebtoken::DecodingKey {
        &self.decoding
    }

    /// Whether `signature` is this key's JWS signature of its algorithm over `message`.
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        self.verifier.verify_sig(message, signature).is_ok()
    }

    /// The JWS signature of this key's algorithm over `message`.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        self.key_pair.sign(message)
    }
}

/// The published keys with the JWKS already serialised, so serving it costs no work.
#[derive(Debug)]
pub struct KeyRing {
    keys: Vec<Arc<SigningKey>>,
    /// The active key of each algorithm, indexed by `SigningAlg::index`.
    active: [Arc<SigningKey>; 3],
    jwks: bytes::Bytes,
    etag: String,
}

impl KeyRing {
    fn new(keys: Vec<SigningKey>) -> Result<KeyRing, KeyError> {
        let mut keys: Vec<Arc<SigningKey>> = keys.into_iter().map(Arc::new).collect();
        // The active keys first, RS256's before the others: naive clients that take keys[0]
        // still verify new RS256 tokens.
        keys.sort_by_key(|k| {
            let state = match k.state {
                KeyState::Active => 0,
                KeyState::Next => 1,
                KeyState::Retiring => 2,
                KeyState::Retired => 3,
            };
            (state, k.alg().index())
        });
        let active_of = |alg: SigningAlg| {
            keys.iter()
                .find(|k| k.state == KeyState::Active && k.alg() == alg)
                .cloned()
                .ok_or(KeyError::NoActive(alg))
        };
        let active = [
            active_of(SigningAlg::Rs256)?,
            active_of(SigningAlg::EdDsa)?,
            active_of(SigningAlg::Es256)?,
        ];
        let published = JwkSet {
            keys: keys
                .iter()
                .filter(|k| k.state != KeyState::Retired)
                .map(|k| k.jwk.clone())
                .collect(),
        };
        let jwks = serde_json::to_vec(&published).map_err(|_| KeyError::Serialise)?;
        let digest = ring::digest::digest(&ring::digest::SHA256, &jwks);
        let etag = format!("\"{}\"", URL_SAFE_NO_PAD.encode(&digest.as_ref()[..18]));
        Ok(KeyRing {
            keys,
            active,
            jwks: jwks.into(),
            etag,
        })
    }

    /// The active RS256 key (the default algorithm's).
    pub fn active(&self) -> &Arc<SigningKey> {
        self.active_for(SigningAlg::default())
    }

    /// The key that signs new tokens of `alg`.
    pub fn active_for(&self, alg: SigningAlg) -> &Arc<SigningKey> {
        &self.active[alg.index()]
    }

    pub fn keys(&self) -> &[Arc<SigningKey>] {
        &self.keys
    }

    /// The key `kid` names, if it is published: its algorithm is the only one a token naming
    /// it may claim.
    pub fn published_key(&self, kid: &str) -> Option<&SigningKey> {
        self.keys
            .iter()
            .find(|k| k.kid == kid && k.state != KeyState::Retired)
            .map(|k| k.as_ref())
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

/// Generates a key pair of `alg`, stores its private half and records it in `state`; the
/// private half is removed again if the row cannot be written.
fn create_key(
    conn: &mut DbConnection,
    settings: &KeySettings,
    store: &KeyMaterialStore,
    alg: SigningAlg,
    state: KeyState,
    now: i64,
    record: impl FnOnce(&mut DbConnection, &SigningKeyRow) -> Result<(), KeyError>,
) -> Result<String, KeyError> {
    let (key_pair, pkcs8) = KeyPair::generate(alg, settings.rsa_bits)?;
    let key = SigningKey::from_key_pair(key_pair, state)?;
    let row = SigningKeyRow {
        kid: key.kid.clone(),
        algorithm: alg.as_str().to_string(),
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
    tracing::info!(kid = %key.kid, %alg, state = state.as_str(), "created signing key");
    Ok(key.kid)
}

/// The algorithm a row names.
fn row_alg(row: &SigningKeyRow) -> Result<SigningAlg, KeyError> {
    SigningAlg::parse(&row.algorithm).map_err(|_| KeyError::UnknownAlgorithm(row.algorithm.clone()))
}

/// The rows of one algorithm.
fn rows_of(rows: &[SigningKeyRow], alg: SigningAlg) -> Vec<SigningKeyRow> {
    rows.iter()
        .filter(|r| r.algorithm == alg.as_str())
        .cloned()
        .collect()
}

/// Loads the published keys, generating the first active key of each algorithm that has none.
pub fn load_or_init(conn: &mut DbConnection, settings: &KeySettings) -> Result<KeyRing, KeyError> {
    let store = KeyMaterialStore::open(settings)?;
    store.prepare()?;
    let rows = signing_keys::list_published(conn)?;
    // The keys there are must open before one is added: a replica given a wrong KEK must not
    // seal a new key that the others cannot open.
    for row in &rows {
        store.read(conn, row)?;
    }
    for alg in SigningAlg::ALL {
        if rows
            .iter()
            .any(|r| r.algorithm == alg.as_str() && r.state == KeyState::Active.as_str())
        {
            continue;
        }
        let created = create_key(
            conn,
            settings,
            &store,
            alg,
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
            )))) => tracing::info!(%alg, "another process created the first key; using it"),
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
        let alg = row_alg(&row)?;
        let path = store.location(&row.kid);
        let der = store.read(conn, &row)?;
        let key_pair = KeyPair::from_pkcs8(alg, &der).ok_or_else(|| KeyError::WrongKind {
            path: path.clone(),
            alg,
        })?;
        let key = SigningKey::from_key_pair(key_pair, state)?;
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
    /// The algorithm whose keys moved.
    pub alg: &'static str,
    /// The key that became active, if a `next` key was waiting.
    pub activated: Option<String>,
    /// The key that moved from active to retiring.
    pub retiring: Option<String>,
    /// The new `next` key, published from now on and active from the next rotation.
    pub next: String,
}

/// Advances `alg`'s lifecycle one step: a waiting `next` key becomes active (the active one
/// retiring), and a fresh `next` key is created. A key therefore always appears in the JWKS at
/// least one rotation before it signs; unless `force`, a `next` key is promoted only once it
/// has been published for `KeySettings::publish_before_signing_secs` (else `TooEarly`). The
/// other algorithms' keys are not touched.
pub fn rotate(
    conn: &mut DbConnection,
    settings: &KeySettings,
    alg: SigningAlg,
    now: i64,
    force: bool,
) -> Result<Rotation, KeyError> {
    let store = KeyMaterialStore::open(settings)?;
    store.prepare()?;
    // Checked before a key is generated, so a refusal costs nothing; checked again below in
    // the transaction that acts on it.
    if !force {
        check_ready(
            &rows_of(&signing_keys::list_published(conn)?, alg),
            settings,
            now,
        )?;
    }
    let mut outcome = (None, None);
    let next = create_key(
        conn,
        settings,
        &store,
        alg,
        KeyState::Next,
        now,
        |conn, row| {
            conn.transaction(|conn| {
                let rows = rows_of(&signing_keys::list_published(conn)?, alg);
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
        },
    )?;
    Ok(Rotation {
        alg: alg.as_str(),
        activated: outcome.0,
        retiring: outcome.1,
        next,
    })
}

/// `rotate` for each of `algs`, after checking that every one of them is ready (so a refusal
/// changes nothing). A conflict part-way leaves the earlier algorithms rotated; rotating the
/// rest with `--alg` finishes the step.
pub fn rotate_each(
    conn: &mut DbConnection,
    settings: &KeySettings,
    algs: &[SigningAlg],
    now: i64,
    force: bool,
) -> Result<Vec<Rotation>, KeyError> {
    if !force {
        let rows = signing_keys::list_published(conn)?;
        for alg in algs {
            check_ready(&rows_of(&rows, *alg), settings, now)?;
        }
    }
    algs.iter()
        .map(|alg| rotate(conn, settings, *alg, now, force))
        .collect()
}

/// `TooEarly` if the waiting `next` key among `rows` (one algorithm's) has not been published
/// long enough.
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
    fn a_ring_signs_each_algorithm_with_its_own_active_key() {
        let keys = SigningAlg::ALL
            .into_iter()
            .map(|alg| {
                let (key_pair, _) = KeyPair::generate(alg, 2048).expect("generate");
                SigningKey::from_key_pair(key_pair, KeyState::Active).expect("key")
            })
            .collect();
        let ring = KeyRing::new(keys).expect("ring");
        for alg in SigningAlg::ALL {
            let key = ring.active_for(alg);
            assert_eq!(key.alg(), alg);
            assert_eq!(key.jwk().alg.as_deref(), Some(alg.as_str()));
            let found = ring.published_key(key.kid()).expect("published");
            assert_eq!(found.alg(), alg);
        }
        assert_eq!(ring.active().alg(), SigningAlg::Rs256);
        let jwks: JwkSet = serde_json::from_slice(ring.jwks_json()).expect("jwks");
        assert_eq!(jwks.keys[0].kty, "RSA", "RS256 first for naive clients");
        assert_eq!(jwks.keys.len(), 3);
    }

    #[test]
    fn a_ring_without_an_active_key_of_some_algorithm_is_refused() {
        let (key_pair, _) = KeyPair::generate(SigningAlg::EdDsa, 2048).expect("generate");
        let keys = vec![SigningKey::from_key_pair(key_pair, KeyState::Active).expect("key")];
        assert!(matches!(
            KeyRing::new(keys),
            Err(KeyError::NoActive(SigningAlg::Rs256))
        ));
    }
}
