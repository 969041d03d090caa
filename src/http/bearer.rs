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

use std::future::{Future, Ready, ready};
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::{Method, header};
use actix_web::{FromRequest, HttpRequest, web};

use super::error::ApiError;
use super::state::AppState;
use crate::audit::Actor;
use crate::domain::User;
use crate::services::Services;
use crate::tokens::status::{LiveToken, live_access_token};
use crate::tokens::{AccessClaims, Audience, verify_access_token};
use crate::usecases::sessions::PresentedToken;

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
async fn for_userinfo(
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
async fn for_own_endpoint(
    Bearer(token): Bearer,
    svc: &Services,
    scope: &'static str,
) -> Result<UserToken, ApiError> {
    for_a_user(authenticate(svc, &token, Some(scope)).await?)
}

/// The token of the `Authorization` header, not yet checked: for an endpoint that decides
/// itself what the token must be.
pub struct Bearer(pub String);

/// The caller of the admin API: a live token meant for this provider alone with the `admin`
/// scope, whose user is, right now, active and an administrator (a role removed since the
/// token was issued counts).
pub struct AdminToken {
    pub user: User,
}

impl AdminToken {
    /// The administrator as the audit trail names them.
    pub fn actor(&self) -> Actor {
        Actor::Admin(self.user.id.clone())
    }
}

impl UserToken {
    /// The token's user acting on their own account.
    pub fn actor(&self) -> Actor {
        Actor::User(self.user.id.clone())
    }

    /// The token itself, to be ended with the session it belongs to.
    pub fn presented(&self) -> PresentedToken {
        PresentedToken {
            jti: self.claims.jti.clone(),
            exp: self.claims.exp,
            sid: self.claims.sid.clone(),
        }
    }
}

/// A user token for /userinfo, which may come in a POST form body as well as in the header;
/// extracting it reads the body.
pub struct UserinfoToken(pub UserToken);

fn state(req: &HttpRequest) -> Result<web::Data<AppState>, ApiError> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("the app state is not registered")))
}

type Extracted<T> = Pin<Box<dyn Future<Output = Result<T, actix_web::Error>>>>;

impl Bearer {
    fn of(req: &HttpRequest) -> Result<Bearer, ApiError> {
        presented(req, None).map(Bearer)
    }
}

impl FromRequest for Bearer {
    type Error = ApiError;
    type Future = Ready<Result<Bearer, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Bearer::of(req))
    }
}

/// The self-service endpoints' caller: `account` scope, this provider alone as audience.
impl FromRequest for UserToken {
    type Error = actix_web::Error;
    type Future = Extracted<UserToken>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let token = Bearer::of(&req)?;
            Ok(for_own_endpoint(token, &state(&req)?.services, "account").await?)
        })
    }
}

impl FromRequest for AdminToken {
    type Error = actix_web::Error;
    type Future = Extracted<AdminToken>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let token = Bearer::of(&req)?;
            let UserToken { user, .. } =
                for_own_endpoint(token, &state(&req)?.services, "admin").await?;
            if !user.roles.is_admin() {
                return Err(ApiError::InsufficientPrivileges {
                    scope: "admin",
                    reason: "this user is not an administrator".into(),
                }
                .into());
            }
            Ok(AdminToken { user })
        })
    }
}

impl FromRequest for UserinfoToken {
    type Error = actix_web::Error;
    type Future = Extracted<UserinfoToken>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let body = web::Bytes::from_request(&req, payload);
        Box::pin(async move {
            let body = body.await?;
            let token = for_userinfo(&req, &body, &state(&req)?.services).await?;
            Ok(UserinfoToken(token))
        })
    }
}
