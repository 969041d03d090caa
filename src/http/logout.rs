//! OpenID Connect RP-Initiated Logout 1.0: `GET`/`POST /logout` (the `end_session_endpoint`)
//! and `POST /logout/confirm`, the form of its "Sign out?" page (CSRF-protected by a
//! double-submit cookie, like the login form). The checks and the ending are `sso::logout`'s.
//!
//! Whatever is wrong with a request (an ID token not ours, an unregistered return address) is
//! shown on a page: the browser is sent only to an address the app registered.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};

use super::cookies::{LOGOUT_CSRF, SESSION};
use super::pages::{self, CSRF_FIELD, message_page};
use super::paths;
use super::request::{form_is_ours, see_other};
use super::state::AppState;
use crate::domain::User;
use crate::grants::Params;
use crate::services::Services;
use crate::sso::logout::{self, Asked, Begun, Confirmed, LogoutError, LogoutRequest};

/// The logout request's own parameters, carried through the "Sign out?" form (`ui_locales`
/// is ignored, so not carried).
const CARRIED: &[&str] = &[
    "id_token_hint",
    "client_id",
    "post_logout_redirect_uri",
    "state",
];

const PROBLEM: &str = "Sign-out problem";

/// GET /logout.
pub async fn show(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    match form(req.query_string().as_bytes()) {
        Ok(params) => logout(&req, &state.services, &params, false).await,
        Err(page) => *page,
    }
}

/// POST /logout: the same request as a form.
pub async fn submit(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    match form(&body) {
        Ok(params) => logout(&req, &state.services, &params, true).await,
        Err(page) => *page,
    }
}

async fn logout(req: &HttpRequest, svc: &Services, params: &Params, posted: bool) -> HttpResponse {
    let request = match logout::check(svc, asked(params)).await {
        Ok(request) => request,
        Err(e) => return refused(e),
    };
    let cookie = super::session::cookie(req, svc);
    if posted && cookie.is_none() {
        // A form posted from the app's site brings no session cookie (SameSite=Lax sends it
        // on a cross-site navigation only when it is a GET): the same request as a GET does.
        let query = carried(params)
            .into_iter()
            .fold(
                form_urlencoded::Serializer::new(String::new()),
                |mut query, (name, value)| {
                    query.append_pair(name, value);
                    query
                },
            )
            .finish();
        return see_other(&if query.is_empty() {
            paths::LOGOUT.to_string()
        } else {
            format!("{}?{query}", paths::LOGOUT)
        });
    }
    match logout::begin(svc, &request, cookie).await {
        Ok(Begun::Ended | Begun::NoSession) => signed_out(svc, &request),
        Ok(Begun::Confirm { session, user }) => {
            confirmation_page(svc, &request, params, &session.id, &user)
        }
        Err(e) => refused(LogoutError::Db(e)),
    }
}

/// POST /logout/confirm: the person said yes.
pub async fn confirm(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    let svc = &state.services;
    let params = match form(&body) {
        Ok(params) => params,
        Err(page) => return *page,
    };
    let csrf = LOGOUT_CSRF.read(&req, svc);
    if !form_is_ours(&req, svc, csrf.as_deref(), params.get(CSRF_FIELD)) {
        return message_page(
            StatusCode::FORBIDDEN,
            PROBLEM,
            "This sign-out form has expired or did not come from this site. Go back to the \
             application and sign out again.",
        );
    }
    let request = match logout::check(svc, asked(&params)).await {
        Ok(request) => request,
        Err(e) => return refused(e),
    };
    let shown_in = params.get("sid").unwrap_or_default();
    let cookie = super::session::cookie(&req, svc);
    let mut response = match logout::confirmed(svc, &request, cookie, shown_in).await {
        Ok(Confirmed::Ended | Confirmed::NoSession) => signed_out(svc, &request),
        Ok(Confirmed::Changed) => message_page(
            StatusCode::CONFLICT,
            PROBLEM,
            "Someone signed in again in this browser since this page was shown, so nobody was \
             signed out. Go back to the application and sign out again.",
        ),
        Err(e) => return refused(LogoutError::Db(e)),
    };
    // The form is done with: its CSRF cookie goes.
    let _ = response.add_cookie(&LOGOUT_CSRF.removal(svc));
    response
}

fn form(body: &[u8]) -> Result<Params, Box<HttpResponse>> {
    Params::from_form(body).map_err(|e| {
        Box::new(message_page(
            StatusCode::BAD_REQUEST,
            PROBLEM,
            &e.to_string(),
        ))
    })
}

fn asked(params: &Params) -> Asked {
    let get = |name: &str| params.get(name).map(String::from);
    Asked {
        id_token_hint: get("id_token_hint"),
        client_id: get("client_id"),
        post_logout_redirect_uri: get("post_logout_redirect_uri"),
        state: get("state"),
    }
}

fn carried(params: &Params) -> Vec<(&'static str, &str)> {
    CARRIED
        .iter()
        .filter_map(|name| params.get(name).map(|value| (*name, value)))
        .collect()
}

/// The session is over (or there was none): back to the app's registered address with the
/// state, or the "You are signed out" page; the browser forgets the session cookie either way.
fn signed_out(svc: &Services, request: &LogoutRequest) -> HttpResponse {
    let mut response = match request.location() {
        Some(location) => see_other(&location),
        None => message_page(StatusCode::OK, "Signed out", "You are signed out."),
    };
    let _ = response.add_cookie(&SESSION.removal(svc));
    response
}

fn confirmation_page(
    svc: &Services,
    request: &LogoutRequest,
    params: &Params,
    session_id: &str,
    user: &User,
) -> HttpResponse {
    let Ok(csrf) = crate::crypto::random_token(32) else {
        return message_page(
            StatusCode::SERVICE_UNAVAILABLE,
            PROBLEM,
            "Please try again.",
        );
    };
    let account = user.label();
    let page = pages::Logout {
        client_name: request.client.as_ref().map(|client| client.name.as_str()),
        account,
        carried: carried(params),
        csrf: &csrf,
        session_id,
    };
    // The form's answer may redirect to the app's registered address.
    let mut response =
        pages::render_leading_to(StatusCode::OK, request.redirect_uri.as_deref(), &page);
    let _ = response.add_cookie(&LOGOUT_CSRF.build(
        svc,
        &csrf,
        actix_web::cookie::time::Duration::minutes(10),
    ));
    response
}

fn refused(e: LogoutError) -> HttpResponse {
    match e {
        LogoutError::Refused(why) => message_page(StatusCode::BAD_REQUEST, PROBLEM, why),
        LogoutError::Db(e) => {
            tracing::error!(error = %e, "logout failed");
            message_page(
                StatusCode::SERVICE_UNAVAILABLE,
                PROBLEM,
                "Signing out is unavailable just now. Please try again shortly.",
            )
        }
    }
}
