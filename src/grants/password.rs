//! RFC 6749 §4.3, the resource owner password grant, for first-party clients registered for
//! it. Unknown users and wrong passwords get the same answer after the same work; attempts are
//! throttled per account and per IP before any password is checked.

use diesel::Connection;
use serde_json::json;

use super::issue::{Issued, Subject, mint};
use super::{GrantError, TokenRequest, require_grant, resolve_scope};
use crate::accounts::email::Email;
use crate::accounts::password::Verified;
use crate::accounts::throttle;
use crate::audit::{self, Event, Record};
use crate::db::models::{Client, User};
use crate::db::{DbError, repo};
use crate::services::Services;
use crate::tokens::refresh::{self, Lifetimes};

const BAD_CREDENTIALS: &str = "invalid username or password";

pub async fn grant(
    svc: &Services,
    client: &Client,
    request: &TokenRequest,
) -> Result<Issued, GrantError> {
    require_grant(client, "password")?;
    let username = request.params.required("username")?;
    let password = request.params.required("password")?.to_string();
    let scope = resolve_scope(client, request.params.get("scope"))?;
    let email_key = Email::parse(username)
        .map(|e| e.lookup_key().to_string())
        .unwrap_or_else(|_| username.trim().to_lowercase());

    let now = svc.clock.now();
    let keys = throttle::keys(&svc.settings.throttle, &email_key, request.ip.as_deref());
    let lookup_key = email_key.clone();
    let reserve_keys = keys.clone();
    let (throttled, user) = svc
        .db
        .run(move |conn| {
            if let Some(wait) = throttle::reserve(conn, &reserve_keys, now)? {
                return Ok::<_, DbError>((Some(wait), None));
            }
            Ok((None, repo::users::find_by_email(conn, &lookup_key)?))
        })
        .await?;
    if let Some(wait) = throttled {
        audit_attempt(svc, Event::LoginThrottled, None, client, request).await?;
        return Err(GrantError::Throttled(wait));
    }

    let stored = user.as_ref().and_then(|u| u.password_hash.clone());
    let verified = match svc.hashes.verify(password.clone(), stored).await {
        Ok(verified) => verified,
        Err(e) => {
            // The password was never checked: the attempt does not count.
            let keys = keys.clone();
            svc.db
                .run(move |conn| throttle::release(conn, &keys))
                .await?;
            return Err(e.into());
        }
    };
    let user = match (user, verified) {
        (Some(user), Verified::Yes | Verified::YesRehash) if user.disabled_at.is_none() => user,
        (user, _) => {
            let user_id = user.map(|u| u.id);
            audit_attempt(svc, Event::LoginFailure, user_id, client, request).await?;
            return Err(GrantError::InvalidGrant(BAD_CREDENTIALS.into()));
        }
    };
    let scope = if request.params.get("scope").is_none() && !has_role(&user, "admin") {
        // The client's default scope: leave out what this user may not have.
        scope
            .split_whitespace()
            .filter(|s| *s != "admin")
            .collect::<Vec<_>>()
            .join(" ")
    } else {
        scope
    };
    if scope.split_whitespace().any(|s| s == "admin") && !has_role(&user, "admin") {
        return Err(GrantError::InvalidScope(
            "scope \"admin\" needs the admin role".into(),
        ));
    }
    let rehash = match verified {
        Verified::YesRehash => Some(svc.hashes.hash(password).await?),
        _ => None,
    };

    // Sign first: if signing failed after the commit, a family would exist for nothing.
    let mut issued = mint(
        svc,
        client,
        Subject::User {
            user: &user,
            auth_time: now,
        },
        &scope,
        None,
        now,
    )?;
    let may_refresh = client
        .grant_types
        .split_whitespace()
        .any(|g| g == "refresh_token");
    let lifetimes = Lifetimes {
        idle_secs: client
            .refresh_idle_ttl_secs
            .unwrap_or(svc.settings.tokens.refresh_idle_ttl_secs),
        absolute_secs: client
            .refresh_absolute_ttl_secs
            .unwrap_or(svc.settings.tokens.refresh_absolute_ttl_secs),
    };
    let client_id = client.id.clone();
    let ip = request.ip.clone();
    let granted_scope = scope.clone();
    issued.refresh_token = svc
        .db
        .run(move |conn| {
            conn.transaction(|conn| {
                throttle::succeeded(conn, &keys, now)?;
                if let Some(hash) = &rehash {
                    repo::users::set_password_hash(conn, &user.id, hash, now)?;
                }
                audit::record(
                    conn,
                    Event::LoginSuccess,
                    Record {
                        user_id: Some(&user.id),
                        client_id: Some(&client_id),
                        ip: ip.as_deref(),
                        detail: Some(json!({ "grant": "password", "rehashed": rehash.is_some() })),
                    },
                    now,
                )?;
                if may_refresh {
                    let token = refresh::start_family(
                        conn,
                        &user,
                        &client_id,
                        &granted_scope,
                        lifetimes,
                        now,
                    )?;
                    return Ok::<_, DbError>(Some(token));
                }
                Ok(None)
            })
        })
        .await?;
    Ok(issued)
}

fn has_role(user: &User, role: &str) -> bool {
    user.roles.split_whitespace().any(|r| r == role)
}

async fn audit_attempt(
    svc: &Services,
    event: Event,
    user_id: Option<String>,
    client: &Client,
    request: &TokenRequest,
) -> Result<(), GrantError> {
    let client_id = client.id.clone();
    let ip = request.ip.clone();
    let now = svc.clock.now();
    // The attempted username is not recorded: it may be a password typed into the wrong field.
    svc.db
        .run(move |conn| {
            audit::record(
                conn,
                event,
                Record {
                    user_id: user_id.as_deref(),
                    client_id: Some(&client_id),
                    ip: ip.as_deref(),
                    detail: Some(json!({ "grant": "password" })),
                },
                now,
            )
        })
        .await?;
    Ok(())
}
