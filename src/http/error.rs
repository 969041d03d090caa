//! The one place errors become HTTP responses: RFC 6749 §5.2-shaped JSON bodies
//! (`error`, `error_description`) for everything, including actix's own bodyless errors, with
//! the headers OAuth needs (`WWW-Authenticate`, `Retry-After`).

use actix_web::body::MessageBody;
use actix_web::dev::ServiceResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::ErrorHandlerResponse;
use actix_web::{HttpResponse, ResponseError};

use crate::accounts::AccountError;
use crate::accounts::hash_pool::HashPoolError;
use crate::accounts::self_service::SelfServiceError;
use crate::clients::ClientError;
use crate::db::DbError;
use crate::grants::GrantError;

/// Seconds a client is told to wait when a dependency is down or busy.
const RETRY_AFTER_SECS: &str = "5";

pub use tessera_proto::ErrorBody;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    // RFC 6749 §5.2, the token endpoint's errors.
    #[error("{0}")]
    InvalidRequest(String),
    #[error("client authentication failed")]
    InvalidClient,
    #[error("{0}")]
    InvalidGrant(String),
    #[error("{0}")]
    UnauthorizedClient(String),
    #[error("{0}")]
    UnsupportedGrantType(String),
    #[error("{0}")]
    InvalidScope(String),
    // RFC 6750 §3.1, protected resources.
    #[error("an access token is required")]
    MissingToken,
    /// A request to a protected resource that is malformed as a bearer request (two tokens).
    #[error("{0}")]
    InvalidBearerRequest(String),
    #[error("{0}")]
    InvalidToken(String),
    #[error("the access token lacks the {0:?} scope")]
    InsufficientScope(&'static str),
    /// The token has the scope, but its user no longer has what the scope needs (a role).
    #[error("{reason}")]
    InsufficientPrivileges { scope: &'static str, reason: String },
    /// RFC 9470 §3: the sign-in behind the token is older than `max_age` seconds.
    #[error("this needs a sign-in within the last {max_age} s: sign in again")]
    StaleSignIn { max_age: i64 },
    // Everything else.
    #[error("{0}")]
    Forbidden(String),
    #[error("{field}: {message}")]
    Validation {
        field: &'static str,
        message: String,
    },
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{message}")]
    TooManyRequests { message: String, retry_after: i64 },
    #[error("no such resource")]
    NotFound,
    #[error("the request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// Mail is off on this server: retrying will not help until the operator configures it.
    #[error("{0}")]
    MailNotConfigured(String),
    /// A dependency (the database, the hashing pool) is down or full; the client may retry.
    #[error("the service is temporarily unavailable")]
    Unavailable,
    /// Anything the client did not cause. The cause goes to the log, never into the body.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        if e.is_unavailable() {
            // The operator needs the cause (PostgreSQL down, disk full …); the client does not.
            // The breaker logs its opening once, not each request it refuses.
            if matches!(e, DbError::Busy | DbError::Down) {
                tracing::debug!(error = %e, "database unavailable");
            } else {
                tracing::warn!(error = %e, "database unavailable");
            }
            ApiError::Unavailable
        } else {
            ApiError::Internal(e.into())
        }
    }
}

impl From<GrantError> for ApiError {
    fn from(e: GrantError) -> Self {
        match e {
            GrantError::InvalidRequest(m) => ApiError::InvalidRequest(m),
            GrantError::InvalidClient => ApiError::InvalidClient,
            GrantError::InvalidGrant(m) => ApiError::InvalidGrant(m),
            GrantError::UnauthorizedClient(m) => ApiError::UnauthorizedClient(m),
            e @ GrantError::UnsupportedGrantType(_) => {
                ApiError::UnsupportedGrantType(e.to_string())
            }
            GrantError::InvalidScope(m) => ApiError::InvalidScope(m),
            e @ GrantError::Throttled(retry_after) => ApiError::TooManyRequests {
                message: e.to_string(),
                retry_after,
            },
            GrantError::Busy => ApiError::Unavailable,
            GrantError::Db(e) => e.into(),
            e @ (GrantError::Token(_) | GrantError::Hashing(_)) => ApiError::Internal(e.into()),
        }
    }
}

impl From<AccountError> for ApiError {
    fn from(e: AccountError) -> Self {
        match e {
            AccountError::InvalidEmail(message) => ApiError::Validation {
                field: "email",
                message,
            },
            AccountError::WeakPassword(message) => ApiError::Validation {
                field: "password",
                message,
            },
            e @ AccountError::InvalidName => ApiError::Validation {
                field: "name",
                message: e.to_string(),
            },
            e @ AccountError::InvalidRole(_) => ApiError::Validation {
                field: "roles",
                message: e.to_string(),
            },
            e @ AccountError::DuplicateEmail => ApiError::Conflict(e.to_string()),
            e @ AccountError::Throttled(retry_after) => ApiError::TooManyRequests {
                message: e.to_string(),
                retry_after,
            },
            AccountError::NotFound => ApiError::NotFound,
            AccountError::Hashing(HashPoolError::Busy) => ApiError::Unavailable,
            e @ AccountError::Hashing(_) => ApiError::Internal(e.into()),
            AccountError::Db(e) => e.into(),
        }
    }
}

impl From<SelfServiceError> for ApiError {
    fn from(e: SelfServiceError) -> Self {
        match e {
            e @ SelfServiceError::MailNotConfigured => ApiError::MailNotConfigured(e.to_string()),
            // A used, expired or unknown single-use token: RFC 6749 §5.2's invalid_grant.
            SelfServiceError::InvalidToken(m) => ApiError::InvalidGrant(m.into()),
            e @ SelfServiceError::Throttled(retry_after) => ApiError::TooManyRequests {
                message: e.to_string(),
                retry_after,
            },
            e @ (SelfServiceError::WrongPassword | SelfServiceError::NoPassword) => {
                ApiError::Forbidden(e.to_string())
            }
            e @ SelfServiceError::NoAccount => ApiError::InvalidToken(e.to_string()),
            SelfServiceError::SignInTooOld { max_age_secs } => ApiError::StaleSignIn {
                max_age: max_age_secs,
            },
            SelfServiceError::Account(e) => e.into(),
        }
    }
}

impl From<ClientError> for ApiError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Invalid(message) => ApiError::Validation {
                field: "client",
                message,
            },
            ClientError::Db(e) => e.into(),
        }
    }
}

impl ApiError {
    fn code(&self) -> &'static str {
        match self {
            ApiError::InvalidRequest(_) => "invalid_request",
            ApiError::InvalidClient => "invalid_client",
            ApiError::InvalidGrant(_) => "invalid_grant",
            ApiError::UnauthorizedClient(_) => "unauthorized_client",
            ApiError::UnsupportedGrantType(_) => "unsupported_grant_type",
            ApiError::InvalidScope(_) => "invalid_scope",
            // RFC 6750 §3.1 puts no error code in the challenge when the request carried no
            // token at all; the body needs one, and a missing token is a missing parameter.
            ApiError::MissingToken => "invalid_request",
            ApiError::InvalidBearerRequest(_) => "invalid_request",
            ApiError::InvalidToken(_) => "invalid_token",
            ApiError::InsufficientScope(_) | ApiError::InsufficientPrivileges { .. } => {
                "insufficient_scope"
            }
            // RFC 9470 §3, the step-up extension of RFC 6750's error codes.
            ApiError::StaleSignIn { .. } => "insufficient_user_authentication",
            ApiError::Forbidden(_) => "access_denied",
            ApiError::Validation { .. } => "invalid_request",
            ApiError::Conflict(_) => "conflict",
            ApiError::UnsupportedMediaType(_) => "invalid_request",
            ApiError::TooManyRequests { .. } => "too_many_requests",
            ApiError::NotFound => "not_found",
            ApiError::PayloadTooLarge(_) => "request_too_large",
            ApiError::MailNotConfigured(_) => "mail_not_configured",
            ApiError::Unavailable => "temporarily_unavailable",
            ApiError::Internal(_) => "server_error",
        }
    }

    fn www_authenticate(&self) -> Option<String> {
        match self {
            // RFC 6749 §5.2: invalid_client answers 401 with the scheme the client may use.
            ApiError::InvalidClient => Some(r#"Basic realm="tessera""#.into()),
            ApiError::MissingToken => Some(r#"Bearer realm="tessera""#.into()),
            ApiError::InvalidBearerRequest(description) => Some(format!(
                r#"Bearer realm="tessera", error="invalid_request", error_description="{}""#,
                quotable(description)
            )),
            ApiError::InvalidToken(description) => Some(format!(
                r#"Bearer realm="tessera", error="invalid_token", error_description="{}""#,
                quotable(description)
            )),
            ApiError::InsufficientScope(scope) | ApiError::InsufficientPrivileges { scope, .. } => {
                Some(format!(
                    r#"Bearer realm="tessera", error="insufficient_scope", scope="{scope}""#
                ))
            }
            ApiError::StaleSignIn { max_age } => Some(format!(
                r#"Bearer realm="tessera", error="insufficient_user_authentication", error_description="{}", max_age="{max_age}""#,
                quotable(&self.to_string())
            )),
            _ => None,
        }
    }
}

/// Text fit for a quoted-string in a challenge.
fn quotable(text: &str) -> String {
    text.replace(['"', '\\'], "")
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::InvalidRequest(_)
            | ApiError::InvalidBearerRequest(_)
            | ApiError::InvalidGrant(_)
            | ApiError::UnauthorizedClient(_)
            | ApiError::UnsupportedGrantType(_)
            | ApiError::InvalidScope(_) => StatusCode::BAD_REQUEST,
            ApiError::InvalidClient
            | ApiError::MissingToken
            | ApiError::InvalidToken(_)
            | ApiError::StaleSignIn { .. } => StatusCode::UNAUTHORIZED,
            ApiError::InsufficientScope(_)
            | ApiError::InsufficientPrivileges { .. }
            | ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::Validation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unavailable | ApiError::MailNotConfigured(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let ApiError::Internal(cause) = self {
            tracing::error!(error = ?cause, "request failed");
        }
        let mut response = HttpResponse::build(self.status_code());
        match self {
            ApiError::Unavailable => {
                response.insert_header((header::RETRY_AFTER, RETRY_AFTER_SECS));
            }
            ApiError::TooManyRequests { retry_after, .. } => {
                response.insert_header((header::RETRY_AFTER, retry_after.max(&1).to_string()));
            }
            _ => {}
        }
        if let Some(challenge) = self.www_authenticate()
            && let Ok(value) = HeaderValue::from_str(&challenge)
        {
            response.insert_header((header::WWW_AUTHENTICATE, value));
        }
        // RFC 6749 §5.1 asks this of token responses; no error is worth caching either.
        response.insert_header((header::CACHE_CONTROL, "no-store"));
        let field = match self {
            ApiError::Validation { field, .. } => Some(*field),
            _ => None,
        };
        response.json(ErrorBody {
            error: self.code().into(),
            error_description: self.to_string().into(),
            field: field.map(Into::into),
        })
    }
}

/// A JSON body for an error response that has none, or a plain-text one from actix itself
/// (404 from routing, 405 from a method guard, 413 and 400 from extractors).
pub fn json_error_body<B: MessageBody + 'static>(
    res: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    // Our own bodies (JSON errors, HTML pages) stay; actix's are empty or text/plain.
    let ours = res
        .response()
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json") || v.starts_with("text/html"));
    if ours {
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
        error: error.into(),
        error_description: description.into(),
        field: None,
    });
    for name in [header::ALLOW, header::RETRY_AFTER, header::WWW_AUTHENTICATE] {
        if let Some(value) = old.headers().get(&name) {
            new.headers_mut().insert(name, value.clone());
        }
    }
    let res = ServiceResponse::new(req, new).map_into_right_body();
    Ok(ErrorHandlerResponse::Response(res))
}
