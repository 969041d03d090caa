//! RFC 6749 §6, the refresh grant, with rotation on every use and reuse detection
//! (RFC 9700 §4.14.2): a refresh token works once; presenting a used one revokes its whole
//! family, so a thief and the legitimate holder both lose it.
//!
//! The usual case — an unused token of a live session — takes two short database calls with
//! the signature between them: read the session and check it, sign the new access token on
//! the request's own worker, then commit the rotation in one atomic write (one statement on
//! PostgreSQL, a transaction on SQLite) whose conditional update consumes the token. Of N
//! concurrent presentations exactly one update finds the token unused, on SQLite and
//! PostgreSQL and across processes. Nothing is written before the signature exists, so a
//! failed signature consumes nothing, and a failed insert or commit rolls the consumption
//! back. Signing outside the database call keeps connections (and SQLite's one database
//! thread) free for the next request while the CPU signs.
//!
//! Everything else — a used token (the grace window or reuse), a user changed since login, a
//! rotation that lost the race — goes through `rotate_carefully`: one transaction that consumes
//! first and decides with the row locked, signing inside it. Refusals that must leave no trace
//! (wrong client, expired, bad scope) and any failure roll it back; only a detected reuse or a
//! changed user, which must revoke, commits a refusal.

use diesel::Connection;
use serde_json::json;

use crate::audit::{self, Event, Record};
use crate::clients::ClientAuth;
use crate::db::DbConnection;
use crate::db::models::{RefreshFamily, RefreshToken};
use crate::domain::{Client, GrantType, ScopeSet, User};
use crate::grants::issue::{Issued, Subject, mint};
use crate::grants::{GrantError, Params, require_grant};
use crate::services::Services;

const INVALID: &str = "the refresh token is invalid, expired or revoked";

enum Outcome {
    Issued(Box<Issued>),
    /// Refused, with a state change (a revoked family) that must be committed.
    Refused,
    /// Refused as a replay: the family is revoked (counted once the job has committed, as the
    /// job may run again after a serialization failure).
    Reused {
        family: String,
    },
}

/// A refresh token as stored, with its family, the family's user and its client.
type Session = (RefreshToken, RefreshFamily, User, Client);

pub async fn grant(
    svc: &Services,
    auth: &ClientAuth,
    params: &Params,
) -> Result<Issued, GrantError> {
    let hash = crate::crypto::sha256_hex(params.required("refresh_token")?.as_bytes());
    let requested = params.get("scope").map(String::from);
    // Milliseconds for the grace window; seconds for everything else.
    let now_ms = svc.clock.now_millis();
    if let Some(issued) = rotate_quickly(svc, auth, &hash, requested.as_deref(), now_ms).await? {
        return Ok(issued);
    }
    let svc_inner = svc.clone();
    let auth = auth.clone();
    let outcome = svc
        .db
        .run(move |conn| {
            conn.transaction(|conn| {
                rotate_carefully(conn, &svc_inner, &auth, &hash, requested.as_deref(), now_ms)
            })
        })
        .await?;
    match outcome {
        Outcome::Issued(issued) => Ok(*issued),
        Outcome::Refused => Err(invalid()),
        Outcome::Reused { family } => {
            tracing::warn!(%family, "refresh token reuse: family revoked");
            svc.metrics.refresh_reuse_detected();
            Err(invalid())
        }
    }
}

/// The usual case: an unused token of a live session. `None` hands the request to
/// `rotate_carefully`: the token was used already (grace window or reuse), the user changed
/// (revocation), or a concurrent request consumed it between the read and the write.
async fn rotate_quickly(
    svc: &Services,
    auth: &ClientAuth,
    hash: &str,
    requested_scope: Option<&str>,
    now_ms: i64,
) -> Result<Option<Issued>, GrantError> {
    let now = now_ms.div_euclid(1000);
    let (lookup_auth, lookup_hash) = (auth.clone(), hash.to_string());
    let (token, family, user, client) = svc
        .db
        .run(move |conn| find_authenticated(conn, &lookup_auth, &lookup_hash, now))
        .await?;
    if token.used_at.is_some() || user_changed(&user, &family) {
        return Ok(None);
    }
    let scope = check_live(&token, &family, &user, requested_scope, now)?;
    let (next, next_hash) = crate::refresh::family::new_token()?;
    let child = successor(svc, &client, &family, &token, next_hash, now);
    let mut issued = mint_for_session(svc, &client, &user, &family, &scope, now)?;
    // Grouped: concurrent rotations share a commit (`db::group`); `rotate` is one
    // transaction of its own.
    let consumed = svc
        .db
        .run_grouped(move |conn| {
            crate::refresh::store::rotate(conn, &child, now_ms).map_err(GrantError::from)
        })
        .await?;
    if !consumed {
        return Ok(None);
    }
    issued.refresh_token = Some(next);
    Ok(Some(issued))
}

fn rotate_carefully(
    conn: &mut DbConnection,
    svc: &Services,
    auth: &ClientAuth,
    hash: &str,
    requested_scope: Option<&str>,
    now_ms: i64,
) -> Result<Outcome, GrantError> {
    let now = now_ms.div_euclid(1000);
    let (next, next_hash) = crate::refresh::family::new_token()?;
    // First, so concurrent rotations of one token queue on the row (or SQLite's write lock)
    // instead of racing. Any error from here on rolls the consumption back.
    let consumed = crate::refresh::store::consume(conn, hash, &next_hash, now_ms)? == 1;
    let (token, family, user, client) = find_authenticated(conn, auth, hash, now)?;
    if !consumed && !within_grace(conn, svc, &token, now_ms)? {
        revoke(conn, &family, now, "reuse", Event::RefreshTokenReuse)?;
        return Ok(Outcome::Reused { family: family.id });
    }
    if user_changed(&user, &family) {
        revoke(conn, &family, now, "user_changed", Event::SessionsRevoked)?;
        return Ok(Outcome::Refused);
    }
    let scope = check_live(&token, &family, &user, requested_scope, now)?;
    let child = successor(svc, &client, &family, &token, next_hash, now);
    crate::refresh::store::insert_token(conn, &child)?;
    // Signed inside the transaction: if signing fails, the token is not consumed.
    let mut issued = mint_for_session(svc, &client, &user, &family, &scope, now)?;
    issued.refresh_token = Some(next);
    Ok(Outcome::Issued(Box::new(issued)))
}

/// The session `hash` names, if it belongs to the authenticated caller, the client may use
/// the grant and the family is not revoked. The session comes with its client, so the usual
/// case authenticates the caller against the row already read.
fn find_authenticated(
    conn: &mut DbConnection,
    auth: &ClientAuth,
    hash: &str,
    now: i64,
) -> Result<Session, GrantError> {
    let (token, family, user, client) = match crate::refresh::store::find_session(conn, hash)? {
        Some((token, family, user, client)) if client.id == auth.client_id() => {
            let client = crate::clients::authenticate(Some(client), auth)
                .ok_or(GrantError::InvalidClient)?;
            (token, family, user, client)
        }
        // Unknown token, or another client's: the caller still learns whether *it*
        // authenticated (invalid_client) before hearing the token is no good.
        _ => {
            crate::grants::authenticate_client_with(conn, auth)?;
            return Err(invalid());
        }
    };
    require_grant(&client, GrantType::RefreshToken)?;
    if family.revoked_at.is_some() {
        return Err(invalid());
    }
    // A family started in a browser session (without `offline_access`) lives only as long as
    // that session: one that expired, idle or absolute, ends it as surely as a logout does.
    if let Some(session) = &family.session_id
        && !crate::sso::store::is_live(conn, session, now)?
    {
        return Err(invalid());
    }
    Ok((token, family, user, client))
}

/// Disabled, or the password changed (or everything was revoked) since the login.
fn user_changed(user: &User, family: &RefreshFamily) -> bool {
    user.disabled_at.is_some() || user.security_stamp != family.security_stamp
}

/// The scope the new tokens get, if the session has not expired and may have it.
fn check_live(
    token: &RefreshToken,
    family: &RefreshFamily,
    user: &User,
    requested_scope: Option<&str>,
    now: i64,
) -> Result<ScopeSet, GrantError> {
    if now >= family.absolute_expires_at || now >= token.idle_expires_at {
        return Err(invalid());
    }
    // RFC 6749 §6: a narrower scope may be asked for, never a wider one than the login granted.
    let requested = crate::grants::requested_scope(requested_scope)?;
    let scope = ScopeSet::from_stored(&family.scope)
        .narrow(requested.as_ref())
        .map_err(|outside| {
            GrantError::InvalidScope(format!("scope {outside:?} was not granted at login"))
        })?;
    // The role may have been taken away since the login.
    crate::grants::password::check_role_scopes(user, &scope)?;
    Ok(scope)
}

/// The row of the refresh token hashed `next_hash` that replaces `parent`.
fn successor(
    svc: &Services,
    client: &Client,
    family: &RefreshFamily,
    parent: &RefreshToken,
    next_hash: String,
    now: i64,
) -> RefreshToken {
    let idle_secs = client
        .refresh_idle_ttl_secs
        .unwrap_or(svc.settings.tokens.refresh_idle_ttl_secs);
    RefreshToken {
        token_hash: next_hash,
        family_id: family.id.clone(),
        parent_hash: Some(parent.token_hash.clone()),
        replaced_by: None,
        scope: family.scope.clone(),
        issued_at: now,
        idle_expires_at: (now + idle_secs).min(family.absolute_expires_at),
        used_at: None,
        used_at_ms: None,
    }
}

/// The tokens a rotation hands out besides the refresh token: the access token, and an ID
/// token when the scope has `openid`.
fn mint_for_session(
    svc: &Services,
    client: &Client,
    user: &User,
    family: &RefreshFamily,
    scope: &ScopeSet,
    now: i64,
) -> Result<Issued, GrantError> {
    let auth = crate::domain::Authentication::from_stored(
        family.auth_time,
        family.amr.as_deref(),
        family.session_id.as_deref(),
    );
    let subject = Subject::User { user, auth: &auth };
    mint(svc, client, subject, scope, None, now)
}

fn invalid() -> GrantError {
    GrantError::InvalidGrant(INVALID.into())
}

/// The grace window (`tokens.refresh_reuse_grace_secs`, measured in milliseconds from the
/// rotation that used `token`): the immediately previous token may be presented again once,
/// for a response lost on the way. Its successor must still be unused; it is retired without
/// a successor, and the caller gets a fresh pair whose token replaces it (`successor` sets its
/// parent to `token`). So the family keeps one live token: the retired successor, presented
/// later, is reuse (whoever holds it is not the one who retried), and so is a second
/// re-presentation of `token`, whose successor is retired by then.
fn within_grace(
    conn: &mut DbConnection,
    svc: &Services,
    token: &RefreshToken,
    now_ms: i64,
) -> Result<bool, GrantError> {
    let grace_ms = svc
        .settings
        .tokens
        .refresh_reuse_grace_secs
        .saturating_mul(1000);
    // A token used before the window was measured in milliseconds is simply outside it.
    let (Some(used_at_ms), Some(replaced_by)) = (token.used_at_ms, &token.replaced_by) else {
        return Ok(false);
    };
    if grace_ms == 0 || now_ms - used_at_ms > grace_ms {
        return Ok(false);
    }
    Ok(crate::refresh::store::retire_unused(conn, replaced_by, now_ms)? == 1)
}

fn revoke(
    conn: &mut DbConnection,
    family: &RefreshFamily,
    now: i64,
    reason: &str,
    event: Event,
) -> Result<(), GrantError> {
    if crate::refresh::store::revoke_family(conn, &family.id, now, reason)? > 0 {
        audit::record(
            conn,
            event,
            Record {
                user_id: Some(&family.user_id),
                client_id: Some(&family.client_id),
                detail: Some(json!({ "family": family.id, "reason": reason })),
                ..Record::default()
            },
            now,
        )?;
    }
    Ok(())
}
