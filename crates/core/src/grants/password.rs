//! RFC 6749 §4.3, the resource owner password grant, for first-party clients registered for
//! it. The credential check (throttling, equal work for unknown users) is `accounts::login`'s.

use super::issue::{Issued, SignIn};
use super::{GrantError, TokenRequest, require_grant, resolve_scope};
use crate::accounts::login::{self, Attempt, LoginError};
use crate::domain::{Client, GrantType, ScopeSet, User};
use crate::services::Services;

/// The refusal of the password grant to someone who must use a second factor.
pub const MFA_REQUIRED: &str =
    "multi-factor authentication is required; use the authorization code flow";

pub async fn grant(
    svc: &Services,
    client: &Client,
    request: &TokenRequest,
) -> Result<Issued, GrantError> {
    require_grant(client, GrantType::Password)?;
    let username = request.params.required("username")?;
    let password = request.params.required("password")?;
    let scope = resolve_scope(client, request.params.get("scope"))?;
    let attempt = Attempt {
        client_id: &client.id,
        ip: request.ip.as_deref(),
        via: "password",
    };
    let user = login::verify_credentials(svc, username, password, attempt).await?;
    // No second step fits this grant: whoever has or must use a second factor (the policy's
    // or the client's) signs in through the browser. Said only after the password was right, so it tells a guesser nothing.
    let user_id = user.id.to_string();
    let has_factor = svc
        .db
        .run(move |conn| {
            crate::mfa::factors(conn, &user_id)
                .map(|f| f.any())
                .map_err(|e| crate::db::DbError::Task(e.to_string()))
        })
        .await?;
    if svc.settings.accounts.mfa.is_required() || client.require_mfa || has_factor {
        return Err(GrantError::InvalidGrant(MFA_REQUIRED.into()));
    }
    let scope = if request.params.get("scope").is_none() {
        // The client's default scope: leave out what this user may not have.
        super::scope_for_user(&user, &scope)
    } else {
        scope
    };
    check_role_scopes(&user, &scope)?;
    // The password was checked just now: that is the sign-in every token of the session names.
    let now = svc.clock.now();
    let sign_in = SignIn {
        client,
        user: &user,
        scope: &scope,
        nonce: None,
        auth: crate::domain::Authentication::without_session(
            now,
            crate::domain::AuthMethod::Password,
        ),
    };
    super::issue::for_user(svc, sign_in, now).await
}

/// `admin` is granted only to users with the admin role.
pub(crate) fn check_role_scopes(user: &User, scope: &ScopeSet) -> Result<(), GrantError> {
    if scope.contains(super::ADMIN_SCOPE) && !user.roles.is_admin() {
        return Err(GrantError::InvalidScope(
            "scope \"admin\" needs the admin role".into(),
        ));
    }
    Ok(())
}

impl From<LoginError> for GrantError {
    fn from(e: LoginError) -> Self {
        match e {
            e @ LoginError::BadCredentials => GrantError::InvalidGrant(e.to_string()),
            LoginError::Throttled(wait) => GrantError::Throttled(wait),
            LoginError::Busy => GrantError::Busy,
            LoginError::Db(e) => GrantError::Db(e),
            LoginError::Hashing(e) => GrantError::Hashing(e),
        }
    }
}
