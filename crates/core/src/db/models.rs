//! Row structs (what a query returns) and insert structs (what a write takes), kept apart so an
//! insert never has to invent values the database fills in.

use diesel::prelude::*;

use super::schema::{audit_events, clients, signing_keys, users};

#[derive(Clone, Queryable, Selectable)]
#[diesel(table_name = users)]
pub struct UserRow {
    pub id: String,
    pub email: String,
    pub email_lower: String,
    pub name: Option<String>,
    pub password_hash: Option<String>,
    pub roles: String,
    pub security_stamp: String,
    pub email_verified_at: Option<i64>,
    pub disabled_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Insertable)]
#[diesel(table_name = users)]
pub struct NewUser<'a> {
    pub id: &'a str,
    pub email: &'a str,
    pub email_lower: &'a str,
    pub name: Option<&'a str>,
    pub password_hash: Option<&'a str>,
    pub roles: &'a str,
    pub security_stamp: &'a str,
    pub email_verified_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Clone, Queryable, Selectable)]
#[diesel(table_name = clients)]
pub struct ClientRow {
    pub id: String,
    pub name: String,
    pub secret_hash: Option<String>,
    pub grant_types: String,
    pub scopes: String,
    pub redirect_uris: String,
    pub audiences: String,
    pub access_token_ttl_secs: Option<i64>,
    pub refresh_idle_ttl_secs: Option<i64>,
    pub refresh_absolute_ttl_secs: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub consent: String,
    pub post_logout_redirect_uris: String,
    pub backchannel_logout_uri: Option<String>,
    pub backchannel_logout_session_required: i64,
    pub require_mfa: i64,
    pub signing_alg: String,
}

#[derive(Insertable)]
#[diesel(table_name = clients)]
pub struct NewClient<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub secret_hash: Option<&'a str>,
    pub grant_types: &'a str,
    pub scopes: &'a str,
    pub redirect_uris: &'a str,
    pub audiences: &'a str,
    pub created_at: i64,
    pub updated_at: i64,
    pub consent: &'a str,
    pub post_logout_redirect_uris: &'a str,
    pub backchannel_logout_uri: Option<&'a str>,
    pub backchannel_logout_session_required: i64,
    pub require_mfa: i64,
    pub signing_alg: &'a str,
}

/// What `clients::update` may change in a registration.
#[derive(Debug, AsChangeset)]
#[diesel(table_name = clients, treat_none_as_null = true)]
pub struct ClientChanges<'a> {
    pub name: &'a str,
    pub redirect_uris: &'a str,
    pub post_logout_redirect_uris: &'a str,
    pub backchannel_logout_uri: Option<&'a str>,
    pub backchannel_logout_session_required: i64,
    pub require_mfa: i64,
    pub signing_alg: &'a str,
    pub updated_at: i64,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = audit_events)]
pub struct NewAuditEvent<'a> {
    pub id: &'a str,
    pub occurred_at: i64,
    pub event: &'a str,
    pub user_id: Option<&'a str>,
    pub client_id: Option<&'a str>,
    pub ip: Option<&'a str>,
    pub detail: Option<&'a str>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = signing_keys)]
pub struct SigningKeyRow {
    pub kid: String,
    pub algorithm: String,
    pub state: String,
    pub created_at: i64,
    pub activated_at: Option<i64>,
    pub retiring_at: Option<i64>,
    pub retired_at: Option<i64>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = crate::db::schema::refresh_token_families)]
pub struct RefreshFamily {
    pub id: String,
    pub user_id: String,
    pub client_id: String,
    pub scope: String,
    pub security_stamp: String,
    pub auth_time: i64,
    pub created_at: i64,
    pub absolute_expires_at: i64,
    pub revoked_at: Option<i64>,
    pub revoked_reason: Option<String>,
    /// The browser session that started the family, which ends it; `None` when it outlives
    /// sessions (`offline_access`, or a grant with no browser, such as the password grant).
    pub session_id: Option<String>,
    /// The sign-in's methods (RFC 8176), space-separated, for the ID tokens a refresh mints.
    pub amr: Option<String>,
}

#[derive(Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = crate::db::schema::refresh_tokens)]
pub struct RefreshToken {
    pub token_hash: String,
    pub family_id: String,
    pub parent_hash: Option<String>,
    pub replaced_by: Option<String>,
    pub scope: String,
    pub issued_at: i64,
    pub idle_expires_at: i64,
    pub used_at: Option<i64>,
    /// `used_at` in milliseconds, for the reuse grace window (none on rows used before it).
    pub used_at_ms: Option<i64>,
}

// Hand-written Debug for rows that hold hashes of secrets: a stray `{:?}` in a log line must
// not print them.
impl std::fmt::Debug for UserRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRow")
            .field("id", &self.id)
            .field("email", &self.email)
            .field("roles", &self.roles)
            .field("disabled_at", &self.disabled_at)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for NewUser<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewUser")
            .field("id", &self.id)
            .field("email", &self.email)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for ClientRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientRow")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("public", &self.secret_hash.is_none())
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for NewClient<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewClient")
            .field("id", &self.id)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefreshToken")
            .field("family_id", &self.family_id)
            .field("used_at", &self.used_at)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = crate::db::schema::authorization_codes)]
// A `None` is inserted as NULL (no column has another default), so the INSERT has one shape
// and its prepared statement is cached by type.
#[diesel(treat_none_as_default_value = false)]
pub struct AuthorizationCode {
    pub code_hash: String,
    pub client_id: String,
    pub user_id: String,
    pub redirect_uri: String,
    pub scope: String,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub auth_time: i64,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    pub family_id: Option<String>,
    pub access_token_jti: Option<String>,
    pub access_token_expires_at: Option<i64>,
    /// The browser session the code was issued in (its `sid`); the sign-in's methods are the
    /// session's.
    pub session_id: Option<String>,
}

impl std::fmt::Debug for AuthorizationCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthorizationCode")
            .field("client_id", &self.client_id)
            .field("user_id", &self.user_id)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// A sign-in waiting at an upstream provider. `request` is the app's authorization request.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = crate::db::schema::federation_states)]
pub struct FederationState {
    pub state_hash: String,
    pub provider: String,
    pub browser_hash: String,
    pub request: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
}

/// An upstream identity waiting for the person to prove (or decline) the account it would be
/// linked to. `request` is the app's authorization request.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = crate::db::schema::pending_links)]
pub struct PendingLink {
    pub secret_hash: String,
    pub provider: String,
    pub subject: String,
    pub email: Option<String>,
    pub user_id: String,
    pub request: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = crate::db::schema::federated_identities)]
pub struct FederatedIdentity {
    pub id: String,
    pub provider: String,
    pub subject: String,
    pub user_id: String,
    pub email: Option<String>,
    pub created_at: i64,
    pub last_login_at: i64,
}

/// Rows become domain values here, on the way out of the database: the columns stay text, and
/// nothing past the repository splits them.
impl From<UserRow> for crate::domain::User {
    fn from(row: UserRow) -> Self {
        crate::domain::User {
            id: crate::domain::UserId::new(row.id),
            email: row.email,
            email_lower: row.email_lower,
            name: row.name,
            password_hash: row.password_hash,
            roles: crate::domain::Roles::from_stored(&row.roles),
            security_stamp: row.security_stamp,
            email_verified_at: row.email_verified_at,
            disabled_at: row.disabled_at,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

impl From<ClientRow> for crate::domain::Client {
    fn from(row: ClientRow) -> Self {
        use crate::domain::{Audiences, ClientId, GrantTypes, RedirectUris, ScopeSet};
        crate::domain::Client {
            id: ClientId::new(row.id),
            name: row.name,
            secret_hash: row.secret_hash,
            grant_types: GrantTypes::from_stored(&row.grant_types),
            scopes: ScopeSet::from_stored(&row.scopes),
            redirect_uris: RedirectUris::from_stored(&row.redirect_uris),
            audiences: Audiences::from_stored(&row.audiences),
            access_token_ttl_secs: row.access_token_ttl_secs,
            refresh_idle_ttl_secs: row.refresh_idle_ttl_secs,
            refresh_absolute_ttl_secs: row.refresh_absolute_ttl_secs,
            created_at: row.created_at,
            updated_at: row.updated_at,
            consent: crate::domain::Consent::from_stored(&row.consent),
            post_logout_redirect_uris: RedirectUris::from_stored(&row.post_logout_redirect_uris),
            backchannel_logout: row.backchannel_logout_uri.map(|uri| {
                crate::domain::BackchannelLogout {
                    uri,
                    session_required: row.backchannel_logout_session_required != 0,
                }
            }),
            require_mfa: row.require_mfa != 0,
            signing_alg: crate::domain::SigningAlg::from_stored(&row.signing_alg),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = crate::db::schema::login_throttles, treat_none_as_null = true)]
pub struct ThrottleRow {
    pub throttle_key: String,
    pub failures: i64,
    pub window_started_at: i64,
    pub blocked_until: Option<i64>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = crate::db::schema::revoked_access_tokens)]
pub struct RevokedAccessToken<'a> {
    pub jti: &'a str,
    pub expires_at: i64,
}

/// An app that received tokens in a browser session (told when the session ends).
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = crate::db::schema::session_clients)]
pub struct SessionClientRow {
    pub session_id: String,
    pub client_id: String,
    pub first_at: i64,
}
