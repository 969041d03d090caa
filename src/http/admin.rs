//! /admin: user and client management for users with the `admin` role, through an access
//! token carrying the `admin` scope whose only audience is this provider. The CLI does the
//! same offline.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::bearer::AdminToken;
use super::error::ApiError;
use super::paths;
use super::state::AppState;
use crate::accounts::{self, UserView};
use crate::clients::{ClientPatch, ClientSpec, ClientView};
use crate::usecases;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/admin/users").route(web::get().to(list_users)))
        .service(web::resource("/admin/users/{id}/disable").route(web::post().to(disable_user)))
        .service(web::resource("/admin/users/{id}/enable").route(web::post().to(enable_user)))
        .service(web::resource("/admin/users/{id}/roles").route(web::put().to(set_roles)))
        .service(web::resource("/admin/users/{id}/logout").route(web::post().to(logout_user)))
        .service(web::resource("/admin/users/{id}/mfa/reset").route(web::post().to(reset_mfa)))
        .service(web::resource("/admin/users/{id}").route(web::delete().to(delete_user)))
        .service(
            web::resource("/admin/users/{id}/verify-email").route(web::post().to(verify_email)),
        )
        .service(
            web::resource("/admin/clients")
                .route(web::get().to(list_clients))
                .route(web::post().to(create_client)),
        )
        .service(
            web::resource("/admin/clients/{id}")
                .route(web::get().to(show_client))
                .route(web::patch().to(update_client))
                .route(web::delete().to(delete_client)),
        )
        .service(web::resource(paths::ADMIN_USER_SESSIONS).route(web::get().to(list_sessions)))
        .service(web::resource(paths::ADMIN_SESSION).route(web::delete().to(end_session)));
}

/// Users per page of GET /admin/users unless `limit` says otherwise, and the most it may say.
const DEFAULT_PAGE: i64 = 50;
const MAX_PAGE: i64 = 200;

/// GET /admin/users?limit=&cursor=: `{"users": [...], "next_cursor": "…" | null}`, oldest
/// first; pass `next_cursor` back as `cursor` for the next page.
async fn list_users(
    _admin: AdminToken,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let svc = &state.services;
    let mut limit = DEFAULT_PAGE;
    let mut after = None;
    for (key, value) in form_urlencoded::parse(req.query_string().as_bytes()) {
        match key.as_ref() {
            "limit" => {
                limit = value
                    .parse::<i64>()
                    .ok()
                    .filter(|l| (1..=MAX_PAGE).contains(l))
                    .ok_or_else(|| {
                        ApiError::InvalidRequest(format!(
                            "limit must be a whole number from 1 to {MAX_PAGE}"
                        ))
                    })?;
            }
            "cursor" => {
                after = Some(accounts::Cursor::decode(&value).ok_or_else(|| {
                    ApiError::InvalidRequest(
                        "cursor is not one this server gave (pass next_cursor back as it is)"
                            .into(),
                    )
                })?);
            }
            _ => {}
        }
    }
    let page = svc
        .db
        .run(move |conn| usecases::users::list(conn, after.as_ref(), limit))
        .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "users": page.users.iter().map(UserView::from).collect::<Vec<_>>(),
        "next_cursor": page.next.map(|c| c.encode()),
    })))
}

async fn disable_user(
    admin: AdminToken,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (actor, user_id) = (admin.actor(), path.into_inner());
    let now = state.services.clock.now();
    let user = state
        .services
        .db
        .run(move |conn| usecases::users::disable(conn, &actor, &user_id, now))
        .await?;
    Ok(HttpResponse::Ok().json(UserView::from(&user)))
}

async fn enable_user(
    admin: AdminToken,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (actor, user_id) = (admin.actor(), path.into_inner());
    let now = state.services.clock.now();
    let user = state
        .services
        .db
        .run(move |conn| usecases::users::enable(conn, &actor, &user_id, now))
        .await?;
    Ok(HttpResponse::Ok().json(UserView::from(&user)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Roles {
    roles: Vec<String>,
}

async fn set_roles(
    admin: AdminToken,
    path: web::Path<String>,
    body: web::Json<Roles>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let svc = &state.services;
    let actor = admin.actor();
    let user_id = path.into_inner();
    let roles = body.into_inner().roles;
    let now = svc.clock.now();
    let user = svc
        .db
        .run(move |conn| usecases::users::set_roles(conn, &actor, &user_id, &roles, now))
        .await?;
    Ok(HttpResponse::Ok().json(UserView::from(&user)))
}

async fn list_clients(
    _admin: AdminToken,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let list = state.services.db.run(usecases::clients::list).await?;
    Ok(HttpResponse::Ok().json(list.iter().map(ClientView::from).collect::<Vec<_>>()))
}

async fn create_client(
    admin: AdminToken,
    body: web::Json<ClientSpec>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (actor, spec) = (admin.actor(), body.into_inner());
    let now = state.services.clock.now();
    let (client, secret) = state
        .services
        .db
        .run(move |conn| usecases::clients::add(conn, &actor, &spec, now))
        .await?;
    let mut view = ClientView::from(&client);
    view.client_secret = secret;
    Ok(HttpResponse::Created()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(view))
}

/// GET /admin/clients/{id}: the client as the list shows it.
async fn show_client(
    _admin: AdminToken,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let client_id = path.into_inner();
    let client = state
        .services
        .db
        .run(move |conn| usecases::clients::show(conn, &client_id))
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Ok().json(ClientView::from(&client)))
}

/// PATCH /admin/clients/{id}: changes the fields the body names (`ClientPatch`), checked as a
/// registration is; the client as it is now.
async fn update_client(
    admin: AdminToken,
    path: web::Path<String>,
    body: web::Json<ClientPatch>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (actor, client_id, patch) = (admin.actor(), path.into_inner(), body.into_inner());
    let now = state.services.clock.now();
    let client = state
        .services
        .db
        .run(move |conn| usecases::clients::update(conn, &actor, &client_id, &patch, now))
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Ok().json(ClientView::from(&client)))
}

async fn delete_client(
    admin: AdminToken,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (actor, client_id) = (admin.actor(), path.into_inner());
    let now = state.services.clock.now();
    let deleted = state
        .services
        .db
        .run(move |conn| usecases::clients::delete(conn, &actor, &client_id, now))
        .await?;
    if deleted {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::NotFound)
    }
}

async fn logout_user(
    admin: AdminToken,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (actor, user_id) = (admin.actor(), path.into_inner());
    let now = state.services.clock.now();
    let revoked = state
        .services
        .db
        .run(move |conn| usecases::sessions::logout_everywhere(conn, &actor, &user_id, None, now))
        .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "revoked_sessions": revoked })))
}

/// POST /admin/users/{id}/mfa/reset: for a person who lost every second factor, takes them
/// all away and ends the person's sessions; what was removed and ended.
async fn reset_mfa(
    admin: AdminToken,
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let svc = &state.services;
    let (actor, user_id) = (admin.actor(), path.into_inner());
    let now = svc.clock.now();
    let ip = super::state::client_ip(&req, &svc.settings.server.trusted_proxies);
    let reset = svc
        .db
        .run(move |conn| usecases::users::reset_mfa(conn, &actor, &user_id, ip.as_deref(), now))
        .await?;
    Ok(HttpResponse::Ok().json(reset))
}

/// DELETE /admin/users/{id}: deletes the account with its sessions, codes, federated
/// identities and unsent mail.
async fn delete_user(
    admin: AdminToken,
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let svc = &state.services;
    let (actor, user_id) = (admin.actor(), path.into_inner());
    let now = svc.clock.now();
    let ip = super::state::client_ip(&req, &svc.settings.server.trusted_proxies);
    svc.db
        .run(move |conn| usecases::users::delete(conn, &actor, &user_id, ip.as_deref(), now))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// POST /admin/users/{id}/verify-email: the operator vouches for the address.
async fn verify_email(
    admin: AdminToken,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (actor, user_id) = (admin.actor(), path.into_inner());
    let now = state.services.clock.now();
    let user = state
        .services
        .db
        .run(move |conn| usecases::users::verify_email(conn, &actor, &user_id, now))
        .await?;
    Ok(HttpResponse::Ok().json(UserView::from(&user)))
}

/// GET /admin/users/{id}/sessions: the user's browser sessions and refresh token families.
async fn list_sessions(
    _admin: AdminToken,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let user_id = path.into_inner();
    let now = state.services.clock.now();
    let list = state
        .services
        .db
        .run(move |conn| usecases::sessions::list(conn, &user_id, None, now))
        .await?;
    Ok(HttpResponse::Ok()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(list))
}

/// DELETE /admin/sessions/{id}: ends any user's browser session (with back-channel logout) or
/// refresh token family.
async fn end_session(
    admin: AdminToken,
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let svc = &state.services;
    let (actor, id) = (admin.actor(), path.into_inner());
    let now = svc.clock.now();
    let ip = super::state::client_ip(&req, &svc.settings.server.trusted_proxies);
    svc.db
        .run(move |conn| usecases::sessions::end(conn, &actor, None, &id, None, ip.as_deref(), now))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
