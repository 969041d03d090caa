//! Bearer tokens on this provider's own protected endpoints (RFC 6750). The token comes in the
//! `Authorization` header (§2.1) or, at userinfo, in a POST form body's `access_token` (§2.2),
//! never both (§2). Whether it is live is `sessions::live_access_token`'s decision, the same
//! one introspection makes; this module adds what each endpoint asks of the token:
//! - userinfo: this provider among its audiences (OpenID Connect), and `openid`;
//! - self-service (`account`) and the admin API (`admin`): this provider as its *only*
//!   audience and the endpoint's scope, so a token any resource server has received never
//!   works here.
//!
//! Refusals use RFC 6750's codes: `invalid_request` (no token, or two), `invalid_token`,
//! `insufficient_scope`; and RFC 9470's `insufficient_user_authentication` where a recent
//! sign-in is needed.

use actix_web::HttpRequest;
use actix_web::http::{Method, header};

use super::error::ApiError;
use crate::domain::User;
use crate::services::Services;
use crate::sessions::{LiveToken, live_access_token};
use crate::tokens::{AccessClaims, Audience, verify_access_token};

/// A live token that speaks for a user, with that user as they are now.
pub struct UserToken {
    pub claims: AccessClaims,
    pub user: User,
}

/// The token in the `Authorization` header, if the request has one with the Bearer scheme.
fn header_token(req: &HttpRequest) -> Result<Option<String>, ApiError> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| ApiError::InvalidToken("the Authorization header is malformed".into()))?;
    Ok(match text.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
            Some(token.trim().to_string())
        }
        // Another scheme: as if no credentials came (RFC 6750 §3.1).
        _ => None,
    })
}

/// The `access_token` of a POST form body (RFC 6750 §2.2), if there is one.
fn form_token(req: &HttpRequest, body: &[u8]) -> Result<Option<String>, ApiError> {
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if req.method() != Method::POST || !is_form {
        return Ok(None);
    }
    let mut tokens = form_urlencoded::parse(body)
        .filter(|(name, _)| name == "access_token")
        .map(|(_, value)| value.into_owned());
    let first = tokens.next();
    if tokens.next().is_some() {
        return Err(ApiError::InvalidBearerRequest(
            "the access_token parameter is repeated".into(),
        ));
    }
    Ok(first.filter(|t| !t.is_empty()))
}

/// The token as RFC 6750 lets it come: in the header, or (where `body` is given) in the form
/// body, but not in both.
fn presented(req: &HttpRequest, body: Option<&[u8]>) -> Result<String, ApiError> {
    let in_header = header_token(req)?;
    let in_body = match body {
        Some(body) => form_token(req, body)?,
        None => None,
    };
    match (in_header, in_body) {
        (Some(_), Some(_)) => Err(ApiError::InvalidBearerRequest(
            "send the access token one way only: the Authorization header or the form body".into(),
        )),
        (Some(token), None) | (None, Some(token)) => Ok(token),
        (None, None) => Err(ApiError::MissingToken),
    }
}

/// Verifies the token for use here and decides whether it is live. With `own_scope`, the
/// token must also have this provider as its only audience and that scope.
async fn authenticate(
    svc: &Services,
    token: &str,
    own_scope: Option<&'static str>,
) -> Result<LiveToken, ApiError> {
    let claims = verify_access_token(token, &svc.keys.current(), &svc.issuer, svc.clock.now())
        .map_err(|e| ApiError::InvalidToken(e.to_string()))?;
    if let Some(scope) = own_scope {
        if !only_for(&claims.aud, &svc.issuer) {
            return Err(ApiError::InvalidToken(
                "the token is meant for other servers too; this endpoint takes a token for \
                 this provider alone"
                    .into(),
            ));
        }
        if !claims.has_scope(scope) {
            return Err(ApiError::InsufficientScope(scope));
        }
    }
    live_access_token(svc, claims)
        .await?
        .map_err(|dead| ApiError::InvalidToken(dead.to_string()))
}

fn only_for(aud: &Audience, issuer: &str) -> bool {
    match aud {
        Audience::One(one) => one == issuer,
        Audience::Many(many) => !many.is_empty() && many.iter().all(|a| a == issuer),
    }
}

fn for_a_user(live: LiveToken) -> Result<UserToken, ApiError> {
    match live.user {
        Some(user) => Ok(UserToken {
            claims: live.claims,
            user,
        }),
        None => Err(ApiError::InvalidToken(
            "the token speaks for a client, not for a user".into(),
        )),
    }
}

/// GET or POST /userinfo: a live user token with this provider among its audiences and the
/// `openid` scope, from the header or a POST form body.
pub async fn for_userinfo(
    req: &HttpRequest,
    body: &[u8],
    svc: &Services,
) -> Result<UserToken, ApiError> {
    let token = presented(req, Some(body))?;
    let live = authenticate(svc, &token, None).await?;
    if !live.claims.has_scope("openid") {
        return Err(ApiError::InsufficientScope("openid"));
    }
    for_a_user(live)
}

/// A live user token meant for this provider alone, with `scope` (`account` or `admin`).
pub async fn for_own_endpoint(
    req: &HttpRequest,
    svc: &Services,
    scope: &'static str,
) -> Result<UserToken, ApiError> {
    let token = presented(req, None)?;
    for_a_user(authenticate(svc, &token, Some(scope)).await?)
}
