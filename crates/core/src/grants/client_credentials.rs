//! RFC 6749 §4.4: a confidential client gets an access token for itself; no refresh token,
//! no ID token (there is no user).

use super::issue::{Issued, Subject, mint};
use super::{GrantError, Params, require_grant, resolve_scope};
use crate::domain::{Client, GrantType};
use crate::services::Services;

pub fn grant(svc: &Services, client: &Client, params: &Params) -> Result<Issued, GrantError> {
    require_grant(client, GrantType::ClientCredentials)?;
    if client.secret_hash.is_none() {
        return Err(GrantError::UnauthorizedClient(
            "a public client cannot use client_credentials".into(),
        ));
    }
    let scope = resolve_scope(client, params.get("scope"))?;
    if scope.contains("openid") && params.get("scope").is_some() {
        return Err(GrantError::InvalidScope(
            "openid needs a user; client_credentials has none".into(),
        ));
    }
    let scope = scope.filter(|s| s != "openid");
    mint(svc, client, Subject::Client, &scope, None, svc.clock.now())
}
