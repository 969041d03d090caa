//! The one place errors become HTTP responses: RFC 6749 §5.2-shaped JSON bodies
//! (`error`, `error_description`) for everything, including actix's own bodyless errors.

use actix_web::body::MessageBody;
use actix_web::dev::ServiceResponse;
use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::middleware::ErrorHandlerResponse;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::db::DbError;

/// Seconds a client is told to wait when a dependency is down.
const RETRY_AFTER_SECS: &str = "5";

#[derive(Debug, Serialize)]
pub struct ErrorBody<'a> {
    pub error: &'a str,
    pub error_description: &'a str,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("no such resource")]
    NotFound,
    #[error("the request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// A dependency (the database) is down; the client may retry.
    #[error("the service is temporarily unavailable")]
    Unavailable,
    /// Anything the client did not cause. The cause goes to the log, never into the body.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        if e.is_unavailable() {
            ApiError::Unavailable
        } else {
            ApiError::Internal(e.into())
        }
    }
}

impl ApiError {
    fn code(&self) -> &'static str {
        match self {
            // RFC 6749 §5.2 / §4.1.2.1 names where one fits; plain HTTP names otherwise.
            ApiError::BadRequest(_) => "invalid_request",
            ApiError::NotFound => "not_found",
            ApiError::PayloadTooLarge(_) => "request_too_large",
            ApiError::Unavailable => "temporarily_unavailable",
            ApiError::Internal(_) => "server_error",
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let ApiError::Internal(cause) = self {
            tracing::error!(error = ?cause, "request failed");
        }
        let mut response = HttpResponse::build(self.status_code());
        if matches!(self, ApiError::Unavailable) {
            response.insert_header((header::RETRY_AFTER, RETRY_AFTER_SECS));
        }
        response.json(ErrorBody {
            error: self.code(),
            error_description: &self.to_string(),
        })
    }
}

/// A JSON body for an error response that has none (or a plain-text one from actix itself:
/// 404 from routing, 405 from a method guard, 413 and 400 from extractors).
pub fn json_error_body<B: MessageBody + 'static>(
    res: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let is_json = res
        .response()
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let status = res.status();
    let (error, description) = match status {
        StatusCode::BAD_REQUEST => ("invalid_request", "the request is malformed"),
        StatusCode::NOT_FOUND => ("not_found", "no such resource"),
        StatusCode::METHOD_NOT_ALLOWED => ("method_not_allowed", "this method is not allowed here"),
        StatusCode::PAYLOAD_TOO_LARGE => ("request_too_large", "the request body is too large"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ("invalid_request", "unsupported content type"),
        s if s.is_server_error() => ("server_error", "internal error"),
        _ => (
            "invalid_request",
            status.canonical_reason().unwrap_or("error"),
        ),
    };
    let (req, old) = res.into_parts();
    let mut new = HttpResponse::build(status).json(ErrorBody {
        error,
        error_description: description,
    });
    for name in [header::ALLOW, header::RETRY_AFTER, header::WWW_AUTHENTICATE] {
        if let Some(value) = old.headers().get(&name) {
            new.headers_mut().insert(name, value.clone());
        }
    }
    let res = ServiceResponse::new(req, new).map_into_right_body();
    Ok(ErrorHandlerResponse::Response(res))
}
