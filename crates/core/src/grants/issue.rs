//! Minting what a successful grant returns: an RFC 9068 access token, and where asked for an
//! ID token and a refresh token.

use diesel::Connection;

use super::{GrantError, TokenResponse};
use crate::db::DbConnection;
use crate::domain::{Authentication, Client, GrantType, ScopeSet, User};
use crate::refresh::family::{Lifetimes, start_family};
use crate::services::Services;
use crate::tokens::{AccessClaims, Audience, IdClaims, sign, user_claims};

/// What a grant produced, before it becomes a response.
#[derive(Debug)]
pub struct Issued {
    pub access_token: String,
    pub expires_in: i64,
    pub scope: ScopeSet,
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
            token_type: "Bearer".into(),
            expires_in: self.expires_in,
            refresh_token: self.refresh_token,
            scope: self.scope.to_string(),
            id_token: self.id_token,
        }
    }
}

/// Who the token speaks for.
pub enum Subject<'a> {
    User {
        user: &'a User,
        auth: &'a Authentication,
    },
    /// client_credentials: the client itself (`sub` = client id).
    Client,
}

/// Signs an access token (and an ID token when `openid` is in scope and a user signed in).
pub fn mint(
    svc: &Services,
    client: &Client,
    subject: Subject<'_>,
    scope: &ScopeSet,
    nonce: Option<&str>,
    now: i64,
) -> Result<Issued, GrantError> {
    let ttl = client
        .access_token_ttl_secs
        .unwrap_or(svc.settings.tokens.access_token_ttl_secs);
    let audiences = audiences(client, scope, &svc.issuer);
    let (sub, roles, auth_time, stamp, sid, acr) = match &subject {
        Subject::User { user, auth } => (
            user.id.to_string(),
            user.roles.to_vec(),
            Some(auth.time),
            Some(crate::tokens::stamp_of(user)),
            auth.session_id.clone(),
            auth.acr().map(|acr| acr.as_str().to_string()),
        ),
        Subject::Client => (client.id.to_string(), Vec::new(), None, None, None, None),
    };
    let jti = crate::crypto::random_token(16).map_err(|e| GrantError::Hashing(e.to_string()))?;
    let claims = AccessClaims {
        iss: svc.issuer.clone(),
        sub,
        aud: Audience::from_list(audiences),
        exp: now + ttl,
        iat: now,
        jti,
        client_id: client.id.to_string(),
        scope: scope.to_string(),
        auth_time,
        stamp,
        roles,
        nbf: None,
        sid,
        acr: acr.clone(),
    };
    let (access_jti, access_expires_at) = (claims.jti.clone(), claims.exp);
    let ring = svc.keys.current();
    // The client's algorithm signs both of its tokens.
    let key = ring.active_for(client.signing_alg);
    let access_token = sign(key, crate::tokens::ACCESS_TOKEN_TYPE, &claims)?;
    let id_token = match subject {
        Subject::User { user, auth } if scope.contains("openid") => {
            let claims = IdClaims {
                iss: svc.issuer.clone(),
                sub: user.id.to_string(),
                aud: client.id.to_string(),
                exp: now + svc.settings.tokens.id_token_ttl_secs,
                iat: now,
                auth_time: auth.time,
                nonce: nonce.map(String::from),
                amr: auth.amr.names(),
                acr,
                sid: auth.session_id.clone(),
                user: user_claims(user, scope),
            };
            Some(sign(key, "JWT", &claims)?)
        }
        _ => None,
    };
    Ok(Issued {
        access_token,
        expires_in: ttl,
        scope: scope.clone(),
        refresh_token: None,
        id_token,
        family_id: None,
        access_jti,
        access_expires_at,
    })
}

/// The token's audiences. A token for this provider's own endpoints (`account`, `admin`) has
/// this provider as its only audience, so no resource server ever receives one (such scopes
/// are never granted together with another API's, see `grants::resolve_scope`). Otherwise the
/// client's resource servers, plus this provider when the token may be used at userinfo
/// (`openid`) or when the client names no resource server at all.
fn audiences(client: &Client, scope: &ScopeSet, issuer: &str) -> Vec<String> {
    if super::for_own_endpoints(scope) {
        return vec![issuer.to_string()];
    }
    let mut audiences = client.audiences.to_vec();
    let for_userinfo = scope.contains("openid");
    if (audiences.is_empty() || for_userinfo) && !audiences.iter().any(|a| a == issuer) {
        audiences.push(issuer.to_string());
    }
    audiences
}

/// The session a sign-in starts: who signed in, to which client, for what, and when and how
/// the person proved who they are (`auth`: the password check, or the browser session's
/// sign-in an authorization code carries). Every token of the session, refreshed or not,
/// carries that time (OpenID Connect Core §12.2), its methods and its `sid`.
pub struct SignIn<'a> {
    pub client: &'a Client,
    pub user: &'a User,
    pub scope: &'a ScopeSet,
    pub nonce: Option<&'a str>,
    pub auth: Authentication,
}

impl SignIn<'_> {
    fn refreshable(&self) -> bool {
        self.client.grant_types.allows(GrantType::RefreshToken)
    }

    fn lifetimes(&self, svc: &Services) -> Lifetimes {
        Lifetimes {
            idle_secs: self
                .client
                .refresh_idle_ttl_secs
                .unwrap_or(svc.settings.tokens.refresh_idle_ttl_secs),
            absolute_secs: self
                .client
                .refresh_absolute_ttl_secs
                .unwrap_or(svc.settings.tokens.refresh_absolute_ttl_secs),
            max_live_families: svc.settings.tokens.max_live_refresh_families,
        }
    }

    /// What the family remembers of the sign-in. A family started in a browser session ends
    /// with that session, unless `offline_access` was granted: then it outlives it (OpenID
    /// Connect Core §11), and its ID tokens name no session.
    fn family_authentication(&self) -> Authentication {
        let mut auth = self.auth.clone();
        if self.scope.contains(crate::grants::OFFLINE_ACCESS) {
            auth.session_id = None;
        }
        auth
    }

    fn mint(&self, svc: &Services, now: i64) -> Result<Issued, GrantError> {
        let subject = Subject::User {
            user: self.user,
            auth: &self.auth,
        };
        mint(svc, self.client, subject, self.scope, self.nonce, now)
    }
}

/// Tokens for a user who has just signed in: signed first (on the request's worker), then, if
/// the client may refresh, a new refresh token family in one transaction (so a signing failure
/// leaves no family behind).
pub async fn for_user(svc: &Services, sign_in: SignIn<'_>, now: i64) -> Result<Issued, GrantError> {
    let mut issued = sign_in.mint(svc, now)?;
    if sign_in.refreshable() {
        let lifetimes = sign_in.lifetimes(svc);
        let (user, client_id, scope) = (
            sign_in.user.clone(),
            sign_in.client.id.clone(),
            sign_in.scope.clone(),
        );
        let auth = sign_in.family_authentication();
        let (token, family) = svc
            .db
            .run(move |conn| {
                conn.transaction(|conn| {
                    start_family(conn, &user, &client_id, &scope, lifetimes, &auth, now)
                })
            })
            .await?;
        issued.refresh_token = Some(token);
        issued.family_id = Some(family);
    }
    Ok(issued)
}

/// As `for_user`, on the caller's connection and inside its transaction, so what is issued
/// commits (or rolls back) with whatever else the caller writes, such as the authorization
/// code it consumes.
pub fn for_user_with(
    conn: &mut DbConnection,
    svc: &Services,
    sign_in: SignIn<'_>,
    now: i64,
) -> Result<Issued, GrantError> {
    let mut issued = sign_in.mint(svc, now)?;
    if sign_in.refreshable() {
        let (token, family) = start_family(
            conn,
            sign_in.user,
            &sign_in.client.id,
            sign_in.scope,
            sign_in.lifetimes(svc),
            &sign_in.family_authentication(),
            now,
        )?;
        issued.refresh_token = Some(token);
        issued.family_id = Some(family);
    }
    Ok(issued)
}
