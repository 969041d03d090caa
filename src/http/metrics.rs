//! GET /metrics: the Prometheus text exposition of `crate::metrics`.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, web};

use super::paths;
use super::state::AppState;

pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let mut response = HttpResponse::Ok()
        .content_type(crate::metrics::CONTENT_TYPE)
        .body(state.services.render_metrics());
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The one route, for the main listener or a listener of its own (`metrics.bind`).
pub fn route(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource(paths::METRICS).route(web::get().to(metrics)));
}
