//! GET/POST /userinfo (OIDC Core §5.3): the signed-in user's claims, released by the access
//! token's scope.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;

use super::AppState;
use super::bearer;
use super::error::ApiError;
use crate::db::{DbError, repo};
use crate::tokens::UserClaims;

pub const PATH: &str = "/userinfo";
pub const LOGOUT_EVERYWHERE_PATH: &str = "/logout-everywhere";

#[derive(Serialize)]
struct UserInfo {
    sub: String,
    #[serde(flatten)]
    claims: UserClaims,
}

pub async fn userinfo(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let svc = &state.services;
    let claims = bearer::authenticate(&req, svc).await?;
    if !claims.has_scope("openid") {
        return Err(ApiError::InsufficientScope("openid"));
    }
    let user_id = claims.sub.clone();
    let user = svc
        .db
        .run(move |conn| repo::users::find_by_id(conn, &user_id).map_err(DbError::from))
        .await?
        .filter(|u| u.disabled_at.is_none())
        .ok_or_else(|| {
            ApiError::InvalidToken("the token's user no longer exists or is disabled".into())
        })?;
    Ok(HttpResponse::Ok()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(UserInfo {
            sub: user.id.clone(),
            claims: UserClaims::for_scope(&user, &claims.scope),
        }))
}

/// POST /logout-everywhere: ends every session (refresh token family) of the token's user,
/// and revokes the token presented.
pub async fn logout_everywhere(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let svc = &state.services;
    let claims = bearer::authenticate(&req, svc).await?;
    if claims.sub == claims.client_id {
        return Err(ApiError::Forbidden(
            "a client token has no user to log out".into(),
        ));
    }
    let now = svc.clock.now();
    let revoked = svc
        .db
        .run(move |conn| {
            repo::revoked::insert(conn, &claims.jti, claims.exp)?;
            crate::sessions::logout_everywhere(conn, &claims.sub, "self", now)
        })
        .await?;
    Ok(HttpResponse::Ok()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(serde_json::json!({ "revoked_sessions": revoked })))
}
