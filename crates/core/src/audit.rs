//! The audit trail: who did what, when, from where. Never a password, token or secret.

use crate::db::models::NewAuditEvent;
use crate::db::repo;
use crate::db::{DbConnection, DbError};
use crate::domain::UserId;

/// Who asked for a change. The audit trail names it in the record's `detail.by`, so that the
/// record's `user_id` and `client_id` always name what the change was done to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// The operator, through the command line (`tessera user …`, `tessera client …`).
    Operator,
    /// A user with the admin role, by id, through the admin API.
    Admin(UserId),
    /// A user acting on their own account, by id.
    User(UserId),
    /// The server itself; the name says which job.
    System(&'static str),
}

impl Actor {
    /// The `by` of an audit record: `cli`, the admin's user id, `self`, or the job's name.
    pub fn by(&self) -> &str {
        match self {
            Actor::Operator => "cli",
            Actor::Admin(id) => id,
            Actor::User(_) => "self",
            Actor::System(job) => job,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    LoginSuccess,
    LoginFailure,
    LoginThrottled,
    UserRegistered,
    RegistrationAttempted,
    UserDisabled,
    UserEnabled,
    RolesChanged,
    ClientCreated,
    /// A client's registration changed in place (the detail names the fields).
    ClientUpdated,
    ClientDeleted,
    RefreshTokenReuse,
    AuthorizationCodeReuse,
    SessionsRevoked,
    FederatedUserCreated,
    FederatedIdentityLinked,
    FederatedLogin,
    EmailVerified,
    MailRequested,
    PasswordReset,
    PasswordChanged,
    UserDeleted,
    /// An unverified account lost its address to a verified owner.
    EmailReleased,
    /// A person allowed a third-party app scopes on the consent page.
    ConsentGranted,
    /// A person withdrew a third-party app's consent (its refresh tokens end with it).
    ConsentRevoked,
    /// A second factor became active (a confirmed authenticator app).
    MfaEnrolled,
    /// A person removed a second factor.
    MfaRemoved,
    /// A new set of recovery codes; the old ones no longer work.
    RecoveryCodesGenerated,
    /// A second factor was checked and accepted (at sign-in or enrolment).
    SecondFactorAccepted,
    /// A second factor was checked and refused (wrong, replayed, or throttled).
    SecondFactorRefused,
    /// A recovery code stood in for the second factor.
    RecoveryCodeUsed,
    PasskeyRenamed,
    /// An operator or administrator took away every second factor of a person who lost them
    /// (and ended their sessions).
    MfaReset,
}

impl Event {
    pub fn name(self) -> &'static str {
        match self {
            Event::LoginSuccess => "login_success",
            Event::LoginFailure => "login_failure",
            Event::LoginThrottled => "login_throttled",
            Event::UserRegistered => "user_registered",
            Event::RegistrationAttempted => "registration_attempted",
            Event::UserDisabled => "user_disabled",
            Event::UserEnabled => "user_enabled",
            Event::RolesChanged => "roles_changed",
            Event::ClientCreated => "client_created",
            Event::ClientUpdated => "client_updated",
            Event::ClientDeleted => "client_deleted",
            Event::RefreshTokenReuse => "refresh_token_reuse",
            Event::AuthorizationCodeReuse => "authorization_code_reuse",
            Event::SessionsRevoked => "sessions_revoked",
            Event::FederatedUserCreated => "federated_user_created",
            Event::FederatedIdentityLinked => "federated_identity_linked",
            Event::FederatedLogin => "federated_login",
            Event::EmailVerified => "email_verified",
            Event::MailRequested => "mail_requested",
            Event::PasswordReset => "password_reset",
            Event::PasswordChanged => "password_changed",
            Event::UserDeleted => "user_deleted",
            Event::EmailReleased => "email_released",
            Event::ConsentGranted => "consent_granted",
            Event::ConsentRevoked => "consent_revoked",
            Event::MfaEnrolled => "mfa_enrolled",
            Event::MfaRemoved => "mfa_removed",
            Event::RecoveryCodesGenerated => "recovery_codes_generated",
            Event::SecondFactorAccepted => "second_factor_accepted",
            Event::SecondFactorRefused => "second_factor_refused",
            Event::RecoveryCodeUsed => "recovery_code_used",
            Event::PasskeyRenamed => "passkey_renamed",
            Event::MfaReset => "mfa_reset",
        }
    }
}

/// One audit record. `detail` is a small JSON object of non-secret facts.
#[derive(Debug, Default)]
pub struct Record<'a> {
    pub user_id: Option<&'a str>,
    pub client_id: Option<&'a str>,
    pub ip: Option<&'a str>,
    pub detail: Option<serde_json::Value>,
}

pub fn record(
    conn: &mut DbConnection,
    event: Event,
    record: Record<'_>,
    now: i64,
) -> Result<(), DbError> {
    let id = crate::db::new_id();
    let detail = record.detail.map(|d| d.to_string());
    repo::audit::insert(
        conn,
        &NewAuditEvent {
            id: &id,
            occurred_at: now,
            event: event.name(),
            user_id: record.user_id,
            client_id: record.client_id,
            ip: record.ip,
            detail: detail.as_deref(),
        },
    )?;
    Ok(())
}
