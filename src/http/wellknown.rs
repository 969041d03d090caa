//! `/.well-known/jwks.json` and the two discovery documents.
//!
//! The metadata lists exactly what this build serves: an endpoint appears here in the same
//! change that implements it, and a test fetches every URL it names.

use actix_web::http::header::{self, EntityTag, IfNoneMatch};
use actix_web::{HttpRequest, HttpResponse, web};

use super::state::AppState;

pub async fn jwks(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let ring = state.services.keys.current();
    let cache_control = state.jwks_cache_control.clone();
    let etag = ring.etag();
    if not_modified(&req, etag) {
        return HttpResponse::NotModified()
            .insert_header((header::ETAG, etag))
            .insert_header((header::CACHE_CONTROL, cache_control))
            .finish();
    }
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, cache_control))
        .body(ring.jwks_json().clone())
}

fn not_modified(req: &HttpRequest, etag: &str) -> bool {
    let Ok(ours) = etag.parse::<EntityTag>() else {
        return false;
    };
    // RFC 9110 §13.1.2: If-None-Match uses the weak comparison.
    match <IfNoneMatch as header::Header>::parse(req) {
        Ok(IfNoneMatch::Any) => true,
        Ok(IfNoneMatch::Items(tags)) => tags.iter().any(|t| t.weak_eq(&ours)),
        Err(_) => false,
    }
}

pub async fn openid_configuration(state: web::Data<AppState>) -> HttpResponse {
    metadata_response(&state.metadata.openid)
}

pub async fn oauth_authorization_server(state: web::Data<AppState>) -> HttpResponse {
    metadata_response(&state.metadata.oauth)
}

fn metadata_response(body: &bytes::Bytes) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(body.clone())
}
