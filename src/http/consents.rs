//! /account/consents: the third-party apps a person has allowed, and withdrawing one. Both
//! take an `account` token (a token meant for Tessera alone); the person only ever sees and
//! touches their own consents.

use actix_web::http::header;
use actix_web::{HttpResponse, web};

use super::bearer::UserToken;
use super::error::ApiError;
use super::paths;
use super::state::AppState;
use crate::sso::consent;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource(paths::ACCOUNT_CONSENTS).route(web::get().to(list)))
        .service(web::resource(paths::ACCOUNT_CONSENT).route(web::delete().to(revoke)));
}

/// GET /account/consents: `[{client_id, client_name, scopes, granted_at, updated_at}]`.
async fn list(caller: UserToken, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let user_id = caller.user.id.to_string();
    let consents = state
        .services
        .db
        .run(move |conn| consent::list(conn, &user_id))
        .await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(consents))
}

/// DELETE /account/consents/{client_id}: withdraws the consent and ends the app's refresh
/// tokens for the person; 404 if they have no consent for that client.
async fn revoke(
    caller: UserToken,
    client_id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (actor, user_id) = (caller.actor(), caller.user.id.to_string());
    let client_id = client_id.into_inner();
    let now = state.services.clock.now();
    state
        .services
        .db
        .run(move |conn| consent::revoke(conn, &actor, &user_id, &client_id, now))
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::NoContent().finish())
}
