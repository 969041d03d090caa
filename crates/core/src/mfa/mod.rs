//! Second factors: authenticator apps (TOTP, RFC 6238) and recovery codes. A TOTP secret is
//! sealed at rest (`sealed`); codes are good once (`last_used_step`), and attempts count
//! against a throttle per account and IP like passwords. What is done here is audited here.
//!
//! Blocking (diesel): HTTP calls these inside `Database::run`, the CLI directly.

pub mod passkey;
pub mod passkey_store;
// The second step of a sign-in in flight.
pub mod pending;
pub mod recovery;
pub mod sealed;
pub mod store;
pub mod totp;

use diesel::Connection;
use serde_json::json;

pub use sealed::{SealError, SecretBox};
pub use totp::TotpSecret;

use crate::accounts::throttle::{self, Policy};
use crate::audit::{self, Event, Record};
use crate::config::ThrottleSettings;
use crate::crypto::RandomError;
use crate::db::{DbConnection, DbError};

#[derive(Debug, thiserror::Error)]
pub enum MfaError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Seal(#[from] SealError),
    #[error(transparent)]
    Random(#[from] RandomError),
    /// An authenticator is already active: remove it first, so a stolen session cannot
    /// silently swap in the thief's.
    #[error("an authenticator app is already set up")]
    AlreadyEnrolled,
    /// There is no authenticator waiting for its first code.
    #[error("no authenticator app is waiting to be confirmed")]
    NothingToConfirm,
    #[error("no authenticator app is set up")]
    NotEnrolled,
}

impl From<diesel::result::Error> for MfaError {
    fn from(e: diesel::result::Error) -> Self {
        MfaError::Db(DbError::Query(e))
    }
}

/// What a person has as second factors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Factors {
    /// A confirmed authenticator app.
    pub totp: bool,
    /// An authenticator app shown but not yet confirmed with a code.
    pub totp_pending: bool,
    pub recovery_codes_left: i64,
    /// Registered passkeys.
    pub passkeys: i64,
}

impl Factors {
    /// Whether sign-in asks for a second step: an authenticator app or a passkey. Recovery
    /// codes alone are not a factor: they only stand in for one.
    pub fn any(&self) -> bool {
        self.totp || self.passkeys > 0
    }
}

pub fn factors(conn: &mut DbConnection, user_id: &str) -> Result<Factors, MfaError> {
    let totp = store::find_totp(conn, user_id)?;
    Ok(Factors {
        totp: totp.as_ref().is_some_and(|t| t.confirmed_at.is_some()),
        totp_pending: totp.as_ref().is_some_and(|t| t.confirmed_at.is_none()),
        recovery_codes_left: store::unused_recovery_codes(conn, user_id)?,
        passkeys: passkey_store::count(conn, user_id)?,
    })
}

/// The name authenticator apps list an account under: the issuer's host.
pub fn issuer_label(issuer: &str) -> String {
    url::Url::parse(issuer)
        .ok()
        .and_then(|url| url.host_str().map(str::to_string))
        .unwrap_or_else(|| "Tessera".to_string())
}

/// An authenticator app to set up: what the page shows. The secret is shown now and never
/// again (it is sealed in the database).
#[derive(Debug)]
pub struct TotpEnrolment {
    pub secret_base32: String,
    pub otpauth_uri: String,
}

/// Starts setting up an authenticator app for `user_id` (replacing one not yet confirmed).
pub fn begin_totp(
    conn: &mut DbConnection,
    sealer: &SecretBox,
    issuer_name: &str,
    user_id: &str,
    account: &str,
    now: i64,
) -> Result<TotpEnrolment, MfaError> {
    conn.transaction(|conn| {
        if store::find_totp(conn, user_id)?.is_some_and(|t| t.confirmed_at.is_some()) {
            return Err(MfaError::AlreadyEnrolled);
        }
        let secret = TotpSecret::generate()?;
        store::put_totp(
            conn,
            &store::TotpRow {
                user_id: user_id.to_string(),
                sealed_secret: sealer.seal(user_id, secret.as_bytes())?,
                created_at: now,
                confirmed_at: None,
                last_used_step: 0,
            },
        )?;
        Ok(TotpEnrolment {
            secret_base32: secret.base32(),
            otpauth_uri: secret.otpauth_uri(issuer_name, account),
        })
    })
}

/// The authenticator app still waiting for its first code, to show again (after a wrong
/// code, or when the page is opened again): None when there is none waiting.
pub fn pending_totp(
    conn: &mut DbConnection,
    sealer: &SecretBox,
    issuer_name: &str,
    user_id: &str,
    account: &str,
) -> Result<Option<TotpEnrolment>, MfaError> {
    let Some(pending) = store::find_totp(conn, user_id)?.filter(|t| t.confirmed_at.is_none())
    else {
        return Ok(None);
    };
    let secret = TotpSecret::from_bytes(sealer.open(user_id, &pending.sealed_secret)?);
    Ok(Some(TotpEnrolment {
        secret_base32: secret.base32(),
        otpauth_uri: secret.otpauth_uri(issuer_name, account),
    }))
}

/// The outcome of a code typed by a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeCheck<T> {
    Accepted(T),
    /// Wrong, or already used: the same answer either way.
    Refused,
    /// Too many wrong codes: wait this many seconds.
    Throttled(i64),
}

/// Where a code attempt comes from, for the throttle and the audit trail.
#[derive(Debug, Clone, Copy)]
pub struct CodeAttempt<'a> {
    pub user_id: &'a str,
    pub ip: Option<&'a str>,
    pub client_id: Option<&'a str>,
    /// What the code was for: "sign_in", "enrolment".
    pub purpose: &'static str,
}

/// The throttle counters of second-factor codes: the IP (shared with passwords, so guessing
/// codes and passwords from one address adds up), the account from that IP, and the account
/// from everywhere. Only someone who already passed the first factor can reach them.
fn code_keys(settings: &ThrottleSettings, attempt: &CodeAttempt<'_>) -> Vec<(String, Policy)> {
    let account = crate::crypto::sha256_hex(attempt.user_id.as_bytes());
    let mut keys = Vec::with_capacity(3);
    if let Some(ip) = attempt.ip.map(throttle::ip_key) {
        keys.push((format!("ip:{ip}"), Policy::ip(settings)));
        keys.push((
            format!(
                "mfa:pair:{}",
                crate::crypto::sha256_hex(format!("{account} {ip}").as_bytes())
            ),
            Policy::account(settings),
        ));
        keys.push((
            format!("mfa:account:{account}"),
            Policy::account_total(settings),
        ));
    } else {
        keys.push((format!("mfa:account:{account}"), Policy::account(settings)));
    }
    keys
}

/// Counts the attempt, then runs `check` in a transaction: the code is judged and, if right,
/// spent in the same transaction, so two replicas cannot both accept it. A right code gives
/// the account's counters a fresh start; a wrong one stays counted. Audited either way.
pub(crate) fn checked_code<T>(
    conn: &mut DbConnection,
    settings: &ThrottleSettings,
    attempt: CodeAttempt<'_>,
    method: &'static str,
    now: i64,
    check: impl FnOnce(&mut DbConnection) -> Result<Option<T>, MfaError>,
) -> Result<CodeCheck<T>, MfaError> {
    let keys = code_keys(settings, &attempt);
    let record = |conn: &mut DbConnection, event: Event, outcome: &str| {
        audit::record(
            conn,
            event,
            Record {
                user_id: Some(attempt.user_id),
                client_id: attempt.client_id,
                ip: attempt.ip,
                detail: Some(
                    json!({ "method": method, "for": attempt.purpose, "outcome": outcome }),
                ),
            },
            now,
        )
    };
    if let Some(wait) = throttle::reserve(conn, &keys, now)? {
        record(conn, Event::SecondFactorRefused, "throttled")?;
        return Ok(CodeCheck::Throttled(wait));
    }
    let accepted = conn.transaction(|conn| {
        let accepted = check(conn)?;
        if accepted.is_some() {
            throttle::succeeded(conn, &keys, now)?;
            record(conn, Event::SecondFactorAccepted, "accepted")?;
        }
        Ok::<_, MfaError>(accepted)
    })?;
    match accepted {
        Some(value) => Ok(CodeCheck::Accepted(value)),
        None => {
            record(conn, Event::SecondFactorRefused, "wrong")?;
            Ok(CodeCheck::Refused)
        }
    }
}

/// Confirms the authenticator being set up with a current code: it becomes a factor, and the
/// first set of recovery codes is made (returned to show once).
pub fn confirm_totp(
    conn: &mut DbConnection,
    sealer: &SecretBox,
    settings: &ThrottleSettings,
    attempt: CodeAttempt<'_>,
    code: &str,
    now: i64,
) -> Result<CodeCheck<Vec<String>>, MfaError> {
    let user_id = attempt.user_id.to_string();
    let pending = store::find_totp(conn, &user_id)?.filter(|t| t.confirmed_at.is_none());
    let Some(pending) = pending else {
        return Err(MfaError::NothingToConfirm);
    };
    let secret = TotpSecret::from_bytes(sealer.open(&user_id, &pending.sealed_secret)?);
    checked_code(conn, settings, attempt, "totp", now, |conn| {
        let Some(step) = secret.matching_step(code, now) else {
            return Ok(None);
        };
        if !store::confirm_totp(conn, &user_id, step, now)? {
            return Ok(None);
        }
        let codes = replace_recovery_codes(conn, &user_id, now)?;
        audit::record(
            conn,
            Event::MfaEnrolled,
            Record {
                user_id: Some(&user_id),
                detail: Some(json!({ "factor": "totp" })),
                ..Record::default()
            },
            now,
        )?;
        Ok(Some(codes))
    })
}

/// Checks a code from the person's authenticator app at sign-in.
pub fn check_totp(
    conn: &mut DbConnection,
    sealer: &SecretBox,
    settings: &ThrottleSettings,
    attempt: CodeAttempt<'_>,
    code: &str,
    now: i64,
) -> Result<CodeCheck<()>, MfaError> {
    let user_id = attempt.user_id.to_string();
    let active = store::find_totp(conn, &user_id)?.filter(|t| t.confirmed_at.is_some());
    let Some(active) = active else {
        return Err(MfaError::NotEnrolled);
    };
    let secret = TotpSecret::from_bytes(sealer.open(&user_id, &active.sealed_secret)?);
    checked_code(conn, settings, attempt, "totp", now, |conn| {
        let spent = match secret.matching_step(code, now) {
            Some(step) => store::use_step(conn, &user_id, step)?,
            None => false,
        };
        Ok(spent.then_some(()))
    })
}

/// Spends one of the person's recovery codes in place of the second factor.
pub fn redeem_recovery_code(
    conn: &mut DbConnection,
    settings: &ThrottleSettings,
    attempt: CodeAttempt<'_>,
    code: &str,
    now: i64,
) -> Result<CodeCheck<i64>, MfaError> {
    let user_id = attempt.user_id.to_string();
    let checked = checked_code(conn, settings, attempt, "recovery_code", now, |conn| {
        if !store::spend_recovery_code(conn, &user_id, &recovery::hash(code), now)? {
            return Ok(None);
        }
        let left = store::unused_recovery_codes(conn, &user_id)?;
        audit::record(
            conn,
            Event::RecoveryCodeUsed,
            Record {
                user_id: Some(&user_id),
                detail: Some(json!({ "left": left })),
                ..Record::default()
            },
            now,
        )?;
        Ok(Some(left))
    })?;
    Ok(checked)
}

fn replace_recovery_codes(
    conn: &mut DbConnection,
    user_id: &str,
    now: i64,
) -> Result<Vec<String>, MfaError> {
    let codes = recovery::generate()?;
    let rows: Vec<_> = codes
        .iter()
        .map(|code| store::RecoveryCodeRow {
            code_hash: recovery::hash(code),
            user_id: user_id.to_string(),
            created_at: now,
            used_at: None,
        })
        .collect();
    store::replace_recovery_codes(conn, user_id, &rows)?;
    Ok(codes)
}

/// A new set of recovery codes (the old set stops working), to show once. Only for a person
/// with an active second factor: the codes stand in for one.
pub fn regenerate_recovery_codes(
    conn: &mut DbConnection,
    user_id: &str,
    now: i64,
) -> Result<Vec<String>, MfaError> {
    conn.transaction(|conn| {
        if !factors(conn, user_id)?.any() {
            return Err(MfaError::NotEnrolled);
        }
        let codes = replace_recovery_codes(conn, user_id, now)?;
        audit::record(
            conn,
            Event::RecoveryCodesGenerated,
            Record {
                user_id: Some(user_id),
                ..Record::default()
            },
            now,
        )?;
        Ok(codes)
    })
}

/// What a removal of a second factor did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    Removed,
    /// The person has no such factor (no passkey `id`, no authenticator app).
    NotFound,
    /// It is the person's last second factor: ask them to confirm first.
    NeedsConfirmation,
}

/// Whether removing the person's authenticator app would leave them no second factor (no
/// passkey either), so that it is asked to be confirmed first.
pub fn totp_is_last_factor(conn: &mut DbConnection, user_id: &str) -> Result<bool, MfaError> {
    Ok(factors(conn, user_id)?.totp && passkey_store::count(conn, user_id)? == 0)
}

/// Removes the person's authenticator app (and, with no factor left, the recovery codes).
/// Removing the last second factor (no passkey) happens only `confirmed`.
pub fn remove_totp(
    conn: &mut DbConnection,
    user_id: &str,
    confirmed: bool,
    now: i64,
) -> Result<Removal, MfaError> {
    conn.transaction(|conn| {
        if !confirmed && totp_is_last_factor(conn, user_id)? {
            return Ok(Removal::NeedsConfirmation);
        }
        if store::delete_totp(conn, user_id)? == 0 {
            return Ok(Removal::NotFound);
        }
        if !factors(conn, user_id)?.any() {
            store::delete_recovery_codes(conn, user_id)?;
        }
        audit::record(
            conn,
            Event::MfaRemoved,
            Record {
                user_id: Some(user_id),
                detail: Some(json!({ "factor": "totp" })),
                ..Record::default()
            },
            now,
        )?;
        Ok(Removal::Removed)
    })
}

/// What `reset` took away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Wiped {
    /// An authenticator app, confirmed or still being set up.
    pub totp: bool,
    pub recovery_codes: usize,
    pub passkeys: usize,
}

/// Takes away every second factor of a person (inside the caller's transaction): the
/// authenticator app, the recovery codes, the passkeys, and what was under way with them (second
/// steps of sign-ins in flight, WebAuthn ceremonies), so nothing begun before finishes after.
pub fn reset(conn: &mut DbConnection, user_id: &str) -> Result<Wiped, DbError> {
    let wiped = Wiped {
        totp: store::delete_totp(conn, user_id)? > 0,
        recovery_codes: store::delete_recovery_codes(conn, user_id)?,
        passkeys: passkey_store::delete_all_of_user(conn, user_id)?,
    };
    pending::delete_of_user(conn, user_id)?;
    passkey_store::delete_ceremonies_of_user(conn, user_id)?;
    Ok(wiped)
}
