//! Reading a browser request and answering it with a redirect: shared by the login page, the
//! upstream sign-in and the account pages.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse};

use super::pages::error_page;
use crate::authorize::AuthorizeError;
use crate::grants::Params;
use crate::services::Services;

/// The answer to a form post that fails its CSRF or Origin check.
pub const FORGED_FORM: &str = "This sign-in form has expired or did not come from this site. Go back to the application and start again.";
/// The authorization request's own parameters, carried through the login form.
pub const CARRIED: &[&str] = &[
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    // `consent` must survive the login form; `login` and `max_age` are met by it.
    "prompt",
    "id_token_hint",
    // The class asked for must reach the code issued after a form (the second step).
    "acr_values",
];

/// The query string's parameters, or the error page for a malformed (e.g. repeated) one.
pub fn query_params(req: &HttpRequest) -> Result<Params, Box<HttpResponse>> {
    Params::from_form(req.query_string().as_bytes())
        .map_err(|e| Box::new(error_page(StatusCode::BAD_REQUEST, &e.to_string())))
}

/// A 303 to `location`, never cached (it may carry a code).
pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

/// The authorization request's own parameters as a query string, to carry through a sign-in.
pub fn carried_query(params: &Params) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for name in CARRIED {
        if let Some(value) = params.get(name) {
            query.append_pair(name, value);
        }
    }
    query.finish()
}

pub fn refusal(e: AuthorizeError) -> HttpResponse {
    if let Some(location) = e.redirect_location() {
        return see_other(&location);
    }
    match e {
        AuthorizeError::Db(e) => {
            tracing::error!(error = %e, "authorization request failed");
            error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Sign-in is unavailable just now. Please try again shortly.",
            )
        }
        other => error_page(StatusCode::BAD_REQUEST, &other.to_string()),
    }
}

/// Whether a form post came from our own page: the double-submit check (the form's field
/// equals its cookie, in constant time, and neither is empty: a removed cookie's value is) and
/// the `Origin` check behind it.
pub fn form_is_ours(
    req: &HttpRequest,
    svc: &Services,
    cookie: Option<&str>,
    field: Option<&str>,
) -> bool {
    let csrf_ok = match (cookie, field) {
        (Some(cookie), Some(field)) if !cookie.is_empty() => {
            crate::crypto::constant_time_eq(cookie.as_bytes(), field.as_bytes())
        }
        _ => false,
    };
    csrf_ok && same_origin(req, svc)
}

/// The second line behind the CSRF cookie: a form post whose `Origin` is another site's (or
/// `null`, an opaque origin) is refused. Our own origin is the issuer's, or the one the browser
/// addressed (e.g. `localhost` for an issuer of `127.0.0.1`); a cross-site form cannot forge
/// either. A post with no `Origin` at all (older browsers, non-browser clients) passes: the
/// CSRF cookie, SameSite=Lax, still guards it.
pub fn same_origin(req: &HttpRequest, svc: &Services) -> bool {
    let Some(origin) = req.headers().get(header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let Ok(issuer) = url::Url::parse(&svc.issuer) else {
        return false;
    };
    // The host the browser addressed, from `Host` itself: `Forwarded`/`X-Forwarded-Host` come
    // from whoever sends the request and are not believed here.
    let addressed = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|host| format!("{}://{host}", issuer.scheme()));
    origin != "null"
        && (origin == issuer.origin().ascii_serialization()
            || addressed.is_some_and(|a| origin.eq_ignore_ascii_case(&a)))
}

/// A form posted from one of the authorization pages (login, consent): its fields, once the
/// double-submit CSRF check and the `Origin` check pass, and the authorization request it
/// carries, checked again; or the page that refuses it.
pub async fn posted_authorization(
    req: &HttpRequest,
    svc: &Services,
    body: &[u8],
) -> Result<(Params, crate::authorize::AuthorizationRequest), HttpResponse> {
    let params =
        Params::from_form(body).map_err(|e| error_page(StatusCode::BAD_REQUEST, &e.to_string()))?;
    let cookie = super::cookies::LOGIN_CSRF.read(req, svc);
    if !form_is_ours(
        req,
        svc,
        cookie.as_deref(),
        params.get(super::pages::CSRF_FIELD),
    ) {
        return Err(error_page(StatusCode::FORBIDDEN, FORGED_FORM));
    }
    let request = crate::authorize::validate(svc, &params)
        .await
        .map_err(refusal)?;
    Ok((params, request))
}
