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
    self, Ask, AuthorizationRequest, AuthorizeError, Completed, FreshSignIn, Next, Refusal,
    SecondFactor, SecondFactorAnswer, SecondStepOutcome,
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
        Next::Enrolled { recovery_codes } => enrolled_page(request, params, recovery_codes),
        Next::SecondStep { secret, ask } => {
            let mut response = second_factor_page(svc, request, params, StatusCode::OK, None, ask);
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
    let account = user.label();
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
    ask: Ask,
) -> HttpResponse {
    let csrf = match crate::crypto::random_token(32) {
        Ok(token) => token,
        Err(_) => return error_page(StatusCode::INTERNAL_SERVER_ERROR, "Please try again."),
    };
    let (offered, setup) = match ask {
        Ask::Factor(offered) => (offered, None),
        Ask::Enrol(enrolment) => match pages::TotpSetup::of(&enrolment) {
            Ok(setup) => (Vec::new(), Some(setup)),
            Err(e) => {
                tracing::error!(error = %e, "second step: the QR code did not render");
                return error_page(StatusCode::INTERNAL_SERVER_ERROR, "Please try again.");
            }
        },
    };
    let passkey_script = offered.contains(&SecondFactor::Passkey);
    let page = pages::SecondFactor {
        client_name: &request.client.name,
        carried: CARRIED
            .iter()
            .filter_map(|name| params.get(name).map(|value| (*name, value)))
            .collect(),
        csrf: &csrf,
        error,
        offered,
        setup,
        passkey_script,
    };
    let redirect_uri = Some(request.redirect_uri.as_str());
    let mut response = if passkey_script {
        pages::render_with_script(status, redirect_uri, &page)
    } else {
        pages::render_leading_to(status, redirect_uri, &page)
    };
    let _ = response.add_cookie(&LOGIN_CSRF.build(
        svc,
        &csrf,
        actix_web::cookie::time::Duration::minutes(10),
    ));
    response
}

/// The recovery codes of an authenticator app set up during sign-in, and a link on to
/// `/authorize` with the request, which the session (now with both factors) answers. The link
/// leaves out what the sign-in just met (`prompt=login`, `max_age`): followed, they would ask
/// again.
fn enrolled_page(
    request: &AuthorizationRequest,
    params: &Params,
    recovery_codes: Vec<String>,
) -> HttpResponse {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for name in CARRIED {
        let Some(value) = params.get(name) else {
            continue;
        };
        if *name == "prompt" {
            if value.split(' ').any(|p| p == "consent") {
                query.append_pair("prompt", "consent");
            }
            continue;
        }
        query.append_pair(name, value);
    }
    let page = pages::Enrolled {
        client_name: &request.client.name,
        recovery_codes,
        continue_to: format!("{}?{}", super::paths::AUTHORIZE, query.finish()),
    };
    pages::render(StatusCode::OK, &page)
}

pub(super) const GONE: &str =
    "This sign-in has expired or was already used. Go back to the application and sign in again.";

/// The pending second step's cookie, as the browser presents it.
pub(super) fn pending_cookie(req: &HttpRequest, svc: &Services) -> Option<String> {
    MFA_PENDING.read(req, svc).filter(|v| !v.is_empty())
}

/// What the person gave on the second-step page: a passkey's answer (`credential` and
/// `ceremony`), the first code of an app being set up (`enrol_totp`), an app's code (`totp`)
/// or a recovery code (`recovery_code`).
fn answer_of(params: &Params) -> Result<SecondFactorAnswer, &'static str> {
    let given = |name: &str| {
        params
            .get(name)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(String::from)
    };
    if let Some(credential) = given("credential") {
        let credential = serde_json::from_str(&credential)
            .map_err(|_| "Your browser's passkey answer was malformed. Try again.")?;
        return Ok(SecondFactorAnswer::Passkey {
            ceremony: given("ceremony").unwrap_or_default(),
            credential: Box::new(credential),
        });
    }
    if let Some(code) = given("enrol_totp") {
        return Ok(SecondFactorAnswer::EnrolTotp(code));
    }
    if let Some(code) = given("totp") {
        return Ok(SecondFactorAnswer::Totp(code));
    }
    if let Some(code) = given("recovery_code") {
        return Ok(SecondFactorAnswer::RecoveryCode(code));
    }
    Err("Enter a code.")
}

fn refusal_message(why: Refusal) -> &'static str {
    match why {
        Refusal::WrongCode => "That code is not right, or was already used. Try the next one.",
        Refusal::Passkey(refused) => refused.message(),
    }
}

/// POST /authorize/second-factor: the second step's answer, with the authorization request and
/// the CSRF token, in the browser holding the pending step's cookie.
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
    let Some(pending) = pending_cookie(&req, svc) else {
        return error_page(StatusCode::FORBIDDEN, GONE);
    };
    let answer = match answer_of(&params) {
        Ok(answer) => answer,
        Err(message) => return error_page(StatusCode::BAD_REQUEST, message),
    };
    let outcome = authorize::second_step::second_step(
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
        Ok(SecondStepOutcome::Refused { ask, why }) => second_factor_page(
            svc,
            &request,
            &params,
            StatusCode::UNAUTHORIZED,
            Some(refusal_message(why)),
            ask,
        ),
        Ok(SecondStepOutcome::Throttled(wait)) => super::pages::with_retry_after(
            error_page(
                StatusCode::TOO_MANY_REQUESTS,
                &format!("Too many wrong answers. Try again in {wait} seconds."),
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
