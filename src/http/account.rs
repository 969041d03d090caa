//! /account/…: self-service for a user's own account. Email verification and password reset
//! are reached from links in mails (an HTML page for a browser, JSON for an API call); only a
//! POST uses a link's token, never the GET a mail scanner makes. Password change and account
//! deletion need the user's access token.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::bearer::UserToken;
use super::cookies::VERIFY_EMAIL_CSRF;
use super::error::ApiError;
use super::pages::{self, CSRF_FIELD, message_page};
use super::paths;
use super::state::AppState;
use crate::accounts::UserView;
use crate::accounts::self_service::{self, SelfServiceError};
use crate::db::DbError;
use crate::mail::templates::MailKind;
use crate::usecases;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource(paths::VERIFY_EMAIL)
            .route(web::get().to(verify_link))
            .route(web::post().to(verify_submit)),
    )
    .service(web::resource(paths::VERIFY_EMAIL_RESEND).route(web::post().to(resend_verification)))
    .service(
        web::resource(paths::PASSWORD_RESET)
            .route(web::get().to(reset_page))
            .route(web::post().to(request_reset)),
    )
    .service(web::resource(paths::PASSWORD_RESET_CONFIRM).route(web::post().to(confirm_reset)))
    .service(web::resource(paths::PASSWORD).route(web::post().to(change_password)))
    .service(web::resource(paths::ACCOUNT).route(web::delete().to(delete_account)))
    .service(web::resource(paths::ACCOUNT_SESSIONS).route(web::get().to(list_sessions)))
    .service(web::resource(paths::ACCOUNT_SESSION).route(web::delete().to(end_session)));
}

#[derive(Deserialize)]
pub struct TokenQuery {
    token: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenBody {
    token: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailBody {
    email: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResetConfirmation {
    token: String,
    new_password: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    current_password: String,
    new_password: String,
    /// The caller's own refresh token: its session stays signed in.
    keep_refresh_token: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Deletion {
    password: Option<String>,
}

/// A browser asking (its Accept prefers HTML), as opposed to an API client.
fn wants_html(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"))
}

fn client_ip(req: &HttpRequest, state: &AppState) -> Option<String> {
    super::state::client_ip(req, &state.services.settings.server.trusted_proxies)
}

/// GET /account/verify-email?token=…: the link in the verification mail opens a page whose
/// button confirms. Nothing is used up by the GET (mail scanners follow links); an API client
/// is told whether the token is live and POSTs it.
async fn verify_link(
    req: HttpRequest,
    query: web::Query<TokenQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let svc = &state.services;
    let token = query.into_inner().token.unwrap_or_default();
    let result = self_service::check_verify_token(svc, &token).await;
    if !wants_html(&req) {
        result?;
        return Ok(HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(json!({ "valid": true })));
    }
    let email = match result {
        Ok(email) => email,
        Err(e) => return unusable_link_page(e),
    };
    let csrf = crate::crypto::random_token(32)
        .map_err(|e| ApiError::from(DbError::Task(e.to_string())))?;
    let page = pages::VerifyEmail {
        email: &email,
        token: &token,
        csrf: &csrf,
    };
    let mut response = pages::render(StatusCode::OK, &page);
    let _ = response.add_cookie(&VERIFY_EMAIL_CSRF.build(
        svc,
        &csrf,
        actix_web::cookie::time::Duration::minutes(10),
    ));
    Ok(response)
}

/// POST /account/verify-email: the verification page's form (CSRF-checked, answered with a
/// page), or {"token"} as JSON from an API client (a cross-site form cannot send JSON).
async fn verify_submit(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let svc = &state.services;
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type.starts_with("application/json") {
        let body: TokenBody = serde_json::from_slice(&body)
            .map_err(|e| ApiError::InvalidRequest(format!("the JSON body is invalid: {e}")))?;
        let user = self_service::verify_email(svc, &body.token).await?;
        return Ok(verified_json(&user));
    }
    if !content_type.starts_with("application/x-www-form-urlencoded") {
        return Err(ApiError::UnsupportedMediaType(
            "the body must be application/json or a form".into(),
        ));
    }
    let (mut token, mut field) = (String::new(), None);
    for (key, value) in form_urlencoded::parse(&body) {
        match key.as_ref() {
            "token" => token = value.into_owned(),
            CSRF_FIELD => field = Some(value.into_owned()),
            _ => {}
        }
    }
    let cookie = VERIFY_EMAIL_CSRF.read(&req, svc);
    if !super::request::form_is_ours(&req, svc, cookie.as_deref(), field.as_deref()) {
        return Ok(message_page(
            StatusCode::FORBIDDEN,
            "This link cannot be used",
            "This form has expired or did not come from this site. Open the link in the mail again.",
        ));
    }
    Ok(match self_service::verify_email(svc, &token).await {
        Ok(user) => {
            let mut response = message_page(
                StatusCode::OK,
                "Email address confirmed",
                &format!(
                    "Thank you: {} is confirmed as your email address. You can close this page.",
                    user.email
                ),
            );
            let _ = response.add_cookie(&VERIFY_EMAIL_CSRF.removal(svc));
            response
        }
        Err(e) => unusable_link_page(e)?,
    })
}

fn verified_json(user: &crate::domain::User) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(UserView::from(user))
}

fn accepted(what: &str) -> HttpResponse {
    HttpResponse::Accepted()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(json!({
            "status": "accepted",
            "message": format!("if an account has this address, {what} is on its way"),
        }))
}

/// POST /account/verify-email/resend {"email"}: another verification mail, if the address
/// belongs to an account that is not verified yet. Always 202.
async fn resend_verification(
    req: HttpRequest,
    body: web::Json<EmailBody>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let ip = client_ip(&req, &state);
    self_service::request_mail(&state.services, MailKind::VerifyEmail, &body.email, ip).await?;
    Ok(accepted("a verification mail"))
}

/// POST /account/password-reset {"email"}: a reset mail, if the address has an account.
/// Always 202, whether or not it has.
async fn request_reset(
    req: HttpRequest,
    body: web::Json<EmailBody>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let ip = client_ip(&req, &state);
    self_service::request_mail(&state.services, MailKind::ResetPassword, &body.email, ip).await?;
    Ok(accepted("a password reset mail"))
}

/// GET /account/password-reset?token=…: the link in the reset mail opens a form for the new
/// password. Nothing is used up until the form is sent.
async fn reset_page(
    req: HttpRequest,
    query: web::Query<TokenQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let token = query.into_inner().token.unwrap_or_default();
    let result = self_service::check_reset_token(&state.services, &token).await;
    if !wants_html(&req) {
        result?;
        return Ok(HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(json!({ "valid": true })));
    }
    Ok(match result {
        Ok(email) => reset_form(StatusCode::OK, &token, &email, None),
        Err(e) => unusable_link_page(e)?,
    })
}

/// POST /account/password-reset/confirm: {"token", "new_password"} as JSON, or the reset
/// page's form (answered with a page).
async fn confirm_reset(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let from_form = content_type.starts_with("application/x-www-form-urlencoded");
    let confirmation: ResetConfirmation = if from_form {
        let mut token = None;
        let mut new_password = None;
        for (key, value) in form_urlencoded::parse(&body) {
            match key.as_ref() {
                "token" => token = Some(value.into_owned()),
                "new_password" => new_password = Some(value.into_owned()),
                _ => {}
            }
        }
        ResetConfirmation {
            token: token.unwrap_or_default(),
            new_password: new_password.unwrap_or_default(),
        }
    } else if content_type.starts_with("application/json") {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::InvalidRequest(format!("the JSON body is invalid: {e}")))?
    } else {
        return Err(ApiError::UnsupportedMediaType(
            "the body must be application/json or a form".into(),
        ));
    };
    let ip = client_ip(&req, &state);
    let token = confirmation.token.clone();
    let result = self_service::reset_password(
        &state.services,
        &confirmation.token,
        confirmation.new_password,
        ip,
    )
    .await;
    if !from_form {
        let revoked = result?;
        return Ok(HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(json!({ "password_reset": true, "revoked_sessions": revoked })));
    }
    Ok(match result {
        Ok(_) => message_page(
            StatusCode::OK,
            "Password changed",
            "Your new password is set, and every session signed in with the old one has ended. \
             You can sign in again now.",
        ),
        // A password the policy refuses: the form again, with the reason.
        Err(SelfServiceError::Account(crate::accounts::AccountError::WeakPassword(why))) => {
            let email = self_service::check_reset_token(&state.services, &token)
                .await
                .unwrap_or_default();
            reset_form(
                StatusCode::UNPROCESSABLE_ENTITY,
                &token,
                &email,
                Some(&format!("The password {why}.")),
            )
        }
        Err(e) => unusable_link_page(e)?,
    })
}

/// Ends the access token presented with a request (its session is over).
async fn revoke_presented(state: &AppState, caller: &UserToken) -> Result<(), ApiError> {
    let token = caller.presented();
    state
        .services
        .db
        .run(move |conn| usecases::sessions::revoke_access_token(conn, &token))
        .await?;
    Ok(())
}

/// POST /account/password {"current_password", "new_password", "keep_refresh_token"?}, with
/// an `account` token.
async fn change_password(
    caller: UserToken,
    req: HttpRequest,
    body: web::Json<PasswordChange>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let PasswordChange {
        current_password,
        new_password,
        keep_refresh_token,
    } = body.into_inner();
    let ip = client_ip(&req, &state);
    let changed = self_service::change_password(
        &state.services,
        &caller.user.id,
        current_password,
        new_password,
        keep_refresh_token,
        ip,
    )
    .await?;
    if !changed.kept_session {
        revoke_presented(&state, &caller).await?;
    }
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(changed))
}

/// DELETE /account {"password"}: deletes the caller's own account. The password is needed
/// when the account has one (a stolen access token alone must not delete it); without one, a
/// recent sign-in (`accounts.reauth_max_age_secs`).
async fn delete_account(
    caller: UserToken,
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let deletion: Deletion = if body.iter().all(u8::is_ascii_whitespace) {
        Deletion::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::InvalidRequest(format!("the JSON body is invalid: {e}")))?
    };
    let ip = client_ip(&req, &state);
    self_service::delete_own_account(
        &state.services,
        &caller.user.id,
        caller.claims.auth_time,
        deletion.password,
        ip,
    )
    .await?;
    revoke_presented(&state, &caller).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// GET /account/sessions: the caller's browser sessions (the one their token was issued in
/// marked `current`) and refresh token families.
async fn list_sessions(
    caller: UserToken,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let svc = &state.services;
    let (user_id, sid) = (caller.user.id.clone(), caller.claims.sid.clone());
    let now = svc.clock.now();
    let list = svc
        .db
        .run(move |conn| usecases::sessions::list(conn, &user_id, sid.as_deref(), now))
        .await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(list))
}

/// DELETE /account/sessions/{id}: ends one of the caller's browser sessions (with back-channel
/// logout) or refresh token families; anyone else's is 404.
async fn end_session(
    caller: UserToken,
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let svc = &state.services;
    let (actor, presented, user_id) = (caller.actor(), caller.presented(), caller.user.id);
    let id = path.into_inner();
    let ip = client_ip(&req, &state);
    let now = svc.clock.now();
    svc.db
        .run(move |conn| {
            usecases::sessions::end(
                conn,
                &actor,
                Some(&user_id),
                &id,
                Some(&presented),
                ip.as_deref(),
                now,
            )
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// An error as a page for a browser; errors that are not the user's (5xx) stay JSON errors.
fn unusable_link_page(e: SelfServiceError) -> Result<HttpResponse, ApiError> {
    let error = ApiError::from(e);
    let status = actix_web::ResponseError::status_code(&error);
    if status.is_server_error() {
        return Err(error);
    }
    Ok(message_page(
        status,
        "This link cannot be used",
        &error.to_string(),
    ))
}

fn reset_form(status: StatusCode, token: &str, email: &str, error: Option<&str>) -> HttpResponse {
    pages::render(
        status,
        &pages::ResetPassword {
            email,
            token,
            error,
        },
    )
}
