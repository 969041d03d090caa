//! The device cookie: set on the login page's success, sent back with later sign-ins, so the
//! account-wide failed-login counter spares a browser its owner signed in with (see
//! `accounts::known`). A random server-made value whose hash is stored; HttpOnly, and
//! SameSite=Strict (only Tessera's own form sends it).

use actix_web::HttpRequest;
use actix_web::cookie::{Cookie, SameSite};

use crate::services::Services;

const NAME: &str = "tessera_device";
/// With an https issuer: the `__Host-` prefix, so no subdomain can set or shadow it.
const HOST_NAME: &str = "__Host-tessera_device";

fn name(svc: &Services) -> &'static str {
    if svc.issuer.starts_with("https://") {
        HOST_NAME
    } else {
        NAME
    }
}

/// The device value the browser sent, if any.
pub fn presented(req: &HttpRequest, svc: &Services) -> Option<String> {
    req.cookie(name(svc)).map(|c| c.value().to_string())
}

pub fn cookie(svc: &Services, value: String) -> Cookie<'static> {
    Cookie::build(name(svc), value)
        .path("/")
        .http_only(true)
        .secure(svc.issuer.starts_with("https://"))
        .same_site(SameSite::Strict)
        .max_age(actix_web::cookie::time::Duration::seconds(
            svc.settings.throttle.known_sign_in_ttl_secs,
        ))
        .finish()
}
