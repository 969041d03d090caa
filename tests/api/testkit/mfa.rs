//! Second factors for tests: setting up an authenticator app (through the use cases, or
//! through `/account/security` as a person does), reading what the page shows (the secret,
//! the recovery codes), and codes an app would or would not show. Times are the test server's
//! clock (`app.clock`, stopped unless a test moves it), so a code a test computes is the code
//! the server expects.

use diesel::prelude::*;
use tessera::db::schema::totp_credentials;
use tessera::mfa::TotpSecret;
use tessera::mfa::totp::{DIGITS, step_of};

use super::app::TestApp;
use super::fixtures::csrf_field;
use super::http::HttpBrowser;

/// The account page for second factors.
pub const SECURITY_PAGE: &str = "/account/security";

/// An authenticator app set up and confirmed: its secret (to compute codes from), the
/// recovery codes shown once, and the step of the code that confirmed it (spent).
pub struct Enrolled {
    pub secret: TotpSecret,
    pub recovery_codes: Vec<String>,
    pub step: i64,
}

/// Sets up an authenticator app for `user_id` directly through the use cases (as the account
/// page does), confirmed with the code of the step before the server's now, so the current
/// step's code is still unspent.
pub async fn enrol_totp(app: &TestApp, user_id: &str, account: &str) -> Enrolled {
    let svc = app.state.services.clone();
    let (user_id, account) = (user_id.to_string(), account.to_string());
    let now = app.clock.now();
    let step = step_of(now - 30);
    svc.db
        .clone()
        .run(move |conn| {
            let fail = |e: tessera::mfa::MfaError| tessera::db::DbError::Task(e.to_string());
            tessera::mfa::begin_totp(conn, &svc.secrets, "Tessera", &user_id, &account, now)
                .map_err(fail)?;
            let row = tessera::mfa::store::find_totp(conn, &user_id)?.expect("pending totp");
            let secret = TotpSecret::from_bytes(
                svc.secrets
                    .open(&user_id, &row.sealed_secret)
                    .expect("opens"),
            );
            let attempt = tessera::mfa::CodeAttempt {
                user_id: &user_id,
                ip: None,
                client_id: None,
                purpose: "enrolment",
            };
            let recovery_codes = match tessera::mfa::confirm_totp(
                conn,
                &svc.secrets,
                &svc.settings.throttle,
                attempt,
                &secret.code(step, DIGITS),
                now,
            )
            .map_err(fail)?
            {
                tessera::mfa::CodeCheck::Accepted(codes) => codes,
                other => panic!("enrolment refused: {other:?}"),
            };
            Ok::<_, tessera::db::DbError>(Enrolled {
                secret,
                recovery_codes,
                step,
            })
        })
        .await
        .expect("enrolled")
}

/// The secret as `/account/security` shows it (base32, no padding): 160 bits.
pub fn secret_from_page(shown: &str) -> TotpSecret {
    let bytes = data_encoding::BASE32_NOPAD
        .decode(shown.trim().as_bytes())
        .expect("the page shows base32");
    assert_eq!(bytes.len(), 20, "160 bits");
    TotpSecret::from_bytes(bytes)
}

/// A six-digit code that is none of the codes within two steps of `now`: wrong for sure.
pub fn wrong_code(secret: &TotpSecret, now: i64) -> String {
    let step = step_of(now);
    (0..)
        .map(|n| format!("{:06}", 123_456 + n))
        .find(|code| (step - 2..=step + 2).all(|s| secret.code(s, DIGITS) != *code))
        .expect("a wrong code")
}

/// The text between `<tag id="id"…>` and the next `<`.
pub fn text_of(html: &str, id: &str) -> Option<String> {
    let start = html.find(&format!("id=\"{id}\""))?;
    let rest = &html[start..];
    let open = rest.find('>')? + 1;
    Some(rest[open..].split('<').next()?.to_string())
}

/// The recovery codes a page lists (only the page that made them does).
pub fn recovery_codes_of(html: &str) -> Vec<String> {
    html.split("<li class=\"recovery-code\">")
        .skip(1)
        .filter_map(|part| part.split('<').next().map(String::from))
        .collect()
}

/// The person's authenticator app row: sealed secret, when confirmed, last step used.
pub async fn totp_row(app: &TestApp, user_id: &str) -> Option<(String, Option<i64>, i64)> {
    let user_id = user_id.to_string();
    app.query(move |c| {
        totp_credentials::table
            .find(user_id)
            .select((
                totp_credentials::sealed_secret,
                totp_credentials::confirmed_at,
                totp_credentials::last_used_step,
            ))
            .get_result(c)
            .optional()
    })
    .await
}

/// A page as an HTTP browser got it.
pub struct Page {
    pub status: u16,
    pub html: String,
}

impl Page {
    pub async fn of(response: reqwest::Response) -> Page {
        Page {
            status: response.status().as_u16(),
            html: response.text().await.expect("html"),
        }
    }
}

/// `/account/security` in `browser`.
pub async fn security_page(app: &TestApp, browser: &mut HttpBrowser) -> Page {
    Page::of(browser.get(&app.url(SECURITY_PAGE)).await).await
}

/// Posts one of the account page's forms (at `path`) with the CSRF token of `html`.
pub async fn post_security(
    app: &TestApp,
    browser: &mut HttpBrowser,
    path: &str,
    html: &str,
    fields: &[(&str, &str)],
) -> Page {
    let csrf = csrf_field(html);
    let mut form = vec![("csrf_token", csrf.as_str())];
    form.extend_from_slice(fields);
    Page::of(browser.post_form(&app.url(path), &form).await).await
}

/// Starts the setup on the page of a signed-in `browser`: the page with the QR code, and the
/// secret it shows.
pub async fn begin_on_page(app: &TestApp, browser: &mut HttpBrowser) -> (Page, TotpSecret) {
    let page = security_page(app, browser).await;
    assert_eq!(page.status, 200, "{}", page.html);
    let page = post_security(app, browser, "/account/security/totp", &page.html, &[]).await;
    assert_eq!(page.status, 200, "{}", page.html);
    assert!(page.html.contains("<svg"), "the QR code: {}", page.html);
    let shown = text_of(&page.html, "totp-secret").expect("the secret is shown");
    let secret = secret_from_page(&shown);
    (page, secret)
}

/// Sets up and confirms on the page with the current code: the page with the first recovery
/// codes, the secret, and the step of the confirming code (spent).
pub async fn enrol_on_page(app: &TestApp, browser: &mut HttpBrowser) -> (Page, Enrolled) {
    let (page, secret) = begin_on_page(app, browser).await;
    let now = app.clock.now();
    let page = post_security(
        app,
        browser,
        "/account/security/totp/confirm",
        &page.html,
        &[("code", &secret.code_at(now))],
    )
    .await;
    assert_eq!(page.status, 200, "{}", page.html);
    let recovery_codes = recovery_codes_of(&page.html);
    assert_eq!(recovery_codes.len(), 10, "{}", page.html);
    let enrolled = Enrolled {
        secret,
        recovery_codes,
        step: step_of(now),
    };
    (page, enrolled)
}
