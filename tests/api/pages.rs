//! Pages come from the askama templates in `templates/pages/` alone: no HTML built by hand in
//! `src/`, and whatever a client or a person typed comes out escaped on every page family.

use std::path::Path;

use tessera::clients::ClientSpec;

use crate::testkit::app::{TestApp, TestEnv};
use crate::testkit::rust_files;
use crate::testkit::smtp::SmtpSink;
use crate::testkit::{csrf_field, mail_through};

/// What a hostile value turns into: askama's HTML escaping, quotes included.
const SCRIPT: &str = r#"<script>alert("x")</script>"#;
const SCRIPT_ESCAPED: &str = "&#60;script&#62;alert(&#34;x&#34;)&#60;/script&#62;";

/// Markup that only a template may hold: a page or mail built with `format!` (and the
/// hand-called escape such code needs) would show up here.
const MARKUP: &[&str] = &[
    "<!doctype",
    "<html",
    "<head",
    "<body",
    "<main>",
    "<form",
    "<input",
    "<button",
    "<label",
    "<style",
    "<title",
    "<p>",
    "<p ",
    "<h1",
    "<a href",
    "<a class",
    "<strong",
    "&amp;",
    "&lt;",
    "&quot;",
    "&#",
];

#[test]
fn no_html_is_written_outside_the_templates() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    files.extend(rust_files(&root.join("src")));
    files.extend(rust_files(&root.join("crates/core/src")));
    assert!(files.len() > 20, "the sources were found: {files:?}");
    let mut found = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read");
        let relative = file.strip_prefix(root).expect("under the root");
        // Unit tests may spell out what escaped output looks like.
        let text = text.split("#[cfg(test)]").next().unwrap_or_default();
        let lower = text.to_ascii_lowercase();
        for needle in MARKUP {
            if lower.contains(needle) {
                found.push(format!("{} holds {needle:?}", relative.display()));
            }
        }
        if lower.contains("fn escape_html") || lower.contains("escape_html(") {
            found.push(format!("{} escapes HTML by hand", relative.display()));
        }
        // One home sets a page's headers.
        if text.contains("text/html; charset") && relative != Path::new("src/http/pages.rs") {
            found.push(format!("{} answers with HTML itself", relative.display()));
        }
    }
    assert!(found.is_empty(), "{found:#?}");
}

/// Every page template is one that the rendering home names, or one a template includes or
/// extends: none is left behind unused.
#[test]
fn every_page_template_is_used() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("templates/pages");
    let pages_rs = std::fs::read_to_string(root.join("src/http/pages.rs")).expect("pages.rs");
    let templates: Vec<(String, String)> = std::fs::read_dir(&dir)
        .expect("templates/pages")
        .map(|entry| {
            let path = entry.expect("entry").path();
            let name = path
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned();
            (name, std::fs::read_to_string(&path).expect("read"))
        })
        .collect();
    assert!(templates.len() >= 8, "{templates:?}");
    for (name, _) in &templates {
        let reference = format!("\"pages/{name}\"");
        let used = pages_rs.contains(&format!("path = {reference}"))
            || templates.iter().any(|(_, text)| text.contains(&reference));
        assert!(used, "templates/pages/{name} is not used");
    }
}

async fn client_named(app: &TestApp, name: &str, redirect: &str) -> String {
    app.create_client(ClientSpec {
        name: name.into(),
        public: true,
        grant_types: vec!["authorization_code".into()],
        redirect_uris: vec![redirect.into()],
        scopes: ["openid"].map(String::from).to_vec(),
        ..ClientSpec::default()
    })
    .await
    .0
}

/// The form's hidden CSRF token and the cookie that goes with it.
async fn form_with_cookie(response: reqwest::Response) -> (String, String) {
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .expect("ascii")
        .split(';')
        .next()
        .expect("pair")
        .to_string();
    let html = response.text().await.expect("html");
    let csrf = csrf_field(&html);
    (cookie, csrf)
}

fn assert_escaped(html: &str, times: usize) {
    assert_eq!(html.matches(SCRIPT_ESCAPED).count(), times, "{html}");
    assert!(!html.contains("<script"), "{html}");
}

/// The login page: the client's name (set by whoever registers it) and the request's own
/// parameters carried in hidden fields.
#[tokio::test]
async fn the_login_page_escapes_the_client_name_and_the_carried_request() {
    let env = TestEnv::new();
    let app = env.spawn().await;
    let redirect = "http://127.0.0.1:9/cb";
    let client = client_named(&app, SCRIPT, redirect).await;
    let response = app
        .client
        .get(app.url("/authorize"))
        .query(&[
            ("response_type", "code"),
            ("client_id", &client),
            ("redirect_uri", redirect),
            ("scope", "openid"),
            ("state", SCRIPT),
            (
                "code_challenge",
                "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            ),
            ("code_challenge_method", "S256"),
        ])
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let html = response.text().await.expect("html");
    assert_escaped(&html, 2);
    assert!(
        html.contains(&format!(
            r#"<input type="hidden" name="state" value="{SCRIPT_ESCAPED}">"#
        )),
        "{html}"
    );
    app.stop().await;
}

/// An error page: a repeated parameter's name, which the request chose, is in the message.
#[tokio::test]
async fn an_error_page_escapes_the_text_it_shows() {
    let env = TestEnv::new();
    let app = env.spawn().await;
    let response = app
        .get("/authorize?%3Cscript%3Ex%3C%2Fscript%3E=1&%3Cscript%3Ex%3C%2Fscript%3E=2")
        .await;
    assert_eq!(response.status(), 400);
    assert_eq!(response.headers()["x-frame-options"], "DENY");
    let html = response.text().await.expect("html");
    assert!(
        html.contains("&#60;script&#62;x&#60;/script&#62;"),
        "{html}"
    );
    assert!(html.contains(r#"role="alert""#), "{html}");
    assert!(!html.contains("<script"), "{html}");
    app.stop().await;
}

/// The forgot-password form: the address typed comes back escaped with the refusal.
#[tokio::test]
async fn the_forgot_password_form_escapes_the_typed_address() {
    let sink = SmtpSink::start().await;
    let env = TestEnv::new();
    let mut settings = env.settings();
    mail_through(&mut settings, &sink.url());
    let app = env.spawn_with(settings).await;
    let (cookie, csrf) = form_with_cookie(app.get("/account/forgot-password").await).await;
    let response = app
        .client
        .post(app.url("/account/forgot-password"))
        .header("Cookie", &cookie)
        .form(&[("csrf_token", csrf.as_str()), ("email", SCRIPT)])
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 400);
    let html = response.text().await.expect("html");
    assert_escaped(&html, 1);
    assert!(
        html.contains(&format!(r#"value="{SCRIPT_ESCAPED}""#)),
        "{html}"
    );
    app.stop().await;
    sink.stop().await;
}

/// The registration form: the name and address typed come back escaped with the refusal.
#[tokio::test]
async fn the_registration_form_escapes_what_was_typed() {
    let env = TestEnv::new();
    let mut settings = env.settings();
    settings.accounts.self_registration = true;
    let app = env.spawn_with(settings).await;
    let (cookie, csrf) = form_with_cookie(app.get("/account/register").await).await;
    let email = format!("{SCRIPT}@example.com");
    let response = app
        .client
        .post(app.url("/account/register"))
        .header("Cookie", &cookie)
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("email", email.as_str()),
            ("name", SCRIPT),
            ("password", "short"),
        ])
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 422);
    let html = response.text().await.expect("html");
    assert!(
        html.contains(&format!(r#"value="{SCRIPT_ESCAPED}@example.com""#)),
        "{html}"
    );
    assert!(
        html.contains(&format!(
            r#"name="name" type="text" autocomplete="name" value="{SCRIPT_ESCAPED}""#
        )),
        "{html}"
    );
    assert!(!html.contains("<script"), "{html}");
    app.stop().await;
}
