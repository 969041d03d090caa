//! Whether a token is live, and ending one: access-token liveness (the one decision userinfo,
//! the account and admin endpoints and introspection share), introspection (RFC 7662) and
//! revocation (RFC 7009).

use serde_json::json;

use crate::audit::{self, Event, Record};
use crate::clients::ClientAuth;
use crate::db::{DbConnection, DbError, repo};
use crate::domain::{Client, User};
use crate::grants::GrantError;
use crate::services::Services;
use crate::tokens::{AccessClaims, decode_access_token, stamp_matches};

pub use tessera_proto::Introspection;

/// Why a verified access token is not live.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DeadToken {
    #[error("the token has been revoked")]
    Revoked,
    #[error("the token's user no longer exists or is disabled")]
    UserGone,
    #[error(
        "the token's sign-in has ended (the password was changed or reset, or the account \
         disabled, since it was issued)"
    )]
    SignInEnded,
}

/// A live access token, with its user (as they are now) when it speaks for one.
#[derive(Debug)]
pub struct LiveToken {
    pub claims: AccessClaims,
    pub user: Option<User>,
}

/// The one decision whether an access token is live for this provider's own purposes — its
/// endpoints and introspection alike. `claims` come from a token that verified (our key, not
/// expired, our issuer; the audience is the caller's business: introspection serves every
/// audience, the endpoints check their own). Live means: not revoked, and when the token
/// speaks for a user, the user exists, is enabled, and has the security stamp the token was
/// issued under (a password change or reset, or disabling the account, changes it).
pub async fn live_access_token(
    svc: &Services,
    claims: AccessClaims,
) -> Result<Result<LiveToken, DeadToken>, DbError> {
    let liveness = Liveness::of(&claims);
    let found = svc.db.run(move |conn| liveness.look_up(conn)).await?;
    Ok(found.verdict(claims))
}

/// What the database must say about an access token for `live_access_token`'s decision: its
/// `jti`, and the user it speaks for, if any.
struct Liveness {
    jti: String,
    user_id: Option<String>,
}

/// What the database said: whether the `jti` is revoked, and the user (unless it is).
struct Found {
    revoked: bool,
    user: Option<User>,
}

impl Liveness {
    fn of(claims: &AccessClaims) -> Liveness {
        Liveness {
            jti: claims.jti.clone(),
            user_id: claims.is_for_user().then(|| claims.sub.clone()),
        }
    }

    fn look_up(&self, conn: &mut DbConnection) -> Result<Found, DbError> {
        let revoked = repo::revoked::is_revoked(conn, &self.jti)?;
        let user = match &self.user_id {
            Some(id) if !revoked => repo::users::find_by_id(conn, id)?,
            _ => None,
        };
        Ok(Found { revoked, user })
    }
}

impl Found {
    fn verdict(self, claims: AccessClaims) -> Result<LiveToken, DeadToken> {
        if self.revoked {
            return Err(DeadToken::Revoked);
        }
        if !claims.is_for_user() {
            return Ok(LiveToken { claims, user: None });
        }
        match self.user {
            Some(user) if user.disabled_at.is_some() => Err(DeadToken::UserGone),
            Some(user) if !stamp_matches(&claims, &user) => Err(DeadToken::SignInEnded),
            Some(user) => Ok(LiveToken {
                claims,
                user: Some(user),
            }),
            None => Err(DeadToken::UserGone),
        }
    }
}

/// POST /introspect (RFC 7662 §2.1): the client must authenticate and be confidential (a
/// resource server), else `invalid_client` whatever the token; only then does `token` (the
/// parameter, or why it is missing) matter.
///
/// Introspects a token of any audience: an access token must verify and be live
/// (`live_access_token`'s decision, as at this provider's own endpoints); a refresh token must
/// be unused, unexpired, in a live family of an active user. Both kinds are cheap to
/// recognise, so `token_type_hint` is not needed (RFC 7662 §2.1 lets it be ignored).
///
/// The signature is checked first, on the caller's thread, so that the client's
/// authentication and the token's look-up are one database job; nothing about the token is
/// looked up or answered unless the client authenticated.
pub async fn introspect(
    svc: &Services,
    auth: &ClientAuth,
    token: Result<&str, GrantError>,
) -> Result<Introspection, GrantError> {
    let now = svc.clock.now();
    let (token, missing) = match token {
        Ok(token) => (Some(token), None),
        Err(e) => (None, Some(e)),
    };
    let mut access = None;
    let question = token.map(|token| {
        match decode_access_token(token, &svc.keys.current(), &svc.issuer, now) {
            Ok(claims) => Question::Access(Liveness::of(access.insert(claims))),
            Err(_) => Question::Refresh(crate::crypto::sha256_hex(token.as_bytes())),
        }
    });
    let auth = auth.clone();
    let answer = svc
        .db
        .run(move |conn| {
            let client = crate::grants::authenticate_client_with(conn, &auth)?;
            if client.secret_hash.is_none() {
                return Err(GrantError::InvalidClient);
            }
            Ok(match &question {
                Some(Question::Access(liveness)) => Some(Answer::Access(liveness.look_up(conn)?)),
                Some(Question::Refresh(hash)) => {
                    Some(Answer::Refresh(refresh_token(conn, hash, now)?))
                }
                None => None,
            })
        })
        .await?;
    if let Some(missing) = missing {
        return Err(missing);
    }
    Ok(match (answer, access) {
        (Some(Answer::Access(found)), Some(claims)) => match found.verdict(claims) {
            Ok(LiveToken { claims, .. }) => Introspection {
                active: true,
                token_type: Some("Bearer".into()),
                sub: Some(claims.sub),
                client_id: Some(claims.client_id),
                scope: Some(claims.scope),
                exp: Some(claims.exp),
                iat: Some(claims.iat),
                iss: Some(claims.iss),
                aud: Some(claims.aud),
                jti: Some(claims.jti),
            },
            Err(_) => Introspection::default(),
        },
        (Some(Answer::Refresh(answer)), _) => answer,
        // An access-token answer always has its claims; if not, nothing is active.
        _ => Introspection::default(),
    })
}

/// What introspection asks the database about the token, besides the client.
enum Question {
    /// A verified access token: whether it is live.
    Access(Liveness),
    /// Anything else: the refresh token with this hash, if there is one.
    Refresh(String),
}

enum Answer {
    Access(Found),
    Refresh(Introspection),
}

/// The introspection of the refresh token whose hash is `hash` (inactive if there is none).
fn refresh_token(conn: &mut DbConnection, hash: &str, now: i64) -> Result<Introspection, DbError> {
    let Some((token, family, user, _)) = crate::refresh::store::find_session(conn, hash)? else {
        return Ok(Introspection::default());
    };
    let live = family.revoked_at.is_none()
        && token.used_at.is_none()
        && now < token.idle_expires_at
        && now < family.absolute_expires_at
        && user.disabled_at.is_none()
        && user.security_stamp == family.security_stamp;
    if !live {
        return Ok(Introspection::default());
    }
    Ok(Introspection {
        active: true,
        token_type: Some("refresh_token".into()),
        sub: Some(family.user_id),
        client_id: Some(family.client_id),
        scope: Some(family.scope),
        exp: Some(token.idle_expires_at.min(family.absolute_expires_at)),
        iat: Some(token.issued_at),
        ..Introspection::default()
    })
}

/// RFC 7009: revoking a refresh token revokes its family; revoking an access token records its
/// `jti` until it expires. A token that is unknown, or was issued to another client, is left
/// alone and the answer is the same, so nothing is revealed.
/// As with introspection, `token_type_hint` is not needed to tell the kinds apart.
pub async fn revoke(svc: &Services, client: &Client, token: &str) -> Result<(), DbError> {
    let now = svc.clock.now();
    if let Ok(claims) = decode_access_token(token, &svc.keys.current(), &svc.issuer, now) {
        if claims.client_id == client.id {
            let (jti, exp) = (claims.jti, claims.exp);
            svc.db
                .run(move |conn| repo::revoked::insert(conn, &jti, exp).map_err(DbError::from))
                .await?;
        }
        return Ok(());
    }
    let hash = crate::crypto::sha256_hex(token.as_bytes());
    let client_id = client.id.clone();
    svc.db
        .run(move |conn| {
            let Some((_, family, _, _)) = crate::refresh::store::find_session(conn, &hash)? else {
                return Ok(());
            };
            if family.client_id != client_id {
                return Ok(());
            }
            if crate::refresh::store::revoke_family(conn, &family.id, now, "revoked")? > 0 {
                audit::record(
                    conn,
                    Event::SessionsRevoked,
                    Record {
                        user_id: Some(&family.user_id),
                        client_id: Some(&family.client_id),
                        detail: Some(json!({ "family": family.id, "reason": "revocation" })),
                        ..Record::default()
                    },
                    now,
                )?;
            }
            Ok(())
        })
        .await
}
