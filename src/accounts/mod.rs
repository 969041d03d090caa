//! User accounts: validation, creation and lookup, free of HTTP.

pub mod email;
pub mod hash_pool;
pub mod password;
pub mod throttle;

use crate::db::models::{NewUser, User};
use crate::db::repo::users;
use crate::db::{DbConnection, DbError};

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("email: {0}")]
    InvalidEmail(String),
    #[error("password: {0}")]
    WeakPassword(String),
    #[error("role {0:?} is not a valid role name")]
    InvalidRole(String),
    #[error("an account with this email already exists")]
    DuplicateEmail,
    #[error(transparent)]
    Password(#[from] password::PasswordError),
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
