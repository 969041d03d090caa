//! POST /users: self-registration, when enabled.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::AppState;
use super::error::ApiError;
use crate::accounts::{self, UserView};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    email: String,
    password: String,
    name: Option<String>,
}

#[derive(serde::Serialize)]
struct Registered {
    #[serde(flatten)]
    user: UserView,
    verification_email: &'static str,
}

pub async fn register(
    req: HttpRequest,
    body: web::Json<Registration>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let svc = &state.services;
    if !svc.settings.accounts.self_registration {
        return Err(ApiError::Forbidden("self-registration is disabled".into()));
    }
    let Registration {
        email,
        password,
        name,
    } = body.into_inner();
    let user = accounts::register(
        svc,
        &email,
        password,
        name.as_deref(),
        super::client_ip(&req, &state.services.settings.server.trusted_proxies),
    )
    .await?;
    // Tells the client whether to expect a mail, so a missing SMTP setup is said, not hidden.
    let verification_email = if svc.mailer.is_some() {
        "queued"
    } else {
        "not_configured"
    };
    Ok(HttpResponse::Created().json(Registered {
        user: UserView::from(&user),
        verification_email,
    }))
}
