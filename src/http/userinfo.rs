//! GET/POST /userinfo (OIDC Core §5.3): the signed-in user's claims, released by the access
//! token's scope.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;

use super::AppState;
use super::bearer::{self, UserToken};
use super::error::ApiError;
use crate::db::repo;
use crate::tokens::{UserClaims, user_claims};

pub const PATH: &str = "/userinfo";
pub const LOGOUT_EVERYWHERE_PATH: &str = "/logout-everywhere";

#[derive(Serialize)]
struct UserInfo {
    sub: String,
    #[serde(flatten)]
    claims: UserClaims,
}

/// GET or POST /userinfo. The token comes in the `Authorization` header, or in a POST form
/// body's `access_token` (RFC 6750 §2.2), not in both.
pub async fn userinfo(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let UserToken { claims, user } = bearer::for_userinfo(&req, &body, &state.services).await?;
    Ok(HttpResponse::Ok()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(UserInfo {
            sub: user.id.clone(),
            claims: user_claims(&user, &claims.scope),
        }))
}

/// POST /logout-everywhere, with an `account` token: ends every session (refresh token
/// family) of the token's user, and revokes the token presented.
pub async fn logout_everywhere(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let svc = &state.services;
    let UserToken { claims, user } = bearer::for_own_endpoint(&req, svc, "account").await?;
    let now = svc.clock.now();
    let revoked = svc
        .db
        .run(move |conn| {
            repo::revoked::insert(conn, &claims.jti, claims.exp)?;
            crate::sessions::logout_everywhere(conn, &user.id, "self", now)
        })
        .await?;
    Ok(HttpResponse::Ok()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(serde_json::json!({ "revoked_sessions": revoked })))
}
