//! actix-web integration: the [`Authenticated`] extractor and the [`RequireScope`] middleware.
//!
//! Both find the [`Verifier`] in the app data (`App::app_data(verifier.clone())` or
//! `web::Data<Verifier>`) and answer as RFC 6750 §3: no token or a bad token → 401
//! `WWW-Authenticate: Bearer error="invalid_token"` (for a missing token RFC 6750 §3.1 would
//! allow a bare challenge; one answer for both keeps clients simple); a good token
//! without the scope → 403 `error="insufficient_scope" scope="…"`. Bodies are JSON
//! `{"error", "error_description"}`.
//!
//! ```no_run
//! use actix_web::{App, HttpResponse, web};
//! use tessera_verify::Verifier;
//! use tessera_verify::actix::{Authenticated, RequireScope};
//!
//! async fn whoami(user: Authenticated) -> HttpResponse {
//!     HttpResponse::Ok().body(user.sub.clone())
//! }
//!
//! # fn app(verifier: Verifier) {
//! let app = App::new().app_data(verifier).service(
//!     web::scope("/notes")
//!         .wrap(RequireScope::new("notes"))
//!         .route("/me", web::get().to(whoami)),
//! );
//! # }
//! ```

use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError, web};

use crate::{Claims, Verifier, VerifyError};

/// Why a request was refused; answers with the status and `WWW-Authenticate` of RFC 6750.
#[derive(Debug, thiserror::Error)]
pub enum BearerError {
    /// No `Authorization: Bearer` credentials at all (§3.1: no error code then).
    #[error("an access token is required")]
    Missing,
    #[error("{0}")]
    InvalidToken(VerifyError),
    #[error("the token lacks the scope {0}")]
    InsufficientScope(String),
    /// A check of the application's own (e.g. a role), reported with `insufficient_scope`
    /// semantics but without a `scope` parameter.
    #[error("{0}")]
    Forbidden(String),
    /// The application registered no `Verifier`: a programming error, not the client's.
    #[error("the server cannot verify tokens")]
    NotConfigured,
}

impl BearerError {
    fn code(&self) -> &'static str {
        match self {
            BearerError::Missing => "invalid_token",
            BearerError::InvalidToken(_) => "invalid_token",
            BearerError::InsufficientScope(_) => "insufficient_scope",
            BearerError::Forbidden(_) => "access_denied",
            BearerError::NotConfigured => "server_error",
        }
    }
}

impl ResponseError for BearerError {
    fn status_code(&self) -> StatusCode {
        match self {
            BearerError::Missing | BearerError::InvalidToken(_) => StatusCode::UNAUTHORIZED,
            BearerError::InsufficientScope(_) | BearerError::Forbidden(_) => StatusCode::FORBIDDEN,
            BearerError::NotConfigured => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let challenge = match self {
            BearerError::Missing => Some(
                r#"Bearer error="invalid_token", error_description="no bearer token""#.to_string(),
            ),
            BearerError::InvalidToken(e) => Some(format!(
                r#"Bearer error="invalid_token", error_description="{}""#,
                quoted(&e.to_string())
            )),
            BearerError::InsufficientScope(scope) => Some(format!(
                r#"Bearer error="insufficient_scope", scope="{}""#,
                quoted(scope)
            )),
            BearerError::Forbidden(_) | BearerError::NotConfigured => None,
        };
        let mut response = HttpResponse::build(self.status_code());
        if let Some(value) = challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            response.insert_header((header::WWW_AUTHENTICATE, value));
        }
        response.insert_header((header::CACHE_CONTROL, "no-store"));
        response.json(serde_json::json!({
            "error": self.code(),
            "error_description": self.to_string(),
        }))
    }
}

/// Keeps a header parameter a valid quoted-string (RFC 6750 §3 allows no `"` or `\`).
fn quoted(text: &str) -> String {
    text.chars()
        .filter(|c| matches!(c, ' ' | '!' | '#'..='[' | ']'..='~'))
        .collect()
}

/// The verified claims of the request's bearer token. As an extractor it verifies the token
/// (or reuses the claims [`RequireScope`] already verified).
#[derive(Debug, Clone)]
pub struct Authenticated(pub Claims);

impl std::ops::Deref for Authenticated {
    type Target = Claims;
    fn deref(&self) -> &Claims {
        &self.0
    }
}

impl Authenticated {
    /// 403 `insufficient_scope` unless the token carries `scope`.
    pub fn require_scope(&self, scope: &str) -> Result<(), BearerError> {
        if self.0.has_scope(scope) {
            Ok(())
        } else {
            Err(BearerError::InsufficientScope(scope.to_string()))
        }
    }

    /// 403 unless the user has `role`.
    pub fn require_role(&self, role: &str) -> Result<(), BearerError> {
        if self.0.has_role(role) {
            Ok(())
        } else {
            Err(BearerError::Forbidden(format!("requires the {role} role")))
        }
    }
}

fn verifier(req: &HttpRequest) -> Option<Verifier> {
    req.app_data::<Verifier>()
        .or_else(|| req.app_data::<web::Data<Verifier>>().map(|d| d.get_ref()))
        .cloned()
}

/// The token of `Authorization: Bearer <token>` (scheme case-insensitive, RFC 6750 §2.1).
fn bearer_token(req: &HttpRequest) -> Result<String, BearerError> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Err(BearerError::Missing);
    };
    let value = value
        .to_str()
        .map_err(|_| BearerError::InvalidToken(VerifyError::Malformed))?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
            let token = token.trim();
            if token.is_empty() {
                Err(BearerError::InvalidToken(VerifyError::Malformed))
            } else {
                Ok(token.to_string())
            }
        }
        // Another scheme (Basic, …) carries no bearer token.
        _ => Err(BearerError::Missing),
    }
}

async fn authenticate(req: HttpRequest) -> Result<Claims, BearerError> {
    if let Some(claims) = req.extensions().get::<Claims>() {
        return Ok(claims.clone());
    }
    let verifier = verifier(&req).ok_or(BearerError::NotConfigured)?;
    let token = bearer_token(&req)?;
    let claims = verifier
        .verify(&token)
        .await
        .map_err(BearerError::InvalidToken)?;
    req.extensions_mut().insert(claims.clone());
    Ok(claims)
}

impl FromRequest for Authenticated {
    type Error = BearerError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, BearerError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { authenticate(req).await.map(Authenticated) })
    }
}

/// Middleware: every request must carry a valid token with `scope`; the verified claims are
/// left in the request for [`Authenticated`].
#[derive(Debug, Clone)]
pub struct RequireScope {
    scope: Arc<str>,
}

impl RequireScope {
    pub fn new(scope: &str) -> RequireScope {
        RequireScope {
            scope: Arc::from(scope),
        }
    }
}

impl<S, B> Transform<S, ServiceRequest> for RequireScope
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Transform = RequireScopeService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, ()>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(RequireScopeService {
            service: Rc::new(service),
            scope: self.scope.clone(),
        }))
    }
}

pub struct RequireScopeService<S> {
    service: Rc<S>,
    scope: Arc<str>,
}

impl<S, B> Service<ServiceRequest> for RequireScopeService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>>>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let service = self.service.clone();
        let scope = self.scope.clone();
        Box::pin(async move {
            let refused = match authenticate(req.request().clone()).await {
                Ok(claims) if claims.has_scope(&scope) => None,
                Ok(_) => Some(BearerError::InsufficientScope(scope.to_string())),
                Err(e) => Some(e),
            };
            match refused {
                None => service.call(req).await.map(|r| r.map_into_left_body()),
                Some(error) => Ok(req.error_response(error).map_into_right_body()),
            }
        })
    }
}
