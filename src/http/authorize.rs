//! GET/POST /authorize: the authorization endpoint and its login page (email + password,
//! CSRF-protected by a double-submit cookie). The checks and the code are `authorize`'s.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};

use super::cookies::LOGIN_CSRF;
use super::pages::{self, CSRF_FIELD, error_page, with_retry_after};
use super::request::{CARRIED, carried_query, query_params, refusal};
use super::state::AppState;
use crate::accounts::login::{self, Attempt, LoginError};
use crate::authorize::{self, AuthorizationRequest, AuthorizeError, Next};
use crate::domain::{Amr, AuthMethod};
use crate::grants::Params;
use crate::services::Services;

pub async fn show(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let svc = &state.services;
    let params = match query_params(&req) {
        Ok(params) => params,
        Err(page) => return *page,
    };
    // The checks and the session's answer in one database job. `idp=<name>` skips the login
    // page and goes straight to that upstream provider; never under `prompt=none`, which may
    // show no page, an upstream's neither: the session answers.
    let cookie = super::session::cookie(&req, svc);
    let upstream = params.get("idp").is_some();
    let (request, next) = match authorize::interaction::start(svc, &params, cookie, upstream).await
    {
        Ok(started) => started,
        Err(e) => return refusal(e),
    };
    if let Some(idp) = params.get("idp").filter(|_| !request.prompt.none) {
        return match svc.federation.get(idp) {
            Some(provider) => {
                super::federation::start(&req, svc, provider, Some(carried_query(&params))).await
            }
            None => refusal(AuthorizeError::Redirect {
                redirect_uri: request.redirect_uri,
                error: "invalid_request",
                description: "idp names no sign-in provider configured here".into(),
                state: request.state,
            }),
        };
    }
    if !matches!(next, Next::SignIn) {
        return super::session::respond_to(&req, svc, &request, &params, next);
    }
    let csrf = match crate::crypto::random_token(32) {
        Ok(token) => token,
        Err(_) => return error_page(StatusCode::INTERNAL_SERVER_ERROR, "Please try again."),
    };
    let form = LoginForm {
        request: &request,
        params: &params,
        csrf: &csrf,
        email: request.login_hint.as_deref(),
    };
    let mut response = login_page(svc, StatusCode::OK, &form, None);
    let _ = response.add_cookie(&LOGIN_CSRF.build(
        svc,
        &csrf,
        actix_web::cookie::time::Duration::minutes(10),
    ));
    response
}

pub async fn submit(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    let svc = &state.services;
    let (params, request) = match super::request::posted_authorization(&req, svc, &body).await {
        Ok(posted) => posted,
        Err(page) => return page,
    };
    let csrf = params.get(CSRF_FIELD).unwrap_or_default().to_string();
    let form = LoginForm {
        request: &request,
        params: &params,
        csrf: &csrf,
        email: params.get("email"),
    };
    let (Some(email), Some(password)) = (params.get("email"), params.get("password")) else {
        return login_page(
            svc,
            StatusCode::BAD_REQUEST,
            &form,
            Some("Enter your email and password."),
        );
    };
    let ip = super::state::client_ip(&req, &svc.settings.server.trusted_proxies);
    let attempt = Attempt {
        client_id: &request.client.id,
        ip: ip.as_deref(),
        via: "login_page",
    };
    let device = super::cookies::DEVICE.read(&req, svc);
    match login::verify_credentials_in_browser(svc, email, password, attempt, device.as_deref())
        .await
    {
        Ok((user, device)) => {
            let persistent = params.get("remember").is_some();
            let amr = Amr::of(AuthMethod::Password);
            let mut response =
                super::session::signed_in(&req, svc, &request, &params, user, amr, persistent)
                    .await;
            if let Some(device) = device.filter(|_| response.status() == StatusCode::SEE_OTHER) {
                let _ = response.add_cookie(&super::cookies::DEVICE.build(
                    svc,
                    &device,
                    actix_web::cookie::time::Duration::seconds(
                        svc.settings.throttle.known_sign_in_ttl_secs,
                    ),
                ));
            }
            response
        }
        Err(LoginError::BadCredentials) => login_page(
            svc,
            StatusCode::UNAUTHORIZED,
            &form,
            Some("The email or password is not right."),
        ),
        Err(LoginError::Throttled(wait)) => with_retry_after(
            login_page(
                svc,
                StatusCode::TOO_MANY_REQUESTS,
                &form,
                Some(&format!(
                    "Too many failed attempts. Try again in {wait} seconds."
                )),
            ),
            wait,
        ),
        Err(e) => {
            tracing::error!(error = %e, "sign-in failed");
            error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Sign-in is unavailable just now. Please try again shortly.",
            )
        }
    }
}

/// The login page again for `request`, with `error` (after a failed passkey sign-in): the
/// form's own CSRF token stays.
pub(super) fn login_page_for(
    svc: &Services,
    status: StatusCode,
    request: &AuthorizationRequest,
    params: &Params,
    error: Option<&str>,
) -> HttpResponse {
    let csrf = params.get(CSRF_FIELD).unwrap_or_default().to_string();
    let form = LoginForm {
        request,
        params,
        csrf: &csrf,
        email: params.get("email"),
    };
    login_page(svc, status, &form, error)
}

/// What the login form shows and carries.
struct LoginForm<'a> {
    request: &'a AuthorizationRequest,
    params: &'a Params,
    csrf: &'a str,
    /// The address typed before, kept after a failed attempt.
    email: Option<&'a str>,
}

fn login_page(
    svc: &Services,
    status: StatusCode,
    form: &LoginForm<'_>,
    error: Option<&str>,
) -> HttpResponse {
    let LoginForm {
        request,
        params,
        csrf,
        email,
    } = form;
    let carried_query = carried_query(params);
    let page = pages::Login {
        client_name: &request.client.name,
        carried: CARRIED
            .iter()
            .filter_map(|name| params.get(name).map(|value| (*name, value)))
            .collect(),
        carried_query: &carried_query,
        csrf,
        email: *email,
        error,
        forgot_password: svc.mailer.is_some(),
        register: svc.settings.accounts.self_registration,
        passkeys: svc.passkeys.is_some(),
        upstreams: svc
            .federation
            .providers()
            .iter()
            .map(|p| pages::Upstream {
                name: &p.name,
                display_name: &p.display_name,
            })
            .collect(),
    };
    pages::render_with_script(status, Some(&request.redirect_uri), &page)
}
