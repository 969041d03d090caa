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
use crate::db::models::NewUser;
use crate::db::repo::users;
use crate::db::{DbConnection, DbError};
use crate::domain::{Roles, User};
use crate::services::Services;
use throttle::Policy;

/// Whether the account owns the address it shows: its sign-in key is that address. An account
/// whose upstream did not vouch for the address, or that lost it to a verified owner, shows it
/// without owning it.
pub fn owns_address(user: &crate::domain::User) -> bool {
    email::Email::parse(&user.email).is_ok_and(|e| e.lookup_key() == user.email_lower)
}

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("email: {0}")]
    InvalidEmail(String),
    #[error("password: {0}")]
    WeakPassword(String),
    #[error("name: must be at most 200 characters, without control characters")]
    InvalidName,
    #[error("{0}")]
    InvalidRole(crate::domain::Invalid),
    #[error("an account with this email already exists")]
    DuplicateEmail,
    #[error("too many registrations from this network; try again in {0} s")]
    Throttled(i64),
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
            id: u.id.to_string(),
            email: u.email.clone(),
            name: u.name.clone(),
            roles: u.roles.to_vec(),
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
    pub roles: Roles,
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
        let roles = Roles::parse(roles).map_err(AccountError::InvalidRole)?;
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
            roles,
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
            roles: &account.roles.to_string(),
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

/// What a registration came to.
#[derive(Debug)]
pub enum Registered {
    /// A new, unverified account (with mail on, its verification mail is queued).
    Created(Box<User>),
    /// With mail on only: the address has an account, whose owner is mailed a notice. The
    /// caller answers exactly as for `Created`, so the answer says nothing about the address.
    Taken,
}

/// The counters a registration touches: the client's network and, when it sends mail, the
/// address's mail counter shared with password resets and re-sends (one inbox is not flooded
/// whichever way the mail is asked for).
fn registration_keys(svc: &Services, email_lower: &str, ip: Option<&str>) -> Vec<(String, Policy)> {
    let settings = &svc.settings.accounts;
    let policy = |free| Policy {
        free_attempts: free,
        window_secs: settings.mail_request_window_secs,
        max_backoff_secs: settings.mail_request_window_secs,
    };
    let mut keys = Vec::new();
    if let Some(ip) = ip {
        keys.push((
            format!("register:ip:{}", throttle::ip_key(ip)),
            policy(settings.registrations_per_ip),
        ));
    }
    if svc.mailer.is_some() {
        keys.push((
            throttle::mail_email_key(email_lower),
            policy(settings.mail_requests_per_email),
        ));
    }
    keys
}

/// Self-registration (POST /users and the "Create account" page). The cheap checks come
/// first — validation, the password policy, the throttle, whether the address is taken — and
/// only a registration that passes them all is hashed (argon2), so refused or duplicate
/// registrations cannot fill the hashing pool. Then the account, its audit record and (with
/// mail on) its verification mail are written in one transaction; the account starts
/// unverified. A taken address is `DuplicateEmail` without mail, and with mail `Taken`: its
/// owner is mailed a notice, after a wait as long as a hash takes (a timer, no CPU), so the
/// answer and its timing are the same as for a new address.
pub async fn register(
    svc: &Services,
    email: &str,
    password: String,
    name: Option<&str>,
    ip: Option<String>,
) -> Result<Registered, AccountError> {
    let mail_on = svc.mailer.is_some();
    let account = NewAccount::validate(email, name, &[], false)?;
    password::check_policy(
        &password,
        account.email.display(),
        svc.settings.passwords.min_length,
    )
    .map_err(AccountError::WeakPassword)?;
    let email_lower = account.email.lookup_key().to_string();
    // Before the address is looked up, so that a full pool refuses new and taken addresses
    // alike (otherwise "busy" would mean "new").
    if svc.hashes.is_saturated() {
        return Err(crate::accounts::hash_pool::HashPoolError::Busy.into());
    }
    let keys = registration_keys(svc, &email_lower, ip.as_deref());
    let now = svc.clock.now();
    let taken = {
        let ip = ip.clone();
        svc.db
            .run(move |conn| {
                if let Some(wait) = throttle::reserve(conn, &keys, now)? {
                    return Err(AccountError::Throttled(wait));
                }
                let Some(owner) = users::find_by_email(conn, &email_lower)? else {
                    return Ok(false);
                };
                if !mail_on {
                    return Err(AccountError::DuplicateEmail);
                }
                notify_owner(conn, &owner, ip.as_deref(), now)?;
                Ok(true)
            })
            .await?
    };
    if taken {
        return answered_like_a_hash(svc).await;
    }
    let hash = svc.hashes.hash(password).await?;
    let now = svc.clock.now();
    let created = {
        let ip = ip.clone();
        svc.db
            .run(move |conn| {
                conn.transaction(|conn| {
                    let user = create(conn, &account, Some(&hash))?;
                    users::mark_self_registered(conn, &user.id, now)?;
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
    };
    match created {
        Ok(user) => {
            if mail_on {
                svc.outbox_wake.notify_one();
            }
            Ok(Registered::Created(Box::new(user)))
        }
        // Registered by someone else since the check: the same as taken.
        Err(AccountError::DuplicateEmail) if mail_on => {
            let email_lower = email_lower_of(email)?;
            svc.db
                .run(move |conn| {
                    if let Some(owner) = users::find_by_email(conn, &email_lower)? {
                        notify_owner(conn, &owner, ip.as_deref(), now)?;
                    }
                    Ok::<_, AccountError>(())
                })
                .await?;
            svc.outbox_wake.notify_one();
            Ok(Registered::Taken)
        }
        Err(e) => Err(e),
    }
}

fn email_lower_of(email: &str) -> Result<String, AccountError> {
    email::Email::parse(email)
        .map(|e| e.lookup_key().to_string())
        .map_err(AccountError::InvalidEmail)
}

/// Waits as long as a hash usually takes (measured with one if there is no figure yet), then
/// says `Taken`.
async fn answered_like_a_hash(svc: &Services) -> Result<Registered, AccountError> {
    svc.outbox_wake.notify_one();
    let typical = svc.hashes.typical_hash_time();
    if typical.is_zero() {
        svc.hashes.typical_hash_time_measured().await?;
    } else {
        tokio::time::sleep(typical).await;
    }
    Ok(Registered::Taken)
}

/// Queues the notice to an address's owner that someone tried to register it, and audits it.
fn notify_owner(
    conn: &mut DbConnection,
    owner: &User,
    ip: Option<&str>,
    now: i64,
) -> Result<(), AccountError> {
    conn.transaction(|conn| {
        crate::mail::outbox::enqueue(
            conn,
            crate::mail::templates::MailKind::RegistrationAttempt,
            &owner.email_lower,
            Some(&owner.id),
            now,
        )?;
        audit::record(
            conn,
            Event::RegistrationAttempted,
            Record {
                user_id: Some(&owner.id),
                ip,
                ..Record::default()
            },
            now,
        )?;
        Ok(())
    })
}

/// Where a page of the user list ends: opaque to clients (base64url of the last user's
/// creation time and id), so the order can change without breaking them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    created_at: i64,
    id: String,
}

impl Cursor {
    pub fn encode(&self) -> String {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(format!("{}.{}", self.created_at, self.id))
    }

    /// `None` for anything this server did not make.
    pub fn decode(text: &str) -> Option<Cursor> {
        use base64::Engine;
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text)
            .ok()?;
        let raw = String::from_utf8(raw).ok()?;
        let (created_at, id) = raw.split_once('.')?;
        if id.is_empty() || id.len() > 64 {
            return None;
        }
        Some(Cursor {
            created_at: created_at.parse().ok()?,
            id: id.to_string(),
        })
    }
}

/// One page of users, oldest first, and the cursor of the next page if there is one.
#[derive(Debug)]
pub struct UserPage {
    pub users: Vec<User>,
    pub next: Option<Cursor>,
}

/// The users after `after` (from the first without), at most `limit` (at least 1).
pub fn list_users(
    conn: &mut DbConnection,
    after: Option<&Cursor>,
    limit: i64,
) -> Result<UserPage, AccountError> {
    let limit = limit.max(1);
    let mut users = users::list_after(
        conn,
        after.map(|c| (c.created_at, c.id.as_str())),
        limit.saturating_add(1),
    )?;
    let more = users.len() as i64 > limit;
    users.truncate(limit as usize);
    let next = users.last().filter(|_| more).map(|u| Cursor {
        created_at: u.created_at,
        id: u.id.to_string(),
    });
    Ok(UserPage { users, next })
}
