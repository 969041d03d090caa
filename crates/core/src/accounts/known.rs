//! Devices and IPs an account has signed in from (OWASP's "device cookies"). An attempt from
//! one of them is spared the account-wide failed-login counter, so guessers spread over many
//! addresses slow down everyone but the owner; the per-IP and per-pair counters still apply.
//!
//! A device is a random token the server makes and sets in an HttpOnly cookie on the login
//! page's success; only its hash is stored, so it works across replicas with no key to share
//! and can be forgotten row by row. It is renewed at every sign-in. The password grant has no
//! cookie: there the IP alone counts. Each account keeps a few of each, for a limited time.

use crate::config::ThrottleSettings;
use crate::db::repo::known_sign_ins::{self, Kind};
use crate::db::{DbConnection, DbError};

/// Longest device cookie value looked up: real ones are 43 characters.
const MAX_DEVICE_LEN: usize = 128;

/// The browser side of an attempt.
#[derive(Debug, Clone)]
pub enum Device {
    /// No browser can keep a cookie (the password grant).
    Absent,
    /// The login page, with the device cookie the browser sent, if any.
    Browser(Option<String>),
}

fn device_hash(token: &str) -> Option<String> {
    let token = token.trim();
    (!token.is_empty() && token.len() <= MAX_DEVICE_LEN)
        .then(|| crate::crypto::sha256_hex(token.as_bytes()))
}

fn ip_hash(ip: &str) -> String {
    crate::crypto::sha256_hex(format!("ip {}", super::throttle::ip_key(ip)).as_bytes())
}

/// Whether the account signed in from this device or this IP within the remembered time.
pub fn is_known(
    conn: &mut DbConnection,
    settings: &ThrottleSettings,
    user_id: &str,
    device: &Device,
    ip: Option<&str>,
    now: i64,
) -> Result<bool, DbError> {
    let since = now - settings.known_sign_in_ttl_secs;
    if let Device::Browser(Some(token)) = device
        && let Some(hash) = device_hash(token)
        && known_sign_ins::is_known(conn, user_id, Kind::Device, &hash, since)?
    {
        return Ok(true);
    }
    match ip {
        Some(ip) => Ok(known_sign_ins::is_known(
            conn,
            user_id,
            Kind::Ip,
            &ip_hash(ip),
            since,
        )?),
        None => Ok(false),
    }
}

/// After a successful sign-in (inside its transaction): the IP is remembered and, for a
/// browser, the device gets a new token, returned for its cookie. The old token's other
/// accounts move to the new one, so one browser stays known for each account it signed in to.
pub fn remember(
    conn: &mut DbConnection,
    settings: &ThrottleSettings,
    user_id: &str,
    device: &Device,
    ip: Option<&str>,
    now: i64,
) -> Result<Option<String>, DbError> {
    let keep = settings.known_sign_ins_per_account;
    if let Some(ip) = ip {
        known_sign_ins::remember(conn, user_id, Kind::Ip, &ip_hash(ip), now, keep)?;
    }
    let Device::Browser(presented) = device else {
        return Ok(None);
    };
    let token = crate::crypto::random_token(32).map_err(|e| DbError::Task(e.to_string()))?;
    let hash = crate::crypto::sha256_hex(token.as_bytes());
    if let Some(old) = presented.as_deref().and_then(device_hash) {
        known_sign_ins::renew_device(conn, &old, &hash)?;
    }
    known_sign_ins::remember(conn, user_id, Kind::Device, &hash, now, keep)?;
    Ok(Some(token))
}
