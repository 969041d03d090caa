//! User accounts: validation, creation and lookup, free of HTTP.

pub mod email;
pub mod hash_pool;
pub mod known;
pub mod login;
pub mod password;
pub mod self_service;
pub mod throttle;

use diesel::Connection;
use serde_json::json;

use crate::audit::{self, Event, Record};
use crate::db::models::{NewUser, User};
use crate::db::repo::users;
use crate::db::{DbConnection, DbError};
use crate::services::Services;

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("email: {0}")]
    InvalidEmail(String),
    #[error("password: {0}")]
    WeakPassword(String),
    #[error("name: must be at most 200 characters, without control characters")]
    InvalidName,
    #[error("role {0:?} is not a valid role name")]
    InvalidRole(String),
    #[error("an account with this email already exists")]
    DuplicateEmail,
    #[error("no such user")]
    NotFound,
    #[error(transparent)]
    Hashing(#[from] hash_pool::HashPoolError),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for AccountError {
    fn from(e: diesel::result::Error) -> Self {
        match e {
            diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _,
            ) => AccountError::DuplicateEmail,
            other => AccountError::Db(DbError::Query(other)),
        }
    }
}

/// What the API and the CLI show of a user: never the password hash or the security stamp.
#[derive(Debug, serde::Serialize)]
pub struct UserView {
    pub id: String,
    pub email: String,
    pub name: Option<String>,
    pub roles: Vec<String>,
    pub email_verified: bool,
    pub active: bool,
    pub created_at: i64,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        UserView {
            id: u.id.clone(),
            email: u.email.clone(),
            name: u.name.clone(),
            roles: u.roles.split_whitespace().map(String::from).collect(),
            email_verified: u.email_verified_at.is_some(),
            active: u.disabled_at.is_none(),
            created_at: u.created_at,
        }
    }
}

/// What creating an account takes, already checked: see [`NewAccount::validate`].
#[derive(Debug)]
pub struct NewAccount {
    pub email: email::Email,
    pub name: Option<String>,
    pub roles: Vec<String>,
    pub email_verified: bool,
}

impl NewAccount {
    pub fn validate(
        email: &str,
        name: Option<&str>,
        roles: &[String],
        email_verified: bool,
    ) -> Result<NewAccount, AccountError> {
        let email = email::Email::parse(email).map_err(AccountError::InvalidEmail)?;
        for role in roles {
            if role.is_empty()
                || !role
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
            {
                return Err(AccountError::InvalidRole(role.clone()));
            }
        }
        let name = name
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(String::from);
        if let Some(name) = &name
            && (name.chars().any(char::is_control) || name.chars().count() > 200)
        {
            return Err(AccountError::InvalidName);
        }
        Ok(NewAccount {
            email,
            name,
            roles: roles.to_vec(),
            email_verified,
        })
    }
}

/// Inserts the account with an already computed password hash (hashing is slow and runs on
/// its own pool, never inside a database closure).
pub fn create(
    conn: &mut DbConnection,
    account: &NewAccount,
    password_hash: Option<&str>,
) -> Result<User, AccountError> {
    let id = crate::db::new_id();
    let now = crate::db::now();
    let stamp = crate::crypto::random_token(16).map_err(|e| DbError::Task(e.to_string()))?;
    users::insert(
        conn,
        &NewUser {
            id: &id,
            email: account.email.display(),
            email_lower: account.email.lookup_key(),
            name: account.name.as_deref(),
            password_hash,
            roles: &account.roles.join(" "),
            security_stamp: &stamp,
            email_verified_at: account.email_verified.then_some(now),
            created_at: now,
            updated_at: now,
        },
    )?;
    users::find_by_id(conn, &id)?.ok_or(AccountError::Db(DbError::Query(
        diesel::result::Error::NotFound,
    )))
}

/// Self-registration (POST /users): validates, checks the password policy, hashes on the
/// hashing pool, then creates the account, its audit record and (when mail is on) its
/// verification mail in one transaction. The account starts unverified.
pub async fn register(
    svc: &Services,
    email: &str,
    password: String,
    name: Option<&str>,
    ip: Option<String>,
) -> Result<User, AccountError> {
    let mail_on = svc.mailer.is_some();
    let account = NewAccount::validate(email, name, &[], false)?;
    password::check_policy(
        &password,
        account.email.display(),
        svc.settings.passwords.min_length,
    )
    .map_err(AccountError::WeakPassword)?;
    let hash = svc.hashes.hash(password).await?;
    let now = svc.clock.now();
    svc.db
        .run(move |conn| {
            conn.transaction(|conn| {
                let user = create(conn, &account, Some(&hash))?;
                audit::record(
                    conn,
                    Event::UserRegistered,
                    Record {
                        user_id: Some(&user.id),
                        ip: ip.as_deref(),
                        detail: Some(json!({ "via": "self_registration" })),
                        ..Record::default()
                    },
                    now,
                )?;
                if mail_on {
                    crate::mail::outbox::enqueue(
                        conn,
                        crate::mail::templates::MailKind::VerifyEmail,
                        &user.email_lower,
                        Some(&user.id),
                        now,
                    )?;
                }
                Ok::<_, AccountError>(user)
            })
        })
        .await
        .inspect(|_| {
            if mail_on {
                svc.outbox_wake.notify_one();
            }
        })
}

/// Disables or re-enables an account. Either way its security stamp changes, so sessions
/// started before (refresh token families) end.
pub fn set_disabled(
    conn: &mut DbConnection,
    user_id: &str,
    disabled: bool,
    actor: Option<&str>,
    now: i64,
) -> Result<User, AccountError> {
    conn.transaction(|conn| {
        let stamp = crate::crypto::random_token(16).map_err(|e| DbError::Task(e.to_string()))?;
        let changed = users::set_disabled(conn, user_id, disabled.then_some(now), &stamp, now)?;
        if changed == 0 {
            return Err(AccountError::NotFound);
        }
        let event = if disabled {
            Event::UserDisabled
        } else {
            Event::UserEnabled
        };
        audit::record(conn, event, actor_record(user_id, actor), now)?;
        users::find_by_id(conn, user_id)?.ok_or(AccountError::NotFound)
    })
}

pub fn set_roles(
    conn: &mut DbConnection,
    user_id: &str,
    roles: &[String],
    actor: Option<&str>,
    now: i64,
) -> Result<User, AccountError> {
    for role in roles {
        if !is_role_name(role) {
            return Err(AccountError::InvalidRole(role.clone()));
        }
    }
    conn.transaction(|conn| {
        if users::set_roles(conn, user_id, &roles.join(" "), now)? == 0 {
            return Err(AccountError::NotFound);
        }
        let mut record = actor_record(user_id, actor);
        record.detail = Some(json!({ "roles": roles, "by": actor }));
        audit::record(conn, Event::RolesChanged, record, now)?;
        users::find_by_id(conn, user_id)?.ok_or(AccountError::NotFound)
    })
}

fn actor_record<'a>(user_id: &'a str, actor: Option<&'a str>) -> Record<'a> {
    Record {
        user_id: Some(user_id),
        detail: Some(json!({ "by": actor.unwrap_or("cli") })),
        ..Record::default()
    }
}

fn is_role_name(role: &str) -> bool {
    !role.is_empty()
        && role.len() <= 64
        && role
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
}
