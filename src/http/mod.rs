//! HTTP: routes, shared state, and the middleware every request passes through. Handlers stay
//! thin; the work happens in the domain modules.

pub mod error;
mod health;
mod wellknown;

use std::sync::Arc;
use std::time::Instant;

use actix_cors::Cors;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, ResponseError, web};
use tracing::Instrument;

use crate::config::Settings;
use crate::db::Database;
use crate::keys::KeyStore;
use error::ApiError;
pub use wellknown::Metadata;

/// What every handler may reach.
pub struct AppState {
    pub db: Database,
    pub keys: Arc<KeyStore>,
    pub settings: Arc<Settings>,
    pub issuer: String,
    pub metadata: Metadata,
    pub jwks_cache_control: HeaderValue,
}

impl AppState {
    pub fn new(db: Database, keys: Arc<KeyStore>, settings: Arc<Settings>, issuer: String) -> Self {
        let max_age = settings.keys.jwks_max_age_secs;
        AppState {
            metadata: Metadata::new(&issuer),
            jwks_cache_control: HeaderValue::from_str(&format!("public, max-age={max_age}"))
                .unwrap_or(HeaderValue::from_static("public, max-age=300")),
            db,
            keys,
            settings,
            issuer,
        }
    }
}

/// Every route. Public metadata may be read cross-origin by any page (it carries no
/// credentials), so it gets a wildcard CORS policy of its own.
pub fn routes(cfg: &mut web::ServiceConfig) {
    let public_cors = || {
        Cors::default()
            .allow_any_origin()
            .send_wildcard()
            .allowed_methods(["GET"])
            .max_age(86_400)
    };
    // Resources rather than bare routes, so a known path with the wrong method gets 405.
    cfg.service(
        web::scope("/.well-known")
            .wrap(public_cors())
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
    .service(web::resource("/readyz").route(web::get().to(health::readyz)));
}

pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound)
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
/// latency) and echoes the id as `X-Request-Id`.
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
    let limit = req
        .app_data::<web::Data<AppState>>()
        .map_or(usize::MAX, |s| s.settings.server.body_limit_bytes);
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
    let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    if status >= 500 {
        tracing::warn!(status, micros, "request failed");
    } else {
        tracing::info!(status, micros, "request");
    }
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response
            .headers_mut()
            .insert(header::HeaderName::from_static("x-request-id"), value);
    }
    Ok(response)
}
