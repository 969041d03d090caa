//! The two legs of an upstream sign-in: `start` (record the pending sign-in, build the
//! upstream URL) and `finish` (check the callback against that record, exchange the code,
//! verify the ID token, find the account, continue the app's request).
//!
//! The browser holds a random secret in a cookie; the database holds only its hash and the
//! hash of the `state`. The `nonce` and the PKCE verifier are derived from the browser secret
//! and the state with HMAC, so nothing stored lets anyone finish a sign-in without the cookie.
//!
//! When the identity would be linked to an existing account with a password, `finish` stops
//! short: it holds the identity in a pending link (bound to the browser by a second, fresh
//! cookie secret, stored hashed, single use, ten minutes) until the person proves the account
//! with its password ([`confirm_link`]) or declines ([`decline_link`]).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::link::{self, Outcome, Resolved};
use super::{FederationError, Provider};
use crate::accounts::login::{self, Attempt, LoginError};
use crate::authorize::{self, AuthorizationRequest};
use crate::db::models::{FederationState, PendingLink};
use crate::db::{DbError, repo};
use crate::domain::User;
use crate::grants::Params;
use crate::services::Services;

/// A pending upstream sign-in lives ten minutes.
pub const STATE_TTL_SECS: i64 = 600;
/// So does a pending link, from the callback.
pub const LINK_TTL_SECS: i64 = 600;

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
    /// Signed in for the app's request (`query`, as carried): the browser session and the
    /// code are the authorization endpoint's to make.
    App {
        request: Box<AuthorizationRequest>,
        query: String,
        user: Box<User>,
    },
    /// Signed in at Tessera directly, with no app waiting.
    Direct { user: Box<User>, outcome: Outcome },
    /// The identity waits in a pending link for the existing account's password: the
    /// browser gets `secret` in a cookie and goes to the link page.
    ConfirmLink { secret: String },
}

/// What the link page shows.
pub struct LinkOffer {
    /// The existing account's address.
    pub email: String,
    /// The upstream's configured name (as in `/auth/<name>/…`).
    pub provider: String,
    /// Where the app's sign-in goes once the link is made: the page's form is answered by a
    /// redirect there, which its CSP must allow.
    pub redirect_uri: Option<String>,
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
    let (user, outcome) = match resolve_account(svc, provider, identity.clone(), ip).await? {
        Resolved::Account(user, outcome) => (user, outcome),
        Resolved::NeedsPassword(holder) => {
            if holder.disabled_at.is_some() {
                return Err(FederationError::AccountDisabled);
            }
            let secret = hold_link(svc, provider, &identity, &holder, pending.request).await?;
            return Ok(Finished::ConfirmLink { secret });
        }
    };
    if user.disabled_at.is_some() {
        return Err(FederationError::AccountDisabled);
    }
    Ok(continue_sign_in(request, pending.request, user, outcome))
}

/// After the account is known: on to the app's request, or signed in directly.
fn continue_sign_in(
    request: Option<AuthorizationRequest>,
    query: Option<String>,
    user: Box<User>,
    outcome: Outcome,
) -> Finished {
    match (request, query) {
        (Some(request), Some(query)) => Finished::App {
            request: Box::new(request),
            query,
            user,
        },
        _ => Finished::Direct { user, outcome },
    }
}

/// Records the identity as a pending link to `holder`; returns the browser's secret.
async fn hold_link(
    svc: &Services,
    provider: &Provider,
    identity: &super::UpstreamIdentity,
    holder: &User,
    request: Option<String>,
) -> Result<String, FederationError> {
    let secret =
        crate::crypto::random_token(32).map_err(|e| FederationError::Internal(e.to_string()))?;
    let now = svc.clock.now();
    let row = PendingLink {
        secret_hash: crate::crypto::sha256_hex(secret.as_bytes()),
        provider: provider.name.clone(),
        subject: identity.subject.clone(),
        email: identity.email.clone(),
        user_id: holder.id.to_string(),
        request,
        created_at: now,
        expires_at: now + LINK_TTL_SECS,
        used_at: None,
    };
    svc.db
        .run(move |conn| repo::federation::insert_pending_link(conn, &row).map_err(DbError::from))
        .await?;
    Ok(secret)
}

const LINK_GONE: FederationError = FederationError::BadState(
    "This sign-in has expired, was already completed, or was not started in this browser. \
     Go back to the application and sign in again.",
);

/// The live pending link for the browser's secret, and the account it would link to.
async fn live_link(
    svc: &Services,
    secret: Option<&str>,
) -> Result<(PendingLink, User), FederationError> {
    let secret = secret.filter(|s| is_secret_shaped(s)).ok_or(LINK_GONE)?;
    let hash = crate::crypto::sha256_hex(secret.as_bytes());
    let now = svc.clock.now();
    svc.db
        .run(move |conn| {
            let Some(pending) = repo::federation::find_pending_link(conn, &hash, now)? else {
                return Ok(None);
            };
            let user = repo::users::find_by_id(conn, &pending.user_id)?;
            Ok::<_, DbError>(user.map(|u| (pending, u)))
        })
        .await?
        .ok_or(LINK_GONE)
}

/// What the link page offers, for the browser holding `secret`. Uses nothing up.
pub async fn link_offer(
    svc: &Services,
    secret: Option<&str>,
) -> Result<LinkOffer, FederationError> {
    let (pending, user) = live_link(svc, secret).await?;
    let redirect_uri = match &pending.request {
        Some(query) => Some(carried_request(svc, query).await?.redirect_uri),
        None => None,
    };
    Ok(LinkOffer {
        email: user.email,
        provider: pending.provider,
        redirect_uri,
    })
}

/// The person proved the existing account with its password (throttled as a sign-in to that
/// account): the identity is linked to it and the sign-in continues. A wrong password leaves
/// the pending link as it was, for another try.
pub async fn confirm_link(
    svc: &Services,
    secret: Option<&str>,
    password: &str,
    ip: Option<String>,
) -> Result<Finished, FederationError> {
    let (pending, user) = live_link(svc, secret).await?;
    let query = pending.request.clone();
    let request = match &pending.request {
        Some(query) => Some(carried_request(svc, query).await?),
        None => None,
    };
    let client_id = request.as_ref().map_or("tessera", |r| r.client.id.as_str());
    let attempt = Attempt {
        client_id,
        ip: ip.as_deref(),
        via: "link_page",
    };
    let proven = match login::verify_credentials(svc, &user.email_lower, password, attempt).await {
        Ok(proven) => proven,
        Err(LoginError::BadCredentials) => return Err(FederationError::WrongPassword),
        Err(LoginError::Throttled(wait)) => return Err(FederationError::Throttled(wait)),
        Err(LoginError::Db(e)) => return Err(e.into()),
        Err(e) => return Err(FederationError::Internal(e.to_string())),
    };
    if proven.id != user.id {
        return Err(LINK_GONE);
    }
    let now = svc.clock.now();
    let linked = svc
        .db
        .run(move |conn| link::link_confirmed(conn, &pending, ip.as_deref(), now))
        .await?
        .ok_or(LINK_GONE)?;
    Ok(continue_sign_in(
        request,
        query,
        Box::new(linked),
        Outcome::Linked,
    ))
}

/// The person declined to link: the pending link is used up and nothing is linked or made.
/// The app hears `access_denied`.
pub async fn decline_link(svc: &Services, secret: Option<&str>) -> FederationError {
    let (pending, _) = match live_link(svc, secret).await {
        Ok(found) => found,
        Err(e) => return e,
    };
    let now = svc.clock.now();
    let hash = pending.secret_hash.clone();
    let consumed = svc
        .db
        .run(move |conn| {
            repo::federation::consume_pending_link(conn, &hash, now).map_err(DbError::from)
        })
        .await;
    match consumed {
        Ok(0) => return LINK_GONE,
        Ok(_) => {}
        Err(e) => return e.into(),
    }
    let request = match &pending.request {
        Some(query) => match carried_request(svc, query).await {
            Ok(request) => Some(Box::new(request)),
            Err(e) => return e,
        },
        None => None,
    };
    FederationError::Denied {
        error: "access_denied".into(),
        request,
    }
}

/// The CSRF token of the link page: derived from the browser's secret, so only a page served
/// to the browser holding the cookie carries it.
pub fn link_csrf(secret: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    URL_SAFE_NO_PAD.encode(ring::hmac::sign(&key, b"link-csrf").as_ref())
}

/// Re-validates the authorization request stored with a pending sign-in.
pub async fn carried_request(
    svc: &Services,
    query: &str,
) -> Result<AuthorizationRequest, FederationError> {
    let params = Params::from_form(query.as_bytes())
        .map_err(|e| FederationError::Internal(e.to_string()))?;
    Ok(authorize::validate(svc, &params).await?)
}

async fn resolve_account(
    svc: &Services,
    provider: &Provider,
    identity: super::UpstreamIdentity,
    ip: Option<String>,
) -> Result<Resolved, FederationError> {
    let now = svc.clock.now();
    let trust_email = provider.trust_email;
    let mut attempts = 0;
    loop {
        attempts += 1;
        let (provider, identity, ip) = (provider.name.clone(), identity.clone(), ip.clone());
        let result = svc
            .db
            .run(move |conn| {
                link::resolve(conn, &provider, trust_email, &identity, ip.as_deref(), now)
            })
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

/// A secret this server could have made (32 random bytes, base64url): anything else is not
/// looked up.
fn is_secret_shaped(secret: &str) -> bool {
    secret.len() == 43
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
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
