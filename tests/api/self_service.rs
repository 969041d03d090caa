//! Account self-service over real SMTP: registration → mail → verify; password reset (no
//! enumeration, revocation, single use, expiry); password change; account deletion; the
//! outbox through an SMTP outage and a restart; and every endpoint's answer to bad input.

use base64::Engine;
use diesel::prelude::*;
use serde_json::{Value, json};
use tessera::db::schema::{
    account_tokens, audit_events, federated_identities, mail_outbox, refresh_token_families, users,
};

use crate::testkit::smtp::SmtpSink;
use crate::testkit::{DEADLINE, PASSWORD, eventually};
use crate::testkit::{ServerProcess, TestApp, TestEnv};
use crate::testkit::{csrf_field, mail_through};

const NEW_PASSWORD: &str = "a much newer passphrase";
const FROM: &str = "Tessera <no-reply@tessera.test>";

/// A server that mails through `smtp_url`, looking at its outbox often.
async fn mail_app(env: &TestEnv, smtp_url: &str) -> TestApp {
    let mut settings = env.settings();
    mail_through(&mut settings, smtp_url);
    env.spawn_with(settings).await
}

async fn post_json(app: &TestApp, path: &str, body: Value) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .json(&body)
        .send()
        .await
        .expect("request")
}

/// Registers through POST /users: with mail on, the answer (202) says only "check your
/// mail", so the account is read back from the database.
async fn register(app: &TestApp, email: &str) -> Value {
    let response = post_json(
        app,
        "/users",
        json!({"email": email, "password": PASSWORD, "name": "Ann"}),
    )
    .await;
    if app.state.services.mailer.is_none() {
        assert_eq!(response.status(), 201);
        return response.json().await.expect("json");
    }
    assert_eq!(response.status(), 202);
    let answer: Value = response.json().await.expect("json");
    assert_eq!(answer["verification_email"], "queued");
    let user = user_by_email(app, email).await;
    json!({
        "id": user.id,
        "email": user.email,
        "email_verified": user.email_verified_at.is_some(),
        "verification_email": answer["verification_email"],
    })
}

/// The claims of a JWT, read without checking it (other tests check signatures).
fn jwt_claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .expect("base64url"),
    )
    .expect("JSON claims")
}

async fn login(app: &TestApp, client: (&str, &str), email: &str, password: &str) -> Value {
    let response = app
        .password_login(client, email, password, "openid email account")
        .await;
    assert_eq!(response.status(), 200, "login as {email}");
    response.json().await.expect("json")
}

async fn refresh(app: &TestApp, client: (&str, &str), token: &str) -> reqwest::StatusCode {
    app.token(
        client,
        &[("grant_type", "refresh_token"), ("refresh_token", token)],
    )
    .await
    .status()
}

async fn outbox(app: &TestApp) -> Vec<tessera::db::repo::outbox::OutboxRow> {
    app.state
        .services
        .db
        .run(|conn| tessera::db::repo::outbox::list(conn).map_err(tessera::db::DbError::from))
        .await
        .expect("outbox")
}

/// Waits until every queued mail is finished (sent, skipped or given up).
async fn outbox_settled(app: &TestApp) -> Vec<tessera::db::repo::outbox::OutboxRow> {
    eventually(DEADLINE, "every queued mail to be finished", || async {
        let rows = outbox(app).await;
        rows.iter().all(|r| r.finished_at.is_some()).then_some(rows)
    })
    .await
}

/// Waits until a delivery attempt has failed, and returns that mail's row.
async fn first_failed_delivery(app: &TestApp) -> tessera::db::repo::outbox::OutboxRow {
    eventually(
        DEADLINE,
        "a failed delivery attempt in the outbox",
        || async {
            outbox(app)
                .await
                .into_iter()
                .find(|r| r.last_error.is_some())
        },
    )
    .await
}

async fn user_by_email(app: &TestApp, email: &str) -> tessera::domain::User {
    let email = email.to_lowercase();
    app.query(move |c| tessera::db::repo::users::find_by_email(c, &email))
        .await
        .expect("the user exists")
}

fn token_of(link: &str) -> String {
    link.split("token=").nth(1).expect("a token").to_string()
}

#[tokio::test]
async fn registration_mails_a_link_that_verifies_the_address_once() {
    let sink = SmtpSink::start().await;
    let env = TestEnv::new();
    let app = mail_app(&env, &sink.url()).await;
    let (client_id, secret) = app.first_party_client().await;
    let client = (client_id.as_str(), secret.as_str());

    let user = register(&app, "Ann@Example.com").await;
    assert_eq!(user["email_verified"], false);
    assert_eq!(user["verification_email"], "queued");
    let before = login(&app, client, "ann@example.com", PASSWORD).await;
    let id_token = before["id_token"].as_str().expect("id token");
    assert_eq!(jwt_claims(id_token)["email_verified"], false);

    let mails = sink.wait_for(1).await;
    assert_eq!(mails[0].to, ["Ann@example.com"]);
    assert_eq!(mails[0].from, "no-reply@tessera.test");
    let link = mails[0].link("/account/verify-email");
    assert!(link.starts_with(&format!("{}/account/verify-email?token=", app.issuer)));
    assert!(
        mails[0].part("text/html").contains(&link),
        "HTML body has the link"
    );
    assert!(
        mails[0].part("text/plain").contains(&app.issuer),
        "names the issuer"
    );
    let token = token_of(&link);
    assert!(token.len() >= 43, "at least 256 bits");
    let stored = app
        .query(|c| {
            account_tokens::table
                .select(account_tokens::token_hash)
                .load::<String>(c)
        })
        .await;
    assert_eq!(
        stored,
        [tessera::crypto::sha256_hex(token.as_bytes())],
        "only the hash is stored"
    );

    // A browser follows the link: a page whose button confirms (only its POST verifies).
    let page = app
        .client
        .get(&link)
        .header("accept", "text/html,application/xhtml+xml")
        .send()
        .await
        .expect("request");
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["referrer-policy"], "same-origin");
    let cookie = page.headers()["set-cookie"]
        .to_str()
        .expect("ascii")
        .split(';')
        .next()
        .expect("pair")
        .to_string();
    let csrf = cookie.split_once('=').expect("name=value").1.to_string();
    assert!(
        page.text()
            .await
            .expect("text")
            .contains("Confirm my address")
    );
    let confirmed = app
        .client
        .post(app.url("/account/verify-email"))
        .header("accept", "text/html")
        .header("cookie", &cookie)
        .form(&[("token", token.as_str()), ("csrf_token", csrf.as_str())])
        .send()
        .await
        .expect("request");
    assert_eq!(confirmed.status(), 200);
    assert!(confirmed.text().await.expect("text").contains("confirmed"));

    // Once only: again as a browser, then as an API call.
    let again = app
        .client
        .get(&link)
        .header("accept", "text/html")
        .send()
        .await
        .expect("request");
    assert_eq!(again.status(), 400);
    assert!(
        again
            .text()
            .await
            .expect("text")
            .contains("already been used")
    );
    let api = app.client.get(&link).send().await.expect("request");
    assert_eq!(api.status(), 400);
    let body: Value = api.json().await.expect("json");
    assert_eq!(body["error"], "invalid_grant");
    assert!(
        body["error_description"]
            .as_str()
            .expect("text")
            .contains("already been used")
    );

    // The claims tell the truth now: userinfo (even with the old token) and a new ID token.
    let access = before["access_token"].as_str().expect("access token");
    let info: Value = app
        .client
        .get(app.url("/userinfo"))
        .bearer_auth(access)
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(info["email_verified"], true);
    let after = login(&app, client, "ann@example.com", PASSWORD).await;
    let id_token = after["id_token"].as_str().expect("id token");
    assert_eq!(jwt_claims(id_token)["email_verified"], true);
    assert!(
        user_by_email(&app, "ann@example.com")
            .await
            .email_verified_at
            .is_some()
    );
    let user_id = user["id"].as_str().expect("id").to_string();
    assert!(
        app.audit_events(&user_id)
            .await
            .contains(&"email_verified".to_string())
    );
}

#[tokio::test]
async fn verification_links_expire_and_resending_is_rate_limited() {
    let sink = SmtpSink::start().await;
    let env = TestEnv::new();
    let app = mail_app(&env, &sink.url()).await;
    register(&app, "bea@example.com").await;
    let first = sink.wait_for(1).await[0].link("/account/verify-email");

    app.clock.advance(24 * 3600 + 1);
    let expired = app.client.get(&first).send().await.expect("request");
    assert_eq!(expired.status(), 400);
    let body: Value = expired.json().await.expect("json");
    assert!(
        body["error_description"]
            .as_str()
            .expect("text")
            .contains("expired")
    );

    let resend = post_json(
        &app,
        "/account/verify-email/resend",
        json!({"email": "BEA@example.com"}),
    )
    .await;
    assert_eq!(resend.status(), 202);
    let second = sink.wait_for(2).await[1].link("/account/verify-email");
    assert_ne!(first, second);
    let verified = post_json(
        &app,
        "/account/verify-email",
        json!({"token": token_of(&second)}),
    )
    .await;
    assert_eq!(verified.status(), 200);
    let user: Value = verified.json().await.expect("json");
    assert_eq!(user["email_verified"], true);

    // Verified now: a re-send is accepted the same way and sends nothing.
    let resend = post_json(
        &app,
        "/account/verify-email/resend",
        json!({"email": "bea@example.com"}),
    )
    .await;
    assert_eq!(resend.status(), 202);
    let rows = outbox_settled(&app).await;
    assert_eq!(
        rows.last().and_then(|r| r.outcome.as_deref()),
        Some("skipped")
    );
    assert_eq!(sink.mails().len(), 2);

    // Three requests per address, then back-off with Retry-After.
    let mut limited = None;
    for _ in 0..3 {
        let response = post_json(
            &app,
            "/account/verify-email/resend",
            json!({"email": "bea@example.com"}),
        )
        .await;
        if response.status() == 429 {
            limited = Some(response);
            break;
        }
        assert_eq!(response.status(), 202);
    }
    let limited = limited.expect("rate limited after three requests");
    assert!(limited.headers().contains_key("retry-after"));
    let body: Value = limited.json().await.expect("json");
    assert_eq!(body["error"], "too_many_requests");
}

#[tokio::test]
async fn password_reset_answers_alike_for_unknown_addresses_and_sends_nothing_to_them() {
    let sink = SmtpSink::start().await;
    let env = TestEnv::new();
    let app = mail_app(&env, &sink.url()).await;
    app.create_user("cid@example.com", PASSWORD, &[]).await;

    let unknown = post_json(
        &app,
        "/account/password-reset",
        json!({"email": "nobody@example.com"}),
    )
    .await;
    let known = post_json(
        &app,
        "/account/password-reset",
        json!({"email": "cid@example.com"}),
    )
    .await;
    assert_eq!(unknown.status(), 202);
    assert_eq!(known.status(), 202);
    let unknown: Value = unknown.json().await.expect("json");
    let known: Value = known.json().await.expect("json");
    assert_eq!(unknown, known, "the same answer either way");

    let rows = outbox_settled(&app).await;
    let outcomes: Vec<_> = rows
        .iter()
        .map(|r| r.outcome.clone().unwrap_or_default())
        .collect();
    assert_eq!(outcomes, ["skipped", "sent"]);
    let mails = sink.mails();
    assert_eq!(mails.len(), 1, "nothing for the unknown address");
    assert_eq!(mails[0].to, ["cid@example.com"]);
}

#[tokio::test]
async fn password_reset_sets_the_password_once_and_ends_every_session() {
    let sink = SmtpSink::start().await;
    let env = TestEnv::new();
    let app = mail_app(&env, &sink.url()).await;
    let (client_id, secret) = app.first_party_client().await;
    let client = (client_id.as_str(), secret.as_str());
    let user_id = app.create_user("dee@example.com", PASSWORD, &[]).await;
    let session = login(&app, client, "dee@example.com", PASSWORD).await;
    let refresh_token = session["refresh_token"].as_str().expect("refresh token");

    let asked = post_json(
        &app,
        "/account/password-reset",
        json!({"email": "dee@example.com"}),
    )
    .await;
    assert_eq!(asked.status(), 202);
    let link = sink.wait_for(1).await[0].link("/account/password-reset");
    let token = token_of(&link);

    // The link opens a form; opening it uses nothing up.
    let form = app
        .client
        .get(&link)
        .header("accept", "text/html")
        .send()
        .await
        .expect("request");
    assert_eq!(form.status(), 200);
    let html = form.text().await.expect("text");
    assert!(html.contains("name=\"new_password\"") && html.contains(&token));

    // The registration policy applies.
    let weak = post_json(
        &app,
        "/account/password-reset/confirm",
        json!({"token": token, "new_password": "password"}),
    )
    .await;
    assert_eq!(weak.status(), 422);
    let body: Value = weak.json().await.expect("json");
    assert_eq!(body["field"], "password");

    // The browser's form post.
    let done = app
        .client
        .post(app.url("/account/password-reset/confirm"))
        .form(&[("token", token.as_str()), ("new_password", NEW_PASSWORD)])
        .send()
        .await
        .expect("request");
    assert_eq!(done.status(), 200);
    assert!(
        done.text()
            .await
            .expect("text")
            .contains("Password changed")
    );

    assert_eq!(
        refresh(&app, client, refresh_token).await,
        400,
        "session ended"
    );
    let old = app
        .password_login(client, "dee@example.com", PASSWORD, "openid")
        .await;
    assert_eq!(old.status(), 400);
    login(&app, client, "dee@example.com", NEW_PASSWORD).await;
    let events = app.audit_events(&user_id).await;
    assert!(events.contains(&"password_reset".to_string()), "{events:?}");
    let revoked_reason = {
        let user_id = user_id.clone();
        app.query(move |c| {
            refresh_token_families::table
                .filter(refresh_token_families::user_id.eq(user_id))
                .select(refresh_token_families::revoked_reason)
                .order(refresh_token_families::created_at.asc())
                .first::<Option<String>>(c)
        })
        .await
    };
    assert_eq!(revoked_reason.as_deref(), Some("password_reset"));

    // Used: the same link again is refused, as JSON and as a page.
    let reused = post_json(
        &app,
        "/account/password-reset/confirm",
        json!({"token": token, "new_password": "yet another passphrase"}),
    )
    .await;
    assert_eq!(reused.status(), 400);
    let body: Value = reused.json().await.expect("json");
    assert_eq!(body["error"], "invalid_grant");
    assert!(
        body["error_description"]
            .as_str()
            .expect("text")
            .contains("already been used")
    );

    // A second link, left for more than 30 minutes, has expired.
    post_json(
        &app,
        "/account/password-reset",
        json!({"email": "dee@example.com"}),
    )
    .await;
    let late = token_of(&sink.wait_for(2).await[1].link("/account/password-reset"));
    app.clock.advance(30 * 60 + 1);
    let expired = post_json(
        &app,
        "/account/password-reset/confirm",
        json!({"token": late, "new_password": "yet another passphrase"}),
    )
    .await;
    assert_eq!(expired.status(), 400);
    let body: Value = expired.json().await.expect("json");
    assert!(
        body["error_description"]
            .as_str()
            .expect("text")
            .contains("expired")
    );
    login(&app, client, "dee@example.com", NEW_PASSWORD).await;
}

#[tokio::test]
async fn mail_waits_in_the_outbox_while_the_smtp_server_is_down() {
    let port = SmtpSink::start().await.stop().await;
    let env = TestEnv::new();
    let app = mail_app(&env, &format!("smtp://127.0.0.1:{port}")).await;
    app.create_user("eve@example.com", PASSWORD, &[]).await;
    let asked = post_json(
        &app,
        "/account/password-reset",
        json!({"email": "eve@example.com"}),
    )
    .await;
    assert_eq!(asked.status(), 202, "the request does not wait for SMTP");

    let failed = first_failed_delivery(&app).await;
    assert_eq!(failed.attempts, 1);
    assert!(failed.finished_at.is_none(), "still queued");
    assert_eq!(
        failed.next_attempt_at,
        app.clock.now() + 30,
        "first back-off"
    );
    let tokens = app
        .query(|c| account_tokens::table.count().get_result::<i64>(c))
        .await;
    assert_eq!(
        tokens, 0,
        "the token of the mail that did not leave is gone"
    );

    let sink = SmtpSink::start_on(port).await;
    // A sender looking now (as the server's own does every poll) finds nothing due.
    let svc = app.state.services.clone();
    let mailer = svc.mailer.clone().expect("mail is on");
    let sent = tessera::mail::outbox::send_due(&svc, &mailer)
        .await
        .expect("send");
    assert_eq!(sent, 0, "not before the back-off is over");
    assert!(sink.mails().is_empty(), "not before the back-off is over");
    app.clock.advance(30);
    let mails = sink.wait_for(1).await;
    assert_eq!(mails.len(), 1);
    let rows = outbox_settled(&app).await;
    assert_eq!(rows[0].outcome.as_deref(), Some("sent"));
    assert_eq!(rows[0].attempts, 2);
    let confirm = post_json(
        &app,
        "/account/password-reset/confirm",
        json!({"token": token_of(&mails[0].link("/account/password-reset")), "new_password": NEW_PASSWORD}),
    )
    .await;
    assert_eq!(confirm.status(), 200);
}

#[tokio::test]
async fn queued_mail_survives_a_restart() {
    let port = SmtpSink::start().await.stop().await;
    let smtp_url = format!("smtp://127.0.0.1:{port}");
    let env = TestEnv::new();
    let mut settings = env.settings();
    settings.smtp.url = smtp_url.clone();
    settings.smtp.from = FROM.to_string();
    settings.mail.poll_interval_ms = 50;
    settings.mail.retry_base_secs = 1;
    let app = env.spawn_with(settings).await;
    app.create_user("fay@example.com", PASSWORD, &[]).await;
    let asked = post_json(
        &app,
        "/account/password-reset",
        json!({"email": "fay@example.com"}),
    )
    .await;
    assert_eq!(asked.status(), 202);
    first_failed_delivery(&app).await;
    app.stop().await;

    // A new process (the real binary) finds the mail and sends it once the server is up.
    let sink = SmtpSink::start_on(port).await;
    let server = ServerProcess::start_with(
        &env,
        &[
            ("TESSERA_SMTP_URL", &smtp_url),
            ("TESSERA_SMTP_FROM", FROM),
            ("TESSERA_MAIL_POLL_INTERVAL_MS", "100"),
        ],
    );
    let mails = sink.wait_for(1).await;
    assert_eq!(mails[0].to, ["fay@example.com"]);
    let link = mails[0].link("/account/password-reset");
    assert!(link.starts_with(&server.address), "{link}");
    let confirmed = reqwest::Client::new()
        .post(format!("{}/account/password-reset/confirm", server.address))
        .json(&json!({"token": token_of(&link), "new_password": NEW_PASSWORD}))
        .send()
        .await
        .expect("request");
    assert_eq!(confirmed.status(), 200);
    assert!(server.stop().success());
    assert_eq!(sink.mails().len(), 1, "sent once");
}

#[tokio::test]
async fn password_change_ends_other_sessions_and_may_keep_the_current_one() {
    let env = TestEnv::new();
    let app = env.spawn().await;
    let (client_id, secret) = app.first_party_client().await;
    let client = (client_id.as_str(), secret.as_str());
    let user_id = app.create_user("gus@example.com", PASSWORD, &[]).await;
    let here = login(&app, client, "gus@example.com", PASSWORD).await;
    let elsewhere = login(&app, client, "gus@example.com", PASSWORD).await;
    let access = here["access_token"].as_str().expect("access token");
    let here_refresh = here["refresh_token"].as_str().expect("refresh token");

    let change = |body: Value, token: String| {
        let app = &app;
        async move {
            app.client
                .post(app.url("/account/password"))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .expect("request")
        }
    };
    let wrong = change(
        json!({"current_password": "not it at all", "new_password": NEW_PASSWORD}),
        access.to_string(),
    )
    .await;
    assert_eq!(wrong.status(), 403);
    let weak = change(
        json!({"current_password": PASSWORD, "new_password": "short"}),
        access.to_string(),
    )
    .await;
    assert_eq!(weak.status(), 422);

    let kept = change(
        json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD,
               "keep_refresh_token": here_refresh}),
        access.to_string(),
    )
    .await;
    assert_eq!(kept.status(), 200);
    let body: Value = kept.json().await.expect("json");
    assert_eq!(body, json!({"revoked_sessions": 1, "kept_session": true}));
    let elsewhere_refresh = elsewhere["refresh_token"].as_str().expect("refresh token");
    assert_eq!(refresh(&app, client, elsewhere_refresh).await, 400);
    let rotated = app
        .token(
            client,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", here_refresh),
            ],
        )
        .await;
    assert_eq!(rotated.status(), 200, "this session stays");
    let rotated: Value = rotated.json().await.expect("json");
    // Every access token from before the change is refused here, the kept session's too: it
    // goes on with the access token its refresh brought.
    let info = app
        .client
        .get(app.url("/userinfo"))
        .bearer_auth(access)
        .send()
        .await
        .expect("request");
    assert_eq!(info.status(), 401);
    let access = rotated["access_token"].as_str().expect("access token");

    // Without keeping: this session ends too, its access token with it.
    let ended = change(
        json!({"current_password": NEW_PASSWORD, "new_password": "third time lucky pass"}),
        access.to_string(),
    )
    .await;
    assert_eq!(ended.status(), 200);
    let body: Value = ended.json().await.expect("json");
    assert_eq!(body["kept_session"], false);
    let rotated_refresh = rotated["refresh_token"].as_str().expect("refresh token");
    assert_eq!(refresh(&app, client, rotated_refresh).await, 400);
    let info = app
        .client
        .get(app.url("/userinfo"))
        .bearer_auth(access)
        .send()
        .await
        .expect("request");
    assert_eq!(info.status(), 401);
    login(&app, client, "gus@example.com", "third time lucky pass").await;
    let events = app.audit_events(&user_id).await;
    assert_eq!(
        events.iter().filter(|e| *e == "password_changed").count(),
        2
    );
}

#[tokio::test]
async fn deleting_an_account_takes_its_sessions_identities_and_mail_with_it() {
    let port = SmtpSink::start().await.stop().await;
    let env = TestEnv::new();
    let app = mail_app(&env, &format!("smtp://127.0.0.1:{port}")).await;
    let (client_id, secret) = app.first_party_client().await;
    let client = (client_id.as_str(), secret.as_str());
    let user_id = app.create_user("hal@example.com", PASSWORD, &[]).await;
    let session = login(&app, client, "hal@example.com", PASSWORD).await;
    let access = session["access_token"].as_str().expect("access token");
    {
        let user_id = user_id.clone();
        app.query(move |c| {
            diesel::insert_into(federated_identities::table)
                .values((
                    federated_identities::id.eq("fed-1"),
                    federated_identities::provider.eq("google"),
                    federated_identities::subject.eq("1234"),
                    federated_identities::user_id.eq(user_id),
                    federated_identities::created_at.eq(0i64),
                    federated_identities::last_login_at.eq(0i64),
                ))
                .execute(c)
        })
        .await;
    }
    // A mail waits (the SMTP server is down).
    post_json(
        &app,
        "/account/password-reset",
        json!({"email": "hal@example.com"}),
    )
    .await;

    let delete = |body: Option<Value>| {
        let app = &app;
        async move {
            let request = app.client.delete(app.url("/account")).bearer_auth(access);
            let request = match body {
                Some(body) => request.json(&body),
                None => request,
            };
            request.send().await.expect("request")
        }
    };
    assert_eq!(delete(None).await.status(), 422, "the password is required");
    assert_eq!(
        delete(Some(json!({"password": "wrong password!"})))
            .await
            .status(),
        403
    );
    assert_eq!(
        delete(Some(json!({"password": PASSWORD}))).await.status(),
        204
    );

    let id = user_id.clone();
    let left = app
        .query(move |c| {
            Ok((
                users::table
                    .filter(users::id.eq(&id))
                    .count()
                    .get_result::<i64>(c)?,
                refresh_token_families::table
                    .filter(refresh_token_families::user_id.eq(&id))
                    .count()
                    .get_result::<i64>(c)?,
                federated_identities::table.count().get_result::<i64>(c)?,
                mail_outbox::table.count().get_result::<i64>(c)?,
                audit_events::table
                    .filter(audit_events::user_id.eq(&id))
                    .select(audit_events::detail)
                    .load::<Option<String>>(c)?,
            ))
        })
        .await;
    assert_eq!((left.0, left.1, left.2, left.3), (0, 0, 0, 0));
    let trail = format!("{:?}", left.4);
    assert!(
        !trail.contains("hal@example.com"),
        "the trail keeps the id only: {trail}"
    );
    assert!(
        app.audit_events(&user_id)
            .await
            .contains(&"user_deleted".to_string())
    );
    let refresh_token = session["refresh_token"].as_str().expect("refresh token");
    assert_eq!(refresh(&app, client, refresh_token).await, 400);
    let info = app
        .client
        .get(app.url("/userinfo"))
        .bearer_auth(access)
        .send()
        .await
        .expect("request");
    assert_eq!(info.status(), 401);

    // An administrator deletes another account.
    let victim = app.create_user("ida@example.com", PASSWORD, &[]).await;
    app.create_user("root@example.com", PASSWORD, &["admin"])
        .await;
    let admin = app
        .password_login(client, "root@example.com", PASSWORD, "admin")
        .await
        .json::<Value>()
        .await
        .expect("json");
    let admin_token = admin["access_token"].as_str().expect("access token");
    let path = app.url(&format!("/admin/users/{victim}"));
    let gone = app
        .client
        .delete(&path)
        .bearer_auth(admin_token)
        .send()
        .await
        .expect("request");
    assert_eq!(gone.status(), 204);
    let again = app
        .client
        .delete(&path)
        .bearer_auth(admin_token)
        .send()
        .await
        .expect("request");
    assert_eq!(again.status(), 404);
}

#[tokio::test]
async fn without_smtp_mail_features_say_so_and_operators_verify_addresses() {
    let env = TestEnv::new();
    let app = env.spawn().await;
    let user = register(&app, "jo@example.com").await;
    assert_eq!(user["verification_email"], "not_configured");
    assert_eq!(user["email_verified"], false);
    for path in ["/account/password-reset", "/account/verify-email/resend"] {
        let response = post_json(&app, path, json!({"email": "jo@example.com"})).await;
        assert_eq!(response.status(), 503, "{path}");
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["error"], "mail_not_configured");
        assert!(
            body["error_description"]
                .as_str()
                .expect("text")
                .contains("not configured")
        );
    }
    assert!(outbox(&app).await.is_empty());

    // The administrator vouches for the address.
    app.create_user("root@example.com", PASSWORD, &["admin"])
        .await;
    let (client_id, secret) = app.first_party_client().await;
    let admin = app
        .password_login((&client_id, &secret), "root@example.com", PASSWORD, "admin")
        .await
        .json::<Value>()
        .await
        .expect("json");
    let id = user["id"].as_str().expect("id");
    let verified = app
        .client
        .post(app.url(&format!("/admin/users/{id}/verify-email")))
        .bearer_auth(admin["access_token"].as_str().expect("token"))
        .send()
        .await
        .expect("request");
    assert_eq!(verified.status(), 200);
    let body: Value = verified.json().await.expect("json");
    assert_eq!(body["email_verified"], true);

    // And from the command line.
    register(&app, "kim@example.com").await;
    let output = env.cli(
        &["user", "verify-email", "--email", "kim@example.com"],
        None,
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        user_by_email(&app, "kim@example.com")
            .await
            .email_verified_at
            .is_some()
    );
    let output = env.cli(&["user", "delete", "--email", "kim@example.com"], None);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let email = "kim@example.com".to_string();
    assert!(
        app.query(move |c| tessera::db::repo::users::find_by_email(c, &email))
            .await
            .is_none()
    );
}

#[tokio::test]
async fn every_self_service_endpoint_answers_bad_input_with_a_clear_4xx() {
    let sink = SmtpSink::start().await;
    let env = TestEnv::new();
    let app = mail_app(&env, &sink.url()).await;
    let (client_id, secret) = app.first_party_client().await;
    app.create_user("lee@example.com", PASSWORD, &[]).await;

    let send = |method: reqwest::Method, path: &str, content_type: Option<&str>, body: &str| {
        let mut request = app.client.request(method, app.url(path));
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        request.body(body.to_string()).send()
    };
    let json_type = Some("application/json");
    let long_token = format!("{{\"token\": \"{}\"}}", "a".repeat(500));
    for (method, path, content_type, body, status) in [
        (
            "POST",
            "/account/password-reset",
            json_type,
            r#"{"email": "not an address"}"#,
            422,
        ),
        (
            "POST",
            "/account/password-reset",
            json_type,
            r#"{"mail": "lee@example.com"}"#,
            400,
        ),
        ("POST", "/account/password-reset", json_type, "{", 400),
        (
            "POST",
            "/account/password-reset",
            Some("text/plain"),
            "lee@example.com",
            415,
        ),
        ("POST", "/account/verify-email/resend", json_type, "{}", 400),
        (
            "POST",
            "/account/verify-email",
            json_type,
            r#"{"token": ""}"#,
            400,
        ),
        (
            "POST",
            "/account/verify-email",
            json_type,
            r#"{"token": "made-up"}"#,
            400,
        ),
        ("POST", "/account/verify-email", json_type, &long_token, 400),
        ("GET", "/account/verify-email", None, "", 400),
        ("GET", "/account/verify-email?token=made-up", None, "", 400),
        (
            "GET",
            "/account/password-reset?token=made-up",
            None,
            "",
            400,
        ),
        (
            "POST",
            "/account/password-reset/confirm",
            json_type,
            r#"{"token": "x"}"#,
            400,
        ),
        (
            "POST",
            "/account/password-reset/confirm",
            json_type,
            r#"{"token": "made-up", "new_password": "a fine passphrase"}"#,
            400,
        ),
        (
            "POST",
            "/account/password-reset/confirm",
            Some("text/plain"),
            "x",
            415,
        ),
        (
            "POST",
            "/account/password",
            json_type,
            r#"{"current_password": "a", "new_password": "b"}"#,
            401,
        ),
        ("DELETE", "/account", None, "", 401),
        ("PUT", "/account/password", json_type, "{}", 405),
    ] {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let response = send(method.clone(), path, content_type, body)
            .await
            .expect("request");
        assert_eq!(response.status(), status, "{method} {path} {body}");
        let error: Value = response.json().await.expect("a JSON error");
        assert!(error["error"].is_string(), "{error}");
        assert!(error["error_description"].is_string(), "{error}");
    }

    // A client's own token (for its resource server, not for this provider) reaches no account.
    let (machine_id, machine_secret) = app
        .create_client(tessera::clients::ClientSpec {
            name: "machine".into(),
            grant_types: vec!["client_credentials".into()],
            scopes: vec!["api".into()],
            audiences: vec!["api".into()],
            ..tessera::clients::ClientSpec::default()
        })
        .await;
    let machine_secret = machine_secret.expect("confidential");
    let client_token = app
        .token(
            (&machine_id, &machine_secret),
            &[("grant_type", "client_credentials"), ("scope", "api")],
        )
        .await
        .json::<Value>()
        .await
        .expect("json");
    let token = client_token["access_token"]
        .as_str()
        .expect("a client token");
    for (method, path) in [("DELETE", "/account"), ("POST", "/account/password")] {
        let response = app
            .client
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).expect("method"),
                app.url(path),
            )
            .bearer_auth(token)
            .json(&json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD}))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 401, "{method} {path}");
        let error: Value = response.json().await.expect("json");
        assert_eq!(error["error"], "invalid_token");
    }
    // A bearer user with a malformed body.
    let session = login(&app, (&client_id, &secret), "lee@example.com", PASSWORD).await;
    let access = session["access_token"].as_str().expect("token");
    for body in [r#"{"password": 5}"#, "not json"] {
        let response = app
            .client
            .delete(app.url("/account"))
            .bearer_auth(access)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 400, "{body}");
    }
    assert!(sink.mails().is_empty(), "no bad request sent mail");
}

#[tokio::test]
async fn two_replicas_never_send_the_same_mail() {
    let sink = SmtpSink::start().await;
    let env = TestEnv::new();
    let mut settings = env.settings();
    settings.smtp.url = sink.url();
    settings.smtp.from = FROM.to_string();
    // Neither sender looks by itself during the test: the test drives both at once.
    settings.mail.poll_interval_ms = 600_000;
    settings.mail.batch_size = 7;
    let first = env.spawn_with(settings.clone()).await;
    let second = env.spawn_with(settings).await;
    const MAILS: usize = 30;
    for n in 0..MAILS {
        let email = format!("user{n}@example.com");
        first.create_user(&email, PASSWORD, &[]).await;
        // Due only once the clocks move, so the senders' own first look finds nothing.
        let mut row = tessera::db::repo::outbox::OutboxRow::new("reset_password", &email, None, 0);
        row.next_attempt_at = first.clock.now() + 100;
        first
            .query(move |c| tessera::db::repo::outbox::insert(c, &row))
            .await;
    }
    first.clock.advance(200);
    second.clock.advance(200);
    let drain = |app: &TestApp| {
        let svc = app.state.services.clone();
        async move {
            let mailer = svc.mailer.clone().expect("mail is on");
            let mut claimed = 0;
            loop {
                let n = tessera::mail::outbox::send_due(&svc, &mailer)
                    .await
                    .expect("send");
                if n == 0 {
                    return claimed;
                }
                claimed += n;
            }
        }
    };
    let (a, b, c, d) = tokio::join!(drain(&first), drain(&second), drain(&first), drain(&second));
    assert_eq!(a + b + c + d, MAILS, "every mail claimed exactly once");
    // Every claim was sent before its drain returned, and no sender polls by itself: what the
    // sink holds now is all it will ever get.
    sink.wait_for(MAILS).await;
    let mut recipients: Vec<String> = sink.mails().iter().map(|m| m.to[0].clone()).collect();
    recipients.sort();
    recipients.dedup();
    assert_eq!(recipients.len(), MAILS, "nobody got two");
    assert_eq!(sink.mails().len(), MAILS);
    let rows = outbox(&first).await;
    assert!(
        rows.iter()
            .all(|r| r.outcome.as_deref() == Some("sent") && r.attempts == 1)
    );
}

/// The reset request does the same work for any address; measured here, as the ratio of the
/// median answer time for an address with an account to one without (interleaved requests).
#[tokio::test]
async fn reset_requests_take_as_long_for_unknown_addresses() {
    let sink = SmtpSink::start().await;
    let env = TestEnv::new();
    let mut settings = env.settings();
    settings.smtp.url = sink.url();
    settings.smtp.from = FROM.to_string();
    settings.accounts.mail_requests_per_email = 1_000;
    settings.accounts.mail_requests_per_ip = 1_000;
    let app = env.spawn_with(settings).await;
    app.create_user("max@example.com", PASSWORD, &[]).await;
    const ROUNDS: usize = 60;
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS * 2 {
        let (email, times) = if round % 2 == 0 {
            ("max@example.com", &mut known)
        } else {
            ("nobody@example.com", &mut unknown)
        };
        let started = std::time::Instant::now();
        let response = post_json(&app, "/account/password-reset", json!({"email": email})).await;
        times.push(started.elapsed());
        assert_eq!(response.status(), 202);
    }
    let median = |times: &mut Vec<std::time::Duration>| {
        times.sort();
        times[times.len() / 2].as_secs_f64()
    };
    let ratio = median(&mut known) / median(&mut unknown);
    eprintln!("reset request median time, account / no account: {ratio:.2}");
    assert!((0.5..2.0).contains(&ratio), "ratio {ratio:.2}");
}

/// With `tls = starttls`, a server that does not offer STARTTLS gets no mail in plain text:
/// the mail stays queued with the reason.
#[tokio::test]
async fn starttls_is_required_not_opportunistic() {
    let sink = SmtpSink::start().await;
    let env = TestEnv::new();
    let app = mail_app(&env, &format!("{}?tls=starttls", sink.url())).await;
    app.create_user("ned@example.com", PASSWORD, &[]).await;
    post_json(
        &app,
        "/account/password-reset",
        json!({"email": "ned@example.com"}),
    )
    .await;
    let failed = first_failed_delivery(&app).await;
    assert!(failed.finished_at.is_none(), "still queued");
    assert!(sink.mails().is_empty(), "nothing went out in plain text");
}

/// STARTTLS and TLS from the first byte, against a server whose certificate a private CA
/// (`smtp.ca_file`) signed; without that CA the certificate is refused and nothing is sent.
#[tokio::test]
async fn mail_goes_out_over_starttls_and_implicit_tls() {
    use crate::testkit::smtp::{SinkTls, TestCertificates};
    let certs = TestCertificates::new();
    for (mode, trusted) in [("starttls", true), ("tls", true), ("tls", false)] {
        let tls = match mode {
            "starttls" => SinkTls::Starttls(certs.acceptor.clone()),
            _ => SinkTls::Implicit(certs.acceptor.clone()),
        };
        let sink = SmtpSink::start_with(0, tls).await;
        let env = TestEnv::new();
        let ca_file = env.dir.path().join("smtp-ca.pem");
        std::fs::write(&ca_file, &certs.ca_pem).expect("write CA");
        let mut settings = env.settings();
        settings.smtp.host = "127.0.0.1".into();
        settings.smtp.port = sink.port;
        settings.smtp.tls = if mode == "starttls" {
            tessera::config::SmtpTls::Starttls
        } else {
            tessera::config::SmtpTls::Tls
        };
        settings.smtp.from = FROM.to_string();
        settings.smtp.timeout_secs = 5;
        if trusted {
            settings.smtp.ca_file = ca_file.display().to_string();
        }
        settings.mail.poll_interval_ms = 50;
        let app = env.spawn_with(settings).await;
        app.create_user("oli@example.com", PASSWORD, &[]).await;
        post_json(
            &app,
            "/account/password-reset",
            json!({"email": "oli@example.com"}),
        )
        .await;
        if trusted {
            let mails = sink.wait_for(1).await;
            assert_eq!(mails[0].to, ["oli@example.com"], "{mode}");
            assert!(mails[0].link("/account/password-reset").contains("token="));
        } else {
            let failed = first_failed_delivery(&app).await;
            assert!(failed.finished_at.is_none(), "still queued");
            assert!(
                sink.mails().is_empty(),
                "an untrusted certificate gets no mail"
            );
        }
        app.stop().await;
    }
}

/// `tessera_password_hashes_total` from /metrics: argon2 hashes of new passwords so far.
async fn hashes_computed(app: &TestApp) -> u64 {
    let text = app.get("/metrics").await.text().await.expect("text");
    text.lines()
        .find_map(|l| l.strip_prefix("tessera_password_hashes_total "))
        .unwrap_or_else(|| panic!("no hash counter in {text}"))
        .trim()
        .parse()
        .expect("a number")
}

/// Issue 14, item 7: with mail on, registering an address that has an account answers exactly
/// as for a new one, makes no second account, leaves the owner's password alone, and mails
/// the owner a notice with a way to reset the password.
#[tokio::test]
async fn registration_answers_alike_for_new_and_taken_addresses_and_tells_the_owner() {
    let sink = SmtpSink::start().await;
    let env = TestEnv::new();
    let app = mail_app(&env, &sink.url()).await;
    let owner = app.create_user("cid@example.com", PASSWORD, &[]).await;
    let attempt = |email: &'static str| {
        let app = &app;
        async move {
            post_json(
                app,
                "/users",
                json!({"email": email, "password": "the attacker's choice", "name": "Mallory"}),
            )
            .await
        }
    };
    let new = attempt("dee@example.com").await;
    let taken = attempt("CID@example.com").await;
    assert_eq!(new.status(), 202);
    assert_eq!(taken.status(), 202);
    let new: Value = new.json().await.expect("json");
    let taken: Value = taken.json().await.expect("json");
    assert_eq!(new, taken, "the same answer either way");
    assert!(new.to_string().contains("mail"), "{new}");

    let mails = sink.wait_for(2).await;
    let to_owner = mails
        .iter()
        .find(|m| m.to == ["cid@example.com"])
        .expect("the owner is told");
    let text = to_owner.part("text/plain");
    assert!(text.contains("create an account"), "{text}");
    let reset = to_owner.link("/account/password-reset");
    let page = app
        .client
        .get(&reset)
        .header("accept", "text/html")
        .send()
        .await
        .expect("request");
    assert_eq!(page.status(), 200, "the notice's reset link works");
    assert!(
        mails
            .iter()
            .any(|m| m.to == ["dee@example.com"]
                && m.link("/account/verify-email").contains("token=")),
        "the new address gets its verification mail"
    );

    let owners = app
        .query(|c| {
            users::table
                .filter(users::email_lower.eq("cid@example.com"))
                .count()
                .get_result::<i64>(c)
        })
        .await;
    assert_eq!(owners, 1, "no second account");
    let (client_id, secret) = app.first_party_client().await;
    let client = (client_id.as_str(), secret.as_str());
    login(&app, client, "cid@example.com", PASSWORD).await;
    let refused = app
        .password_login(client, "cid@example.com", "the attacker's choice", "openid")
        .await;
    assert_eq!(refused.status(), 400, "the attempt set no password");
    assert!(
        app.audit_events(&owner)
            .await
            .contains(&"registration_attempted".to_string())
    );
}

/// Issue 14, item 7: a registration that is refused (invalid, throttled) or whose address is
/// taken never reaches argon2, so such requests cannot fill the hashing pool.
#[tokio::test]
async fn refused_and_duplicate_registrations_cost_no_password_hash() {
    let sink = SmtpSink::start().await;
    let env = TestEnv::new();
    let mut settings = env.settings();
    settings.accounts.registrations_per_ip = 3;
    let app = env.spawn_with(settings.clone()).await;
    let body = |email: &str, password: &str| json!({"email": email, "password": password});

    let before = hashes_computed(&app).await;
    let created = post_json(&app, "/users", body("eve@example.com", PASSWORD)).await;
    assert_eq!(created.status(), 201);
    assert_eq!(
        hashes_computed(&app).await,
        before + 1,
        "a new account is hashed once"
    );

    // Without mail, a taken address is said (409), but costs no hash.
    let taken = post_json(&app, "/users", body("EVE@example.com", PASSWORD)).await;
    assert_eq!(taken.status(), 409);
    let weak = post_json(&app, "/users", body("fay@example.com", "short")).await;
    assert_eq!(weak.status(), 422);
    assert_eq!(
        hashes_computed(&app).await,
        before + 1,
        "no hash for either"
    );
    // The third counted registration from this address is the last; then back-off.
    post_json(&app, "/users", body("gus@example.com", PASSWORD)).await;
    let throttled = post_json(&app, "/users", body("hal@example.com", PASSWORD)).await;
    assert_eq!(throttled.status(), 429);
    assert_eq!(
        hashes_computed(&app).await,
        before + 2,
        "no hash when throttled"
    );
    app.stop().await;

    // With mail on, a taken address is answered as accepted: still no hash.
    mail_through(&mut settings, &sink.url());
    let app = env.spawn_with(settings.clone()).await;
    app.clock
        .advance(settings.accounts.mail_request_window_secs);
    let before = hashes_computed(&app).await;
    let taken = post_json(&app, "/users", body("eve@example.com", PASSWORD)).await;
    assert_eq!(taken.status(), 202);
    assert_eq!(hashes_computed(&app).await, before);
    app.stop().await;
}

/// Issue 14, item 7: registrations are counted per client address in the throttle table.
#[tokio::test]
async fn registrations_are_throttled_per_ip() {
    let env = TestEnv::new();
    let mut settings = env.settings();
    settings.accounts.registrations_per_ip = 3;
    settings.server.trusted_proxies =
        tessera::domain::TrustedProxies::parse(&["127.0.0.1"]).expect("a proxy");
    let app = env.spawn_with(settings).await;
    let from = |ip: &'static str, email: String| {
        let app = &app;
        async move {
            app.client
                .post(app.url("/users"))
                .header("X-Forwarded-For", ip)
                .json(&json!({"email": email, "password": PASSWORD}))
                .send()
                .await
                .expect("request")
        }
    };
    for i in 0..3 {
        let response = from("203.0.113.5", format!("u{i}@example.com")).await;
        assert_eq!(response.status(), 201);
    }
    let refused = from("203.0.113.5", "u3@example.com".into()).await;
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));
    let body: Value = refused.json().await.expect("json");
    assert_eq!(body["error"], "too_many_requests");
    let refused_user = app
        .query(|c| {
            users::table
                .filter(users::email_lower.eq("u3@example.com"))
                .count()
                .get_result::<i64>(c)
        })
        .await;
    assert_eq!(refused_user, 0);
    let elsewhere = from("203.0.113.6", "u3@example.com".into()).await;
    assert_eq!(elsewhere.status(), 201, "another address is counted apart");
    app.stop().await;
}

/// The register page's CSRF field and cookie.
async fn open_register_page(app: &TestApp) -> (String, String, String) {
    let response = app.get("/account/register").await;
    assert_eq!(response.status(), 200);
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite="),
        "{cookie}"
    );
    let cookie = cookie.split(';').next().expect("pair").to_string();
    let html = response.text().await.expect("html");
    let csrf = csrf_field(&html);
    (csrf, cookie, html)
}

async fn submit_register_page(
    app: &TestApp,
    csrf: &str,
    cookie: Option<&str>,
    email: &str,
    password: &str,
) -> reqwest::Response {
    let mut request = app
        .client
        .post(app.url("/account/register"))
        .header("Origin", &app.address)
        .form(&[
            ("csrf_token", csrf),
            ("email", email),
            ("password", password),
            ("name", "Ivy"),
        ]);
    if let Some(cookie) = cookie {
        request = request.header("Cookie", cookie);
    }
    request.send().await.expect("request")
}

/// Issue 14, item 7: the "Create account" page is a CSRF-protected form over the same
/// registration as POST /users: with mail on, the same page for new and taken addresses.
#[tokio::test]
async fn the_register_page_creates_accounts_like_post_users() {
    let sink = SmtpSink::start().await;
    let env = TestEnv::new();
    let app = mail_app(&env, &sink.url()).await;
    app.create_user("cid@example.com", PASSWORD, &[]).await;

    let (csrf, cookie, html) = open_register_page(&app).await;
    for id in [
        r#"id="email""#,
        r#"id="password""#,
        r#"id="name""#,
        r#"id="create-account""#,
    ] {
        assert!(html.contains(id), "{id} in {html}");
    }
    let page = app.get("/account/register").await;
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    assert!(
        page.headers()["content-security-policy"]
            .to_str()
            .expect("ascii")
            .contains("frame-ancestors 'none'")
    );

    // A form from elsewhere (no cookie, or a field that does not match it) is refused.
    let forged = submit_register_page(&app, &csrf, None, "ivy@example.com", PASSWORD).await;
    assert_eq!(forged.status(), 403);
    let forged =
        submit_register_page(&app, "guessed", Some(&cookie), "ivy@example.com", PASSWORD).await;
    assert_eq!(forged.status(), 403);

    // A weak password: the form again, with the reason and what was typed.
    let weak = submit_register_page(&app, &csrf, Some(&cookie), "ivy@example.com", "short").await;
    assert_eq!(weak.status(), 422);
    let weak = weak.text().await.expect("html");
    assert!(
        weak.contains(r#"role="alert""#) && weak.contains("ivy@example.com"),
        "{weak}"
    );

    let new = submit_register_page(&app, &csrf, Some(&cookie), "ivy@example.com", PASSWORD).await;
    let (csrf, cookie, _) = open_register_page(&app).await;
    let taken = submit_register_page(
        &app,
        &csrf,
        Some(&cookie),
        "cid@example.com",
        "some other pass",
    )
    .await;
    assert_eq!(new.status(), 200);
    assert_eq!(taken.status(), 200);
    let new = new.text().await.expect("html");
    let taken = taken.text().await.expect("html");
    assert_eq!(new, taken, "the same page either way");
    assert!(new.contains("Check your mail"), "{new}");
    let ivy = user_by_email(&app, "ivy@example.com").await;
    assert!(ivy.email_verified_at.is_none());
    assert_eq!(app.audit_events(&ivy.id).await, ["user_registered"]);
    sink.wait_for(2).await;
    app.stop().await;

    // Without mail: the page says the account is made, or that the address is taken.
    let app = env.spawn().await;
    let (csrf, cookie, _) = open_register_page(&app).await;
    let made = submit_register_page(&app, &csrf, Some(&cookie), "jay@example.com", PASSWORD).await;
    assert_eq!(made.status(), 200);
    assert!(made.text().await.expect("html").contains("sign in"));
    let taken = submit_register_page(&app, &csrf, Some(&cookie), "jay@example.com", PASSWORD).await;
    assert_eq!(taken.status(), 409);
    app.stop().await;

    // Self-registration off: no page at all.
    let mut settings = env.settings();
    settings.accounts.self_registration = false;
    let closed = env.spawn_with(settings).await;
    assert_eq!(closed.get("/account/register").await.status(), 404);
    let posted = submit_register_page(
        &closed,
        "x",
        Some("tessera_register_csrf=x"),
        "kay@example.com",
        PASSWORD,
    )
    .await;
    assert_eq!(posted.status(), 404);
    closed.stop().await;
}

async fn status_with(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, String, Value) {
    let mut request = app.client.request(method, app.url(path)).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().expect("ascii").to_string())
        .unwrap_or_default();
    let body = response.json::<Value>().await.unwrap_or(Value::Null);
    (status, challenge, body)
}

/// Item 8: the self-service endpoints take only a token meant for them — the `account` scope
/// and an audience of this provider alone. A token a resource server received (`openid notes`,
/// `aud` [notes, issuer]) is refused with RFC 6750's invalid_token; one for this provider
/// without `account` with insufficient_scope; `account` is never mixed with another API's scope.
#[tokio::test]
async fn account_endpoints_refuse_tokens_meant_for_other_apis_item8() {
    let env = TestEnv::new();
    let app = env.spawn().await;
    let (notes_app, notes_secret) = app
        .create_client(tessera::clients::ClientSpec {
            name: "notes app".into(),
            grant_types: vec!["password".into()],
            scopes: ["openid", "email", "notes", "account"]
                .map(String::from)
                .to_vec(),
            audiences: vec!["notes".into()],
            ..tessera::clients::ClientSpec::default()
        })
        .await;
    let notes_secret = notes_secret.expect("confidential");
    let client = (notes_app.as_str(), notes_secret.as_str());
    app.create_user("kim@example.com", PASSWORD, &[]).await;
    let token = |scope: &'static str| {
        let app = &app;
        async move {
            let response = app
                .password_login(client, "kim@example.com", PASSWORD, scope)
                .await;
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.expect("json"))
        }
    };
    let (status, notes) = token("openid notes").await;
    assert_eq!(status, 200);
    let notes = notes["access_token"].as_str().expect("token").to_string();
    assert_eq!(
        jwt_claims(&notes)["aud"],
        json!(["notes", app.issuer.as_str()]),
        "the token a notes API receives"
    );
    let password_change = json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD});
    let delete = json!({"password": PASSWORD});
    let endpoints = [
        (
            reqwest::Method::POST,
            "/account/password",
            Some(password_change),
        ),
        (reqwest::Method::DELETE, "/account", Some(delete)),
        (reqwest::Method::POST, "/logout-everywhere", None),
    ];
    for (method, path, body) in &endpoints {
        let (status, challenge, error) =
            status_with(&app, method.clone(), path, &notes, body.clone()).await;
        assert_eq!(status, 401, "{method} {path}: {error}");
        assert_eq!(error["error"], "invalid_token", "{method} {path}");
        assert!(
            challenge.contains(r#"error="invalid_token""#),
            "{challenge}"
        );
    }

    // For this provider alone, but without `account`.
    let (plain, plain_secret) = app
        .create_client(tessera::clients::ClientSpec {
            name: "plain".into(),
            grant_types: vec!["password".into()],
            scopes: ["openid", "email", "account"].map(String::from).to_vec(),
            ..tessera::clients::ClientSpec::default()
        })
        .await;
    let plain_secret = plain_secret.expect("confidential");
    let response = app
        .password_login(
            (&plain, &plain_secret),
            "kim@example.com",
            PASSWORD,
            "openid email",
        )
        .await;
    let openid = response.json::<Value>().await.expect("json")["access_token"]
        .as_str()
        .expect("token")
        .to_string();
    assert_eq!(jwt_claims(&openid)["aud"], app.issuer.as_str());
    for (method, path, body) in &endpoints {
        let (status, challenge, error) =
            status_with(&app, method.clone(), path, &openid, body.clone()).await;
        assert_eq!(status, 403, "{method} {path}: {error}");
        assert_eq!(error["error"], "insufficient_scope");
        assert!(
            challenge.contains(r#"error="insufficient_scope""#) && challenge.contains("account"),
            "{challenge}"
        );
    }
    // It still serves userinfo (OpenID Connect).
    let (status, _, _) = status_with(&app, reqwest::Method::GET, "/userinfo", &openid, None).await;
    assert_eq!(status, 200);

    // `account` with another API's scope is refused; with this provider's own scopes it gives
    // a token for this provider alone.
    let (status, mixed) = token("openid notes account").await;
    assert_eq!(
        (status, mixed["error"].as_str()),
        (400, Some("invalid_scope"))
    );
    let (status, own) = token("openid email account").await;
    assert_eq!(status, 200, "{own}");
    let own = own["access_token"].as_str().expect("token").to_string();
    assert_eq!(jwt_claims(&own)["aud"], app.issuer.as_str());
    // Asking for nothing gets the client's default, which never includes `account`.
    let (status, default) = token("").await;
    assert_eq!(status, 200);
    assert_eq!(default["scope"], "openid email notes");

    // A token with `account` but a foreign audience (as this server minted before) is refused.
    let mut forged = jwt_claims(&own);
    forged["aud"] = json!(["notes", app.issuer.as_str()]);
    let forged = tessera::tokens::sign(
        app.state.services.keys.current().active(),
        "at+jwt",
        &forged,
    )
    .expect("signed");
    let (status, _, error) = status_with(
        &app,
        reqwest::Method::POST,
        "/logout-everywhere",
        &forged,
        None,
    )
    .await;
    assert_eq!(
        (status, error["error"].as_str()),
        (401, Some("invalid_token"))
    );

    let (status, _, body) = status_with(
        &app,
        reqwest::Method::POST,
        "/logout-everywhere",
        &own,
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

/// Item 8: deleting an account needs a recent sign-in (`auth_time` within
/// `accounts.reauth_max_age_secs`) or the password: a token from a sign-in more than 300 s ago
/// cannot delete an account that has no password (one that signs in upstream only).
#[tokio::test]
async fn an_old_sign_in_cannot_delete_the_account_without_the_password_item8() {
    let env = TestEnv::new();
    let app = env.spawn().await;
    let (client_id, secret) = app.first_party_client().await;
    let client = (client_id.as_str(), secret.as_str());

    // An account with a password: an old sign-in needs the password.
    app.create_user("max@example.com", PASSWORD, &[]).await;
    let old = login(&app, client, "max@example.com", PASSWORD).await;
    let old = old["access_token"].as_str().expect("token").to_string();
    app.clock.advance(301);
    let (status, _, _) = status_with(&app, reqwest::Method::DELETE, "/account", &old, None).await;
    assert_eq!(status, 422, "the password is required");
    let (status, _, _) = status_with(
        &app,
        reqwest::Method::DELETE,
        "/account",
        &old,
        Some(json!({"password": PASSWORD})),
    )
    .await;
    assert_eq!(status, 204);

    // An account without a password.
    let user_id = app.create_user("ned@example.com", PASSWORD, &[]).await;
    let old = login(&app, client, "ned@example.com", PASSWORD).await;
    let old = old["access_token"].as_str().expect("token").to_string();
    app.clock.advance(301);
    let fresh = login(&app, client, "ned@example.com", PASSWORD).await;
    let fresh = fresh["access_token"].as_str().expect("token").to_string();
    app.query(move |c| {
        diesel::update(users::table.find(user_id))
            .set(users::password_hash.eq(None::<String>))
            .execute(c)
    })
    .await;
    let (status, challenge, error) =
        status_with(&app, reqwest::Method::DELETE, "/account", &old, None).await;
    assert_eq!(status, 401, "{error}");
    assert_eq!(error["error"], "insufficient_user_authentication");
    assert!(
        challenge.contains(r#"error="insufficient_user_authentication""#)
            && challenge.contains(r#"max_age="300""#),
        "RFC 9470: {challenge}"
    );
    let (status, _, _) = status_with(&app, reqwest::Method::DELETE, "/account", &fresh, None).await;
    assert_eq!(status, 204, "a sign-in within 300 s may");
}

/// Item 11: after a password reset, the access tokens issued before it are refused by this
/// provider's own endpoints and introspect as inactive, as after a password change.
#[tokio::test]
async fn a_password_reset_ends_older_access_tokens_at_userinfo_and_introspection_item11() {
    let sink = SmtpSink::start().await;
    let env = TestEnv::new();
    let app = mail_app(&env, &sink.url()).await;
    let (client_id, secret) = app.first_party_client().await;
    let client = (client_id.as_str(), secret.as_str());
    app.create_user("oli@example.com", PASSWORD, &[]).await;
    let session = login(&app, client, "oli@example.com", PASSWORD).await;
    let access = session["access_token"].as_str().expect("token").to_string();
    let introspect = |token: String| {
        let app = &app;
        async move {
            app.client
                .post(app.url("/introspect"))
                .basic_auth(client.0, Some(client.1))
                .form(&[("token", token)])
                .send()
                .await
                .expect("request")
                .json::<Value>()
                .await
                .expect("json")
        }
    };
    assert_eq!(introspect(access.clone()).await["active"], true);
    let (status, _, _) = status_with(&app, reqwest::Method::GET, "/userinfo", &access, None).await;
    assert_eq!(status, 200);

    post_json(
        &app,
        "/account/password-reset",
        json!({"email": "oli@example.com"}),
    )
    .await;
    let token = token_of(&sink.wait_for(1).await[0].link("/account/password-reset"));
    let done = post_json(
        &app,
        "/account/password-reset/confirm",
        json!({"token": token, "new_password": NEW_PASSWORD}),
    )
    .await;
    assert_eq!(done.status(), 200);

    let (status, _, error) =
        status_with(&app, reqwest::Method::GET, "/userinfo", &access, None).await;
    assert_eq!(
        (status, error["error"].as_str()),
        (401, Some("invalid_token"))
    );
    assert_eq!(introspect(access.clone()).await, json!({"active": false}));
    let (status, _, _) = status_with(
        &app,
        reqwest::Method::POST,
        "/logout-everywhere",
        &access,
        None,
    )
    .await;
    assert_eq!(status, 401);
    let fresh = login(&app, client, "oli@example.com", NEW_PASSWORD).await;
    let fresh = fresh["access_token"].as_str().expect("token").to_string();
    assert_eq!(introspect(fresh.clone()).await["active"], true);
    let (status, _, _) = status_with(&app, reqwest::Method::GET, "/userinfo", &fresh, None).await;
    assert_eq!(status, 200);
}
