//! Sessions after sign-in: refresh token families as login sessions, and what ends them or
//! reports on them — revocation (RFC 7009), introspection (RFC 7662), and
//! the purge that keeps the tables from growing forever.

use serde::Serialize;
use serde_json::json;

use crate::audit::{self, Event, Record};
use crate::config::Settings;
use crate::db::{DbConnection, DbError, repo};
use crate::domain::{Client, User};
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
    let jti = claims.jti.clone();
    let user_id = claims.is_for_user().then(|| claims.sub.clone());
    let (revoked, user) = svc
        .db
        .run(move |conn| {
            let revoked = repo::revoked::is_revoked(conn, &jti)?;
            let user = match &user_id {
                Some(id) if !revoked => repo::users::find_by_id(conn, id)?,
                _ => None,
            };
            Ok::<_, DbError>((revoked, user))
        })
        .await?;
    if revoked {
        return Ok(Err(DeadToken::Revoked));
    }
    if !claims.is_for_user() {
        return Ok(Ok(LiveToken { claims, user: None }));
    }
    Ok(match user {
        Some(user) if user.disabled_at.is_some() => Err(DeadToken::UserGone),
        Some(user) if !stamp_matches(&claims, &user) => Err(DeadToken::SignInEnded),
        Some(user) => Ok(LiveToken {
            claims,
            user: Some(user),
        }),
        None => Err(DeadToken::UserGone),
    })
}

/// Introspects a token of any audience: an access token must verify and be live
/// (`live_access_token`, as at this provider's own endpoints); a refresh token must be unused,
/// unexpired, in a live family of an active user. Both kinds are cheap to recognise, so
/// `token_type_hint` is not needed (RFC 7662 §2.1 lets it be ignored).
pub async fn introspect(svc: &Services, token: &str) -> Result<Introspection, DbError> {
    let now = svc.clock.now();
    if let Ok(claims) = decode_access_token(token, &svc.keys.current(), &svc.issuer, now) {
        let Ok(LiveToken { claims, .. }) = live_access_token(svc, claims).await? else {
            return Ok(Introspection::default());
        };
        return Ok(Introspection {
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
        });
    }
    let hash = crate::crypto::sha256_hex(token.as_bytes());
    svc.db
        .run(move |conn| {
            let Some((token, family, user, _)) = repo::refresh::find_session(conn, &hash)? else {
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
        })
        .await
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
            let Some((_, family, _, _)) = repo::refresh::find_session(conn, &hash)? else {
                return Ok(());
            };
            if family.client_id != client_id {
                return Ok(());
            }
            if repo::refresh::revoke_family(conn, &family.id, now, "revoked")? > 0 {
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

/// Rows the purge deleted.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct Purged {
    pub refresh_families: usize,
    pub used_refresh_tokens: usize,
    pub authorization_codes: usize,
    pub revoked_access_tokens: usize,
    pub login_throttles: usize,
    pub federation_states: usize,
    pub account_tokens: usize,
    pub finished_mails: usize,
    pub pending_links: usize,
    /// Accounts that never verified their address (only with mail on).
    pub unverified_accounts: usize,
    pub known_sign_ins: usize,
    pub audit_events: usize,
}

/// Deletes what has been expired or revoked for longer than the retention, in batches of
/// `purge.batch_size`, each its own short statement; audit events after their own retention;
/// and, with mail on, self-registered accounts that never verified their address within
/// `accounts.unverified_ttl_secs`. Without mail nobody can verify by mail, so no account is
/// deleted for it (an operator verifies them).
pub fn purge(
    conn: &mut DbConnection,
    all: &Settings,
    mail_on: bool,
    now: i64,
) -> Result<Purged, DbError> {
    let settings = &all.purge;
    let window_secs = all.counter_window_secs();
    let cutoff = now - settings.retention_secs;
    let batch = settings.batch_size;
    let known_cutoff = now - all.throttle.known_sign_in_ttl_secs;
    let audit_cutoff =
        (settings.audit_retention_secs > 0).then(|| now - settings.audit_retention_secs);
    let drain = |conn: &mut DbConnection,
                 step: &dyn Fn(&mut DbConnection) -> diesel::QueryResult<usize>| {
        let mut total = 0;
        loop {
            let deleted = step(conn)?;
            total += deleted;
            if deleted < batch as usize {
                return Ok::<_, DbError>(total);
            }
        }
    };
    Ok(Purged {
        refresh_families: drain(conn, &|c| repo::refresh::purge_families(c, cutoff, batch))?,
        used_refresh_tokens: drain(conn, &|c| {
            repo::refresh::purge_used_tokens(c, cutoff, batch)
        })?,
        authorization_codes: drain(conn, &|c| repo::codes::purge(c, cutoff, batch))?,
        revoked_access_tokens: drain(conn, &|c| repo::revoked::purge(c, now, batch))?,
        login_throttles: drain(conn, &|c| {
            repo::throttles::purge(c, now - window_secs, now, batch)
        })?,
        // Pending upstream sign-ins are worthless once expired: no retention.
        federation_states: drain(conn, &|c| repo::federation::purge_states(c, now, batch))?,
        account_tokens: drain(conn, &|c| repo::account_tokens::purge(c, cutoff, batch))?,
        finished_mails: drain(conn, &|c| repo::outbox::purge(c, cutoff, batch))?,
        pending_links: drain(conn, &|c| {
            repo::federation::purge_pending_links(c, now, batch)
        })?,
        unverified_accounts: match all.accounts.unverified_ttl_secs {
            ttl if mail_on && ttl > 0 => {
                crate::accounts::self_service::purge_unverified(conn, now - ttl, batch, now)?
            }
            _ => 0,
        },
        known_sign_ins: drain(conn, &|c| {
            repo::known_sign_ins::purge(c, known_cutoff, batch)
        })?,
        audit_events: match audit_cutoff {
            Some(cutoff) => drain(conn, &|c| repo::audit::purge(c, cutoff, batch))?,
            None => 0,
        },
    })
}

/// Runs the purge every `interval_secs` until the process ends.
pub fn spawn_purge(svc: Services) {
    let interval = svc.settings.purge.interval_secs;
    if interval == 0 {
        return;
    }
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(std::time::Duration::from_secs(interval));
        ticker.tick().await; // the first tick is immediate; start-up stays fast
        loop {
            ticker.tick().await;
            let settings = svc.settings.clone();
            let now = svc.clock.now();
            let mail_on = svc.mailer.is_some();
            let result = svc
                .db
                .run(move |conn| purge(conn, &settings, mail_on, now))
                .await;
            match result {
                Ok(purged) => tracing::info!(?purged, "purge finished"),
                Err(error) => tracing::warn!(%error, "purge failed"),
            }
        }
    });
}
