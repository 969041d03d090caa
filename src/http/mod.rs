//! HTTP: routes, shared state, and the middleware every request passes through. Handlers stay
//! thin; the work happens in the domain modules.

mod account;
mod admin;
mod authorize;
mod bearer;
mod consents;
mod cookies;
mod discovery;
pub mod error;
mod federation;
mod forgot_password;
mod health;
mod logout;
pub mod metrics;
mod pages;
mod passkeys;
pub mod paths;
mod request;
mod security;
mod session;
mod state;
mod token;
mod userinfo;
mod users;
mod wellknown;

use std::time::Instant;

use actix_cors::Cors;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, ResponseError, web};
use tracing::Instrument;

pub use discovery::Metadata;
use error::ApiError;
pub use state::{AppState, client_ip};

/// Every route. Public metadata may be read cross-origin by any page (it carries no
/// credentials), so it gets a wildcard CORS policy of its own; the API answers only the
/// configured first-party origins, never with credentials.
pub fn routes(cfg: &mut web::ServiceConfig, cors_origins: &[String]) {
    let public_cors = Cors::default()
        .allow_any_origin()
        .send_wildcard()
        .allowed_methods(["GET"])
        .max_age(86_400);
    let api_cors = cors_origins
        .iter()
        .fold(Cors::default(), |cors, origin| cors.allowed_origin(origin))
        .allowed_methods(["GET", "POST", "PUT", "DELETE"])
        .allowed_headers([header::AUTHORIZATION, header::CONTENT_TYPE, header::ACCEPT])
        .max_age(3600);
    // Resources rather than bare routes, so a known path with the wrong method gets 405.
    cfg.service(
        web::scope("/.well-known")
            .wrap(public_cors)
            .service(web::resource("/jwks.json").route(web::get().to(wellknown::jwks)))
            .service(
                web::resource("/openid-configuration")
                    .route(web::get().to(wellknown::openid_configuration)),
            )
            .service(
                web::resource("/oauth-authorization-server")
                    .route(web::get().to(wellknown::oauth_authorization_server)),
            ),
    )
    .service(web::resource("/healthz").route(web::get().to(health::healthz)))
    .service(web::resource("/readyz").route(web::get().to(health::readyz)))
    .service(
        web::scope("")
            .wrap(api_cors)
            .service(web::resource(paths::TOKEN).route(web::post().to(token::token)))
            .service(
                web::resource(paths::AUTHORIZE)
                    .route(web::get().to(authorize::show))
                    .route(web::post().to(authorize::submit)),
            )
            .service(web::resource(paths::CONSENT).route(web::post().to(session::consent_submit)))
            .service(
                web::resource(paths::SECOND_FACTOR)
                    .route(web::post().to(session::second_factor_submit)),
            )
            .service(
                web::resource("/auth/{provider}/login").route(web::get().to(federation::login)),
            )
            .service(
                web::resource("/auth/{provider}/callback")
                    .route(web::get().to(federation::callback)),
            )
            .service(
                web::resource(paths::LINK)
                    .route(web::get().to(federation::link_page))
                    .route(web::post().to(federation::link_submit)),
            )
            .service(web::resource(paths::REVOKE).route(web::post().to(token::revoke)))
            .service(web::resource(paths::INTROSPECT).route(web::post().to(token::introspect)))
            .service(
                web::resource(paths::LOGOUT)
                    .route(web::get().to(logout::show))
                    .route(web::post().to(logout::submit)),
            )
            .service(web::resource(paths::LOGOUT_CONFIRM).route(web::post().to(logout::confirm)))
            .service(
                web::resource(paths::LOGOUT_EVERYWHERE)
                    .route(web::post().to(userinfo::logout_everywhere)),
            )
            .service(
                web::resource(paths::USERINFO)
                    .route(web::get().to(userinfo::userinfo))
                    .route(web::post().to(userinfo::userinfo)),
            )
            .service(web::resource("/users").route(web::post().to(users::register)))
            .service(
                web::resource(paths::FORGOT_PASSWORD)
                    .route(web::get().to(forgot_password::show))
                    .route(web::post().to(forgot_password::submit)),
            )
            .service(
                web::resource(paths::REGISTER_PAGE)
                    .route(web::get().to(users::show_page))
                    .route(web::post().to(users::submit_page)),
            )
            .configure(passkeys::routes)
            .configure(account::routes)
            .configure(security::routes)
            .configure(consents::routes)
            .configure(admin::routes)
            .default_service(web::to(not_found)),
    );
}

pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound)
}

/// A JSON body the handler cannot use, as the client should hear it.
pub fn json_payload_error(e: actix_web::error::JsonPayloadError) -> ApiError {
    use actix_web::error::JsonPayloadError as E;
    match e {
        E::ContentType => {
            ApiError::UnsupportedMediaType("the body must be application/json".into())
        }
        E::Overflow { limit } | E::OverflowKnownLength { limit, .. } => {
            ApiError::PayloadTooLarge(limit)
        }
        E::Deserialize(e) => ApiError::InvalidRequest(format!("the JSON body is invalid: {e}")),
        other => ApiError::InvalidRequest(format!("the body could not be read: {other}")),
    }
}

/// Refuses a declared body over the limit before anything reads it; bodies without a length
/// are cut off by the extractors' limits instead.
pub fn content_length_exceeds(req: &ServiceRequest, limit: usize) -> bool {
    req.headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .is_some_and(|len| len > limit as u64)
}

/// Runs a request in a span with a fresh request id, refuses a declared body over the limit,
/// logs the outcome (method, path without the query string, which may carry codes; status,
/// latency: at `info` with the access log on, `log.access`, at `debug` otherwise; a 5xx always
/// as a warning), counts it in the metrics by route pattern and status, and echoes the id as
/// `X-Request-Id`.
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let request_id = uuid::Uuid::now_v7().to_string();
    let span = tracing::info_span!(
        "request",
        id = %request_id,
        method = %req.method(),
        path = %req.path()
    );
    let started = Instant::now();
    let (limit, access_log) =
        req.app_data::<web::Data<AppState>>()
            .map_or((usize::MAX, false), |s| {
                let settings = &s.services.settings;
                (settings.server.body_limit_bytes, settings.log.access)
            });
    let result = if content_length_exceeds(&req, limit) {
        let response = ApiError::PayloadTooLarge(limit).error_response();
        Ok(req.into_response(response).map_into_right_body())
    } else {
        next.call(req)
            .instrument(span.clone())
            .await
            .map(ServiceResponse::map_into_left_body)
    };
    let _entered = span.enter();
    let mut response = match result {
        Ok(response) => response,
        Err(e) => {
            tracing::warn!(error = %e, "request error");
            return Err(e);
        }
    };
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    if let Some(state) = response
        .request()
        .app_data::<web::Data<AppState>>()
        .filter(|s| s.services.settings.metrics.enabled)
    {
        let route = response.request().match_pattern();
        state
            .services
            .metrics
            .observe_request(route, status, elapsed);
    }
    let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
    if status >= 500 {
        tracing::warn!(status, micros, "request failed");
    } else if access_log {
        tracing::info!(status, micros, "request");
    } else {
        tracing::debug!(status, micros, "request");
    }
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response
            .headers_mut()
            .insert(header::HeaderName::from_static("x-request-id"), value);
    }
    // Draining: the client (a proxy's keep-alive pool) closes this connection after the
    // answer, so Tessera never closes one under a request being sent.
    if response
        .request()
        .app_data::<web::Data<AppState>>()
        .is_some_and(|s| s.is_draining())
    {
        response
            .response_mut()
            .head_mut()
            .set_connection_type(actix_web::http::ConnectionType::Close);
    }
    Ok(response)
}
