//! Checking an email and password, for the password grant and the login page alike: throttled
//! before any password is checked (the account-wide counter spares the account's known devices
//! and IPs), the same work and answer for unknown users and wrong passwords, re-hashing under
//! new parameters, audited.

use diesel::Connection;
use serde_json::json;

use super::email::Email;
use super::hash_pool::HashPoolError;
use super::known::{self, Device};
use super::password::Verified;
use super::throttle;
use crate::audit::{self, Event, Record};
use crate::db::{DbError, repo};
use crate::domain::User;
use crate::services::Services;

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Unknown user, wrong password, disabled account or no password: one answer for all.
    #[error("invalid username or password")]
    BadCredentials,
    #[error("too many failed attempts; try again in {0} s")]
    Throttled(i64),
    #[error("too many requests are waiting; try again shortly")]
    Busy,
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("password hashing failed: {0}")]
    Hashing(String),
}

/// Where the attempt came from, for throttling and the audit trail.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    pub client_id: &'a str,
    pub ip: Option<&'a str>,
    /// What asked: "password" (the grant) or "login_page".
    pub via: &'static str,
}

/// The user, if `username` and `password` are right and the account is active. No browser
/// is involved (the password grant): the client's IP alone may be known to the account.
pub async fn verify_credentials(
    svc: &Services,
    username: &str,
    password: &str,
    attempt: Attempt<'_>,
) -> Result<User, LoginError> {
    verify(svc, username, password, attempt, Device::Absent)
        .await
        .map(|(user, _)| user)
}

/// As [`verify_credentials`], for the login page: `device` is the device cookie the browser
/// sent. On success, also the browser's new device token, for its cookie.
pub async fn verify_credentials_in_browser(
    svc: &Services,
    username: &str,
    password: &str,
    attempt: Attempt<'_>,
    device: Option<&str>,
) -> Result<(User, Option<String>), LoginError> {
    verify(
        svc,
        username,
        password,
        attempt,
        Device::Browser(device.map(String::from)),
    )
    .await
}

async fn verify(
    svc: &Services,
    username: &str,
    password: &str,
    attempt: Attempt<'_>,
    device: Device,
) -> Result<(User, Option<String>), LoginError> {
    let email_key = Email::parse(username)
        .map(|e| e.lookup_key().to_string())
        .unwrap_or_else(|_| username.trim().to_lowercase());
    let now = svc.clock.now();
    let settings = svc.settings.throttle.clone();
    let all_keys = throttle::keys(&settings, &email_key, attempt.ip);
    let ip = attempt.ip.map(String::from);
    let presented = device.clone();
    let (throttled, user, keys) = svc
        .db
        .run(move |conn| {
            let user = repo::users::find_by_email(conn, &email_key)?;
            let known = match &user {
                Some(user) => {
                    known::is_known(conn, &settings, &user.id, &presented, ip.as_deref(), now)?
                }
                None => false,
            };
            let keys = if known {
                throttle::for_known(all_keys.clone())
            } else {
                all_keys.clone()
            };
            let throttled = throttle::reserve(conn, &keys, now)?;
            Ok::<_, DbError>((throttled, user, keys))
        })
        .await?;
    if let Some(wait) = throttled {
        svc.metrics.login_throttled();
        record(svc, Event::LoginThrottled, None, attempt).await?;
        return Err(LoginError::Throttled(wait));
    }

    let stored = user.as_ref().and_then(|u| u.password_hash.clone());
    let verified = match svc.hashes.verify(password.to_string(), stored).await {
        Ok(verified) => verified,
        Err(e) => {
            // The password was never checked: the attempt does not count.
            svc.db
                .run(move |conn| throttle::release(conn, &keys))
                .await?;
            return Err(match e {
                HashPoolError::Busy => LoginError::Busy,
                other => LoginError::Hashing(other.to_string()),
            });
        }
    };
    let user = match (user, verified) {
        (Some(user), Verified::Yes | Verified::YesRehash) if user.disabled_at.is_none() => user,
        (user, _) => {
            svc.metrics.login_failed();
            record(
                svc,
                Event::LoginFailure,
                user.map(|u| u.id.into_string()),
                attempt,
            )
            .await?;
            return Err(LoginError::BadCredentials);
        }
    };
    let rehash = match verified {
        Verified::YesRehash => Some(
            svc.hashes
                .hash(password.to_string())
                .await
                .map_err(|e| LoginError::Hashing(e.to_string()))?,
        ),
        _ => None,
    };
    let client_id = attempt.client_id.to_string();
    let ip = attempt.ip.map(String::from);
    let via = attempt.via;
    let user_id = user.id.clone();
    let release_keys = keys.clone();
    let settings = svc.settings.throttle.clone();
    let recorded = svc
        .db
        .run(move |conn| {
            conn.transaction(|conn| {
                throttle::succeeded(conn, &keys, now)?;
                let device_token =
                    known::remember(conn, &settings, &user_id, &device, ip.as_deref(), now)?;
                if let Some(hash) = &rehash {
                    repo::users::set_password_hash(conn, &user_id, hash, now)?;
                }
                audit::record(
                    conn,
                    Event::LoginSuccess,
                    Record {
                        user_id: Some(&user_id),
                        client_id: Some(&client_id),
                        ip: ip.as_deref(),
                        detail: Some(json!({ "via": via, "rehashed": rehash.is_some() })),
                    },
                    now,
                )?;
                Ok::<_, DbError>(device_token)
            })
        })
        .await;
    let device_token = match recorded {
        Ok(token) => token,
        Err(e) => {
            // The right password, but the login could not be recorded (database full, locked or
            // gone): the attempt must not count against the account. Best effort, as the
            // database may refuse this too.
            let _ = svc
                .db
                .run(move |conn| throttle::release(conn, &release_keys))
                .await;
            return Err(e.into());
        }
    };
    Ok((user, device_token))
}

/// The attempted username is not recorded: it may be a password typed into the wrong field.
async fn record(
    svc: &Services,
    event: Event,
    user_id: Option<String>,
    attempt: Attempt<'_>,
) -> Result<(), DbError> {
    let client_id = attempt.client_id.to_string();
    let ip = attempt.ip.map(String::from);
    let via = attempt.via;
    let now = svc.clock.now();
    svc.db
        .run(move |conn| {
            audit::record(
                conn,
                event,
                Record {
                    user_id: user_id.as_deref(),
                    client_id: Some(&client_id),
                    ip: ip.as_deref(),
                    detail: Some(json!({ "via": via })),
                },
                now,
            )
        })
        .await
}
