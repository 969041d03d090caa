//! The "Create account" page in Chromium, reached from the login page's link (issue 14 items 7
//! and 22): type, click, and the new account signs in.

use super::Browser;
use crate::testkit::TestEnv;

#[tokio::test]
async fn browser_create_account_from_the_login_page_then_sign_in_with_it() {
    let env = TestEnv::new();
    let app = env.spawn().await;
    let (client, secret) = app.first_party_client().await;
    let mut browser = Browser::start().await;
    browser.open(&app.url("/account/register")).await;
    browser.type_into("#email", "new.person@example.com").await;
    browser.type_into("#name", "New Person").await;
    browser
        .type_into("#password", "a long enough password")
        .await;
    browser.click("#create-account").await;
    browser
        .wait_until("the answer page", || async {
            browser.text().await.contains("Account created")
        })
        .await;
    browser
        .assert_no_console_errors("from the form to the answer")
        .await;
    let csrf = browser
        .cookies()
        .await
        .into_iter()
        .find(|c| c.name == "tessera_register_csrf");
    assert!(
        csrf.is_none_or(|c| c.http_only),
        "the form's CSRF cookie is HttpOnly"
    );
    assert!(
        !browser
            .script_cookies()
            .await
            .contains("tessera_register_csrf"),
        "scripts cannot read the CSRF cookie"
    );

    let login = app
        .password_login(
            (&client, &secret),
            "new.person@example.com",
            "a long enough password",
            "openid",
        )
        .await;
    assert_eq!(login.status(), 200, "the account the browser made signs in");

    // The same address again: the page says so (mail is off: 409) and keeps what was typed.
    browser.open(&app.url("/account/register")).await;
    browser.type_into("#email", "new.person@example.com").await;
    browser
        .type_into("#password", "another long password")
        .await;
    browser.click("#create-account").await;
    browser
        .wait_until("the refusal", || async { browser.has("#error").await })
        .await;
    assert_eq!(browser.value_of("#email").await, "new.person@example.com");
    browser.close().await;
    app.stop().await;
}
