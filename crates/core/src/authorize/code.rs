//! RFC 6749 §4.1.3: exchanging an authorization code (with its PKCE verifier, RFC 7636) for
//! tokens. A code works once, for 60 s, for the client and redirect URI it was issued to; a
//! code presented again revokes everything issued from it (RFC 6749 §4.1.2).
//!
//! One transaction consumes the code, checks it, signs the tokens, starts the refresh family
//! and records on the code what it issued. A replay therefore either waits for that
//! transaction and finds everything it must revoke, or finds the code unused; a failure
//! anywhere rolls it all back, consumption included, so nothing is issued that the code does
//! not know of. (Signing inside the transaction holds the writer for one signature, once per
//! sign-in, as a careful refresh rotation does.)

use diesel::Connection;
use serde_json::json;

use crate::audit::{self, Event, Record};
use crate::authorize::pkce_matches;
use crate::db::models::AuthorizationCode;
use crate::db::{DbConnection, repo};
use crate::domain::{Authentication, Client, GrantType, ScopeSet};
use crate::grants::{GrantError, Params, require_grant};
use crate::services::Services;

use crate::grants::issue::{Issued, SignIn, for_user_with};

const INVALID: &str = "the authorization code is invalid, expired or already used";

enum Outcome {
    Accepted(Box<AuthorizationCode>),
    /// Refused, with what must stay committed (the burnt code, a revocation).
    Refused(&'static str),
}

pub async fn grant(svc: &Services, client: &Client, params: &Params) -> Result<Issued, GrantError> {
    require_grant(client, GrantType::AuthorizationCode)?;
    let hash = crate::crypto::sha256_hex(params.required("code")?.as_bytes());
    let redirect_uri = params.get("redirect_uri").map(String::from);
    let verifier = params.get("code_verifier").map(String::from);
    let sole_redirect = client.redirect_uris.sole().map(String::from);
    let now = svc.clock.now();
    let (svc_inner, client) = (svc.clone(), client.clone());
    let outcome = svc
        .db
        .run(move |conn| {
            conn.transaction(|conn| {
                let code = match check(
                    conn,
                    &hash,
                    &client.id,
                    redirect_uri.clone().or_else(|| sole_redirect.clone()),
                    verifier.clone(),
                    now,
                )? {
                    Outcome::Accepted(code) => code,
                    Outcome::Refused(reason) => return Ok(Err(reason)),
                };
                let Some(user) = repo::users::find_by_id(conn, &code.user_id)?
                    .filter(|u| u.disabled_at.is_none())
                else {
                    return Ok(Err(INVALID));
                };
                let mut auth =
                    Authentication::from_stored(code.auth_time, None, code.session_id.as_deref());
                // A code from a browser session that has ended since buys nothing: its tokens
                // would belong to a session no logout can reach any more.
                if let Some(session) = &code.session_id {
                    match crate::sso::record_client(conn, session, &client.id, now)? {
                        Some(amr) => auth.amr = amr,
                        None => return Ok(Err(INVALID)),
                    }
                }
                let scope = ScopeSet::from_stored(&code.scope);
                let sign_in = SignIn {
                    client: &client,
                    user: &user,
                    scope: &scope,
                    nonce: code.nonce.as_deref(),
                    auth,
                };
                let issued = for_user_with(conn, &svc_inner, sign_in, now)?;
                crate::authorize::store::record_issued(
                    conn,
                    &code.code_hash,
                    issued.family_id.as_deref(),
                    &issued.access_jti,
                    issued.access_expires_at,
                )?;
                Ok::<_, GrantError>(Ok(issued))
            })
        })
        .await?;
    outcome.map_err(|reason| GrantError::InvalidGrant(reason.into()))
}

/// Consumes the code first (so concurrent exchanges queue on its lock), then checks it. Every
/// refusal after that keeps the code burnt; a replay also revokes what the code produced.
fn check(
    conn: &mut DbConnection,
    hash: &str,
    client_id: &str,
    redirect_uri: Option<String>,
    verifier: Option<String>,
    now: i64,
) -> Result<Outcome, GrantError> {
    let consumed = crate::authorize::store::consume(conn, hash, now)? == 1;
    let Some(code) = crate::authorize::store::find(conn, hash)? else {
        return Ok(Outcome::Refused(INVALID));
    };
    if !consumed {
        revoke_issued(conn, &code, now)?;
        return Ok(Outcome::Refused(INVALID));
    }
    if code.client_id != client_id || now >= code.expires_at {
        return Ok(Outcome::Refused(INVALID));
    }
    if redirect_uri.as_deref() != Some(code.redirect_uri.as_str()) {
        return Ok(Outcome::Refused(
            "redirect_uri does not match the authorization request",
        ));
    }
    match (&code.code_challenge, verifier) {
        (Some(challenge), Some(verifier)) if pkce_matches(&verifier, challenge) => {}
        (None, None) => {}
        _ => return Ok(Outcome::Refused("the PKCE code_verifier does not match")),
    }
    Ok(Outcome::Accepted(Box::new(code)))
}

fn revoke_issued(
    conn: &mut DbConnection,
    code: &AuthorizationCode,
    now: i64,
) -> Result<(), GrantError> {
    if let Some(family) = &code.family_id {
        crate::refresh::store::revoke_family(conn, family, now, "code_reuse")?;
    }
    if let (Some(jti), Some(expires)) = (&code.access_token_jti, code.access_token_expires_at) {
        repo::revoked::insert(conn, jti, expires)?;
    }
    audit::record(
        conn,
        Event::AuthorizationCodeReuse,
        Record {
            user_id: Some(&code.user_id),
            client_id: Some(&code.client_id),
            detail: Some(json!({ "family": code.family_id })),
            ..Record::default()
        },
        now,
    )?;
    tracing::warn!(client = %code.client_id, "authorization code presented twice: its tokens are revoked");
    Ok(())
}
