//! The browser session's cookie, and what follows a sign-in at `/authorize` whichever way it
//! happened (the login form, an upstream provider): the session is recorded, its cookie set,
//! and the browser goes on to the consent page or back to the app with a code. The consent
//! form is answered here too.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};

use super::cookies::{LOGIN_CSRF, MFA_PENDING, SESSION};
use super::pages::{self, CONSENT_SCOPE_FIELD, error_page};
use super::request::{CARRIED, refusal, see_other};
use super::state::AppState;
use crate::authorize::{
    self, AuthorizationRequest, AuthorizeError, Completed, FreshSignIn, Next, SecondFactor,
    SecondFactorAnswer, SecondStepOutcome,
};
use crate::domain::{Amr, ScopeSet, User};
use crate::grants::Params;
use crate::services::Services;
use crate::sso::{Origin, Started};

/// The session cookie's secret, as the browser presents it.
pub fn cookie(req: &HttpRequest, svc: &Services) -> Option<String> {
    SESSION.read(req, svc).filter(|value| !value.is_empty())
}

/// Where a sign-in was made from, for the person's session list.
fn origin(req: &HttpRequest, svc: &Services) -> Origin {
    let user_agent = req
        .headers()
        .get(actix_web::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    let ip = super::state::client_ip(req, &svc.settings.server.trusted_proxies);
    Origin::new(user_agent, ip.as_deref())
}

/// A person just proved who they are for `request`: the session is recorded (a new secret in
/// the cookie, against fixation) and the flow goes on.
pub async fn signed_in(
    req: &HttpRequest,
    svc: &Services,
    request: &AuthorizationRequest,
    params: &Params,
    user: User,
    amr: Amr,
    persistent: bool,
) -> HttpResponse {
    let fresh = FreshSignIn {
        user,
        amr,
        persistent,
        origin: origin(req, svc),
    };
    match authorize::interaction::signed_in(svc, request, fresh, cookie(req, svc)).await {
        Ok(Completed { started, next }) => {
            with_session(svc, respond(svc, request, params, next), started)
        }
        Err(e) => refusal(e),
    }
}

/// `response` with the session cookie of `started`, if a session was made.
fn with_session(
    svc: &Services,
    mut response: HttpResponse,
    started: Option<Started>,
) -> HttpResponse {
    let Some(started) = started else {
        return response;
    };
    {
        {
            let cookie = if started.session.persistent {
                let age = started.session.absolute_expires_at - started.session.created_at;
                SESSION.build(
                    svc,
                    &started.secret,
                    actix_web::cookie::time::Duration::seconds(age),
                )
            } else {
                SESSION.build_for_browser_session(svc, &started.secret)
            };
            let _ = response.add_cookie(&cookie);
            // The second step, if there was one, is done with.
            let _ = response.add_cookie(&MFA_PENDING.removal(svc));
            response
        }
    }
}

/// As `respond`, for `GET /authorize`, which a browser with a session reaches without the
/// login form: a browser that presents no CSRF cookie has none to forget, so its redirect
/// with the code carries no removal (a `Set-Cookie` formatted with a date on every request).
pub fn respond_to(
    req: &HttpRequest,
    svc: &Services,
    request: &AuthorizationRequest,
    params: &Params,
    next: Next,
) -> HttpResponse {
    match next {
        Next::Code { location } if LOGIN_CSRF.read(req, svc).is_none() => see_other(&location),
        next => respond(svc, request, params, next),
    }
}

/// The browser's next step as a response; `Next::SignIn` is the caller's to render.
pub fn respond(
    svc: &Services,
    request: &AuthorizationRequest,
    params: &Params,
    next: Next,
) -> HttpResponse {
    match next {
        Next::Code { location } => {
            let mut response = see_other(&location);
            // The form is done with: the CSRF cookie goes.
            let _ = response.add_cookie(&LOGIN_CSRF.removal(svc));
            response
        }
        Next::Consent {
            user,
            session,
            scopes,
        } => consent_page(svc, request, params, &user, &session.id, &scopes),
        Next::SecondStep { secret, offered } => {
            let mut response =
                second_factor_page(svc, request, params, StatusCode::OK, None, offered);
            let _ = response.add_cookie(&MFA_PENDING.build(
                svc,
                &secret,
                actix_web::cookie::time::Duration::seconds(crate::mfa::pending::TTL_SECS),
            ));
            response
        }
        Next::SignIn | Next::SecondStepUnshown => error_page(
            StatusCode::BAD_REQUEST,
            "Your sign-in did not go through. Go back to the application and start again.",
        ),
    }
}

fn consent_page(
    svc: &Services,
    request: &AuthorizationRequest,
    params: &Params,
    user: &User,
    session_id: &str,
    scopes: &ScopeSet,
) -> HttpResponse {
    let csrf = match crate::crypto::random_token(32) {
        Ok(token) => token,
        Err(_) => return error_page(StatusCode::INTERNAL_SERVER_ERROR, "Please try again."),
    };
    let account = if user.email.is_empty() {
        user.name.as_deref().unwrap_or("your account")
    } else {
        &user.email
    };
    let page = pages::Consent {
        client_name: &request.client.name,
        account,
        scopes: scopes
            .iter()
            .map(|name| pages::ScopeLine {
                name,
                description: crate::sso::consent::description(&svc.settings, name),
            })
            .collect(),
        carried: CARRIED
            .iter()
            .filter(|name| **name != "prompt")
            .filter_map(|name| params.get(name).map(|value| (*name, value)))
            .collect(),
        csrf: &csrf,
        session_id,
        shown: scopes.to_string(),
    };
    let mut response = pages::render_leading_to(StatusCode::OK, Some(&request.redirect_uri), &page);
    let _ = response.add_cookie(&LOGIN_CSRF.build(
        svc,
        &csrf,
        actix_web::cookie::time::Duration::minutes(10),
    ));
    response
}

/// POST /authorize/consent: `decision=allow` remembers the consent and issues the code;
/// `decision=deny` sends the app `access_denied`.
pub async fn consent_submit(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    let svc = &state.services;
    let (params, request) = match super::request::posted_authorization(&req, svc, &body).await {
        Ok(posted) => posted,
        Err(page) => return page,
    };
    match params.get("decision") {
        Some("allow") => {}
        Some("deny") => {
            let mut response = refusal(AuthorizeError::Redirect {
                redirect_uri: request.redirect_uri,
                error: "access_denied",
                description: "the person did not allow this application".into(),
                state: request.state,
            });
            let _ = response.add_cookie(&LOGIN_CSRF.removal(svc));
            return response;
        }
        _ => return error_page(StatusCode::BAD_REQUEST, "Choose Allow or Deny."),
    }
    let shown_in = params.get("sid").unwrap_or_default();
    // The scopes the page listed; a field that is not a scope lists nothing (the page again).
    let shown =
        ScopeSet::parse(params.get(CONSENT_SCOPE_FIELD).unwrap_or_default()).unwrap_or_default();
    let now = svc.clock.now();
    let cookie = cookie(&req, svc);
    match authorize::interaction::consented(svc, &request, cookie, shown_in, &shown, now).await {
        Ok(Some(next)) => respond(svc, &request, &params, next),
        Ok(None) => error_page(
            StatusCode::FORBIDDEN,
            "Your sign-in has ended or changed since this page was shown. Go back to the application and start again.",
        ),
        Err(e) => refusal(e),
    }
}

fn second_factor_page(
    svc: &Services,
    request: &AuthorizationRequest,
    params: &Params,
    status: StatusCode,
    error: Option<&str>,
    offered: Vec<SecondFactor>,
) -> HttpResponse {
    let csrf = match crate::crypto::random_token(32) {
        Ok(token) => token,
        Err(_) => return error_page(StatusCode::INTERNAL_SERVER_ERROR, "Please try again."),
    };
    let page = pages::SecondFactor {
        client_name: &request.client.name,
        carried: CARRIED
            .iter()
            .filter_map(|name| params.get(name).map(|value| (*name, value)))
            .collect(),
        csrf: &csrf,
        error,
        offered,
    };
    let mut response = pages::render_leading_to(status, Some(&request.redirect_uri), &page);
    let _ = response.add_cookie(&LOGIN_CSRF.build(
        svc,
        &csrf,
        actix_web::cookie::time::Duration::minutes(10),
    ));
    response
}

/// POST /authorize/second-factor: a code from the authenticator app (`totp`) or a recovery
/// code (`recovery_code`), with the authorization request and the CSRF token, in the browser
/// holding the pending step's cookie.
pub async fn second_factor_submit(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    let svc = &state.services;
    let (params, request) = match super::request::posted_authorization(&req, svc, &body).await {
        Ok(posted) => posted,
        Err(page) => return page,
    };
    const GONE: &str = "This sign-in has expired or was already used. Go back to the application and sign in again.";
    let Some(pending) = MFA_PENDING.read(&req, svc).filter(|v| !v.is_empty()) else {
        return error_page(StatusCode::FORBIDDEN, GONE);
    };
    let answer = match (params.get("totp"), params.get("recovery_code")) {
        (Some(code), _) if !code.trim().is_empty() => SecondFactorAnswer::Totp(code),
        (_, Some(code)) if !code.trim().is_empty() => SecondFactorAnswer::RecoveryCode(code),
        _ => return error_page(StatusCode::BAD_REQUEST, "Enter a code."),
    };
    let outcome = authorize::interaction::second_step(
        svc,
        &request,
        pending,
        answer,
        origin(&req, svc),
        cookie(&req, svc),
    )
    .await;
    match outcome {
        Ok(SecondStepOutcome::Completed(completed)) => {
            let Completed { started, next } = *completed;
            with_session(svc, respond(svc, &request, &params, next), started)
        }
        Ok(SecondStepOutcome::Refused { offered }) => second_factor_page(
            svc,
            &request,
            &params,
            StatusCode::UNAUTHORIZED,
            Some("That code is not right, or was already used. Try the next one."),
            offered,
        ),
        Ok(SecondStepOutcome::Throttled(wait)) => super::pages::with_retry_after(
            error_page(
                StatusCode::TOO_MANY_REQUESTS,
                &format!("Too many wrong codes. Try again in {wait} seconds."),
            ),
            wait,
        ),
        Ok(SecondStepOutcome::Gone) => {
            let mut response = error_page(StatusCode::FORBIDDEN, GONE);
            let _ = response.add_cookie(&MFA_PENDING.removal(svc));
            response
        }
        Err(e) => refusal(e),
    }
}
