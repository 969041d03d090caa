//! Bearer tokens on protected endpoints (RFC 6750 §2.1): read from `Authorization`, verified
//! against our own published keys.

use actix_web::HttpRequest;
use actix_web::http::header;

use super::error::ApiError;
use crate::services::Services;
use crate::tokens::{AccessClaims, verify_access_token};

/// The token's claims, if it verifies for this server and has not been revoked.
pub async fn authenticate(req: &HttpRequest, svc: &Services) -> Result<AccessClaims, ApiError> {
    let claims = verify(req, svc)?;
    if crate::sessions::is_revoked(svc, &claims.jti).await? {
        return Err(ApiError::InvalidToken("the token has been revoked".into()));
    }
    Ok(claims)
}

fn verify(req: &HttpRequest, svc: &Services) -> Result<AccessClaims, ApiError> {
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or(ApiError::MissingToken)?;
    let text = value
        .to_str()
        .map_err(|_| ApiError::InvalidToken("the Authorization header is malformed".into()))?;
    let token = match text.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
        _ => return Err(ApiError::MissingToken),
    };
    verify_access_token(token, &svc.keys.current(), &svc.issuer, svc.clock.now())
        .map_err(|e| ApiError::InvalidToken(e.to_string()))
}
