//! Minting what a successful grant returns: an RFC 9068 access token, and where asked for an
//! ID token and a refresh token.

use super::{GrantError, TokenResponse};
use crate::db::models::{Client, User};
use crate::services::Services;
use crate::tokens::refresh::{Lifetimes, start_family};
use crate::tokens::{AccessClaims, Audience, IdClaims, UserClaims, sign};

/// What a grant produced, before it becomes a response.
#[derive(Debug)]
pub struct Issued {
    pub access_token: String,
    pub expires_in: i64,
    pub scope: String,
    pub refresh_token: Option<String>,
    pub id_token: Option<String>,
    /// The refresh token family started for this issue, if any, and the access token's `jti`
    /// and expiry: an authorization code remembers them, to revoke them if it is replayed.
    pub family_id: Option<String>,
    pub access_jti: String,
    pub access_expires_at: i64,
}

impl Issued {
    pub fn into_response(self) -> TokenResponse {
        TokenResponse {
            access_token: self.access_token,
            token_type: "Bearer",
            expires_in: self.expires_in,
            refresh_token: self.refresh_token,
            scope: self.scope,
            id_token: self.id_token,
        }
    }
}

/// Who the token speaks for.
pub enum Subject<'a> {
    User {
        user: &'a User,
        auth_time: i64,
    },
    /// client_credentials: the client itself (`sub` = client id).
    Client,
}

/// Signs an access token (and an ID token when `openid` is in scope and a user signed in).
pub fn mint(
    svc: &Services,
    client: &Client,
    subject: Subject<'_>,
    scope: &str,
    nonce: Option<&str>,
    now: i64,
) -> Result<Issued, GrantError> {
    let ttl = client
        .access_token_ttl_secs
        .unwrap_or(svc.settings.tokens.access_token_ttl_secs);
    let mut audiences: Vec<String> = client
        .audiences
        .split_whitespace()
        .map(String::from)
        .collect();
    // This provider is an audience when the token may be used at its own endpoints (userinfo
    // needs openid, admin needs admin), or when the client names no resource server at all.
    let for_us = scope
        .split_whitespace()
        .any(|s| s == "openid" || s == "admin");
    if (audiences.is_empty() || for_us) && !audiences.contains(&svc.issuer) {
        audiences.push(svc.issuer.clone());
    }
    let (sub, roles, auth_time) = match &subject {
        Subject::User { user, auth_time } => (
            user.id.clone(),
            user.roles.split_whitespace().map(String::from).collect(),
            Some(*auth_time),
        ),
        Subject::Client => (client.id.clone(), Vec::new(), None),
    };
    let jti = crate::crypto::random_token(16).map_err(|e| GrantError::Hashing(e.to_string()))?;
    let claims = AccessClaims {
        iss: svc.issuer.clone(),
        sub,
        aud: Audience::from_list(audiences),
        exp: now + ttl,
        iat: now,
        jti,
        client_id: client.id.clone(),
        scope: scope.to_string(),
        auth_time,
        roles,
    };
    let (access_jti, access_expires_at) = (claims.jti.clone(), claims.exp);
    let ring = svc.keys.current();
    let access_token = sign(ring.active(), crate::tokens::ACCESS_TOKEN_TYPE, &claims)?;
    let id_token = match subject {
        Subject::User { user, auth_time } if scope.split_whitespace().any(|s| s == "openid") => {
            let claims = IdClaims {
                iss: svc.issuer.clone(),
                sub: user.id.clone(),
                aud: client.id.clone(),
                exp: now + svc.settings.tokens.id_token_ttl_secs,
                iat: now,
                auth_time,
                nonce: nonce.map(String::from),
                user: UserClaims::for_scope(user, scope),
            };
            Some(sign(ring.active(), "JWT", &claims)?)
        }
        _ => None,
    };
    Ok(Issued {
        access_token,
        expires_in: ttl,
        scope: scope.to_string(),
        refresh_token: None,
        id_token,
        family_id: None,
        access_jti,
        access_expires_at,
    })
}

/// Tokens for a user who has just signed in: signed first, then, if the client may refresh, a
/// new refresh token family (so a signing failure leaves no family behind).
pub async fn for_user(
    svc: &Services,
    client: &Client,
    user: &User,
    scope: &str,
    nonce: Option<&str>,
    auth_time: i64,
    now: i64,
) -> Result<Issued, GrantError> {
    let mut issued = mint(
        svc,
        client,
        Subject::User { user, auth_time },
        scope,
        nonce,
        now,
    )?;
    if client
        .grant_types
        .split_whitespace()
        .any(|g| g == "refresh_token")
    {
        let lifetimes = Lifetimes {
            idle_secs: client
                .refresh_idle_ttl_secs
                .unwrap_or(svc.settings.tokens.refresh_idle_ttl_secs),
            absolute_secs: client
                .refresh_absolute_ttl_secs
                .unwrap_or(svc.settings.tokens.refresh_absolute_ttl_secs),
            max_live_families: svc.settings.tokens.max_live_refresh_families,
        };
        let (user, client_id, scope) = (user.clone(), client.id.clone(), scope.to_string());
        let (token, family) = svc
            .db
            .run(move |conn| start_family(conn, &user, &client_id, &scope, lifetimes, now))
            .await?;
        issued.refresh_token = Some(token);
        issued.family_id = Some(family);
    }
    Ok(issued)
}
