//! Every HTML page a person sees, from the askama templates in `templates/pages/`: checked
//! when this crate compiles, escaped for HTML by default, and one layout and stylesheet for
//! all. Handlers fill one of these structs and hand it to `render`, which alone decides the
//! headers every page gets.

use actix_web::HttpResponse;
use actix_web::http::{StatusCode, header};
use askama::Template;

/// The hidden field of every form's double-submit CSRF token.
pub(super) const CSRF_FIELD: &str = "csrf_token";
/// The consent form's field naming the scopes its page listed: what the consent covers.
pub(super) const CONSENT_SCOPE_FIELD: &str = "consent_scope";

/// A page that only says something: a result, a refusal, an error.
#[derive(Template)]
#[template(path = "pages/message.html")]
pub(super) struct Message<'a> {
    title: &'a str,
    message: &'a str,
    /// `status` for a success, `alert` otherwise, so assistive technology reads a refusal out.
    role: &'static str,
}

/// GET/POST /authorize: the login form.
#[derive(Template)]
#[template(path = "pages/login.html")]
pub(super) struct Login<'a> {
    pub client_name: &'a str,
    /// The authorization request's own parameters, carried through the form.
    pub carried: Vec<(&'a str, &'a str)>,
    /// The same parameters as a query string, for the upstream providers' links.
    pub carried_query: &'a str,
    pub csrf: &'a str,
    /// The address typed before, kept after a failed attempt.
    pub email: Option<&'a str>,
    pub error: Option<&'a str>,
    /// Links only to what this server offers: a reset needs mail, an account registration.
    pub forgot_password: bool,
    pub register: bool,
    pub upstreams: Vec<Upstream<'a>>,
    /// "Sign in with a passkey" (off when the issuer has no domain for an RP ID).
    pub passkeys: bool,
}

/// GET /account/passkeys: the person's passkeys, to add, rename and remove.
#[derive(Template)]
#[template(path = "pages/passkeys.html")]
pub(super) struct Passkeys<'a> {
    pub account: &'a str,
    pub csrf: &'a str,
    /// Whether passkeys can be registered here at all.
    pub available: bool,
    pub notice: Option<&'a str>,
    pub error: Option<&'a str>,
    /// The passkey whose removal waits for a confirmation (the last second factor).
    pub confirm_remove: Option<&'a str>,
    pub passkeys: Vec<PasskeyLine<'a>>,
}

pub(super) struct PasskeyLine<'a> {
    pub id: &'a str,
    pub name: &'a str,
    /// "synced" or "device-bound".
    pub kind: &'static str,
    pub created: String,
    pub last_used: Option<String>,
}

/// The second step of a sign-in: one form per factor offered.
#[derive(Template)]
#[template(path = "pages/second_factor.html")]
pub(super) struct SecondFactor<'a> {
    pub client_name: &'a str,
    pub carried: Vec<(&'a str, &'a str)>,
    pub csrf: &'a str,
    pub error: Option<&'a str>,
    pub offered: Vec<crate::authorize::SecondFactor>,
    /// An authenticator app to set up first (the person must use a second factor, and has
    /// none).
    pub setup: Option<TotpSetup>,
    /// A passkey is offered: the page runs `/assets/passkey.js`.
    pub passkey_script: bool,
}

/// An authenticator app set up during sign-in: the recovery codes, once, and the way on.
#[derive(Template)]
#[template(path = "pages/enrolled.html")]
pub(super) struct Enrolled<'a> {
    pub client_name: &'a str,
    pub recovery_codes: Vec<String>,
    /// `/authorize` again, with the request: the session now answers it.
    pub continue_to: String,
}

/// The consent page of a third-party app: what it asks for, each scope described.
#[derive(Template)]
#[template(path = "pages/consent.html")]
pub(super) struct Consent<'a> {
    pub client_name: &'a str,
    /// Who is signed in (the address, or the name of an account without one).
    pub account: &'a str,
    pub scopes: Vec<ScopeLine<'a>>,
    pub carried: Vec<(&'a str, &'a str)>,
    pub csrf: &'a str,
    /// The session the page was shown in: a consent posted after someone else signed in, in
    /// another tab, grants nothing.
    pub session_id: &'a str,
    /// The scopes listed, space-separated: the consent covers these and no more.
    pub shown: String,
}

/// GET/POST /logout without a hint for this session: "Sign out?" (RP-Initiated Logout §2),
/// whose form ends the session it was shown in.
#[derive(Template)]
#[template(path = "pages/logout.html")]
pub(super) struct Logout<'a> {
    /// The app that asks, if one is named.
    pub client_name: Option<&'a str>,
    /// Who is signed in (the address, or the name of an account without one).
    pub account: &'a str,
    /// The logout request's own parameters, carried through the form.
    pub carried: Vec<(&'a str, &'a str)>,
    pub csrf: &'a str,
    /// The session the page was shown in: a "yes" posted after someone else signed in, in
    /// another tab, ends nothing.
    pub session_id: &'a str,
}

pub(super) struct ScopeLine<'a> {
    pub name: &'a str,
    pub description: String,
}

/// A "Sign in with …" link on the login page; a plain link, so no script.
pub(super) struct Upstream<'a> {
    pub name: &'a str,
    pub display_name: &'a str,
}

/// GET/POST /account/forgot-password.
#[derive(Template)]
#[template(path = "pages/forgot_password.html")]
pub(super) struct ForgotPassword<'a> {
    pub csrf: &'a str,
    pub email: &'a str,
    pub error: Option<&'a str>,
}

/// GET/POST /account/register. What the person typed comes back with an error, never the
/// password.
#[derive(Template)]
#[template(path = "pages/register.html")]
pub(super) struct Register<'a> {
    pub csrf: &'a str,
    pub email: &'a str,
    pub name: &'a str,
    pub min_password_length: usize,
    pub error: Option<&'a str>,
}

/// GET/POST /auth/link: an existing account's password before an upstream identity is
/// linked to it.
#[derive(Template)]
#[template(path = "pages/link.html")]
pub(super) struct Link<'a> {
    pub email: &'a str,
    pub provider: &'a str,
    pub csrf: &'a str,
    pub error: Option<&'a str>,
}

/// GET /account/verify-email: the button that uses the mail's token.
#[derive(Template)]
#[template(path = "pages/verify_email.html")]
pub(super) struct VerifyEmail<'a> {
    pub email: &'a str,
    pub token: &'a str,
    pub csrf: &'a str,
}

/// GET /account/password-reset and a refused new password: the form for the new one.
#[derive(Template)]
#[template(path = "pages/reset_password.html")]
pub(super) struct ResetPassword<'a> {
    pub email: &'a str,
    pub token: &'a str,
    pub error: Option<&'a str>,
}

/// GET /account/security and the answers to its forms: the person's second factors.
#[derive(Template)]
#[template(path = "pages/security.html")]
pub(super) struct Security<'a> {
    /// Who is signed in (the address, or the name of an account without one).
    pub account: &'a str,
    pub csrf: &'a str,
    pub error: Option<&'a str>,
    /// What a form just did.
    pub notice: Option<&'a str>,
    /// An authenticator app is set up and confirmed.
    pub totp: bool,
    /// An authenticator app being set up: its QR code and secret.
    pub setup: Option<TotpSetup>,
    /// Recovery codes just made: shown this once.
    pub recovery_codes: Vec<String>,
    pub recovery_codes_left: i64,
    /// Ask to confirm removing the authenticator app, the last second factor.
    pub confirm_remove: bool,
}

pub(super) struct TotpSetup {
    /// An `<svg>` element made by the `qrcode` crate from the `otpauth://` URI: rectangles and
    /// a path, nothing of anyone's input but the URI's bits, so it goes in unescaped.
    pub qr_svg: String,
    /// The secret in base32, to type into an app that cannot scan.
    pub secret: String,
}

impl TotpSetup {
    /// The QR code of the `otpauth://` URI as an SVG element (the renderer's XML declaration
    /// dropped: the SVG goes inside the HTML), and the secret to type instead.
    pub fn of(enrolment: &crate::mfa::TotpEnrolment) -> Result<TotpSetup, qrcode::types::QrError> {
        let code = qrcode::QrCode::new(enrolment.otpauth_uri.as_bytes())?;
        let svg = code
            .render::<qrcode::render::svg::Color<'_>>()
            .min_dimensions(200, 200)
            .quiet_zone(true)
            .build();
        let svg = match svg.find("<svg") {
            Some(start) => svg[start..].to_string(),
            None => svg,
        };
        Ok(TotpSetup {
            qr_svg: svg,
            secret: enrolment.secret_base32.clone(),
        })
    }
}

/// A page whose forms post only here.
pub(super) fn render(status: StatusCode, page: &impl Template) -> HttpResponse {
    respond(status, None, page)
}

/// A page whose form, posted here, is answered by a redirect to `redirect_uri` (already
/// validated): browsers apply `form-action` to that redirect too, so its origin is allowed.
pub(super) fn render_leading_to(
    status: StatusCode,
    redirect_uri: Option<&str>,
    page: &impl Template,
) -> HttpResponse {
    let target = redirect_uri.and_then(form_target);
    respond(status, target.as_deref(), page)
}

/// A page that runs `/assets/passkey.js` (and may call this site with `fetch`): the same
/// policy plus `script-src 'self'` and `connect-src 'self'`; still no inline script.
pub(super) fn render_with_script(
    status: StatusCode,
    redirect_uri: Option<&str>,
    page: &impl Template,
) -> HttpResponse {
    let target = redirect_uri.and_then(form_target);
    let mut response = respond(status, target.as_deref(), page);
    let policy = format!(
        "{}; script-src 'self'; connect-src 'self'",
        content_security_policy(target.as_deref())
    );
    if let Ok(value) = header::HeaderValue::from_str(&policy) {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, value);
    }
    response
}

pub(super) fn message_page(status: StatusCode, title: &str, message: &str) -> HttpResponse {
    let role = if status.is_success() {
        "status"
    } else {
        "alert"
    };
    render(
        status,
        &Message {
            title,
            message,
            role,
        },
    )
}

/// A sign-in that cannot go on.
pub(super) fn error_page(status: StatusCode, message: &str) -> HttpResponse {
    message_page(status, "Sign-in problem", message)
}

/// A page answering a throttled request, with `Retry-After` saying when to come back.
pub(super) fn with_retry_after(mut page: HttpResponse, wait: i64) -> HttpResponse {
    if let Ok(value) = header::HeaderValue::from_str(&wait.max(1).to_string()) {
        page.headers_mut().insert(header::RETRY_AFTER, value);
    }
    page
}

/// Headers for every page: no caching, no framing (clickjacking), the referrer only to this
/// site (URLs may hold tokens; same-origin form posts then carry their real `Origin`),
/// nothing loaded from elsewhere, forms posted only here (and to `form_target`).
fn respond(status: StatusCode, form_target: Option<&str>, page: &impl Template) -> HttpResponse {
    let mut builder = HttpResponse::build(status);
    builder
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::REFERRER_POLICY, "same-origin"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            content_security_policy(form_target),
        ));
    match page.render() {
        Ok(body) => builder.body(body),
        // Only a failing `Display` of a field can get here; the person still gets a page.
        Err(e) => {
            tracing::error!(error = %e, "a page did not render");
            builder
                .status(StatusCode::INTERNAL_SERVER_ERROR)
                .content_type("text/plain; charset=utf-8")
                .body("Please try again.")
        }
    }
}

/// The policy every page gets: nothing loaded from anywhere (the layout's inline stylesheet
/// aside), no framing, and forms posted only here (`'self'`) or redirected on to
/// `form_target`.
fn content_security_policy(form_target: Option<&str>) -> String {
    let form_action = match form_target {
        Some(source) => format!("'self' {source}"),
        None => "'self'".to_string(),
    };
    format!(
        "default-src 'none'; style-src 'unsafe-inline'; form-action {form_action}; frame-ancestors 'none'"
    )
}

/// The CSP source that lets a form's redirect reach `redirect_uri`: its origin
/// (`scheme://host:port`) for http(s), or its scheme (`com.example.app:`) for a native app's
/// private-use scheme (RFC 8252 §7.1). None for anything that would not be a plain source
/// expression (so it cannot smuggle in a directive).
fn form_target(redirect_uri: &str) -> Option<String> {
    let url = url::Url::parse(redirect_uri).ok()?;
    let source = match url.scheme() {
        "http" | "https" => url.origin().ascii_serialization(),
        scheme => format!("{scheme}:"),
    };
    let plain = source
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"+-.:/[]".contains(&b));
    (plain && source != "null").then_some(source)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    const HOSTILE: &str = r#""><script>alert('x')</script>&"#;
    const ESCAPED: &str = "&#34;&#62;&#60;script&#62;alert(&#39;x&#39;)&#60;/script&#62;&#38;";

    fn page(template: &impl Template) -> String {
        template.render().expect("renders")
    }

    /// Every value in the page is escaped, and nothing of the hostile text survives raw.
    fn assert_escaped(html: &str, times: usize) {
        assert_eq!(html.matches(ESCAPED).count(), times, "{html}");
        assert!(
            !html.contains("<script>") && !html.contains("'x'"),
            "{html}"
        );
    }

    #[test]
    fn every_page_escapes_what_it_is_given() {
        assert_escaped(
            &page(&Message {
                title: HOSTILE,
                message: HOSTILE,
                role: "alert",
            }),
            3,
        );
        assert_escaped(
            &page(&Login {
                client_name: HOSTILE,
                carried: vec![("state", HOSTILE)],
                carried_query: HOSTILE,
                csrf: HOSTILE,
                email: Some(HOSTILE),
                error: Some(HOSTILE),
                forgot_password: true,
                register: true,
                upstreams: vec![Upstream {
                    name: HOSTILE,
                    display_name: HOSTILE,
                }],
                passkeys: true,
            }),
            10,
        );
        assert_escaped(
            &page(&ForgotPassword {
                csrf: HOSTILE,
                email: HOSTILE,
                error: Some(HOSTILE),
            }),
            3,
        );
        assert_escaped(
            &page(&Register {
                csrf: HOSTILE,
                email: HOSTILE,
                name: HOSTILE,
                min_password_length: 12,
                error: Some(HOSTILE),
            }),
            4,
        );
        assert_escaped(
            &page(&Link {
                email: HOSTILE,
                provider: HOSTILE,
                csrf: HOSTILE,
                error: Some(HOSTILE),
            }),
            5,
        );
        assert_escaped(
            &page(&VerifyEmail {
                email: HOSTILE,
                token: HOSTILE,
                csrf: HOSTILE,
            }),
            3,
        );
        assert_escaped(
            &page(&ResetPassword {
                email: HOSTILE,
                token: HOSTILE,
                error: Some(HOSTILE),
            }),
            3,
        );
        assert_escaped(
            &page(&Security {
                account: HOSTILE,
                csrf: HOSTILE,
                error: Some(HOSTILE),
                notice: Some(HOSTILE),
                totp: false,
                setup: Some(TotpSetup {
                    qr_svg: "<svg></svg>".into(),
                    secret: HOSTILE.into(),
                }),
                recovery_codes: vec![HOSTILE.into()],
                recovery_codes_left: 0,
                confirm_remove: false,
            }),
            // account, error, notice, a recovery code, the secret, and the CSRF token of
            // the two forms.
            7,
        );
        assert_escaped(
            &page(&SecondFactor {
                client_name: HOSTILE,
                carried: vec![("state", HOSTILE)],
                csrf: HOSTILE,
                error: Some(HOSTILE),
                offered: vec![
                    crate::authorize::SecondFactor::Totp,
                    crate::authorize::SecondFactor::Passkey,
                    crate::authorize::SecondFactor::RecoveryCode,
                ],
                setup: Some(TotpSetup {
                    qr_svg: "<svg></svg>".into(),
                    secret: HOSTILE.into(),
                }),
                passkey_script: true,
            }),
            // client name, error, secret, and the carried field and CSRF token of 4 forms.
            11,
        );
        assert_escaped(
            &page(&Enrolled {
                client_name: HOSTILE,
                recovery_codes: vec![HOSTILE.into()],
                continue_to: HOSTILE.into(),
            }),
            3,
        );
        assert_escaped(
            &page(&Logout {
                client_name: Some(HOSTILE),
                account: HOSTILE,
                carried: vec![("state", HOSTILE)],
                csrf: HOSTILE,
                session_id: HOSTILE,
            }),
            5,
        );
    }

    #[test]
    fn every_page_has_the_one_layout_and_stylesheet() {
        // askama drops a template file's last newline.
        let stylesheet = include_str!("../../templates/pages/style.css").trim_end();
        let pages = [
            page(&Message {
                title: "t",
                message: "m",
                role: "status",
            }),
            page(&ForgotPassword {
                csrf: "c",
                email: "",
                error: None,
            }),
            page(&ResetPassword {
                email: "e",
                token: "t",
                error: None,
            }),
        ];
        for html in pages {
            assert!(
                html.starts_with("<!doctype html>\n<html lang=\"en\">"),
                "{html}"
            );
            assert!(html.contains(stylesheet), "{html}");
            assert!(html.contains("<main>") && html.ends_with("</main></body></html>"));
            assert!(
                !html.contains("role=\"alert\""),
                "no error, no alert: {html}"
            );
        }
    }

    #[test]
    fn the_form_target_is_an_origin_or_a_private_scheme_and_nothing_else() {
        assert_eq!(
            form_target("https://app.example:8443/cb?x=1").as_deref(),
            Some("https://app.example:8443")
        );
        assert_eq!(
            form_target("com.example.app:/oauth").as_deref(),
            Some("com.example.app:")
        );
        assert_eq!(form_target("not a url"), None);
        assert_eq!(
            content_security_policy(Some("https://app.example")),
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self' https://app.example; frame-ancestors 'none'"
        );
    }
}
