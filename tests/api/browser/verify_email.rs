//! The page behind the mailed verification link in Chromium (issue 14 item 4): opening it
//! verifies nothing; the button does.

use super::Browser;
use crate::testkit::TestEnv;
use crate::testkit::mail_through;
use crate::testkit::smtp::SmtpSink;

#[tokio::test]
async fn browser_the_verification_link_opens_a_page_and_only_its_button_verifies() {
    let sink = SmtpSink::start().await;
    let env = TestEnv::new();
    let mut settings = env.settings();
    mail_through(&mut settings, &sink.url());
    let app = env.spawn_with(settings).await;
    let registered = app
        .client
        .post(app.url("/users"))
        .json(
            &serde_json::json!({"email": "vera@example.com", "password": "a long enough password"}),
        )
        .send()
        .await
        .expect("request");
    assert_eq!(registered.status(), 202);
    let mails = sink.wait_for(1).await;
    let link = mails[0].link("/account/verify-email");

    let verified = || async {
        let email = "vera@example.com".to_string();
        app.state
            .services
            .db
            .run(move |conn| {
                tessera::db::repo::users::find_by_email(conn, &email)
                    .map_err(tessera::db::DbError::from)
            })
            .await
            .expect("read")
            .expect("user")
            .email_verified_at
            .is_some()
    };
    let mut browser = Browser::start().await;
    browser.open(&link).await;
    browser.find("#verify-email-confirm").await;
    assert!(browser.text().await.contains("vera@example.com"));
    assert!(!verified().await, "opening the link verifies nothing");
    browser.click("#verify-email-confirm").await;
    browser
        .wait_until("the confirmation", || async {
            browser.text().await.contains("Email address confirmed")
        })
        .await;
    assert!(verified().await, "the button verifies");
    browser
        .assert_no_console_errors("from the link to the confirmation")
        .await;
    browser.close().await;
    app.stop().await;
    sink.stop().await;
}
