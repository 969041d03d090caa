//! GET/POST /userinfo (OIDC Core §5.3): the signed-in user's claims, released by the access
//! token's scope.

use actix_web::{HttpResponse, web};
use serde::Serialize;

use super::bearer::{UserToken, UserinfoToken};
use super::error::ApiError;
use super::state::AppState;
use crate::tokens::{UserClaims, user_claims};
use crate::usecases;

#[derive(Serialize)]
struct UserInfo {
    sub: String,
    #[serde(flatten)]
    claims: UserClaims,
}

/// GET or POST /userinfo. The token comes in the `Authorization` header, or in a POST form
/// body's `access_token` (RFC 6750 §2.2), not in both.
pub async fn userinfo(UserinfoToken(caller): UserinfoToken) -> Result<HttpResponse, ApiError> {
    let UserToken { claims, user } = caller;
    Ok(HttpResponse::Ok()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(UserInfo {
            sub: user.id.to_string(),
            claims: user_claims(&user, &crate::domain::ScopeSet::from_stored(&claims.scope)),
        }))
}

/// POST /logout-everywhere, with an `account` token: ends every session (refresh token
/// family) of the token's user, and revokes the token presented.
pub async fn logout_everywhere(
    caller: UserToken,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let svc = &state.services;
    let (actor, presented) = (caller.actor(), caller.presented());
    let user_id = caller.user.id;
    let now = svc.clock.now();
    let revoked = svc
        .db
        .run(move |conn| {
            usecases::sessions::logout_everywhere(conn, &actor, &user_id, Some(&presented), now)
        })
        .await?;
    // The browser sessions ended too: their apps are told now, not at the next look.
    svc.backchannel_wake.notify_one();
    Ok(HttpResponse::Ok()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(serde_json::json!({ "revoked_sessions": revoked })))
}
