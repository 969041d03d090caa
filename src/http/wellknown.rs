//! `/.well-known/jwks.json` and the two discovery documents.
//!
//! The metadata lists exactly what this build serves: an endpoint appears here in the same
//! change that implements it, and a test fetches every URL it names.

use actix_web::http::header::{self, EntityTag, IfNoneMatch};
use actix_web::{HttpRequest, HttpResponse, web};
use tessera_proto::ProviderMetadata;

use super::AppState;

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

/// Both documents, serialised once at start-up.
#[derive(Debug, Clone)]
pub struct Metadata {
    pub openid: bytes::Bytes,
    pub oauth: bytes::Bytes,
}

impl Metadata {
    pub fn new(issuer: &str) -> Metadata {
        let url = |path: &str| Some(format!("{issuer}{path}"));
        let list = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // RFC 8414 §2: what an OAuth client needs; only what this build serves is listed.
        let oauth = ProviderMetadata {
            issuer: issuer.to_string(),
            jwks_uri: url("/.well-known/jwks.json"),
            token_endpoint: url(super::token::PATH),
            token_endpoint_auth_methods_supported: list(&[
                "client_secret_basic",
                "client_secret_post",
                "none",
            ]),
            authorization_endpoint: url(super::authorize::PATH),
            response_types_supported: list(&["code"]),
            response_modes_supported: list(&["query"]),
            code_challenge_methods_supported: list(&["S256"]),
            grant_types_supported: list(&[
                "authorization_code",
                "password",
                "client_credentials",
                "refresh_token",
            ]),
            revocation_endpoint: url(super::token::REVOKE_PATH),
            revocation_endpoint_auth_methods_supported: list(&[
                "client_secret_basic",
                "client_secret_post",
                "none",
            ]),
            introspection_endpoint: url(super::token::INTROSPECT_PATH),
            introspection_endpoint_auth_methods_supported: list(&[
                "client_secret_basic",
                "client_secret_post",
            ]),
            scopes_supported: list(&["openid", "email", "profile"]),
            ..ProviderMetadata::default()
        };
        // OpenID Connect Discovery §3 adds userinfo, subjects, ID-token signing and claims.
        let openid = ProviderMetadata {
            userinfo_endpoint: url(super::userinfo::PATH),
            subject_types_supported: list(&["public"]),
            id_token_signing_alg_values_supported: list(&[crate::keys::ALGORITHM]),
            claims_supported: list(&[
                "iss",
                "sub",
                "aud",
                "exp",
                "iat",
                "auth_time",
                "email",
                "email_verified",
                "name",
            ]),
            ..oauth.clone()
        };
        Metadata {
            openid: serde_json::to_vec(&openid).unwrap_or_default().into(),
            oauth: serde_json::to_vec(&oauth).unwrap_or_default().into(),
        }
    }
}
