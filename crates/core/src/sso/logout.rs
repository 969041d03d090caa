//! OpenID Connect RP-Initiated Logout 1.0: an app sends the browser to `end_session_endpoint`
//! to end the person's session at Tessera, and names where the browser may go afterwards.
//!
//! - `check` reads the request: an `id_token_hint` must be one of our ID tokens (expired ones
//!   accepted); the app is the `client_id` or the hint's `aud` (both: they must agree); a
//!   `post_logout_redirect_uri` must be exactly one the app registered. Anything wrong is
//!   shown on a page, never sent to an address nobody vouched for: a logout endpoint that
//!   redirected anywhere would be an open redirector.
//! - `begin` ends the session at once when the hint names its person (and, if the hint
//!   carries a `sid`, this very session). Otherwise the person is asked first (§2: a logout
//!   from a bare link or another site's page would be cross-site request forgery), and
//!   `confirmed` ends the session the question was shown in.
//!
//! Ending a session ends its refresh families (but those granted `offline_access`) and queues
//! a logout token for every app that got tokens in it (`backchannel`), in one transaction.

use diesel::Connection;
use serde_json::json;

use super::session::{self, BrowserSession, EndReason};
use crate::audit::{self, Event, Record};
use crate::db::{DbConnection, DbError, repo};
use crate::domain::{Client, User};
use crate::services::Services;

/// The request's own parameters, as the browser sent them (by GET or a form POST).
/// `ui_locales` is accepted and ignored: the pages have one language.
#[derive(Debug, Clone, Default)]
pub struct Asked {
    pub id_token_hint: Option<String>,
    pub client_id: Option<String>,
    pub post_logout_redirect_uri: Option<String>,
    pub state: Option<String>,
}

/// A checked logout request.
#[derive(Debug, Clone)]
pub struct LogoutRequest {
    /// The app that asks: named by `client_id` or by the hint's audience.
    pub client: Option<Client>,
    /// Who the app believes is signed in, from a valid `id_token_hint`.
    pub hint: Option<Hint>,
    /// The registered `post_logout_redirect_uri` to send the browser to afterwards.
    pub redirect_uri: Option<String>,
    /// Echoed on that redirect (only there: without a redirect nobody reads it).
    pub state: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hint {
    pub sub: String,
    pub sid: Option<String>,
}

impl LogoutRequest {
    /// Where the browser goes once the session is over: the registered URI with the state, or
    /// `None` for the "you are signed out" page.
    pub fn location(&self) -> Option<String> {
        let uri = self.redirect_uri.as_deref()?;
        Some(match &self.state {
            Some(state) => {
                let query = form_urlencoded::Serializer::new(String::new())
                    .append_pair("state", state)
                    .finish();
                crate::authorize::request::with_query(uri, &query)
            }
            None => uri.to_string(),
        })
    }

    /// Whether the hint stands for `session`: its person, and its `sid` if it has one.
    fn hint_is_for(&self, session: &BrowserSession) -> bool {
        self.hint.as_ref().is_some_and(|hint| {
            hint.sub == session.user_id.as_str()
                && hint.sid.as_deref().is_none_or(|sid| sid == session.id)
        })
    }
}

/// A logout request that cannot be followed: the text is for the person, on a page.
#[derive(Debug, thiserror::Error)]
pub enum LogoutError {
    #[error("{0}")]
    Refused(&'static str),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Checks a logout request (RP-Initiated Logout §2, §3).
pub async fn check(svc: &Services, asked: Asked) -> Result<LogoutRequest, LogoutError> {
    let hint = match &asked.id_token_hint {
        Some(token) => Some(
            crate::tokens::decode_id_token_hint(token, &svc.keys.current(), &svc.issuer).map_err(
                |_| {
                    LogoutError::Refused(
                        "The sign-out request carries an ID token that was not issued here. \
                         Go back to the application and sign out again.",
                    )
                },
            )?,
        ),
        None => None,
    };
    let client_id = match (&asked.client_id, &hint) {
        (Some(named), Some(hint)) if *named != hint.aud => {
            return Err(LogoutError::Refused(
                "The sign-out request names one application (client_id) and carries an ID \
                 token of another.",
            ));
        }
        (Some(named), _) => Some(named.clone()),
        (None, Some(hint)) => Some(hint.aud.clone()),
        (None, None) => None,
    };
    let client = match client_id {
        Some(id) => Some(
            svc.db
                .run(move |conn| repo::clients::find(conn, &id).map_err(DbError::from))
                .await?
                .ok_or(LogoutError::Refused(
                    "The application asking to sign you out is not registered here.",
                ))?,
        ),
        None => None,
    };
    let redirect_uri = match (&asked.post_logout_redirect_uri, &client) {
        (None, _) => None,
        (Some(_), None) => {
            return Err(LogoutError::Refused(
                "The sign-out request names no application (client_id or id_token_hint), so \
                 the address to return to cannot be checked.",
            ));
        }
        (Some(uri), Some(client)) if client.post_logout_redirect_uris.contains_exactly(uri) => {
            Some(uri.clone())
        }
        (Some(_), Some(_)) => {
            return Err(LogoutError::Refused(
                "The address to return to after signing out is not one registered for this \
                 application.",
            ));
        }
    };
    let state = redirect_uri.as_ref().and(asked.state);
    Ok(LogoutRequest {
        client,
        hint: hint.map(|claims| Hint {
            sub: claims.sub,
            sid: claims.sid,
        }),
        redirect_uri,
        state,
    })
}

/// What a logout request did.
#[derive(Debug)]
pub enum Begun {
    /// The session ended.
    Ended,
    /// The browser had no live session: nothing to end.
    NoSession,
    /// The person must say yes first: to ending `session`, theirs as `user`.
    Confirm {
        session: Box<BrowserSession>,
        user: Box<User>,
    },
}

/// Ends the browser's session at once if the request's hint stands for it; otherwise says
/// whom to ask.
pub async fn begin(
    svc: &Services,
    request: &LogoutRequest,
    cookie: Option<String>,
) -> Result<Begun, DbError> {
    let now = svc.clock.now();
    let request_inner = request.clone();
    let begun = svc
        .db
        .run(move |conn| {
            conn.transaction(|conn| {
                let Some((session, user)) = live(conn, cookie.as_deref(), now)? else {
                    return Ok::<_, DbError>(Begun::NoSession);
                };
                if !request_inner.hint_is_for(&session) {
                    return Ok(Begun::Confirm {
                        session: Box::new(session),
                        user: Box::new(user),
                    });
                }
                end(conn, &request_inner, &session, now)?;
                Ok(Begun::Ended)
            })
        })
        .await?;
    if matches!(begun, Begun::Ended) {
        svc.backchannel_wake.notify_one();
    }
    Ok(begun)
}

/// What the person's "yes" on the confirmation page did.
#[derive(Debug, PartialEq, Eq)]
pub enum Confirmed {
    Ended,
    /// The session had ended meanwhile (another tab, an expiry): nothing left to end.
    NoSession,
    /// The browser's session is no longer the one the question was asked in (someone signed
    /// in again meanwhile): nothing is ended.
    Changed,
}

/// The person confirmed, on the page shown in session `shown_in`, that they want to sign out.
pub async fn confirmed(
    svc: &Services,
    request: &LogoutRequest,
    cookie: Option<String>,
    shown_in: &str,
) -> Result<Confirmed, DbError> {
    let now = svc.clock.now();
    let (request, shown_in) = (request.clone(), shown_in.to_string());
    let confirmed = svc
        .db
        .run(move |conn| {
            conn.transaction(|conn| {
                let Some((session, _)) = live(conn, cookie.as_deref(), now)? else {
                    return Ok::<_, DbError>(Confirmed::NoSession);
                };
                if !crate::crypto::constant_time_eq(session.id.as_bytes(), shown_in.as_bytes()) {
                    return Ok(Confirmed::Changed);
                }
                end(conn, &request, &session, now)?;
                Ok(Confirmed::Ended)
            })
        })
        .await?;
    if confirmed == Confirmed::Ended {
        svc.backchannel_wake.notify_one();
    }
    Ok(confirmed)
}

fn live(
    conn: &mut DbConnection,
    cookie: Option<&str>,
    now: i64,
) -> Result<Option<(BrowserSession, User)>, DbError> {
    match cookie {
        Some(secret) => session::find(conn, secret, now),
        None => Ok(None),
    }
}

/// Ends the session (inside the caller's transaction) and records it.
fn end(
    conn: &mut DbConnection,
    request: &LogoutRequest,
    session: &BrowserSession,
    now: i64,
) -> Result<(), DbError> {
    if !session::end(conn, &session.id, EndReason::Logout, now)? {
        return Ok(());
    }
    audit::record(
        conn,
        Event::SessionsRevoked,
        Record {
            user_id: Some(&session.user_id),
            client_id: request.client.as_ref().map(|client| client.id.as_str()),
            detail: Some(json!({
                "reason": EndReason::Logout.as_str(),
                "by": "self",
                "session": session.id,
            })),
            ..Record::default()
        },
        now,
    )
}
