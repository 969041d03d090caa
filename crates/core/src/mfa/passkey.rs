//! Passkeys (WebAuthn, through Kanidm's `webauthn-rs`): registration from the account page,
//! passwordless sign-in with a discoverable credential, list, rename, remove.
//!
//! The relying party is the issuer: RP ID = the issuer's host, origin = the issuer's origin.
//! An issuer whose host is an IP address has no RP ID (WebAuthn needs a domain), so passkeys
//! are off there ([`Passkeys::new`] gives `None`).
//!
//! A ceremony's state (the challenge) is kept in `webauthn_ceremonies`, keyed by the SHA-256 of
//! a secret the browser holds, for 5 minutes, and is taken out (deleted) when the browser
//! answers, whatever the answer: a challenge is answered once. What the answer leads to (a new
//! passkey, an updated counter) is written in the same transaction as that delete.
//!
//! Blocking (diesel): HTTP calls these inside `Database::run`.

use diesel::Connection;
use serde_json::json;
use webauthn_rs::prelude::{
    CreationChallengeResponse, CredentialID, DiscoverableAuthentication, Passkey,
    PasskeyAuthentication, PasskeyRegistration, PublicKeyCredential, RegisterPublicKeyCredential,
    RequestChallengeResponse, Url, Uuid, Webauthn, WebauthnBuilder,
};
use webauthn_rs_proto::ResidentKeyRequirement;

use super::passkey_store::{self as store, CeremonyRow, PasskeyRow};
use crate::accounts::throttle::{self, Policy};
use crate::audit::{self, Event, Record};
use crate::config::ThrottleSettings;
use crate::crypto::RandomError;
use crate::db::{DbConnection, DbError};
use crate::domain::{Amr, AuthMethod, User};

/// How long a ceremony waits for the browser's answer.
pub const CEREMONY_TTL_SECS: i64 = 300;
/// The name of a passkey whose person gave none.
pub const DEFAULT_NAME: &str = "Passkey";
const MAX_NAME_CHARS: usize = 64;

const REGISTRATION: &str = "registration";
const SIGN_IN: &str = "sign_in";
const SECOND_FACTOR: &str = "second_factor";

#[derive(Debug, thiserror::Error)]
pub enum PasskeyError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Random(#[from] RandomError),
    /// The crate could not make options (it does not fail on good input).
    #[error("passkey options: {0}")]
    Options(String),
    #[error("stored passkey state is unreadable: {0}")]
    Stored(#[from] serde_json::Error),
}

impl PasskeyError {
    /// As the second-factor checks' error (`mfa::checked_code`).
    fn into_mfa(self) -> super::MfaError {
        match self {
            PasskeyError::Db(e) => super::MfaError::Db(e),
            PasskeyError::Random(e) => super::MfaError::Random(e),
            other => super::MfaError::Db(DbError::Task(other.to_string())),
        }
    }
}

impl From<diesel::result::Error> for PasskeyError {
    fn from(e: diesel::result::Error) -> Self {
        PasskeyError::Db(DbError::Query(e))
    }
}

/// Why the browser's answer was not taken. Each is shown to the person as a clear message;
/// none writes anything but the spent ceremony.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// No such ceremony: never started, already finished (a replay), or expired.
    StaleCeremony,
    /// The answer does not verify: a wrong challenge, origin or RP ID, a bad signature, a
    /// replayed assertion, no user verification.
    Invalid,
    /// A credential this provider does not know (or one already registered).
    UnknownCredential,
}

impl Refused {
    pub fn message(self) -> &'static str {
        match self {
            Refused::StaleCeremony => {
                "This passkey request has expired or was already used. Please try again."
            }
            Refused::Invalid => "The passkey's answer could not be verified. Please try again.",
            Refused::UnknownCredential => "This passkey is not registered here.",
        }
    }

    fn reason(self) -> &'static str {
        match self {
            Refused::StaleCeremony => "stale_ceremony",
            Refused::Invalid => "invalid_assertion",
            Refused::UnknownCredential => "unknown_credential",
        }
    }
}

/// The relying party, built once at start-up from the issuer.
pub struct Passkeys {
    webauthn: Webauthn,
}

impl std::fmt::Debug for Passkeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Passkeys")
    }
}

impl Passkeys {
    /// `None` when the issuer's host is no domain (an IP address): WebAuthn has no RP ID then.
    pub fn new(issuer: &str, rp_name: &str) -> Option<Passkeys> {
        let origin = Url::parse(issuer).ok()?;
        let rp_id = origin.domain()?.to_string();
        let webauthn = WebauthnBuilder::new(&rp_id, &origin)
            .ok()?
            .rp_name(rp_name)
            .build()
            .ok()?;
        Some(Passkeys { webauthn })
    }
}

/// A ceremony started: the secret for the browser to bring back, and the options for
/// `navigator.credentials.create()` / `.get()` (as JSON).
#[derive(Debug)]
pub struct Started {
    pub secret: String,
    pub options: serde_json::Value,
}

/// The user handle of a person's passkeys: their id (a UUID).
fn user_handle(user_id: &str) -> Uuid {
    Uuid::parse_str(user_id).unwrap_or_else(|_| {
        let digest = ring::digest::digest(&ring::digest::SHA256, user_id.as_bytes());
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest.as_ref()[..16]);
        Uuid::from_bytes(bytes)
    })
}

fn credential_id_text(id: &[u8]) -> String {
    base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, id)
}

fn save_ceremony(
    conn: &mut DbConnection,
    user_id: Option<&str>,
    kind: &str,
    state: String,
    now: i64,
) -> Result<String, PasskeyError> {
    let secret = crate::crypto::random_token(32)?;
    store::insert_ceremony(
        conn,
        &CeremonyRow {
            id: crate::crypto::sha256_hex(secret.as_bytes()),
            user_id: user_id.map(String::from),
            kind: kind.to_string(),
            state,
            created_at: now,
            expires_at: now + CEREMONY_TTL_SECS,
        },
    )?;
    Ok(secret)
}

/// Starts registering a passkey for `user`. The options ask for a discoverable credential
/// (resident key required: `start_passkey_registration` asks for none, and a passkey that the
/// authenticator does not keep cannot sign in without a name typed first) with user
/// verification, and exclude the passkeys the person has already.
pub fn start_registration(
    conn: &mut DbConnection,
    passkeys: &Passkeys,
    user: &User,
    now: i64,
) -> Result<Started, PasskeyError> {
    let existing: Vec<CredentialID> = store::list(conn, user.id.as_str())?
        .iter()
        .filter_map(|row| serde_json::from_str::<Passkey>(&row.credential).ok())
        .map(|key| key.cred_id().clone())
        .collect();
    let name = user.account_name();
    let display = user.name.clone().unwrap_or_else(|| name.clone());
    let (mut options, state): (CreationChallengeResponse, PasskeyRegistration) = passkeys
        .webauthn
        .start_passkey_registration(
            user_handle(user.id.as_str()),
            &name,
            &display,
            Some(existing),
        )
        .map_err(|e| PasskeyError::Options(e.to_string()))?;
    if let Some(selection) = options.public_key.authenticator_selection.as_mut() {
        selection.resident_key = Some(ResidentKeyRequirement::Required);
        selection.require_resident_key = true;
    }
    let secret = save_ceremony(
        conn,
        Some(user.id.as_str()),
        REGISTRATION,
        serde_json::to_string(&state)?,
        now,
    )?;
    Ok(Started {
        secret,
        options: serde_json::to_value(&options)?,
    })
}

/// The backup-eligible flag the authenticator gave at registration (a synced passkey).
/// `Passkey` keeps it inside without a getter; its serialised form shows it.
fn backup_eligible(passkey: &Passkey) -> Result<bool, PasskeyError> {
    let value = serde_json::to_value(passkey)?;
    Ok(value
        .pointer("/cred/backup_eligible")
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false))
}

/// A time as the passkeys page shows it.
pub fn display_date(at: i64) -> String {
    chrono::DateTime::from_timestamp(at, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default()
}

/// The trimmed name, or the default; at most 64 characters.
pub fn clean_name(name: &str) -> String {
    let name: String = name.trim().chars().take(MAX_NAME_CHARS).collect();
    if name.is_empty() {
        DEFAULT_NAME.to_string()
    } else {
        name
    }
}

/// Finishes a registration `user_id` started: the passkey is stored under `name`.
pub fn finish_registration(
    conn: &mut DbConnection,
    passkeys: &Passkeys,
    user_id: &str,
    secret: &str,
    name: &str,
    answer: &RegisterPublicKeyCredential,
    now: i64,
) -> Result<Result<PasskeyRow, Refused>, PasskeyError> {
    let id = crate::crypto::sha256_hex(secret.as_bytes());
    conn.transaction(|conn| {
        let ceremony = store::take_ceremony(conn, &id, REGISTRATION, now)?
            .filter(|c| c.user_id.as_deref() == Some(user_id));
        let Some(ceremony) = ceremony else {
            return Ok(Err(Refused::StaleCeremony));
        };
        let state: PasskeyRegistration = serde_json::from_str(&ceremony.state)?;
        let Ok(passkey) = passkeys
            .webauthn
            .finish_passkey_registration(answer, &state)
        else {
            return Ok(Err(Refused::Invalid));
        };
        let credential_id = credential_id_text(passkey.cred_id().as_ref());
        // One credential is one person's: the crate leaves this check to us.
        if store::by_credential_id(conn, &credential_id)?.is_some() {
            return Ok(Err(Refused::UnknownCredential));
        }
        let backup_eligible = backup_eligible(&passkey)?;
        let row = PasskeyRow {
            id: crate::db::new_id(),
            user_id: user_id.to_string(),
            credential_id,
            name: clean_name(name),
            credential: serde_json::to_string(&passkey)?,
            backup_eligible: i64::from(backup_eligible),
            created_at: now,
            last_used_at: None,
        };
        store::insert(conn, &row)?;
        audit::record(
            conn,
            Event::MfaEnrolled,
            Record {
                user_id: Some(user_id),
                detail: Some(json!({ "factor": "passkey", "passkey": row.id })),
                ..Record::default()
            },
            now,
        )?;
        Ok(Ok(row))
    })
}

pub fn list(conn: &mut DbConnection, user_id: &str) -> Result<Vec<PasskeyRow>, PasskeyError> {
    Ok(store::list(conn, user_id)?)
}

/// Renames the person's passkey; false if they have no passkey `id`.
pub fn rename(
    conn: &mut DbConnection,
    user_id: &str,
    id: &str,
    name: &str,
    now: i64,
) -> Result<bool, PasskeyError> {
    conn.transaction(|conn| {
        let name = clean_name(name);
        if !store::rename(conn, user_id, id, &name)? {
            return Ok(false);
        }
        audit::record(
            conn,
            Event::PasskeyRenamed,
            Record {
                user_id: Some(user_id),
                detail: Some(json!({ "passkey": id })),
                ..Record::default()
            },
            now,
        )?;
        Ok(true)
    })
}

pub use super::Removal;

/// Removes the person's passkey. Removing the last second factor (no other passkey, no
/// authenticator app) happens only `confirmed`.
pub fn remove(
    conn: &mut DbConnection,
    user_id: &str,
    id: &str,
    confirmed: bool,
    now: i64,
) -> Result<Removal, PasskeyError> {
    conn.transaction(|conn| {
        let mine = store::list(conn, user_id)?;
        if !mine.iter().any(|row| row.id == id) {
            return Ok(Removal::NotFound);
        }
        let totp = super::factors(conn, user_id)
            .map_err(|e| PasskeyError::Options(e.to_string()))?
            .totp;
        if mine.len() == 1 && !totp && !confirmed {
            return Ok(Removal::NeedsConfirmation);
        }
        store::delete(conn, user_id, id)?;
        let left =
            super::factors(conn, user_id).map_err(|e| PasskeyError::Options(e.to_string()))?;
        if !left.any() {
            // Recovery codes stand in for a factor: with none left they stand for nothing.
            super::store::delete_recovery_codes(conn, user_id)?;
        }
        audit::record(
            conn,
            Event::MfaRemoved,
            Record {
                user_id: Some(user_id),
                detail: Some(json!({ "factor": "passkey", "passkey": id })),
                ..Record::default()
            },
            now,
        )?;
        Ok(Removal::Removed)
    })
}

/// Starts a passwordless sign-in: the browser lets the person pick any passkey they keep for
/// this site (no list of credentials is sent, so nothing says who has an account).
pub fn start_sign_in(
    conn: &mut DbConnection,
    passkeys: &Passkeys,
    now: i64,
) -> Result<Started, PasskeyError> {
    let (mut options, state): (RequestChallengeResponse, DiscoverableAuthentication) = passkeys
        .webauthn
        .start_discoverable_authentication()
        .map_err(|e| PasskeyError::Options(e.to_string()))?;
    // The crate sets conditional mediation (autofill); the page asks on a button instead.
    options.mediation = None;
    let secret = save_ceremony(conn, None, SIGN_IN, serde_json::to_string(&state)?, now)?;
    Ok(Started {
        secret,
        options: serde_json::to_value(&options)?,
    })
}

/// Starts a passkey as second factor for `user_id`, who passed the first: the options list the
/// person's own passkeys (they are known by now). `None` if they have none.
pub fn start_second_factor(
    conn: &mut DbConnection,
    passkeys: &Passkeys,
    user_id: &str,
    now: i64,
) -> Result<Option<Started>, PasskeyError> {
    let keys: Vec<Passkey> = store::list(conn, user_id)?
        .iter()
        .map(|row| serde_json::from_str(&row.credential))
        .collect::<Result<_, _>>()?;
    if keys.is_empty() {
        return Ok(None);
    }
    let (options, state): (RequestChallengeResponse, PasskeyAuthentication) = passkeys
        .webauthn
        .start_passkey_authentication(&keys)
        .map_err(|e| PasskeyError::Options(e.to_string()))?;
    let secret = save_ceremony(
        conn,
        Some(user_id),
        SECOND_FACTOR,
        serde_json::to_string(&state)?,
        now,
    )?;
    Ok(Some(Started {
        secret,
        options: serde_json::to_value(&options)?,
    }))
}

/// Checks a passkey given as second factor by `user_id` (inside the caller's transaction):
/// the ceremony is taken whatever the answer, the assertion must verify against its challenge
/// and be made by one of the person's own passkeys, whose counter is then stored. The method
/// it proves: `hwk`, or `swk` for a synced passkey.
pub fn check_second_factor(
    conn: &mut DbConnection,
    passkeys: &Passkeys,
    user_id: &str,
    secret: &str,
    answer: &PublicKeyCredential,
    now: i64,
) -> Result<Result<AuthMethod, Refused>, PasskeyError> {
    let id = crate::crypto::sha256_hex(secret.as_bytes());
    let ceremony = store::take_ceremony(conn, &id, SECOND_FACTOR, now)?
        .filter(|c| c.user_id.as_deref() == Some(user_id));
    let Some(ceremony) = ceremony else {
        return Ok(Err(Refused::StaleCeremony));
    };
    let state: PasskeyAuthentication = serde_json::from_str(&ceremony.state)?;
    let credential_id = credential_id_text(answer.get_credential_id());
    let Some(row) =
        store::by_credential_id(conn, &credential_id)?.filter(|row| row.user_id == user_id)
    else {
        return Ok(Err(Refused::UnknownCredential));
    };
    let Ok(result) = passkeys
        .webauthn
        .finish_passkey_authentication(answer, &state)
    else {
        return Ok(Err(Refused::Invalid));
    };
    let mut passkey: Passkey = serde_json::from_str(&row.credential)?;
    let backup_eligible = record_use(conn, &row, &mut passkey, &result, now)?;
    Ok(Ok(key_method(backup_eligible)))
}

/// Stores what a verified use changed in `passkey` (its counter, its backup flags) and when it
/// was used; whether it is backup-eligible (synced) now.
fn record_use(
    conn: &mut DbConnection,
    row: &PasskeyRow,
    passkey: &mut Passkey,
    result: &webauthn_rs::prelude::AuthenticationResult,
    now: i64,
) -> Result<bool, PasskeyError> {
    passkey.update_credential(result);
    let backup_eligible = result.backup_eligible();
    let credential = serde_json::to_string(passkey)?;
    store::record_use(conn, &row.id, &credential, backup_eligible, now)?;
    Ok(backup_eligible)
}

/// Checks a passkey given as second factor at sign-in: throttled and audited like a code.
/// A refusal says why (a spent or stale ceremony, a key that is not the person's, an answer
/// that does not verify).
#[allow(clippy::too_many_arguments)]
pub fn check_passkey(
    conn: &mut DbConnection,
    passkeys: &Passkeys,
    settings: &ThrottleSettings,
    attempt: super::CodeAttempt<'_>,
    ceremony: &str,
    answer: &PublicKeyCredential,
    now: i64,
) -> Result<(super::CodeCheck<AuthMethod>, Option<Refused>), super::MfaError> {
    let user_id = attempt.user_id.to_string();
    let mut refused = None;
    let checked = super::checked_code(conn, settings, attempt, "passkey", now, |conn| {
        match check_second_factor(conn, passkeys, &user_id, ceremony, answer, now)
            .map_err(PasskeyError::into_mfa)?
        {
            Ok(method) => Ok(Some(method)),
            Err(why) => {
                refused = Some(why);
                Ok(None)
            }
        }
    })?;
    Ok((checked, refused))
}

/// `swk` for a synced (backup-eligible) passkey, else `hwk`.
fn key_method(backup_eligible: bool) -> AuthMethod {
    if backup_eligible {
        AuthMethod::SoftwareKey
    } else {
        AuthMethod::HardwareKey
    }
}

/// The outcome of a passwordless sign-in.
#[derive(Debug)]
pub enum SignIn {
    Accepted {
        user: Box<User>,
        amr: Amr,
    },
    Refused(Refused),
    /// Too many failed attempts from this IP: wait this many seconds.
    Throttled(i64),
}

/// The `amr` of a passkey sign-in: `swk` for a synced (backup-eligible) passkey, else `hwk`;
/// `user` and `mfa` when the authenticator verified the person (possession + PIN/biometric).
pub fn amr_of(backup_eligible: bool, user_verified: bool) -> Amr {
    let mut methods = vec![key_method(backup_eligible)];
    if user_verified {
        methods.push(AuthMethod::UserPresence);
        methods.push(AuthMethod::MultiFactor);
    }
    Amr::of_all(&methods)
}

/// Finishes a passwordless sign-in: the credential is looked up by its id, verified against
/// the ceremony's challenge, and its counter and backup flags are stored. Every attempt counts
/// against the IP's throttle (shared with passwords); a success gives it back.
#[allow(clippy::too_many_arguments)]
pub fn finish_sign_in(
    conn: &mut DbConnection,
    passkeys: &Passkeys,
    settings: &ThrottleSettings,
    secret: &str,
    answer: &PublicKeyCredential,
    ip: Option<&str>,
    client_id: Option<&str>,
    now: i64,
) -> Result<SignIn, PasskeyError> {
    let keys: Vec<(String, Policy)> = ip
        .map(|ip| vec![(format!("ip:{}", throttle::ip_key(ip)), Policy::ip(settings))])
        .unwrap_or_default();
    if let Some(wait) = throttle::reserve(conn, &keys, now)? {
        return Ok(SignIn::Throttled(wait));
    }
    let id = crate::crypto::sha256_hex(secret.as_bytes());
    let outcome = conn.transaction(|conn| {
        let Some(ceremony) = store::take_ceremony(conn, &id, SIGN_IN, now)? else {
            return Ok::<_, PasskeyError>(Err((Refused::StaleCeremony, None)));
        };
        let state: DiscoverableAuthentication = serde_json::from_str(&ceremony.state)?;
        let credential_id = credential_id_text(answer.get_credential_id());
        let Some(row) = store::by_credential_id(conn, &credential_id)? else {
            return Ok(Err((Refused::UnknownCredential, None)));
        };
        let user = crate::db::repo::users::find_by_id(conn, &row.user_id)?;
        let Some(user) = user.filter(|u| u.disabled_at.is_none()) else {
            return Ok(Err((Refused::UnknownCredential, None)));
        };
        let mut passkey: Passkey = serde_json::from_str(&row.credential)?;
        // The user handle the authenticator returned must be this passkey's person's.
        let handle_ok = answer
            .get_user_unique_id()
            .is_some_and(|h| h == user_handle(&row.user_id).as_bytes());
        let verified = handle_ok
            .then(|| {
                passkeys
                    .webauthn
                    .finish_discoverable_authentication_v2(answer, state, &passkey)
                    .ok()
            })
            .flatten();
        let Some(result) = verified else {
            return Ok(Err((Refused::Invalid, Some(row.user_id))));
        };
        let backup_eligible = record_use(conn, &row, &mut passkey, &result, now)?;
        throttle::succeeded(conn, &keys, now)?;
        audit::record(
            conn,
            Event::LoginSuccess,
            Record {
                user_id: Some(user.id.as_str()),
                client_id,
                ip,
                detail: Some(json!({ "method": "passkey", "passkey": row.id })),
            },
            now,
        )?;
        let amr = amr_of(backup_eligible, result.user_verified());
        Ok(Ok((user, amr)))
    })?;
    match outcome {
        Ok((user, amr)) => Ok(SignIn::Accepted {
            user: Box::new(user),
            amr,
        }),
        Err((refused, user_id)) => {
            audit::record(
                conn,
                Event::LoginFailure,
                Record {
                    user_id: user_id.as_deref(),
                    client_id,
                    ip,
                    detail: Some(json!({ "method": "passkey", "reason": refused.reason() })),
                },
                now,
            )?;
            Ok(SignIn::Refused(refused))
        }
    }
}
