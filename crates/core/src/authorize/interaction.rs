//! What stands between a checked authorization request and its code, given the browser's
//! session at Tessera (OpenID Connect Core §3.1.2.1–§3.1.2.6): a sign-in, a consent, or
//! nothing. With `prompt=none` nothing may be shown, so what would be a page is an error sent
//! back to the client (`login_required`, `consent_required`).

use diesel::Connection;

use super::next::{Completed, Next, after_sign_in, authentication};
use super::request::{self, AuthorizationRequest, AuthorizeError, issue_code_with};
use super::second_step::{SignInSoFar, further_step};
use crate::db::{DbConnection, DbError, repo};
use crate::domain::{Amr, ScopeSet, User};
use crate::grants::Params;
use crate::services::Services;
use crate::sso::{self, BrowserSession, Origin, SignedIn};

/// The next step for `request` in a browser whose session cookie is `cookie` (if any).
pub async fn next(
    svc: &Services,
    request: &AuthorizationRequest,
    cookie: Option<String>,
) -> Result<Next, AuthorizeError> {
    let now = svc.clock.now();
    let (svc_inner, request_inner) = (svc.clone(), request.clone());
    let next = svc
        .db
        .run(move |conn| session_step(conn, &svc_inner, &request_inner, cookie.as_deref(), now))
        .await?;
    answer(request, next)
}

/// `validate` and then `next`, in one database job (the hot path of single sign-on: one
/// hand-off to the database thread and back instead of two). `upstream` says the request asks
/// for an upstream provider (`idp`): then, unless `prompt=none`, the session is not consulted
/// and the answer is `Next::SignIn` (the caller goes to the upstream), as if `next` had not
/// been called.
pub async fn start(
    svc: &Services,
    params: &Params,
    cookie: Option<String>,
    upstream: bool,
) -> Result<(AuthorizationRequest, Next), AuthorizeError> {
    let client_id = request::client_id(params)?;
    let hint = request::decode_hint(svc, params);
    let now = svc.clock.now();
    let (svc_inner, params) = (svc.clone(), params.clone());
    // Grouped: with many browsers at once, their codes share a commit (`db::group`).
    let checked = svc
        .db
        .run_grouped(move |conn| {
            let client = repo::clients::find(conn, &client_id)?;
            let request = match request::check(&params, client, hint.clone()) {
                Ok(request) => request,
                Err(refused) => return Ok(Err(refused)),
            };
            if upstream && !request.prompt.none {
                return Ok(Ok((request, Next::SignIn)));
            }
            let next = session_step(conn, &svc_inner, &request, cookie.as_deref(), now)?;
            Ok::<_, DbError>(Ok((request, next)))
        })
        .await??;
    let (request, next) = checked;
    let next = answer(&request, next)?;
    Ok((request, next))
}

/// The session's part of `next`, in one transaction on `conn`.
fn session_step(
    conn: &mut DbConnection,
    svc: &Services,
    request: &AuthorizationRequest,
    cookie: Option<&str>,
    now: i64,
) -> Result<Next, DbError> {
    conn.transaction(|conn| {
        let session = match cookie {
            Some(secret) => sso::find(conn, secret, now)?,
            None => None,
        };
        let Some((session, user)) = session else {
            return Ok(Next::SignIn);
        };
        if needs_sign_in(request, &session, &user, now) {
            return Ok(Next::SignIn);
        }
        // Step-up: the session's person proves a second factor (or sets one up), and the
        // session itself is upgraded (`second_step` renews it with both factors).
        let so_far = SignInSoFar {
            user: &user,
            amr: &session.amr,
            persistent: session.persistent,
            session_id: Some(&session.id),
        };
        if let Some(next) = further_step(conn, svc, request, so_far, now)? {
            return Ok(next);
        }
        sso::touch(conn, &svc.settings.sessions, &session, now)?;
        after_sign_in(conn, request, user, session, now)
    })
}

/// What `prompt=none` makes of a step: a page that may not be shown is an error sent back to
/// the client.
fn answer(request: &AuthorizationRequest, next: Next) -> Result<Next, AuthorizeError> {
    if request.prompt.none {
        let refusal = |error: &'static str, description: &str| AuthorizeError::Redirect {
            redirect_uri: request.redirect_uri.clone(),
            error,
            description: description.into(),
            state: request.state.clone(),
        };
        return match next {
            Next::SignIn => Err(refusal(
                "login_required",
                "prompt=none, and the person must sign in",
            )),
            Next::Consent { .. } => Err(refusal(
                "consent_required",
                "prompt=none, and the person has not allowed this application",
            )),
            // OpenID Connect Core §3.1.2.6: the person is signed in, but the multi-factor
            // sign-in asked for needs a page. `interaction_required`, not `login_required`:
            // the session stands, the app should send the person with a page allowed.
            Next::SecondStepUnshown => Err(refusal(
                "interaction_required",
                "prompt=none, and the multi-factor sign-in asked for (acr_values) needs a second step",
            )),
            code => Ok(code),
        };
    }
    Ok(next)
}

/// Whether the session cannot stand for this request: `prompt=login` (or `select_account`),
/// a `max_age` the sign-in is older than (`max_age=0` always), or an `id_token_hint` naming
/// someone else.
fn needs_sign_in(
    request: &AuthorizationRequest,
    session: &BrowserSession,
    user: &User,
    now: i64,
) -> bool {
    request.prompt.login
        || request
            .max_age
            .is_some_and(|max_age| max_age == 0 || now - session.auth_time > max_age)
        || request
            .hinted_subject
            .as_deref()
            .is_some_and(|sub| sub != user.id.as_str())
}

/// A person who just proved who they are at `/authorize` (a password, an upstream).
pub struct FreshSignIn {
    pub user: User,
    pub amr: Amr,
    /// "Keep me signed in": the cookie outlives the browser.
    pub persistent: bool,
    pub origin: Origin,
}

/// Records a fresh sign-in as the browser's session (renewing the session of the same person,
/// ending anyone else's) and goes on to consent or the code, in one transaction.
pub async fn signed_in(
    svc: &Services,
    request: &AuthorizationRequest,
    fresh: FreshSignIn,
    cookie: Option<String>,
) -> Result<Completed, AuthorizeError> {
    let now = svc.clock.now();
    let (svc, request) = (svc.clone(), request.clone());
    let completed = svc
        .db
        .clone()
        .run(move |conn| {
            conn.transaction(|conn| {
                let previous = match &cookie {
                    Some(secret) => sso::find(conn, secret, now)?.map(|(session, _)| session),
                    None => None,
                };
                // Whoever has a second factor is always asked for it: no session yet.
                let so_far = SignInSoFar {
                    user: &fresh.user,
                    amr: &fresh.amr,
                    persistent: fresh.persistent,
                    session_id: None,
                };
                if let Some(next) = further_step(conn, &svc, &request, so_far, now)? {
                    return Ok::<_, DbError>(Completed {
                        started: None,
                        next,
                    });
                }
                let started = sso::sign_in(
                    conn,
                    &svc.settings.sessions,
                    SignedIn {
                        user: &fresh.user,
                        amr: fresh.amr.clone(),
                        persistent: fresh.persistent,
                        origin: fresh.origin.clone(),
                    },
                    previous.as_ref(),
                    now,
                )?;
                let next = after_sign_in(
                    conn,
                    &request,
                    fresh.user.clone(),
                    started.session.clone(),
                    now,
                )?;
                Ok::<_, DbError>(Completed {
                    started: Some(started),
                    next,
                })
            })
        })
        .await?;
    Ok(completed)
}

/// The person allowed the app, on the consent page shown in session `shown_in`, the scopes it
/// listed (`shown`). `None` if the browser's session is gone, or is not the one the page was
/// shown in (someone else signed in, in another tab): nothing is granted. If the app now needs
/// a scope the page did not list (the person withdrew an earlier consent meanwhile), the page
/// again for those; otherwise the consent is remembered and the code issued.
pub async fn consented(
    svc: &Services,
    request: &AuthorizationRequest,
    cookie: Option<String>,
    shown_in: &str,
    shown: &ScopeSet,
    now: i64,
) -> Result<Option<Next>, AuthorizeError> {
    let (request, shown_in, shown) = (request.clone(), shown_in.to_string(), shown.clone());
    let svc = svc.clone();
    let next = svc
        .db
        .clone()
        .run(move |conn| {
            conn.transaction(|conn| {
                let Some(secret) = &cookie else {
                    return Ok(None);
                };
                let Some((session, user)) = sso::find(conn, secret, now)? else {
                    return Ok(None);
                };
                if !crate::crypto::constant_time_eq(session.id.as_bytes(), shown_in.as_bytes()) {
                    return Ok(None);
                }
                // A consent form is no way around what `/authorize` asks of the session: a
                // fresh sign-in, or a second factor (acr_values, a policy, the client's).
                if needs_sign_in(&request, &session, &user, now) {
                    return Ok(Some(Next::SignIn));
                }
                let so_far = SignInSoFar {
                    user: &user,
                    amr: &session.amr,
                    persistent: session.persistent,
                    session_id: Some(&session.id),
                };
                if let Some(next) = further_step(conn, &svc, &request, so_far, now)? {
                    return Ok(Some(next));
                }
                let scope = crate::grants::scope_for_user(&user, &request.scope);
                let asked = sso::consent::missing(conn, &user.id, &request.client, &scope, false)?;
                if let Some(scopes) = asked.filter(|a| a.iter().any(|s| !shown.contains(s))) {
                    return Ok(Some(Next::Consent {
                        user: Box::new(user),
                        session: Box::new(session),
                        scopes,
                    }));
                }
                sso::consent::grant(conn, &user.id, &request.client, &scope, now)?;
                let auth = authentication(&session);
                let location = issue_code_with(conn, &request, &user, &auth, now)?;
                Ok::<_, DbError>(Some(Next::Code { location }))
            })
        })
        .await?;
    Ok(next)
}
