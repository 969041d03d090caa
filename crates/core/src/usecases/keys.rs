//! Signing keys as the operator manages them. Neither writes an audit event: the key table
//! keeps each key's own history (created, activated, retiring, retired).

use crate::config::KeySettings;
use crate::db::models::SigningKeyRow;
use crate::db::{DbConnection, DbError, repo};
use crate::domain::SigningAlg;
use crate::keys::store::{self, Imported, Rewrapped};
use crate::keys::{self, KeyError, Rotation};

/// Every key, whatever its state.
pub fn list(conn: &mut DbConnection) -> Result<Vec<SigningKeyRow>, KeyError> {
    repo::signing_keys::list_all(conn).map_err(|e| KeyError::from(DbError::from(e)))
}

/// One step of the lifecycle (`keys::rotate`) for `alg`, or for every algorithm when `None`,
/// after making sure the key ring exists.
pub fn rotate(
    conn: &mut DbConnection,
    settings: &KeySettings,
    alg: Option<SigningAlg>,
    now: i64,
    force: bool,
) -> Result<Vec<Rotation>, KeyError> {
    keys::load_or_init(conn, settings)?;
    let algs = match alg {
        Some(alg) => vec![alg],
        None => SigningAlg::ALL.to_vec(),
    };
    keys::rotate_each(conn, settings, &algs, now, force)
}

/// Copies the keys directory's private keys into the database (`keys.store = "database"`):
/// idempotent, the files left in place.
pub fn import_files(
    conn: &mut DbConnection,
    settings: &KeySettings,
    now: i64,
) -> Result<Imported, KeyError> {
    // Inside the import's transaction, every key is loaded as a server starting would load it
    // (an algorithm an older version did not know gets its first key), so a file holding
    // another key than its name is refused and nothing is kept.
    store::import_files(conn, settings, now, |conn| {
        keys::load_or_init(conn, settings).map(drop)
    })
}

/// Reseals every key in the database under the current key-encryption key.
pub fn rewrap(conn: &mut DbConnection, settings: &KeySettings) -> Result<Rewrapped, KeyError> {
    store::rewrap(conn, settings)
}
