//! Self-registration, when enabled: POST /users (JSON) and the "Create account" page at
//! /account/register (a form, CSRF-protected by a double-submit cookie like the login page).
//! Both are thin: the one use case is `accounts::register`.
//!
//! With mail on, a new and a taken address get the same answer (202 / the same page): "check
//! your mail". Without mail nobody could be told, so a taken address is said (409).

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use serde::Deserialize;
use serde_json::json;

use super::cookies::REGISTER_CSRF;
use super::error::ApiError;
use super::pages::{self, CSRF_FIELD, message_page, with_retry_after};
use super::state::AppState;
use crate::accounts::{self, AccountError, Registered, UserView};
use crate::grants::Params;
use crate::services::Services;

const CHECK_YOUR_MAIL: &str = "check your mail: a message to this address says what to do next";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    email: String,
    password: String,
    name: Option<String>,
}

#[derive(serde::Serialize)]
struct Created {
    #[serde(flatten)]
    user: UserView,
    verification_email: &'static str,
}

fn client_ip(req: &HttpRequest, svc: &Services) -> Option<String> {
    super::state::client_ip(req, &svc.settings.server.trusted_proxies)
}

/// POST /users.
pub async fn register(
    req: HttpRequest,
    body: web::Json<Registration>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let svc = &state.services;
    if !svc.settings.accounts.self_registration {
        return Err(ApiError::Forbidden("self-registration is disabled".into()));
    }
    let Registration {
        email,
        password,
        name,
    } = body.into_inner();
    let registered =
        accounts::register(svc, &email, password, name.as_deref(), client_ip(&req, svc)).await?;
    if svc.mailer.is_some() {
        return Ok(HttpResponse::Accepted()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(json!({
                "status": "accepted",
                "verification_email": "queued",
                "message": CHECK_YOUR_MAIL,
            })));
    }
    match registered {
        // Tells the client not to expect a mail, so a missing SMTP setup is said, not hidden.
        Registered::Created(user) => Ok(HttpResponse::Created().json(Created {
            user: UserView::from(user.as_ref()),
            verification_email: "not_configured",
        })),
        Registered::Taken => Err(AccountError::DuplicateEmail.into()),
    }
}

/// GET /account/register: the form.
pub async fn show_page(state: web::Data<AppState>) -> HttpResponse {
    let svc = &state.services;
    if !svc.settings.accounts.self_registration {
        return ApiError::NotFound.error_response();
    }
    let csrf = match crate::crypto::random_token(32) {
        Ok(token) => token,
        Err(_) => return unavailable(),
    };
    let mut response = form(svc, StatusCode::OK, &csrf, &Typed::default(), None);
    let _ = response.add_cookie(&REGISTER_CSRF.build(
        svc,
        &csrf,
        actix_web::cookie::time::Duration::minutes(30),
    ));
    response
}

/// What the person typed, shown again with an error (never the password).
#[derive(Default)]
struct Typed<'a> {
    email: &'a str,
    name: &'a str,
}

/// POST /account/register: the form sent.
pub async fn submit_page(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    let svc = &state.services;
    if !svc.settings.accounts.self_registration {
        return ApiError::NotFound.error_response();
    }
    let params = match Params::from_form(&body) {
        Ok(params) => params,
        Err(e) => return message_page(StatusCode::BAD_REQUEST, "Create account", &e.to_string()),
    };
    let cookie = REGISTER_CSRF.read(&req, svc);
    if !super::request::form_is_ours(&req, svc, cookie.as_deref(), params.get(CSRF_FIELD)) {
        return message_page(
            StatusCode::FORBIDDEN,
            "Create account",
            "This form has expired or did not come from this site. Open the page again and retry.",
        );
    }
    let csrf = params.get(CSRF_FIELD).unwrap_or_default();
    let typed = Typed {
        email: params.get("email").unwrap_or_default(),
        name: params.get("name").unwrap_or_default(),
    };
    let password = params.get("password").unwrap_or_default().to_string();
    let name = Some(typed.name).filter(|n| !n.trim().is_empty());
    let again = |status, message: &str| form(svc, status, csrf, &typed, Some(message));
    match accounts::register(svc, typed.email, password, name, client_ip(&req, svc)).await {
        Ok(_) if svc.mailer.is_some() => message_page(
            StatusCode::OK,
            "Check your mail",
            "We have sent a message to the address you gave with what to do next. \
             You can close this page.",
        ),
        Ok(Registered::Created(user)) => message_page(
            StatusCode::OK,
            "Account created",
            &format!("Your account {} is ready: you can sign in now.", user.email),
        ),
        Ok(Registered::Taken) | Err(AccountError::DuplicateEmail) => again(
            StatusCode::CONFLICT,
            "An account with this address exists already. Sign in with it instead.",
        ),
        Err(e @ (AccountError::InvalidEmail(_) | AccountError::InvalidName)) => again(
            StatusCode::UNPROCESSABLE_ENTITY,
            &capitalised(&e.to_string()),
        ),
        Err(AccountError::WeakPassword(why)) => again(
            StatusCode::UNPROCESSABLE_ENTITY,
            &format!("The password {why}."),
        ),
        Err(AccountError::Throttled(wait)) => with_retry_after(
            again(
                StatusCode::TOO_MANY_REQUESTS,
                &format!(
                    "Too many accounts were created from your network. Try again in {wait} seconds."
                ),
            ),
            wait,
        ),
        Err(e) => {
            tracing::error!(error = %e, "registration failed");
            unavailable()
        }
    }
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn unavailable() -> HttpResponse {
    message_page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Create account",
        "Creating an account is unavailable just now. Please try again shortly.",
    )
}

fn form(
    svc: &Services,
    status: StatusCode,
    csrf: &str,
    typed: &Typed<'_>,
    error: Option<&str>,
) -> HttpResponse {
    let page = pages::Register {
        csrf,
        email: typed.email,
        name: typed.name,
        min_password_length: svc.settings.passwords.min_length,
        error,
    };
    pages::render(status, &page)
}
