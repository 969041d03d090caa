//! Passkeys in the browser: the `/account/passkeys` page (list, add, rename, remove; the SSO
//! session's cookie says who, a double-submit CSRF cookie guards every post) and "Sign in with
//! a passkey" on the login page, which then goes on exactly like a password sign-in. The
//! ceremonies' options come as JSON to `/assets/passkey.js` (the only script, served from
//! here); the browser's answer comes back in a plain form post.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::cookies::PASSKEYS_CSRF;
use super::pages::{self, CSRF_FIELD, error_page, message_page, with_retry_after};
use super::request::{form_is_ours, see_other};
use super::state::AppState;
use crate::domain::User;
use crate::grants::Params;
use crate::mfa::passkey::{self, Passkeys, Refused, Removal, SignIn};
use crate::services::Services;

/// The answer to a ceremony asked for from a login or second-step page whose form expired.
const PAGE_EXPIRED: &str =
    "This sign-in page has expired. Go back to the application and start again.";

pub const SCRIPT: &str = include_str!("../../assets/passkey.js");

pub fn routes(cfg: &mut web::ServiceConfig) {
    use super::paths;
    cfg.service(web::resource(paths::PASSKEY_SCRIPT).route(web::get().to(script)))
        .service(web::resource(paths::ACCOUNT_PASSKEYS).route(web::get().to(page)))
        .service(
            web::resource(paths::ACCOUNT_PASSKEYS_OPTIONS)
                .route(web::post().to(registration_options)),
        )
        .service(web::resource(paths::ACCOUNT_PASSKEYS_ADD).route(web::post().to(add)))
        .service(web::resource(paths::ACCOUNT_PASSKEYS_RENAME).route(web::post().to(rename)))
        .service(web::resource(paths::ACCOUNT_PASSKEYS_REMOVE).route(web::post().to(remove)))
        .service(
            web::resource(paths::AUTHORIZE_PASSKEY_OPTIONS).route(web::post().to(sign_in_options)),
        )
        .service(web::resource(paths::AUTHORIZE_PASSKEY).route(web::post().to(sign_in)))
        .service(
            web::resource(paths::SECOND_FACTOR_PASSKEY_OPTIONS)
                .route(web::post().to(second_factor_options)),
        );
}

/// GET /assets/passkey.js
async fn script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .body(SCRIPT)
}

/// A JSON refusal, shaped like the API's errors (RFC 6749 §5.2 style).
fn json_error(status: StatusCode, error: &str, description: &str) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(json!({ "error": error, "error_description": description }))
}

fn unavailable() -> HttpResponse {
    json_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "temporarily_unavailable",
        "Passkeys are unavailable just now. Please try again shortly.",
    )
}

fn relying_party(svc: &Services) -> Option<std::sync::Arc<Passkeys>> {
    svc.passkeys.clone()
}

fn form(body: &[u8]) -> Option<Params> {
    Params::from_form(body).ok()
}

/// The person whose SSO session this browser holds.
async fn signed_in_user(req: &HttpRequest, svc: &Services) -> Result<Option<User>, HttpResponse> {
    let Some(secret) = super::session::cookie(req, svc) else {
        return Ok(None);
    };
    let now = svc.clock.now();
    svc.db
        .run(move |conn| crate::sso::find(conn, &secret, now))
        .await
        .map(|found| found.map(|(_, user)| user))
        .map_err(|e| {
            tracing::error!(error = %e, "session lookup failed");
            error_page(StatusCode::SERVICE_UNAVAILABLE, "Please try again shortly.")
        })
}

fn not_signed_in() -> HttpResponse {
    message_page(
        StatusCode::UNAUTHORIZED,
        "Sign in first",
        "Sign in to an application that uses this account, then come back to manage your passkeys.",
    )
}

/// A posted account form: its fields and the person, once CSRF, Origin and session pass.
async fn posted_account_form(
    req: &HttpRequest,
    svc: &Services,
    body: &[u8],
) -> Result<(Params, User), HttpResponse> {
    let Some(params) = form(body) else {
        return Err(error_page(
            StatusCode::BAD_REQUEST,
            "That form was malformed.",
        ));
    };
    let cookie = PASSKEYS_CSRF.read(req, svc);
    if !form_is_ours(req, svc, cookie.as_deref(), params.get(CSRF_FIELD)) {
        return Err(message_page(
            StatusCode::FORBIDDEN,
            "Form expired",
            "This form has expired or did not come from this site. Open your passkeys page again.",
        ));
    }
    match signed_in_user(req, svc).await? {
        Some(user) => Ok((params, user)),
        None => Err(not_signed_in()),
    }
}

/// GET /account/passkeys
async fn page(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let svc = &state.services;
    let user = match signed_in_user(&req, svc).await {
        Ok(Some(user)) => user,
        Ok(None) => return not_signed_in(),
        Err(page) => return page,
    };
    let notice = match req.query_string() {
        "added" => Some("Your passkey was added."),
        "renamed" => Some("Your passkey was renamed."),
        "removed" => Some("Your passkey was removed."),
        _ => None,
    };
    account_page(svc, &user, StatusCode::OK, notice, None, None).await
}

async fn account_page(
    svc: &Services,
    user: &User,
    status: StatusCode,
    notice: Option<&str>,
    error: Option<&str>,
    confirm_remove: Option<&str>,
) -> HttpResponse {
    let user_id = user.id.to_string();
    let rows = match svc.db.run(move |conn| passkey::list(conn, &user_id)).await {
        Ok(rows) => rows,
        Err(e) => {
            tracing::error!(error = %e, "passkey list failed");
            return error_page(StatusCode::SERVICE_UNAVAILABLE, "Please try again shortly.");
        }
    };
    let Ok(csrf) = crate::crypto::random_token(32) else {
        return error_page(StatusCode::INTERNAL_SERVER_ERROR, "Please try again.");
    };
    let account = user.label();
    let page = pages::Passkeys {
        account,
        csrf: &csrf,
        available: svc.passkeys.is_some(),
        notice,
        error,
        confirm_remove,
        passkeys: rows
            .iter()
            .map(|row| pages::PasskeyLine {
                id: &row.id,
                name: &row.name,
                kind: if row.backup_eligible != 0 {
                    "synced"
                } else {
                    "device-bound"
                },
                created: date(row.created_at),
                last_used: row.last_used_at.map(date),
            })
            .collect(),
    };
    let mut response = pages::render_with_script(status, None, &page);
    let _ = response.add_cookie(&PASSKEYS_CSRF.build(
        svc,
        &csrf,
        actix_web::cookie::time::Duration::minutes(30),
    ));
    response
}

fn date(at: i64) -> String {
    passkey::display_date(at)
}

/// POST /account/passkeys/options: starts a registration; JSON `{ceremony, publicKey}`.
async fn registration_options(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    let svc = &state.services;
    let Some(rp) = relying_party(svc) else {
        return unavailable();
    };
    let params = form(&body).unwrap_or_default();
    let cookie = PASSKEYS_CSRF.read(&req, svc);
    if !form_is_ours(&req, svc, cookie.as_deref(), params.get(CSRF_FIELD)) {
        return json_error(
            StatusCode::FORBIDDEN,
            "invalid_request",
            "This page has expired. Reload it and try again.",
        );
    }
    let user = match signed_in_user(&req, svc).await {
        Ok(Some(user)) => user,
        Ok(None) => {
            return json_error(
                StatusCode::UNAUTHORIZED,
                "login_required",
                "Your session has ended. Sign in again.",
            );
        }
        Err(_) => return unavailable(),
    };
    let now = svc.clock.now();
    match svc
        .db
        .run(move |conn| passkey::start_registration(conn, &rp, &user, now))
        .await
    {
        Ok(started) => ceremony_json(started),
        Err(e) => {
            tracing::error!(error = %e, "passkey registration did not start");
            unavailable()
        }
    }
}

fn ceremony_json(started: passkey::Started) -> HttpResponse {
    let mut body = started.options;
    if let Some(object) = body.as_object_mut() {
        object.insert("ceremony".into(), started.secret.into());
    }
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(body)
}

/// POST /account/passkeys/add: the browser's new credential for the ceremony it names.
async fn add(req: HttpRequest, body: web::Bytes, state: web::Data<AppState>) -> HttpResponse {
    let svc = &state.services;
    let (params, user) = match posted_account_form(&req, svc, &body).await {
        Ok(posted) => posted,
        Err(page) => return page,
    };
    let Some(rp) = relying_party(svc) else {
        return error_page(StatusCode::SERVICE_UNAVAILABLE, "Passkeys are off here.");
    };
    let answer = params
        .get("credential")
        .and_then(|c| serde_json::from_str(c).ok());
    let Some(answer) = answer else {
        return account_page(
            svc,
            &user,
            StatusCode::BAD_REQUEST,
            None,
            Some("Your browser sent no passkey. Try again (this needs JavaScript)."),
            None,
        )
        .await;
    };
    let secret = params.get("ceremony").unwrap_or_default().to_string();
    let name = params.get("name").unwrap_or_default().to_string();
    let user_id = user.id.to_string();
    let now = svc.clock.now();
    let result = svc
        .db
        .run(move |conn| {
            passkey::finish_registration(conn, &rp, &user_id, &secret, &name, &answer, now)
        })
        .await;
    match result {
        Ok(Ok(_)) => see_other(&format!("{}?added", super::paths::ACCOUNT_PASSKEYS)),
        Ok(Err(refused)) => {
            let message = match refused {
                Refused::UnknownCredential => "This passkey is already registered.",
                other => other.message(),
            };
            account_page(
                svc,
                &user,
                StatusCode::BAD_REQUEST,
                None,
                Some(message),
                None,
            )
            .await
        }
        Err(e) => {
            tracing::error!(error = %e, "passkey registration failed");
            error_page(StatusCode::SERVICE_UNAVAILABLE, "Please try again shortly.")
        }
    }
}

/// POST /account/passkeys/rename
async fn rename(req: HttpRequest, body: web::Bytes, state: web::Data<AppState>) -> HttpResponse {
    let svc = &state.services;
    let (params, user) = match posted_account_form(&req, svc, &body).await {
        Ok(posted) => posted,
        Err(page) => return page,
    };
    let id = params.get("id").unwrap_or_default().to_string();
    let name = params.get("name").unwrap_or_default().to_string();
    let user_id = user.id.to_string();
    let now = svc.clock.now();
    match svc
        .db
        .run(move |conn| passkey::rename(conn, &user_id, &id, &name, now))
        .await
    {
        Ok(true) => see_other(&format!("{}?renamed", super::paths::ACCOUNT_PASSKEYS)),
        Ok(false) => {
            let message = "You have no such passkey.";
            account_page(svc, &user, StatusCode::NOT_FOUND, None, Some(message), None).await
        }
        Err(e) => {
            tracing::error!(error = %e, "passkey rename failed");
            error_page(StatusCode::SERVICE_UNAVAILABLE, "Please try again shortly.")
        }
    }
}

/// POST /account/passkeys/remove; the last second factor only with `confirm=yes`.
async fn remove(req: HttpRequest, body: web::Bytes, state: web::Data<AppState>) -> HttpResponse {
    let svc = &state.services;
    let (params, user) = match posted_account_form(&req, svc, &body).await {
        Ok(posted) => posted,
        Err(page) => return page,
    };
    let id = params.get("id").unwrap_or_default().to_string();
    let confirmed = params.get("confirm") == Some("yes");
    let (user_id, id_inner) = (user.id.to_string(), id.clone());
    let now = svc.clock.now();
    match svc
        .db
        .run(move |conn| passkey::remove(conn, &user_id, &id_inner, confirmed, now))
        .await
    {
        Ok(Removal::Removed) => see_other(&format!("{}?removed", super::paths::ACCOUNT_PASSKEYS)),
        Ok(Removal::NotFound) => {
            let message = "You have no such passkey.";
            account_page(svc, &user, StatusCode::NOT_FOUND, None, Some(message), None).await
        }
        Ok(Removal::NeedsConfirmation) => {
            account_page(svc, &user, StatusCode::OK, None, None, Some(&id)).await
        }
        Err(e) => {
            tracing::error!(error = %e, "passkey removal failed");
            error_page(StatusCode::SERVICE_UNAVAILABLE, "Please try again shortly.")
        }
    }
}

/// POST /authorize/passkey/options: starts a passwordless sign-in from the login page (its
/// CSRF token and carried authorization request, checked again); JSON `{ceremony, publicKey}`.
async fn sign_in_options(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    let svc = &state.services;
    let Some(rp) = relying_party(svc) else {
        return unavailable();
    };
    if let Err(page) = super::request::posted_authorization(&req, svc, &body).await {
        let status = page.status();
        return json_error(status, "invalid_request", PAGE_EXPIRED);
    }
    let now = svc.clock.now();
    match svc
        .db
        .run(move |conn| passkey::start_sign_in(conn, &rp, now))
        .await
    {
        Ok(started) => ceremony_json(started),
        Err(e) => {
            tracing::error!(error = %e, "passkey sign-in did not start");
            unavailable()
        }
    }
}

/// POST /authorize/passkey: the browser's assertion; on success the sign-in goes on as a
/// password's does (session, consent or code), with the passkey's `amr`.
async fn sign_in(req: HttpRequest, body: web::Bytes, state: web::Data<AppState>) -> HttpResponse {
    let svc = &state.services;
    let (params, request) = match super::request::posted_authorization(&req, svc, &body).await {
        Ok(posted) => posted,
        Err(page) => return page,
    };
    let Some(rp) = relying_party(svc) else {
        return error_page(StatusCode::SERVICE_UNAVAILABLE, "Passkeys are off here.");
    };
    let retry = |status: StatusCode, message: &str| {
        super::authorize::login_page_for(svc, status, &request, &params, Some(message))
    };
    let answer = params
        .get("credential")
        .and_then(|c| serde_json::from_str(c).ok());
    let Some(answer) = answer else {
        return retry(
            StatusCode::BAD_REQUEST,
            "Your browser sent no passkey. Try again (this needs JavaScript), or use your password.",
        );
    };
    let secret = params.get("ceremony").unwrap_or_default().to_string();
    let ip = super::state::client_ip(&req, &svc.settings.server.trusted_proxies);
    let client_id = request.client.id.to_string();
    let (svc_inner, now) = (svc.clone(), svc.clock.now());
    let outcome = svc
        .db
        .run(move |conn| {
            passkey::finish_sign_in(
                conn,
                &rp,
                &svc_inner.settings.throttle,
                &secret,
                &answer,
                ip.as_deref(),
                Some(&client_id),
                now,
            )
        })
        .await;
    match outcome {
        Ok(SignIn::Accepted { user, amr }) => {
            let persistent = params.get("remember").is_some();
            super::session::signed_in(&req, svc, &request, &params, *user, amr, persistent).await
        }
        Ok(SignIn::Refused(refused)) => retry(StatusCode::UNAUTHORIZED, refused.message()),
        Ok(SignIn::Throttled(wait)) => with_retry_after(
            retry(
                StatusCode::TOO_MANY_REQUESTS,
                &format!("Too many failed attempts. Try again in {wait} seconds."),
            ),
            wait,
        ),
        Err(e) => {
            tracing::error!(error = %e, "passkey sign-in failed");
            error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Sign-in is unavailable just now. Please try again shortly.",
            )
        }
    }
}

/// POST /authorize/second-factor/passkey/options: a passkey ceremony for the pending step's
/// person (the page's CSRF token and authorization request checked again); JSON
/// `{ceremony, publicKey}`, as `/assets/passkey.js` expects.
async fn second_factor_options(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    let svc = &state.services;
    if let Err(page) = super::request::posted_authorization(&req, svc, &body).await {
        return json_error(page.status(), "invalid_request", PAGE_EXPIRED);
    }
    let Some(pending) = super::session::pending_cookie(&req, svc) else {
        return json_error(
            StatusCode::FORBIDDEN,
            "invalid_request",
            super::session::GONE,
        );
    };
    match crate::authorize::second_step::passkey_options(svc, pending).await {
        Ok(Some(started)) => ceremony_json(started),
        Ok(None) => json_error(
            StatusCode::FORBIDDEN,
            "invalid_request",
            super::session::GONE,
        ),
        Err(e) => {
            tracing::error!(error = %e, "passkey second factor did not start");
            unavailable()
        }
    }
}
