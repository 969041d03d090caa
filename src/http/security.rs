//! /account/security: a person's second factors, in the browser. The browser session's cookie
//! says who it is (no access token: this is a page, not an API); without a live session the
//! page says to sign in, since Tessera has no sign-in page of its own outside `/authorize`.
//!
//! The page shows whether an authenticator app is set up; setting one up shows its QR code
//! (an inline SVG made here, so nothing is loaded and the CSP stays `default-src 'none'`) and
//! the secret as text, and asks for a current code before it counts. The recovery codes made
//! then, or later on request, are shown once, on the answer to that form, and never again.
//! Removing the app or making new recovery codes asks for a current code (or a recovery code):
//! a session alone, left open or stolen, cannot take away or replace a factor. Removing the app
//! when it is the last second factor (no passkey) asks for confirmation first, as removing the
//! last passkey does.
//!
//! Every form is CSRF-protected by a double-submit cookie (Strict) and an `Origin` check,
//! like the login form, and needs the session. The work itself is `crate::mfa`'s (throttled,
//! audited, one transaction each).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};

use super::cookies::SECURITY_CSRF;
use super::pages::{self, CSRF_FIELD, message_page, with_retry_after};
use super::request::form_is_ours;
use super::state::AppState;
use crate::domain::User;
use crate::mfa::{self, CodeAttempt, CodeCheck, Factors, MfaError, Removal, TotpEnrolment};
use crate::services::Services;

const TITLE: &str = "Sign-in security";

pub fn routes(cfg: &mut web::ServiceConfig) {
    use super::paths::*;
    cfg.service(web::resource(ACCOUNT_SECURITY).route(web::get().to(show)))
        .service(web::resource(ACCOUNT_SECURITY_TOTP).route(web::post().to(begin)))
        .service(web::resource(ACCOUNT_SECURITY_TOTP_CONFIRM).route(web::post().to(confirm)))
        .service(web::resource(ACCOUNT_SECURITY_TOTP_REMOVE).route(web::post().to(remove)))
        .service(web::resource(ACCOUNT_SECURITY_RECOVERY_CODES).route(web::post().to(regenerate)));
}

/// What a request to one of these pages comes with: the signed-in person and the CSRF token
/// the page's forms carry.
struct Visit {
    user: User,
    csrf: String,
    ip: Option<String>,
}

/// What the page shows beyond the person's factors.
#[derive(Default)]
struct Shown<'a> {
    error: Option<&'a str>,
    notice: Option<&'a str>,
    recovery_codes: Vec<String>,
    /// Ask to confirm removing the authenticator app, the person's last second factor.
    confirm_remove: bool,
}

fn unavailable() -> HttpResponse {
    message_page(
        StatusCode::SERVICE_UNAVAILABLE,
        TITLE,
        "This is unavailable just now. Please try again shortly.",
    )
}

fn not_signed_in() -> HttpResponse {
    message_page(
        StatusCode::UNAUTHORIZED,
        TITLE,
        "You are not signed in. Sign in to an application that uses this server, then open \
         this page again.",
    )
}

/// The person of the request's session cookie, or the page to answer with.
async fn signed_in_user(req: &HttpRequest, svc: &Services) -> Result<User, HttpResponse> {
    let Some(secret) = super::session::cookie(req, svc) else {
        return Err(not_signed_in());
    };
    let now = svc.clock.now();
    match svc
        .db
        .run(move |conn| crate::sso::find(conn, &secret, now))
        .await
    {
        Ok(Some((_, user))) => Ok(user),
        Ok(None) => Err(not_signed_in()),
        Err(e) => {
            tracing::error!(error = %e, "account security: session lookup failed");
            Err(unavailable())
        }
    }
}

/// GET /account/security.
async fn show(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let svc = &state.services;
    let user = match signed_in_user(&req, svc).await {
        Ok(user) => user,
        Err(page) => return page,
    };
    let Ok(csrf) = crate::crypto::random_token(32) else {
        return unavailable();
    };
    let visit = Visit {
        user,
        csrf,
        ip: None,
    };
    page(svc, &visit, StatusCode::OK, Shown::default()).await
}

/// A form post's fields, once its CSRF token and session are checked.
struct Posted {
    visit: Visit,
    code: String,
    /// `confirm=yes`: the person was told this removes their last second factor.
    confirmed: bool,
}

async fn posted(req: &HttpRequest, svc: &Services, body: &[u8]) -> Result<Posted, HttpResponse> {
    let (mut csrf, mut code, mut confirmed) = (None, None, false);
    for (key, value) in form_urlencoded::parse(body) {
        match key.as_ref() {
            CSRF_FIELD => csrf = Some(value.into_owned()),
            "code" => code = Some(value.into_owned()),
            "confirm" => confirmed = value == "yes",
            _ => {}
        }
    }
    let cookie = SECURITY_CSRF.read(req, svc);
    if !form_is_ours(req, svc, cookie.as_deref(), csrf.as_deref()) {
        return Err(message_page(
            StatusCode::FORBIDDEN,
            TITLE,
            "This form has expired or did not come from this site. Open the page again.",
        ));
    }
    let user = signed_in_user(req, svc).await?;
    Ok(Posted {
        visit: Visit {
            user,
            csrf: csrf.unwrap_or_default(),
            ip: super::state::client_ip(req, &svc.settings.server.trusted_proxies),
        },
        code: code.unwrap_or_default(),
        confirmed,
    })
}

/// The page with the person's factors as they are now, and what `shown` adds; the CSRF cookie
/// is (re)set with the token its forms carry.
async fn page(svc: &Services, visit: &Visit, status: StatusCode, shown: Shown<'_>) -> HttpResponse {
    let (user_id, account, issuer) = (
        visit.user.id.to_string(),
        visit.user.account_name(),
        mfa::issuer_label(&svc.issuer),
    );
    let sealer = svc.secrets.clone();
    let found = svc
        .db
        .run(move |conn| {
            let factors = mfa::factors(conn, &user_id)?;
            let pending = mfa::pending_totp(conn, &sealer, &issuer, &user_id, &account)?;
            Ok::<_, MfaError>((factors, pending))
        })
        .await;
    let (factors, pending): (Factors, Option<TotpEnrolment>) = match found {
        Ok(found) => found,
        Err(e) => {
            tracing::error!(error = %e, "account security: reading the factors failed");
            return unavailable();
        }
    };
    let setup = match pending.as_ref().map(pages::TotpSetup::of).transpose() {
        Ok(setup) => setup,
        Err(e) => {
            tracing::error!(error = %e, "account security: the QR code did not render");
            return unavailable();
        }
    };
    let account = visit.user.account_name();
    let template = pages::Security {
        account: &account,
        csrf: &visit.csrf,
        error: shown.error,
        notice: shown.notice,
        totp: factors.totp,
        setup,
        recovery_codes: shown.recovery_codes,
        recovery_codes_left: factors.recovery_codes_left,
        confirm_remove: shown.confirm_remove && factors.totp,
    };
    let mut response = pages::render(status, &template);
    let _ = response.add_cookie(&SECURITY_CSRF.build(
        svc,
        &visit.csrf,
        actix_web::cookie::time::Duration::minutes(30),
    ));
    response
}

fn failed(e: MfaError) -> HttpResponse {
    tracing::error!(error = %e, "account security: a change failed");
    unavailable()
}

fn throttled_message(wait: i64) -> String {
    format!("Too many wrong codes. Try again in {wait} seconds.")
}

/// POST /account/security/totp: start setting up an authenticator app (a new secret, replacing
/// one not yet confirmed).
async fn begin(req: HttpRequest, body: web::Bytes, state: web::Data<AppState>) -> HttpResponse {
    let svc = &state.services;
    let Posted { visit, .. } = match posted(&req, svc, &body).await {
        Ok(posted) => posted,
        Err(page) => return page,
    };
    let (user_id, account, issuer) = (
        visit.user.id.to_string(),
        visit.user.account_name(),
        mfa::issuer_label(&svc.issuer),
    );
    let sealer = svc.secrets.clone();
    let now = svc.clock.now();
    let begun = svc
        .db
        .run(move |conn| mfa::begin_totp(conn, &sealer, &issuer, &user_id, &account, now))
        .await;
    match begun {
        // The page reads the enrolment back (sealed, as stored) and shows it.
        Ok(_) => page(svc, &visit, StatusCode::OK, Shown::default()).await,
        Err(MfaError::AlreadyEnrolled) => {
            let shown = Shown {
                error: Some("An authenticator app is already set up. Remove it first."),
                ..Shown::default()
            };
            page(svc, &visit, StatusCode::CONFLICT, shown).await
        }
        Err(e) => failed(e),
    }
}

/// POST /account/security/totp/confirm: the first code from the app; right, it becomes a
/// factor and the first recovery codes are shown.
async fn confirm(req: HttpRequest, body: web::Bytes, state: web::Data<AppState>) -> HttpResponse {
    let svc = &state.services;
    let Posted { visit, code, .. } = match posted(&req, svc, &body).await {
        Ok(posted) => posted,
        Err(page) => return page,
    };
    let (user_id, ip) = (visit.user.id.to_string(), visit.ip.clone());
    let (sealer, settings) = (svc.secrets.clone(), svc.settings.clone());
    let now = svc.clock.now();
    let checked = svc
        .db
        .run(move |conn| {
            let attempt = CodeAttempt {
                user_id: &user_id,
                ip: ip.as_deref(),
                client_id: None,
                purpose: "enrolment",
            };
            mfa::confirm_totp(conn, &sealer, &settings.throttle, attempt, &code, now)
        })
        .await;
    match checked {
        Ok(CodeCheck::Accepted(codes)) => {
            let shown = Shown {
                notice: Some("Your authenticator app is set up."),
                recovery_codes: codes,
                ..Shown::default()
            };
            page(svc, &visit, StatusCode::OK, shown).await
        }
        Ok(CodeCheck::Refused) => {
            let shown = Shown {
                error: Some(
                    "That code is not right. Enter the code your app shows now (check that \
                     the device's clock is right).",
                ),
                ..Shown::default()
            };
            page(svc, &visit, StatusCode::BAD_REQUEST, shown).await
        }
        Ok(CodeCheck::Throttled(wait)) => {
            let message = throttled_message(wait);
            let shown = Shown {
                error: Some(&message),
                ..Shown::default()
            };
            with_retry_after(
                page(svc, &visit, StatusCode::TOO_MANY_REQUESTS, shown).await,
                wait,
            )
        }
        Err(MfaError::NothingToConfirm) => {
            let shown = Shown {
                error: Some("No authenticator app is being set up. Start again."),
                ..Shown::default()
            };
            page(svc, &visit, StatusCode::CONFLICT, shown).await
        }
        Err(e) => failed(e),
    }
}

/// Checks `code` as a second factor of the person: six digits are the app's code, anything
/// else a recovery code (which it spends).
async fn second_factor(
    svc: &Services,
    visit: &Visit,
    code: String,
    purpose: &'static str,
) -> Result<CodeCheck<()>, MfaError> {
    let (user_id, ip) = (visit.user.id.to_string(), visit.ip.clone());
    let (sealer, settings) = (svc.secrets.clone(), svc.settings.clone());
    let now = svc.clock.now();
    svc.db
        .run(move |conn| {
            let attempt = CodeAttempt {
                user_id: &user_id,
                ip: ip.as_deref(),
                client_id: None,
                purpose,
            };
            let trimmed = code.trim();
            if trimmed.len() == 6 && trimmed.bytes().all(|b| b.is_ascii_digit()) {
                mfa::check_totp(conn, &sealer, &settings.throttle, attempt, trimmed, now)
            } else {
                Ok(
                    match mfa::redeem_recovery_code(
                        conn,
                        &settings.throttle,
                        attempt,
                        trimmed,
                        now,
                    )? {
                        CodeCheck::Accepted(_) => CodeCheck::Accepted(()),
                        CodeCheck::Refused => CodeCheck::Refused,
                        CodeCheck::Throttled(wait) => CodeCheck::Throttled(wait),
                    },
                )
            }
        })
        .await
}

/// The page for a code that did not prove the person, or None when it did.
async fn unproven(
    svc: &Services,
    visit: &Visit,
    checked: Result<CodeCheck<()>, MfaError>,
) -> Option<HttpResponse> {
    match checked {
        Ok(CodeCheck::Accepted(())) => None,
        Ok(CodeCheck::Refused) => {
            let shown = Shown {
                error: Some(
                    "That code is not right. Enter the code your app shows now, or one of \
                     your recovery codes.",
                ),
                ..Shown::default()
            };
            Some(page(svc, visit, StatusCode::BAD_REQUEST, shown).await)
        }
        Ok(CodeCheck::Throttled(wait)) => {
            let message = throttled_message(wait);
            let shown = Shown {
                error: Some(&message),
                ..Shown::default()
            };
            Some(with_retry_after(
                page(svc, visit, StatusCode::TOO_MANY_REQUESTS, shown).await,
                wait,
            ))
        }
        Err(MfaError::NotEnrolled) => {
            let shown = Shown {
                error: Some("No authenticator app is set up."),
                ..Shown::default()
            };
            Some(page(svc, visit, StatusCode::CONFLICT, shown).await)
        }
        Err(e) => Some(failed(e)),
    }
}

/// The page asking to confirm the removal of the person's last second factor (the code of the
/// form that led here is neither checked nor spent: the confirmation asks for one).
async fn confirm_removal(svc: &Services, visit: &Visit) -> HttpResponse {
    let shown = Shown {
        confirm_remove: true,
        ..Shown::default()
    };
    page(svc, visit, StatusCode::OK, shown).await
}

/// POST /account/security/totp/remove: with a current code (or a recovery code). When the app
/// is the person's last second factor (no passkey), only with `confirm=yes`: without it, the
/// page asks first.
async fn remove(req: HttpRequest, body: web::Bytes, state: web::Data<AppState>) -> HttpResponse {
    let svc = &state.services;
    let Posted {
        visit,
        code,
        confirmed,
    } = match posted(&req, svc, &body).await {
        Ok(posted) => posted,
        Err(page) => return page,
    };
    let user_id = visit.user.id.to_string();
    if !confirmed {
        match svc
            .db
            .run(move |conn| mfa::totp_is_last_factor(conn, &user_id))
            .await
        {
            Ok(true) => return confirm_removal(svc, &visit).await,
            Ok(false) => {}
            Err(e) => return failed(e),
        }
    }
    let checked = second_factor(svc, &visit, code, "removal").await;
    if let Some(page) = unproven(svc, &visit, checked).await {
        return page;
    }
    let user_id = visit.user.id.to_string();
    let now = svc.clock.now();
    match svc
        .db
        .run(move |conn| mfa::remove_totp(conn, &user_id, confirmed, now))
        .await
    {
        // A passkey removed since the question: asked again (the code is spent; a new one).
        Ok(Removal::NeedsConfirmation) => confirm_removal(svc, &visit).await,
        Ok(Removal::Removed | Removal::NotFound) => {
            let shown = Shown {
                notice: Some("Your authenticator app is removed."),
                ..Shown::default()
            };
            page(svc, &visit, StatusCode::OK, shown).await
        }
        Err(e) => failed(e),
    }
}

/// POST /account/security/recovery-codes: a new set, shown once (the old set stops working);
/// with a current code (or one of the old recovery codes).
async fn regenerate(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    let svc = &state.services;
    let Posted { visit, code, .. } = match posted(&req, svc, &body).await {
        Ok(posted) => posted,
        Err(page) => return page,
    };
    let checked = second_factor(svc, &visit, code, "recovery_codes").await;
    if let Some(page) = unproven(svc, &visit, checked).await {
        return page;
    }
    let user_id = visit.user.id.to_string();
    let now = svc.clock.now();
    match svc
        .db
        .run(move |conn| mfa::regenerate_recovery_codes(conn, &user_id, now))
        .await
    {
        Ok(codes) => {
            let shown = Shown {
                notice: Some("New recovery codes are made; the old ones no longer work."),
                recovery_codes: codes,
                ..Shown::default()
            };
            page(svc, &visit, StatusCode::OK, shown).await
        }
        Err(e) => failed(e),
    }
}
