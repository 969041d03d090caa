//! The cookies Tessera sets in browsers, named and scoped in one place. Under an https issuer
//! each carries the `__Host-` prefix, so the browser accepts it only with `Secure`, `Path=/` and
//! no `Domain`: no sibling subdomain or plain-http page can plant or overwrite it. Under plain
//! http (development, tests) the prefix would make browsers drop the cookie, so the plain name
//! and the narrower path are used.

use actix_web::HttpRequest;
use actix_web::cookie::{Cookie, SameSite};

use crate::services::Services;

/// One kind of cookie: its name with and without the prefix, its path under plain http, and
/// when the browser sends it.
pub struct BrowserCookie {
    plain: &'static str,
    prefixed: &'static str,
    http_path: &'static str,
    same_site: SameSite,
}

/// The double-submit CSRF cookie of the login form (`/authorize`).
pub const LOGIN_CSRF: BrowserCookie = BrowserCookie {
    plain: "tessera_csrf",
    prefixed: "__Host-tessera_csrf",
    http_path: "/authorize",
    same_site: SameSite::Lax,
};

/// The double-submit CSRF cookie of the "forgot password" form.
pub const FORGOT_PASSWORD_CSRF: BrowserCookie = BrowserCookie {
    plain: "tessera_forgot_csrf",
    prefixed: "__Host-tessera_forgot_csrf",
    http_path: "/account/forgot-password",
    same_site: SameSite::Lax,
};

/// The double-submit CSRF cookie of the "Sign out?" page (`/logout`). Strict: only the page's
/// own form, posted from this site, needs it back.
pub const LOGOUT_CSRF: BrowserCookie = BrowserCookie {
    plain: "tessera_logout_csrf",
    prefixed: "__Host-tessera_logout_csrf",
    http_path: "/logout",
    same_site: SameSite::Strict,
};

/// Binds an upstream sign-in in flight to the browser that started it.
pub const UPSTREAM_BINDING: BrowserCookie = BrowserCookie {
    plain: "tessera_upstream",
    prefixed: "__Host-tessera_upstream",
    http_path: "/auth/",
    same_site: SameSite::Lax,
};

/// The double-submit CSRF cookie of the page behind the mailed verification link.
pub const VERIFY_EMAIL_CSRF: BrowserCookie = BrowserCookie {
    plain: "tessera_verify_csrf",
    prefixed: "__Host-tessera_verify_csrf",
    http_path: "/account/verify-email",
    same_site: SameSite::Lax,
};

/// Binds a pending link of an upstream identity (the page asking for the account's password)
/// to the browser it was offered to; a fresh server-made secret, stored only as a hash.
pub const PENDING_LINK: BrowserCookie = BrowserCookie {
    plain: "tessera_link",
    prefixed: "__Host-tessera_link",
    http_path: "/auth/link",
    same_site: SameSite::Lax,
};

/// The double-submit CSRF cookie of the "Create account" form.
pub const REGISTER_CSRF: BrowserCookie = BrowserCookie {
    plain: "tessera_register_csrf",
    prefixed: "__Host-tessera_register_csrf",
    http_path: "/account/register",
    same_site: SameSite::Strict,
};

/// The double-submit CSRF cookie of the account security page's forms. Strict: only the
/// page's own forms, posted from this site, need it back.
pub const SECURITY_CSRF: BrowserCookie = BrowserCookie {
    plain: "tessera_security_csrf",
    prefixed: "__Host-tessera_security_csrf",
    http_path: "/account/security",
    same_site: SameSite::Strict,
};

/// Marks a browser its owner signed in with, so the account-wide failure counter spares it
/// (`accounts::known`). Strict: only Tessera's own form posts need it, never a navigation from
/// elsewhere.
/// The passkeys page's double-submit CSRF token.
pub const PASSKEYS_CSRF: BrowserCookie = BrowserCookie {
    plain: "tessera_passkeys_csrf",
    prefixed: "__Host-tessera_passkeys_csrf",
    http_path: "/account/passkeys",
    same_site: SameSite::Strict,
};

pub const DEVICE: BrowserCookie = BrowserCookie {
    plain: "tessera_device",
    prefixed: "__Host-tessera_device",
    http_path: "/",
    same_site: SameSite::Strict,
};

/// The browser session at Tessera (single sign-on). Lax, so that an app's top-level
/// navigation to `/authorize` carries it; never readable from script.
pub const SESSION: BrowserCookie = BrowserCookie {
    plain: "tessera_session",
    prefixed: "__Host-tessera_session",
    http_path: "/",
    same_site: SameSite::Lax,
};

/// The second step of a sign-in in flight (`mfa::pending`): a fresh server-made secret,
/// stored only as a hash, for five minutes. Lax, like the login form it follows.
pub const MFA_PENDING: BrowserCookie = BrowserCookie {
    plain: "tessera_mfa",
    prefixed: "__Host-tessera_mfa",
    http_path: "/authorize",
    same_site: SameSite::Lax,
};

fn is_https(svc: &Services) -> bool {
    svc.issuer.starts_with("https://")
}

impl BrowserCookie {
    /// The name this server uses: prefixed under an https issuer.
    pub fn name(&self, svc: &Services) -> &'static str {
        if is_https(svc) {
            self.prefixed
        } else {
            self.plain
        }
    }

    fn path(&self, svc: &Services) -> &'static str {
        if is_https(svc) { "/" } else { self.http_path }
    }

    /// The cookie with `value`: HttpOnly, Secure under https, living `max_age`; SameSite=Lax for
    /// those that must come back on the top-level navigations that finish a flow.
    pub fn build<'a>(
        &self,
        svc: &Services,
        value: &'a str,
        max_age: actix_web::cookie::time::Duration,
    ) -> Cookie<'a> {
        Cookie::build(self.name(svc), value)
            .path(self.path(svc))
            .http_only(true)
            .secure(is_https(svc))
            .same_site(self.same_site)
            .max_age(max_age)
            .finish()
    }

    /// As `build`, but gone when the browser closes (no `Max-Age`).
    pub fn build_for_browser_session<'a>(&self, svc: &Services, value: &'a str) -> Cookie<'a> {
        Cookie::build(self.name(svc), value)
            .path(self.path(svc))
            .http_only(true)
            .secure(is_https(svc))
            .same_site(self.same_site)
            .finish()
    }

    /// A cookie that makes the browser forget this one.
    pub fn removal(&self, svc: &Services) -> Cookie<'static> {
        let mut cookie = Cookie::build(self.name(svc), "")
            .path(self.path(svc))
            .http_only(true)
            .secure(is_https(svc))
            .same_site(self.same_site)
            .finish();
        cookie.make_removal();
        cookie
    }

    /// This cookie's value as the request presents it, under the name this server uses.
    pub fn read(&self, req: &HttpRequest, svc: &Services) -> Option<String> {
        req.cookie(self.name(svc)).map(|c| c.value().to_string())
    }
}
