//! GET /auth/<provider>/login and /auth/<provider>/callback: the browser's legs of an upstream
//! sign-in. The flow itself is `federation::flow`'s; here are cookies, redirects and pages.

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};

use super::AppState;
use super::authorize::{carried_query, error_page, query_params, refusal, see_other};
use crate::accounts::throttle;
use crate::authorize::with_query;
use crate::federation::flow::{self, Callback, Finished};
use crate::federation::{FederationError, Provider};
use crate::services::Services;

/// The browser-binding cookie of upstream sign-ins in flight.
const COOKIE: &str = "tessera_upstream";
const COOKIE_PATH: &str = "/auth/";

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
pub async fn start(
    req: &HttpRequest,
    svc: &Services,
    provider: &Provider,
    request: Option<String>,
) -> HttpResponse {
    // Each start stores a pending sign-in: counted per client address before anything is.
    let ip = super::client_ip(req, &svc.settings.server.trusted_proxies);
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
            let mut page = error_page(
                StatusCode::TOO_MANY_REQUESTS,
                &format!(
                    "Too many sign-ins were started from your network. Try again in {wait} seconds."
                ),
            );
            if let Ok(value) = HeaderValue::from_str(&wait.max(1).to_string()) {
                page.headers_mut().insert(header::RETRY_AFTER, value);
            }
            return page;
        }
        Err(e) => return failure(provider, FederationError::Db(e)),
    }
    let presented = req.cookie(COOKIE);
    match flow::start(
        svc,
        provider,
        request,
        presented.as_ref().map(|c| c.value()),
    )
    .await
    {
        Ok(started) => {
            let mut response = see_other(&started.location);
            let _ = response.add_cookie(&binding_cookie(svc, &started.browser_secret));
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
    let cookie = req.cookie(COOKIE);
    let ip = super::client_ip(&req, &svc.settings.server.trusted_proxies);
    match flow::finish(
        svc,
        provider,
        answer,
        cookie.as_ref().map(|c| c.value()),
        ip,
    )
    .await
    {
        Ok(Finished::App { location }) => see_other(&location),
        Ok(Finished::Direct { user, .. }) => {
            let who = if user.email.is_empty() {
                user.name.clone().unwrap_or_else(|| "your account".into())
            } else {
                user.email.clone()
            };
            super::authorize::message_page(
                StatusCode::OK,
                "Signed in",
                &format!(
                    "You are signed in to this provider as {who} with {}.",
                    provider.display_name
                ),
            )
        }
        Err(e) => failure(provider, e),
    }
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

fn binding_cookie<'a>(svc: &Services, value: &'a str) -> Cookie<'a> {
    Cookie::build(COOKIE, value)
        .path(COOKIE_PATH)
        .http_only(true)
        .secure(svc.issuer.starts_with("https://"))
        // Lax: the cookie must come back on the top-level GET redirect from the provider.
        .same_site(SameSite::Lax)
        .max_age(actix_web::cookie::time::Duration::seconds(
            flow::STATE_TTL_SECS,
        ))
        .finish()
}

fn not_found() -> HttpResponse {
    use actix_web::ResponseError;
    super::error::ApiError::NotFound.error_response()
}
