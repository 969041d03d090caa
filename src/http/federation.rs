//! GET /auth/<provider>/login and /auth/<provider>/callback: the browser's legs of an upstream
//! sign-in; GET/POST /auth/link: the page that asks for an existing account's password before
//! an upstream identity is linked to it. The flow itself is `federation::flow`'s; here are
//! cookies, redirects and pages.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};

use super::cookies::{PENDING_LINK, UPSTREAM_BINDING};
use super::pages::{self, CSRF_FIELD, error_page, message_page, with_retry_after};
use super::paths;
use super::request::{carried_query, query_params, refusal, see_other};
use super::state::AppState;
use crate::accounts::throttle;
use crate::authorize::with_query;
use crate::domain::{Amr, AuthMethod};
use crate::federation::flow::{self, Callback, Finished};
use crate::federation::{FederationError, Provider};
use crate::grants::Params;
use crate::services::Services;

/// Starts a sign-in at the provider: for the app's authorization request in the query, or,
/// with no query, a sign-in at Tessera itself.
pub async fn login(
    req: HttpRequest,
    provider: web::Path<String>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let svc = &state.services;
    let Some(provider) = svc.federation.get(&provider) else {
        return not_found();
    };
    let request = if req.query_string().is_empty() {
        None
    } else {
        let params = match query_params(&req) {
            Ok(params) => params,
            Err(page) => return *page,
        };
        if let Err(e) = crate::authorize::validate(svc, &params).await {
            return refusal(e);
        }
        Some(carried_query(&params))
    };
    start(&req, svc, provider, request).await
}

/// Sends the browser to the provider, remembering the sign-in; shared with `/authorize?idp=`.
/// The browser gets a fresh binding secret every time: a value already in the browser may have
/// been planted there by someone who knows it.
pub async fn start(
    req: &HttpRequest,
    svc: &Services,
    provider: &Provider,
    request: Option<String>,
) -> HttpResponse {
    // Each start stores a pending sign-in: counted per client address before anything is.
    let ip = super::state::client_ip(req, &svc.settings.server.trusted_proxies);
    let keys = throttle::upstream_start_keys(
        &svc.settings.throttle,
        svc.settings.federation.sign_ins_per_ip,
        ip.as_deref(),
    );
    let now = svc.clock.now();
    match svc
        .db
        .run(move |conn| throttle::reserve(conn, &keys, now))
        .await
    {
        Ok(None) => {}
        Ok(Some(wait)) => {
            return with_retry_after(
                error_page(
                    StatusCode::TOO_MANY_REQUESTS,
                    &format!(
                        "Too many sign-ins were started from your network. Try again in {wait} seconds."
                    ),
                ),
                wait,
            );
        }
        Err(e) => return failure(provider, FederationError::Db(e)),
    }
    match flow::start(svc, provider, request).await {
        Ok(started) => {
            let mut response = see_other(&started.location);
            let _ = response.add_cookie(&UPSTREAM_BINDING.build(
                svc,
                &started.browser_secret,
                actix_web::cookie::time::Duration::seconds(flow::STATE_TTL_SECS),
            ));
            response
        }
        Err(e) => failure(provider, e),
    }
}

pub async fn callback(
    req: HttpRequest,
    provider: web::Path<String>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let svc = &state.services;
    let Some(provider) = svc.federation.get(&provider) else {
        return not_found();
    };
    let params = match query_params(&req) {
        Ok(params) => params,
        Err(page) => return *page,
    };
    let answer = Callback {
        state: params.get("state"),
        code: params.get("code"),
        error: params.get("error"),
    };
    let cookie = UPSTREAM_BINDING.read(&req, svc);
    let ip = super::state::client_ip(&req, &svc.settings.server.trusted_proxies);
    let finished = flow::finish(svc, provider, answer, cookie.as_deref(), ip).await;
    match finished {
        Ok(finished) => finished_page(&req, svc, provider, finished).await,
        Err(e) => failure(provider, e),
    }
}

async fn finished_page(
    req: &HttpRequest,
    svc: &Services,
    provider: &Provider,
    finished: Finished,
) -> HttpResponse {
    match finished {
        Finished::App {
            request,
            query,
            user,
        } => {
            let params = match Params::from_form(query.as_bytes()) {
                Ok(params) => params,
                Err(e) => return error_page(StatusCode::BAD_REQUEST, &e.to_string()),
            };
            let amr = Amr::of(AuthMethod::Federated);
            super::session::signed_in(req, svc, &request, &params, *user, amr, false).await
        }
        Finished::Direct { user, .. } => {
            let who = user.label();
            message_page(
                StatusCode::OK,
                "Signed in",
                &format!(
                    "You are signed in to this provider as {who} with {}.",
                    provider.display_name
                ),
            )
        }
        Finished::ConfirmLink { secret } => {
            let mut response = see_other(paths::LINK);
            let _ = response.add_cookie(&PENDING_LINK.build(
                svc,
                &secret,
                actix_web::cookie::time::Duration::seconds(flow::LINK_TTL_SECS),
            ));
            response
        }
    }
}

/// GET /auth/link: asks for the existing account's password (or to decline). Changes nothing.
pub async fn link_page(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let svc = &state.services;
    let cookie = PENDING_LINK.read(&req, svc);
    let secret = cookie.as_deref();
    match flow::link_offer(svc, secret).await {
        Ok(offer) => link_form(
            svc,
            StatusCode::OK,
            &offer,
            &flow::link_csrf(secret.unwrap_or_default()),
            None,
        ),
        Err(e) => link_failure(svc, None, e),
    }
}

/// POST /auth/link from the link page: `action=link` with the password, or `action=decline`.
pub async fn link_submit(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    let svc = &state.services;
    let params = match Params::from_form(&body) {
        Ok(params) => params,
        Err(e) => return error_page(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let cookie = PENDING_LINK.read(&req, svc);
    let secret = cookie.as_deref();
    // A page for a browser without the pending link says so before anything about CSRF.
    let offer = match flow::link_offer(svc, secret).await {
        Ok(offer) => offer,
        Err(e) => return link_failure(svc, None, e),
    };
    let provider = Some(offer.provider.as_str());
    let expected = flow::link_csrf(secret.unwrap_or_default());
    let csrf_ok = params.get(CSRF_FIELD).is_some_and(|field| {
        crate::crypto::constant_time_eq(field.as_bytes(), expected.as_bytes())
    });
    if !csrf_ok || !super::request::same_origin(&req, svc) {
        return error_page(
            StatusCode::FORBIDDEN,
            "This form has expired or did not come from this site. Go back to the application and start again.",
        );
    }
    if params.get("action") == Some("decline") {
        let mut response = link_failure(svc, provider, flow::decline_link(svc, secret).await);
        let _ = response.add_cookie(&PENDING_LINK.removal(svc));
        return response;
    }
    let Some(password) = params.get("password").filter(|p| !p.is_empty()) else {
        return link_form(
            svc,
            StatusCode::BAD_REQUEST,
            &offer,
            &expected,
            Some("Enter the password of your account."),
        );
    };
    let ip = super::state::client_ip(&req, &svc.settings.server.trusted_proxies);
    match flow::confirm_link(svc, secret, password, ip).await {
        Ok(finished) => {
            let mut response = match svc.federation.get(&offer.provider) {
                Some(provider) => finished_page(&req, svc, provider, finished).await,
                None => not_found(),
            };
            let _ = response.add_cookie(&PENDING_LINK.removal(svc));
            response
        }
        Err(FederationError::WrongPassword) => link_form(
            svc,
            StatusCode::UNAUTHORIZED,
            &offer,
            &expected,
            Some("The password is not right."),
        ),
        Err(FederationError::Throttled(wait)) => with_retry_after(
            link_form(
                svc,
                StatusCode::TOO_MANY_REQUESTS,
                &offer,
                &expected,
                Some(&format!(
                    "Too many failed attempts. Try again in {wait} seconds."
                )),
            ),
            wait,
        ),
        Err(e) => link_failure(svc, provider, e),
    }
}

/// A failure on the link page, as `failure` shows it for the pending link's provider (any
/// provider, when there is no pending link: those failures do not name it).
fn link_failure(svc: &Services, provider: Option<&str>, e: FederationError) -> HttpResponse {
    let provider = match provider {
        Some(name) => svc.federation.get(name),
        None => svc.federation.providers().first(),
    };
    match provider {
        Some(provider) => failure(provider, e),
        None => not_found(),
    }
}

fn link_form(
    svc: &Services,
    status: StatusCode,
    offer: &flow::LinkOffer,
    csrf: &str,
    error: Option<&str>,
) -> HttpResponse {
    let provider = svc
        .federation
        .get(&offer.provider)
        .map_or(offer.provider.as_str(), |p| p.display_name.as_str());
    let page = pages::Link {
        email: &offer.email,
        provider,
        csrf,
        error,
    };
    pages::render_leading_to(status, offer.redirect_uri.as_deref(), &page)
}

/// Every way an upstream sign-in can fail, as the browser should see it. Details of upstream
/// failures go to the log only.
fn failure(provider: &Provider, e: FederationError) -> HttpResponse {
    match e {
        FederationError::UnknownProvider => not_found(),
        FederationError::BadState(message) => error_page(StatusCode::BAD_REQUEST, message),
        FederationError::Denied {
            error,
            request: Some(request),
        } => {
            // Mapped onto RFC 6749 §4.1.2.1's codes; the upstream's own words stay here.
            let code = match error.as_str() {
                "temporarily_unavailable" => "temporarily_unavailable",
                "server_error" => "server_error",
                _ => "access_denied",
            };
            let mut query = form_urlencoded::Serializer::new(String::new());
            query.append_pair("error", code);
            query.append_pair(
                "error_description",
                &format!("sign-in with {} did not complete", provider.display_name),
            );
            if let Some(state) = &request.state {
                query.append_pair("state", state);
            }
            see_other(&with_query(&request.redirect_uri, &query.finish()))
        }
        FederationError::Denied { request: None, .. } => error_page(
            StatusCode::FORBIDDEN,
            &format!("Sign-in with {} was cancelled.", provider.display_name),
        ),
        FederationError::Upstream(detail) => {
            tracing::warn!(provider = %provider.name, %detail, "upstream sign-in failed");
            error_page(
                StatusCode::BAD_GATEWAY,
                &format!(
                    "Sign-in with {} did not complete. Please go back and try again.",
                    provider.display_name
                ),
            )
        }
        FederationError::AccountDisabled => {
            error_page(StatusCode::FORBIDDEN, "This account is disabled.")
        }
        FederationError::WrongPassword => {
            error_page(StatusCode::UNAUTHORIZED, "The password is not right.")
        }
        FederationError::Throttled(wait) => error_page(
            StatusCode::TOO_MANY_REQUESTS,
            &format!("Too many failed attempts. Try again in {wait} seconds."),
        ),
        FederationError::Authorize(e) => refusal(e),
        FederationError::Db(e) => {
            tracing::error!(error = %e, "upstream sign-in failed");
            error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Sign-in is unavailable just now. Please try again shortly.",
            )
        }
        FederationError::Internal(detail) => {
            tracing::error!(%detail, "upstream sign-in failed");
            error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Sign-in is unavailable just now. Please try again shortly.",
            )
        }
    }
}

fn not_found() -> HttpResponse {
    use actix_web::ResponseError;
    super::error::ApiError::NotFound.error_response()
}
