//! /admin: user and client management for users with the `admin` role, through an access
//! token carrying the `admin` scope whose only audience is this provider. The CLI does the
//! same offline.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::AppState;
use super::bearer::{self, UserToken};
use super::error::ApiError;
use crate::accounts::{self, UserView};
use crate::audit::{self, Event, Record};
use crate::clients::{self, ClientError, ClientSpec, ClientView};
use crate::db::{DbError, repo};
use crate::services::Services;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/admin/users").route(web::get().to(list_users)))
        .service(web::resource("/admin/users/{id}/disable").route(web::post().to(disable_user)))
        .service(web::resource("/admin/users/{id}/enable").route(web::post().to(enable_user)))
        .service(web::resource("/admin/users/{id}/roles").route(web::put().to(set_roles)))
        .service(web::resource("/admin/users/{id}/logout").route(web::post().to(logout_user)))
        .service(web::resource("/admin/users/{id}").route(web::delete().to(delete_user)))
        .service(
            web::resource("/admin/users/{id}/verify-email").route(web::post().to(verify_email)),
        )
        .service(
            web::resource("/admin/clients")
                .route(web::get().to(list_clients))
                .route(web::post().to(create_client)),
        )
        .service(web::resource("/admin/clients/{id}").route(web::delete().to(delete_client)));
}

/// The caller, if its token is meant for this provider alone and has the `admin` scope, and
/// it is, right now, an active user with the admin role (a role removed since the token was
/// issued counts).
async fn require_admin(req: &HttpRequest, svc: &Services) -> Result<String, ApiError> {
    let UserToken { user, .. } = bearer::for_own_endpoint(req, svc, "admin").await?;
    if user.roles.is_admin() {
        Ok(user.id.into_string())
    } else {
        Err(ApiError::InsufficientPrivileges {
            scope: "admin",
            reason: "this user is not an administrator".into(),
        })
    }
}

/// Users per page of GET /admin/users unless `limit` says otherwise, and the most it may say.
const DEFAULT_PAGE: i64 = 50;
const MAX_PAGE: i64 = 200;

/// GET /admin/users?limit=&cursor=: `{"users": [...], "next_cursor": "…" | null}`, oldest
/// first; pass `next_cursor` back as `cursor` for the next page.
async fn list_users(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let svc = &state.services;
    require_admin(&req, svc).await?;
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
        .run(move |conn| accounts::list_users(conn, after.as_ref(), limit))
        .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "users": page.users.iter().map(UserView::from).collect::<Vec<_>>(),
        "next_cursor": page.next.map(|c| c.encode()),
    })))
}

async fn disable_user(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    toggle_user(req, path.into_inner(), state, true).await
}

async fn enable_user(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    toggle_user(req, path.into_inner(), state, false).await
}

async fn toggle_user(
    req: HttpRequest,
    user_id: String,
    state: web::Data<AppState>,
    disabled: bool,
) -> Result<HttpResponse, ApiError> {
    let svc = &state.services;
    let admin = require_admin(&req, svc).await?;
    let now = svc.clock.now();
    let user = svc
        .db
        .run(move |conn| accounts::set_disabled(conn, &user_id, disabled, Some(&admin), now))
        .await?;
    Ok(HttpResponse::Ok().json(UserView::from(&user)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Roles {
    roles: Vec<String>,
}

async fn set_roles(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Json<Roles>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let svc = &state.services;
    let admin = require_admin(&req, svc).await?;
    let user_id = path.into_inner();
    let roles = body.into_inner().roles;
    let now = svc.clock.now();
    let user = svc
        .db
        .run(move |conn| accounts::set_roles(conn, &user_id, &roles, Some(&admin), now))
        .await?;
    Ok(HttpResponse::Ok().json(UserView::from(&user)))
}

async fn list_clients(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let svc = &state.services;
    require_admin(&req, svc).await?;
    let list = svc
        .db
        .run(|conn| repo::clients::list(conn).map_err(DbError::from))
        .await?;
    Ok(HttpResponse::Ok().json(list.iter().map(ClientView::from).collect::<Vec<_>>()))
}

async fn create_client(
    req: HttpRequest,
    body: web::Json<ClientSpec>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let svc = &state.services;
    let admin = require_admin(&req, svc).await?;
    let spec = body.into_inner();
    let now = svc.clock.now();
    let (client, secret) = svc
        .db
        .run(move |conn| {
            let (client, secret) = clients::create(conn, &spec)?;
            audit_client(conn, Event::ClientCreated, &client.id, &admin, now)?;
            Ok::<_, ClientError>((client, secret))
        })
        .await?;
    let mut view = ClientView::from(&client);
    view.client_secret = secret;
    Ok(HttpResponse::Created()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(view))
}

async fn delete_client(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let svc = &state.services;
    let admin = require_admin(&req, svc).await?;
    let client_id = path.into_inner();
    let now = svc.clock.now();
    let deleted = svc
        .db
        .run(move |conn| {
            let deleted = clients::delete(conn, &client_id)?;
            if deleted {
                audit_client(conn, Event::ClientDeleted, &client_id, &admin, now)?;
            }
            Ok::<_, ClientError>(deleted)
        })
        .await?;
    if deleted {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::NotFound)
    }
}

fn audit_client(
    conn: &mut crate::db::DbConnection,
    event: Event,
    client_id: &str,
    admin: &str,
    now: i64,
) -> Result<(), DbError> {
    audit::record(
        conn,
        event,
        Record {
            user_id: Some(admin),
            client_id: Some(client_id),
            ..Record::default()
        },
        now,
    )
}

async fn logout_user(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let svc = &state.services;
    let admin = require_admin(&req, svc).await?;
    let user_id = path.into_inner();
    let now = svc.clock.now();
    let revoked = svc
        .db
        .run(move |conn| {
            if repo::users::find_by_id(conn, &user_id)?.is_none() {
                return Ok(None);
            }
            crate::sessions::logout_everywhere(conn, &user_id, &admin, now).map(Some)
        })
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "revoked_sessions": revoked })))
}

/// DELETE /admin/users/{id}: deletes the account with its sessions, codes, federated
/// identities and unsent mail.
async fn delete_user(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let svc = &state.services;
    let admin = require_admin(&req, svc).await?;
    let user_id = path.into_inner();
    let now = svc.clock.now();
    let ip = super::client_ip(&req, &svc.settings.server.trusted_proxies);
    svc.db
        .run(move |conn| {
            accounts::self_service::delete_account(conn, &user_id, &admin, ip.as_deref(), now)
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// POST /admin/users/{id}/verify-email: the operator vouches for the address.
async fn verify_email(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let svc = &state.services;
    let admin = require_admin(&req, svc).await?;
    let user_id = path.into_inner();
    let now = svc.clock.now();
    let user = svc
        .db
        .run(move |conn| {
            accounts::self_service::mark_verified_by_operator(conn, &user_id, &admin, now)
        })
        .await?;
    Ok(HttpResponse::Ok().json(UserView::from(&user)))
}
