//! Browser tests: headless Chromium, driven through chromedriver (WebDriver, via `fantoccini`),
//! against the real server. Only a browser enforces CSP, `HttpOnly`, framing rules and shows
//! script errors, so every page people use gets its test here (one file per page).
//!
//! Each test starts its own chromedriver and Chromium with a fresh, empty profile, and ends
//! them when it ends (`Browser::close`, or on drop if the test fails). Waits poll with a
//! deadline, never sleep a fixed time. The console (Chromium's browser log: script errors, CSP
//! violations, failed loads) is collected as the test goes, so a test can say "no errors".
//!
//! A missing browser fails the test: `./scripts/test` decides to skip these tests when no
//! browser is installed, and says so, so that a test never passes by doing nothing.

// The harness serves every page's tests; not each uses every part.
#![allow(dead_code)]

mod enrolment;
mod forgot_password;
mod link;
mod login;
mod logout;
mod mfa;
mod passkeys;
mod register;
mod security;
mod sso;
mod verify_email;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

/// How long any one wait may take before the test fails: the testkit's, as for every test.
pub use crate::testkit::DEADLINE;

/// The programs, overridable for machines that keep them elsewhere.
fn chromedriver_path() -> String {
    std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into())
}

fn chromium_path() -> String {
    std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into())
}

/// One line of the browser's console.
#[derive(Debug, Clone)]
pub struct ConsoleEntry {
    pub level: String,
    pub source: String,
    pub message: String,
}

impl ConsoleEntry {
    pub fn is_error(&self) -> bool {
        self.level == "SEVERE"
    }
}

/// A cookie as the browser holds it.
#[derive(Debug, Clone)]
pub struct BrowserCookie {
    pub name: String,
    pub value: String,
    pub http_only: bool,
    pub secure: bool,
    pub path: String,
    /// When it expires (Unix seconds); `None` for a cookie that ends with the browser session.
    pub expires: Option<i64>,
    /// `Strict`, `Lax` or `None`, as the browser recorded it.
    pub same_site: Option<String>,
}

pub struct Browser {
    client: Client,
    driver: Child,
    console: Vec<ConsoleEntry>,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with a fresh profile.
    pub async fn start() -> Browser {
        let port = free_port();
        let mut command = Command::new(chromedriver_path());
        command
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // Its own process group: on drop the whole group (driver and browser) goes.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let driver = command.spawn().unwrap_or_else(|e| {
            panic!(
                "browser tests need chromedriver ({}: {e}); install Debian's `chromium` and \
                 `chromium-driver`, or run `./scripts/test`, which skips them without a browser",
                chromedriver_path()
            )
        });
        assert!(
            std::path::Path::new(&chromium_path()).exists(),
            "browser tests need Chromium at {} (Debian's `chromium`)",
            chromium_path()
        );
        let profile = tempfile::tempdir().expect("profile dir");
        let mut last_error = None;
        let started = Instant::now();
        // The driver needs a moment to listen; a session is the proof that it does.
        let client = loop {
            match connect(port, profile.path()).await {
                Ok(client) => break client,
                Err(e) if started.elapsed() < DEADLINE => {
                    last_error = Some(e);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("chromedriver gave no session in time: {e} ({last_error:?})"),
            }
        };
        Browser {
            client,
            driver,
            console: Vec::new(),
            _profile: profile,
        }
    }

    pub async fn open(&self, url: &str) {
        self.client.goto(url).await.expect("navigate");
    }

    pub async fn current_url(&self) -> String {
        self.client.current_url().await.expect("url").to_string()
    }

    /// Waits until an element matching `css` is on the page, and returns it.
    pub async fn find(&self, css: &str) -> fantoccini::elements::Element {
        match self
            .client
            .wait()
            .at_most(DEADLINE)
            .for_element(Locator::Css(css))
            .await
        {
            Ok(element) => element,
            Err(e) => panic!("no {css} on {}: {e}", self.url_or_unknown().await),
        }
    }

    /// Whether an element matching `css` is on the page now (no waiting).
    pub async fn has(&self, css: &str) -> bool {
        !self
            .client
            .find_all(Locator::Css(css))
            .await
            .expect("find")
            .is_empty()
    }

    /// Types `text` into the field `css`, as a person would (key by key).
    pub async fn type_into(&self, css: &str, text: &str) {
        self.find(css).await.send_keys(text).await.expect("type");
    }

    pub async fn click(&self, css: &str) {
        self.find(css).await.click().await.expect("click");
    }

    /// The `value` of a form field as the browser holds it.
    pub async fn value_of(&self, css: &str) -> String {
        self.find(css)
            .await
            .prop("value")
            .await
            .expect("value")
            .unwrap_or_default()
    }

    /// The text a person sees on the page.
    pub async fn text(&self) -> String {
        self.script("return document.body ? document.body.innerText : ''")
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Runs `script` in the page (a function body: `return …`).
    pub async fn script(&self, script: &str) -> Value {
        self.client.execute(script, vec![]).await.expect("script")
    }

    /// Waits until `ready` says yes, polling; fails the test at the deadline with `what`.
    pub async fn wait_until<F, Fut>(&self, what: &str, mut ready: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let started = Instant::now();
        while !ready().await {
            assert!(
                started.elapsed() < DEADLINE,
                "timed out waiting for {what} (at {})",
                self.url_or_unknown().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the page's URL starts with `prefix`.
    pub async fn wait_for_url(&self, prefix: &str) {
        let started = Instant::now();
        loop {
            let url = self.current_url().await;
            if url.starts_with(prefix) {
                return;
            }
            assert!(
                started.elapsed() < DEADLINE,
                "the browser never reached {prefix}; it is at {url}; console: {:?}",
                self.console
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Every console line so far (Chromium hands each out once; they are kept here).
    pub async fn console(&mut self) -> Vec<ConsoleEntry> {
        let entries = self
            .client
            .issue_cmd(BrowserLog)
            .await
            .expect("browser log");
        for entry in entries.as_array().into_iter().flatten() {
            let field = |name: &str| entry[name].as_str().unwrap_or_default().to_string();
            self.console.push(ConsoleEntry {
                level: field("level"),
                source: field("source"),
                message: field("message"),
            });
        }
        self.console.clone()
    }

    /// The console's errors so far: script errors, CSP violations, failed loads.
    pub async fn console_errors(&mut self) -> Vec<ConsoleEntry> {
        self.console()
            .await
            .into_iter()
            .filter(ConsoleEntry::is_error)
            .collect()
    }

    /// Fails the test if the console has any error.
    pub async fn assert_no_console_errors(&mut self, when: &str) {
        let errors = self.console_errors().await;
        assert!(errors.is_empty(), "console errors {when}: {errors:#?}");
    }

    /// The cookies the browser holds for the current page's site, HttpOnly ones included.
    pub async fn cookies(&self) -> Vec<BrowserCookie> {
        self.client
            .get_all_cookies()
            .await
            .expect("cookies")
            .into_iter()
            .map(|c| BrowserCookie {
                name: c.name().to_string(),
                value: c.value().to_string(),
                http_only: c.http_only().unwrap_or(false),
                secure: c.secure().unwrap_or(false),
                path: c.path().unwrap_or_default().to_string(),
                expires: c.expires_datetime().map(|t| t.unix_timestamp()),
                same_site: c.same_site().map(|s| s.to_string()),
            })
            .collect()
    }

    /// The cookie `name` the browser holds for the current page's site, if any.
    pub async fn cookie(&self, name: &str) -> Option<BrowserCookie> {
        self.cookies().await.into_iter().find(|c| c.name == name)
    }

    /// What the page's own scripts see of the cookies (`document.cookie`).
    pub async fn script_cookies(&self) -> String {
        self.script("return document.cookie")
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Switches into the page's `index`th frame, and back out with `leave_frame`.
    pub async fn enter_frame(&self, index: u16) {
        self.client.enter_frame(index).await.expect("enter frame");
    }

    pub async fn leave_frame(&self) {
        self.client.enter_parent_frame().await.expect("leave frame");
    }

    /// Ends the session: Chromium quits, then the driver.
    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }

    async fn url_or_unknown(&self) -> String {
        match self.client.current_url().await {
            Ok(url) => url.to_string(),
            Err(_) => "an unknown page".into(),
        }
    }
}

impl Drop for Browser {
    /// A failed test must not leave a browser behind: the driver's whole process group goes.
    fn drop(&mut self) {
        if let Ok(None) = self.driver.try_wait()
            && let Ok(pid) = i32::try_from(self.driver.id())
        {
            // SAFETY: signals only the process group this test started.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
            let _ = self.driver.wait();
        }
    }
}

async fn connect(port: u16, profile: &std::path::Path) -> Result<Client, String> {
    let capabilities = json!({
        "browserName": "chrome",
        "goog:loggingPrefs": { "browser": "ALL" },
        "goog:chromeOptions": {
            "binary": chromium_path(),
            // Root needs --no-sandbox; the rest keeps Chromium off the (closed) network.
            "args": [
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                format!("--user-data-dir={}", profile.display()),
            ],
        },
    });
    let serde_json::Value::Object(capabilities) = capabilities else {
        unreachable!("an object")
    };
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .map_err(|e| e.to_string())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("addr")
        .port()
}

/// chromedriver's log command (`goog:loggingPrefs`), not part of W3C WebDriver: returns and
/// clears the console lines gathered since the last call.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (reqwest::Method, Option<String>) {
        (
            reqwest::Method::POST,
            Some(json!({ "type": "browser" }).to_string()),
        )
    }
}

/// A web site on loopback (another origin than Tessera): serves one page at every path and
/// records each request's path and query. It plays the app a redirect URI points to, or a
/// hostile page that frames Tessera.
pub struct Site {
    pub origin: String,
    requests: Arc<Mutex<Vec<String>>>,
    handle: actix_web::dev::ServerHandle,
}

impl Site {
    pub async fn start(page: &str) -> Site {
        use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
        let requests = Arc::new(Mutex::new(Vec::new()));
        let page = page.to_string();
        let seen = requests.clone();
        let server = HttpServer::new(move || {
            let page = page.clone();
            let seen = seen.clone();
            App::new().default_service(web::to(move |req: HttpRequest| {
                let page = page.clone();
                let seen = seen.clone();
                async move {
                    if req.path() == "/favicon.ico" {
                        return HttpResponse::NoContent().finish();
                    }
                    let target = match req.query_string() {
                        "" => req.path().to_string(),
                        query => format!("{}?{query}", req.path()),
                    };
                    seen.lock().expect("requests").push(target);
                    HttpResponse::Ok()
                        .content_type("text/html; charset=utf-8")
                        .body(page)
                }
            }))
        })
        .workers(1)
        .disable_signals()
        .bind("127.0.0.1:0")
        .expect("bind");
        let origin = format!("http://{}", server.addrs()[0]);
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        Site {
            origin,
            requests,
            handle,
        }
    }

    /// Every request so far, as path + query.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().expect("requests").clone()
    }

    pub async fn stop(self) {
        self.handle.stop(false).await;
    }
}

/// What an app's site serves at every path, its `/callback` included.
pub const APP_PAGE: &str = "<!doctype html><title>App</title><p>Back in the app.</p>";

/// A public code-flow app on its own origin (a `Site`), registered at Tessera with the site's
/// `/callback` as its redirect URI, asking for `openid email`.
pub struct SiteApp {
    pub site: Site,
    pub client_id: String,
}

impl SiteApp {
    /// Registers an app named `name` for a new site.
    pub async fn register(tessera: &crate::testkit::TestApp, name: &str) -> SiteApp {
        let site = Site::start(APP_PAGE).await;
        let client_id = tessera
            .create_client(tessera::clients::ClientSpec {
                name: name.into(),
                public: true,
                grant_types: vec!["authorization_code".into()],
                redirect_uris: vec![format!("{}/callback", site.origin)],
                scopes: ["openid", "email"].map(String::from).to_vec(),
                ..tessera::clients::ClientSpec::default()
            })
            .await
            .0;
        SiteApp { site, client_id }
    }

    pub fn callback(&self) -> String {
        format!("{}/callback", self.site.origin)
    }

    /// Tessera's `/authorize` for this app (PKCE with the fixtures' verifier), with `state`,
    /// `nonce` and `extra`.
    pub fn authorize_url(
        &self,
        tessera: &crate::testkit::TestApp,
        state: &str,
        nonce: &str,
        extra: &[(&str, &str)],
    ) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        query
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", &self.callback())
            .append_pair("scope", "openid email")
            .append_pair("state", state)
            .append_pair("nonce", nonce)
            .append_pair(
                "code_challenge",
                &crate::testkit::pkce_challenge(crate::testkit::VERIFIER),
            )
            .append_pair("code_challenge_method", "S256");
        for (name, value) in extra {
            query.append_pair(name, value);
        }
        format!("{}?{}", tessera.url("/authorize"), query.finish())
    }

    /// The code in `url`, where the browser came back to this app, which must carry `state`.
    pub fn code_in(&self, url: &str, state: &str) -> String {
        assert!(
            url.starts_with(&self.callback()),
            "not back at the app: {url}"
        );
        let query = crate::testkit::query_of(url);
        assert_eq!(query.get("state").map(String::as_str), Some(state), "{url}");
        query
            .get("code")
            .cloned()
            .unwrap_or_else(|| panic!("no code in {url}"))
    }

    /// The ID token's claims that `code` buys this app.
    pub async fn id_claims(&self, tessera: &crate::testkit::TestApp, code: &str) -> Value {
        let tokens = tessera
            .exchange_code(&self.client_id, &self.callback(), code)
            .await;
        crate::testkit::claims_of(tokens["id_token"].as_str().expect("an ID token"))
    }
}
