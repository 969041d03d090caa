//! The running provider's parts, shared by every request and free of HTTP: the domain modules
//! take this, the HTTP layer only translates.

use std::sync::Arc;

use crate::accounts::hash_pool::HashPool;
use crate::clock::Clock;
use crate::config::Settings;
use crate::db::Database;
use crate::federation::Federation;
use crate::keys::KeyStore;

#[derive(Clone)]
pub struct Services {
    pub db: Database,
    pub keys: Arc<KeyStore>,
    pub federation: Arc<Federation>,
    pub hashes: HashPool,
    pub settings: Arc<Settings>,
    pub issuer: String,
    pub clock: Clock,
}
