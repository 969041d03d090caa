//! GET/POST /account/forgot-password: the page the login page's "Forgot password?" link opens.
//! A person enters an address and gets a reset mail, through the same use case, answer and
//! throttle as `POST /account/password-reset`; the form is CSRF-protected like the login form.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};

use super::cookies::FORGOT_PASSWORD_CSRF;
use super::pages::{self, CSRF_FIELD, message_page, with_retry_after};
use super::request::form_is_ours;
use super::state::AppState;
use crate::accounts::AccountError;
use crate::accounts::self_service::{self, SelfServiceError};
use crate::mail::templates::MailKind;
use crate::services::Services;

const TITLE: &str = "Reset your password";

pub async fn show(state: web::Data<AppState>) -> HttpResponse {
    let svc = &state.services;
    if svc.mailer.is_none() {
        return unavailable();
    }
    let Ok(csrf) = crate::crypto::random_token(32) else {
        return message_page(StatusCode::SERVICE_UNAVAILABLE, TITLE, "Please try again.");
    };
    let mut response = form_page(StatusCode::OK, &csrf, "", None);
    let _ = response.add_cookie(&FORGOT_PASSWORD_CSRF.build(
        svc,
        &csrf,
        actix_web::cookie::time::Duration::minutes(30),
    ));
    response
}

pub async fn submit(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    let svc = &state.services;
    let (mut csrf, mut email) = (None, None);
    for (key, value) in form_urlencoded::parse(&body) {
        match key.as_ref() {
            CSRF_FIELD => csrf = Some(value.into_owned()),
            "email" => email = Some(value.into_owned()),
            _ => {}
        }
    }
    let cookie = FORGOT_PASSWORD_CSRF.read(&req, svc);
    if !form_is_ours(&req, svc, cookie.as_deref(), csrf.as_deref()) {
        return message_page(
            StatusCode::FORBIDDEN,
            TITLE,
            "This form has expired or did not come from this site. Open the page again.",
        );
    }
    let csrf = csrf.unwrap_or_default();
    let email = email.unwrap_or_default();
    let ip = super::state::client_ip(&req, &svc.settings.server.trusted_proxies);
    match self_service::request_mail(svc, MailKind::ResetPassword, &email, ip).await {
        Ok(()) => sent(svc),
        Err(SelfServiceError::Account(AccountError::InvalidEmail(_))) => form_page(
            StatusCode::BAD_REQUEST,
            &csrf,
            &email,
            Some("Enter the email address of your account."),
        ),
        Err(SelfServiceError::Throttled(wait)) => with_retry_after(
            form_page(
                StatusCode::TOO_MANY_REQUESTS,
                &csrf,
                &email,
                Some(&format!(
                    "Too many requests for this address or from this network. Try again in {wait} seconds."
                )),
            ),
            wait,
        ),
        Err(SelfServiceError::MailNotConfigured) => unavailable(),
        Err(e) => {
            tracing::error!(error = %e, "password reset request failed");
            message_page(
                StatusCode::SERVICE_UNAVAILABLE,
                TITLE,
                "This is unavailable just now. Please try again shortly.",
            )
        }
    }
}

/// The same answer whether or not an account has the address.
fn sent(svc: &Services) -> HttpResponse {
    let minutes = (svc.settings.accounts.reset_ttl_secs / 60).max(1);
    message_page(
        StatusCode::OK,
        "Check your mail",
        &format!(
            "If an account has this address, we have sent it a link to choose a new password. \
             The link works for {minutes} minutes."
        ),
    )
}

fn unavailable() -> HttpResponse {
    message_page(
        StatusCode::SERVICE_UNAVAILABLE,
        TITLE,
        "Password reset by mail is not available on this server. Ask its administrator to set a new password for you.",
    )
}

fn form_page(status: StatusCode, csrf: &str, email: &str, error: Option<&str>) -> HttpResponse {
    pages::render(status, &pages::ForgotPassword { csrf, email, error })
}
