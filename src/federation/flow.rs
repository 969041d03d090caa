//! The two legs of an upstream sign-in: `start` (record the pending sign-in, build the
//! upstream URL) and `finish` (check the callback against that record, exchange the code,
//! verify the ID token, find the account, continue the app's request).
//!
//! The browser holds a random secret in a cookie; the database holds only its hash and the
//! hash of the `state`. The `nonce` and the PKCE verifier are derived from the browser secret
//! and the state with HMAC, so nothing stored lets anyone finish a sign-in without the cookie.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::link::{self, Outcome};
use super::{FederationError, Provider};
use crate::authorize::{self, AuthorizationRequest};
use crate::db::models::{FederationState, User};
use crate::db::{DbError, repo};
use crate::grants::Params;
use crate::services::Services;

/// A pending upstream sign-in lives ten minutes.
pub const STATE_TTL_SECS: i64 = 600;

pub struct Started {
    /// The upstream authorization URL to send the browser to.
    pub location: String,
    /// The browser-binding secret for the cookie: always a fresh one, never one presented.
    pub browser_secret: String,
}

/// What the upstream sent back to the callback.
#[derive(Default)]
pub struct Callback<'a> {
    pub state: Option<&'a str>,
    pub code: Option<&'a str>,
    pub error: Option<&'a str>,
}

pub enum Finished {
    /// Back to the app with Tessera's code: the URL to send the browser to.
    App { location: String },
    /// Signed in at Tessera directly, with no app waiting.
    Direct { user: Box<User>, outcome: Outcome },
}

/// Begins a sign-in at `provider`, carrying the app's authorization request (as checked by
/// `authorize::validate`; its raw query is stored to be checked again on return).
pub async fn start(
    svc: &Services,
    provider: &Provider,
    request: Option<String>,
) -> Result<Started, FederationError> {
    let metadata = provider.metadata().await?;
    let random =
        |n| crate::crypto::random_token(n).map_err(|e| FederationError::Internal(e.to_string()));
    let browser_secret = random(32)?;
    let state = random(32)?;
    let (nonce, verifier) = derive(&browser_secret, &state);
    let location = provider.authorization_url(&metadata, &state, &nonce, &verifier)?;
    let now = svc.clock.now();
    let row = FederationState {
        state_hash: crate::crypto::sha256_hex(state.as_bytes()),
        provider: provider.name.clone(),
        browser_hash: crate::crypto::sha256_hex(browser_secret.as_bytes()),
        request,
        created_at: now,
        expires_at: now + STATE_TTL_SECS,
        used_at: None,
    };
    svc.db
        .run(move |conn| repo::federation::insert_state(conn, &row).map_err(DbError::from))
        .await?;
    Ok(Started {
        location,
        browser_secret,
    })
}

pub async fn finish(
    svc: &Services,
    provider: &Provider,
    callback: Callback<'_>,
    browser_secret: Option<&str>,
    ip: Option<String>,
) -> Result<Finished, FederationError> {
    let state = callback.state.ok_or(FederationError::BadState(
        "The answer from the sign-in provider carries no state.",
    ))?;
    let browser_secret = browser_secret.ok_or(FederationError::BadState(
        "This sign-in was not started in this browser, or its cookie has expired.",
    ))?;
    let now = svc.clock.now();
    let state_hash = crate::crypto::sha256_hex(state.as_bytes());
    // Consumed before anything else: a state works once, whatever happens next.
    let pending = svc
        .db
        .run(move |conn| {
            repo::federation::consume_state(conn, &state_hash, now).map_err(DbError::from)
        })
        .await?
        .ok_or(FederationError::BadState(
            "This sign-in has expired or was already completed. Start again.",
        ))?;
    let browser_hash = crate::crypto::sha256_hex(browser_secret.as_bytes());
    if pending.provider != provider.name
        || !crate::crypto::constant_time_eq(
            browser_hash.as_bytes(),
            pending.browser_hash.as_bytes(),
        )
    {
        return Err(FederationError::BadState(
            "This sign-in was not started in this browser. Start again.",
        ));
    }
    // The app's request is checked again: its client or redirect URI may have gone meanwhile.
    let request = match &pending.request {
        Some(query) => Some(carried_request(svc, query).await?),
        None => None,
    };
    if let Some(error) = callback.error {
        return Err(FederationError::Denied {
            error: error.chars().take(64).collect(),
            request: request.map(Box::new),
        });
    }
    let code = callback
        .code
        .filter(|c| !c.is_empty())
        .ok_or_else(|| FederationError::Upstream("the callback carries no code".into()))?;
    let (nonce, verifier) = derive(browser_secret, state);
    let identity = provider.exchange(code, &verifier, &nonce).await?;
    let (user, outcome) = resolve_account(svc, &provider.name, identity, ip).await?;
    if user.disabled_at.is_some() {
        return Err(FederationError::AccountDisabled);
    }
    match request {
        Some(request) => {
            let location = authorize::issue_code(svc, &request, &user, svc.clock.now())
                .await
                .map_err(|e| FederationError::Internal(e.to_string()))?;
            Ok(Finished::App { location })
        }
        None => Ok(Finished::Direct {
            user: Box::new(user),
            outcome,
        }),
    }
}

/// Re-validates the authorization request stored with a pending sign-in.
pub async fn carried_request(
    svc: &Services,
    query: &str,
) -> Result<AuthorizationRequest, FederationError> {
    let params = Params::parse(form_urlencoded::parse(query.as_bytes()).into_owned())
        .map_err(|e| FederationError::Internal(e.to_string()))?;
    Ok(authorize::validate(svc, &params).await?)
}

async fn resolve_account(
    svc: &Services,
    provider: &str,
    identity: super::UpstreamIdentity,
    ip: Option<String>,
) -> Result<(User, Outcome), FederationError> {
    let now = svc.clock.now();
    let mut attempts = 0;
    loop {
        attempts += 1;
        let (provider, identity, ip) = (provider.to_string(), identity.clone(), ip.clone());
        let result = svc
            .db
            .run(move |conn| link::resolve(conn, &provider, &identity, ip.as_deref(), now))
            .await;
        match result {
            // Another sign-in of the same identity created it first: now it is found.
            Err(e) if attempts == 1 && link::is_conflict(&e) => continue,
            other => return Ok(other?),
        }
    }
}

/// The nonce and PKCE verifier for a sign-in: HMAC-SHA256 of the state under the browser
/// secret, 43 base64url characters each (RFC 7636 §4.1 wants 43 to 128).
fn derive(browser_secret: &str, state: &str) -> (String, String) {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, browser_secret.as_bytes());
    let tag = |label: &str| {
        let mut context = ring::hmac::Context::with_key(&key);
        context.update(label.as_bytes());
        context.update(state.as_bytes());
        URL_SAFE_NO_PAD.encode(context.sign().as_ref())
    };
    (tag("nonce:"), tag("pkce:"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_values_depend_on_both_secret_and_state() {
        let secret = "a".repeat(43);
        let (nonce, verifier) = derive(&secret, "state-1");
        assert_eq!(nonce.len(), 43);
        assert_eq!(verifier.len(), 43);
        assert_ne!(nonce, verifier);
        assert_ne!(derive(&secret, "state-2").0, nonce);
        assert_ne!(derive(&"b".repeat(43), "state-1").1, verifier);
    }
}
