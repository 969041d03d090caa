//! Signing keys as the operator manages them. Neither writes an audit event: the key table
//! keeps each key's own history (created, activated, retiring, retired).

use crate::config::KeySettings;
use crate::db::models::SigningKeyRow;
use crate::db::{DbConnection, DbError, repo};
use crate::domain::SigningAlg;
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
