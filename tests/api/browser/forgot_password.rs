//! The "forgot password" page in Chromium, reached from the login page's link (issue 14 item
//! 22): type the address, click, read the answer; the mail arrives at the SMTP sink.

use tessera::clients::ClientSpec;

use super::Browser;
use crate::testkit::PASSWORD;
use crate::testkit::TestEnv;
use crate::testkit::mail_through;
use crate::testkit::smtp::SmtpSink;

#[tokio::test]
async fn browser_forgot_password_from_the_login_page_mails_a_reset_link() {
    let sink = SmtpSink::start().await;
    let env = TestEnv::new();
    let mut settings = env.settings();
    mail_through(&mut settings, &sink.url());
    let app = env.spawn_with(settings).await;
    app.create_user("ann@example.com", PASSWORD, &[]).await;
    let (client_id, _) = app
        .create_client(ClientSpec {
            name: "Notes".into(),
            public: true,
            grant_types: vec!["authorization_code".into()],
            redirect_uris: vec!["http://127.0.0.1:9/callback".into()],
            scopes: vec!["openid".into()],
            ..ClientSpec::default()
        })
        .await;
    let mut browser = Browser::start().await;
    let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    browser
        .open(&app.url(&format!(
            "/authorize?response_type=code&client_id={client_id}\
             &redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcallback&scope=openid\
             &code_challenge={challenge}&code_challenge_method=S256"
        )))
        .await;
    browser.click("a[href='/account/forgot-password']").await;
    browser
        .wait_for_url(&app.url("/account/forgot-password"))
        .await;
    browser.type_into("#email", "ann@example.com").await;
    browser.click("button[type=submit]").await;
    browser
        .wait_until("the answer page", || async {
            browser.text().await.contains("Check your mail")
        })
        .await;
    assert!(
        browser
            .text()
            .await
            .contains("If an account has this address, we have sent it a link")
    );
    browser
        .assert_no_console_errors("on the way from the login page to the answer")
        .await;

    let mails = sink.wait_for(1).await;
    assert_eq!(mails[0].to, vec!["ann@example.com".to_string()]);
    let link = mails[0].link("/account/password-reset");
    browser.open(&link).await;
    browser.find("input[name=new_password]").await;

    browser.close().await;
    app.stop().await;
    sink.stop().await;
}
