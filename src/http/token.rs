//! POST /token (RFC 6749 §3.2): form-encoded parameters, client authentication by
//! `client_secret_basic`, `client_secret_post` or, for public clients, `client_id` alone.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::error::ApiError;
use super::state::AppState;
use crate::clients::ClientAuth;
use crate::grants::{self, Params, TokenRequest};

pub async fn token(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (params, client) = form_request(&req, &body, "the token endpoint")?;
    let request = TokenRequest {
        params,
        client,
        ip: super::state::client_ip(&req, &state.services.settings.server.trusted_proxies),
    };
    let response = grants::endpoint::token(&state.services, request).await?;
    let mut http = HttpResponse::Ok().json(response);
    let headers = http.headers_mut();
    // RFC 6749 §5.1.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    Ok(http)
}

/// What the token, revocation and introspection endpoints all take: a form body (RFC 6749
/// §3.2, RFC 7009 §2.1, RFC 7662 §2.1) and the client's credentials. `endpoint` names the
/// endpoint in the answer to a body that is not a form.
fn form_request(
    req: &HttpRequest,
    body: &[u8],
    endpoint: &str,
) -> Result<(Params, ClientAuth), ApiError> {
    require_form(req, endpoint)?;
    let params = Params::from_form(body)?;
    let client = client_auth(req, &params)?;
    Ok((params, client))
}

fn require_form(req: &HttpRequest, endpoint: &str) -> Result<(), ApiError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        Ok(())
    } else {
        Err(ApiError::InvalidRequest(format!(
            "{endpoint} takes application/x-www-form-urlencoded"
        )))
    }
}

/// RFC 6749 §2.3.1: Basic carries the form-urlencoded id and secret; the body may carry them
/// instead; using both is refused.
fn client_auth(req: &HttpRequest, params: &Params) -> Result<ClientAuth, ApiError> {
    let basic = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(parse_basic)
        .transpose()?;
    match (basic, params.get("client_id"), params.get("client_secret")) {
        (Some(_), _, Some(_)) => Err(ApiError::InvalidRequest(
            "use one client authentication method, not two".into(),
        )),
        (Some((id, _)), Some(body_id), None) if body_id != id => Err(ApiError::InvalidRequest(
            "client_id does not match the Authorization header".into(),
        )),
        (Some((client_id, secret)), _, None) => Ok(ClientAuth::Secret { client_id, secret }),
        (None, Some(id), Some(secret)) => Ok(ClientAuth::Secret {
            client_id: id.to_string(),
            secret: secret.to_string(),
        }),
        (None, Some(id), None) => Ok(ClientAuth::Public {
            client_id: id.to_string(),
        }),
        (None, None, _) => Err(ApiError::InvalidClient),
    }
}

fn parse_basic(value: &HeaderValue) -> Result<(String, String), ApiError> {
    let malformed = || ApiError::InvalidClient;
    let text = value.to_str().map_err(|_| malformed())?;
    let (scheme, encoded) = text.split_once(' ').ok_or_else(malformed)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(malformed());
    }
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| malformed())?;
    let decoded = String::from_utf8(decoded).map_err(|_| malformed())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(malformed)?;
    let unescape = |s: &str| {
        form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    let (id, secret) = (unescape(id), unescape(secret));
    if id.is_empty() || id.chars().chain(secret.chars()).any(char::is_control) {
        return Err(malformed());
    }
    Ok((id, secret))
}

/// POST /revoke (RFC 7009): 200 whether or not the token was known.
pub async fn revoke(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let svc = &state.services;
    let (params, client) = form_request(&req, &body, "the revocation endpoint")?;
    let client = grants::authenticate_client(svc, &client).await?;
    crate::tokens::status::revoke(svc, &client, params.required("token")?).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish())
}

/// POST /introspect (RFC 7662), for confidential clients (resource servers).
pub async fn introspect(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let svc = &state.services;
    let (params, client) = form_request(&req, &body, "the introspection endpoint")?;
    let answer = crate::tokens::status::introspect(svc, &client, params.required("token")).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(answer))
}
