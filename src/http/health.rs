//! Liveness and readiness for orchestrators.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use serde_json::json;

use super::state::AppState;

/// The process is up and answering.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// The database answers and signing keys are loaded: safe to route traffic here. Not while
/// draining after SIGTERM: the process is on its way out.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    if state.is_draining() {
        return HttpResponse::ServiceUnavailable()
            .insert_header((header::RETRY_AFTER, "5"))
            .json(json!({ "status": "draining" }));
    }
    let database = state.services.db.is_ready().await;
    let keys = !state.services.keys.current().keys().is_empty();
    let body = json!({
        "status": if database && keys { "ready" } else { "not_ready" },
        "database": if database { "ok" } else { "unavailable" },
        "keys": if keys { "ok" } else { "missing" },
    });
    if database && keys {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable()
            .insert_header((header::RETRY_AFTER, "5"))
            .json(body)
    }
}
