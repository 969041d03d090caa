//! Spawning the server: in process (`TestEnv::spawn`, with the test Clock), as the real binary
//! (`ServerProcess`), or as a CLI command (`run_cli`, `TestEnv::cli`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use tempfile::TempDir;
use tessera::clients::ClientSpec;
use tessera::clock::Clock;
use tessera::config::Settings;
use tessera::http::AppState;
use tessera::startup::Application;

use super::database::{Start, TestDatabase};
use super::fixtures::PASSWORD;

/// Settings for a test server: port 0, the given database and keys directory, one worker,
/// cheap argon2 so tests do not crawl.
pub fn test_settings(database_url: &str, keys_dir: &Path) -> Settings {
    let mut settings = Settings::defaults().expect("defaults");
    settings.server.bind = "127.0.0.1:0".parse().expect("addr");
    settings.server.workers = 1;
    settings.server.shutdown_timeout_secs = 1;
    settings.server.drain_secs = 0;
    settings.database.url = database_url.to_string();
    settings.database.max_connections = 4;
    settings.keys.dir = keys_dir.to_path_buf();
    settings.passwords.argon2_memory_kib = 1024;
    settings.passwords.argon2_iterations = 1;
    settings
}

pub struct TestApp {
    pub address: String,
    pub issuer: String,
    pub client: reqwest::Client,
    pub state: actix_web::web::Data<AppState>,
    pub settings: Settings,
    pub clock: Clock,
    /// `http://host:port` of the separate metrics listener, when `metrics.bind` is set.
    pub metrics_address: Option<String>,
    handle: actix_web::dev::ServerHandle,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request")
    }

    /// Creates a user directly (as `tessera user add` would) and returns its id.
    pub async fn create_user(&self, email: &str, password: &str, roles: &[&str]) -> String {
        let account = tessera::accounts::NewAccount::validate(
            email,
            Some("Test User"),
            &roles.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
            true,
        )
        .expect("valid account");
        let hash = self
            .state
            .services
            .hashes
            .hash(password.to_string())
            .await
            .expect("hash");
        self.state
            .services
            .db
            .run(move |conn| tessera::accounts::create(conn, &account, Some(&hash)))
            .await
            .expect("user created")
            .id
            .into_string()
    }

    /// Registers a client; returns its id and, for a confidential one, its secret.
    pub async fn create_client(&self, spec: ClientSpec) -> (String, Option<String>) {
        let (client, secret) = self
            .state
            .services
            .db
            .run(move |conn| tessera::clients::create(conn, &spec))
            .await
            .expect("client created");
        (client.id.into_string(), secret)
    }

    /// A confidential first-party client for the password grant, with refresh tokens; it may
    /// ask for `account` and `admin` (tokens for this provider's own endpoints) too.
    pub async fn first_party_client(&self) -> (String, String) {
        let (id, secret) = self
            .create_client(ClientSpec {
                name: "first party".into(),
                grant_types: vec!["password".into(), "refresh_token".into()],
                scopes: ["openid", "email", "profile", "api", "account", "admin"]
                    .map(String::from)
                    .to_vec(),
                audiences: vec!["api".into()],
                ..ClientSpec::default()
            })
            .await;
        (id, secret.expect("confidential"))
    }

    /// POST /token with `client_secret_basic` and form parameters.
    pub async fn token(&self, client: (&str, &str), form: &[(&str, &str)]) -> reqwest::Response {
        self.client
            .post(self.url("/token"))
            .basic_auth(client.0, Some(client.1))
            .form(form)
            .send()
            .await
            .expect("request")
    }

    pub async fn password_login(
        &self,
        client: (&str, &str),
        username: &str,
        password: &str,
        scope: &str,
    ) -> reqwest::Response {
        self.token(
            client,
            &[
                ("grant_type", "password"),
                ("username", username),
                ("password", password),
                ("scope", scope),
            ],
        )
        .await
    }

    /// Audit event names recorded for a user, oldest first.
    pub async fn audit_events(&self, user_id: &str) -> Vec<String> {
        let user_id = user_id.to_string();
        self.state
            .services
            .db
            .run(move |conn| {
                tessera::db::repo::audit::events_for_user(conn, &user_id)
                    .map_err(tessera::db::DbError::from)
            })
            .await
            .expect("audit events")
    }

    /// Runs diesel code on the server's own pool (off the async workers, like the server).
    pub async fn query<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut tessera::db::DbConnection) -> diesel::QueryResult<T> + Send + 'static,
    ) -> T {
        self.state.services.db.run(once(work)).await.expect("query")
    }

    /// Exchanges an authorization code of the public client `client_id` (made with the
    /// fixtures' PKCE verifier) at the token endpoint; the token response as JSON.
    pub async fn exchange_code(
        &self,
        client_id: &str,
        redirect_uri: &str,
        code: &str,
    ) -> serde_json::Value {
        let response = self
            .client
            .post(self.url("/token"))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", redirect_uri),
                ("client_id", client_id),
                ("code_verifier", super::fixtures::VERIFIER),
            ])
            .send()
            .await
            .expect("token request");
        assert_eq!(response.status(), 200, "the code buys tokens");
        response.json().await.expect("json")
    }

    /// The status GET /userinfo answers for this access token.
    pub async fn userinfo_status(&self, access_token: &str) -> u16 {
        self.client
            .get(self.url("/userinfo"))
            .bearer_auth(access_token)
            .send()
            .await
            .expect("request")
            .status()
            .as_u16()
    }

    pub async fn stop(self) {
        self.handle.stop(true).await;
    }
}

/// A test's one-off query as a database job, which may be run again after a serialization
/// failure: a second run (no test runs at SERIALIZABLE but the one that says so) is an error.
pub fn once<T>(
    work: impl FnOnce(&mut tessera::db::DbConnection) -> diesel::QueryResult<T>,
) -> impl FnMut(&mut tessera::db::DbConnection) -> Result<T, tessera::db::DbError> {
    let mut work = Some(work);
    move |conn| match work.take() {
        Some(work) => work(conn).map_err(tessera::db::DbError::from),
        None => Err(tessera::db::DbError::Task("a test query ran twice".into())),
    }
}

/// A test's world: a temporary directory (keys, SQLite file) and a fresh database.
pub struct TestEnv {
    pub dir: TempDir,
    pub db: TestDatabase,
}

impl TestEnv {
    pub fn new() -> TestEnv {
        TestEnv::starting(Start::Migrated)
    }

    /// With a database no migration has touched, for the tests of migrating.
    pub fn with_empty_database() -> TestEnv {
        TestEnv::starting(Start::Empty)
    }

    fn starting(start: Start) -> TestEnv {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = TestDatabase::starting(dir.path(), start);
        TestEnv { dir, db }
    }

    pub fn keys_dir(&self) -> PathBuf {
        self.dir.path().join("keys")
    }

    pub fn settings(&self) -> Settings {
        test_settings(&self.db.url, &self.keys_dir())
    }

    pub async fn spawn(&self) -> TestApp {
        self.spawn_with(self.settings()).await
    }

    /// With a stopped clock, so nothing a test does can expire by itself on a slow machine;
    /// tests move it with `app.clock.advance`.
    pub async fn spawn_with(&self, settings: Settings) -> TestApp {
        self.spawn_with_clock(settings, Clock::frozen()).await
    }

    pub async fn spawn_with_clock(&self, settings: Settings, clock: Clock) -> TestApp {
        let app = Application::build_with_clock(settings.clone(), clock.clone())
            .await
            .expect("application builds");
        let address = format!("http://{}", app.address());
        let state = app.state();
        let handle = app.handle();
        let metrics_address = app.metrics_address().map(|a| format!("http://{a}"));
        tokio::spawn(app.run_until_stopped());
        TestApp {
            address,
            issuer: state.services.issuer.clone(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            state,
            settings,
            clock,
            metrics_address,
            handle,
        }
    }

    /// Runs the real `tessera` binary against this test's database and keys.
    pub fn cli(&self, args: &[&str], stdin: Option<&str>) -> Output {
        run_cli(
            args,
            &[
                ("DATABASE_URL", self.db.url.as_str()),
                ("TESSERA_KEYS_DIR", &self.keys_dir().to_string_lossy()),
            ],
            stdin,
        )
    }

    /// Through the CLI, as an operator sets up a fresh installation: ann@example.com with
    /// `PASSWORD`, and a first-party client "app" with `grant_types` and the scopes
    /// `openid email api`; the client's id and secret.
    pub fn cli_user_and_client(&self, grant_types: &str) -> (String, String) {
        stdout_json(&self.cli(
            &[
                "user",
                "add",
                "--email",
                "ann@example.com",
                "--password-stdin",
            ],
            Some(PASSWORD),
        ));
        let created = stdout_json(&self.cli(
            &[
                "client",
                "add",
                "--name",
                "app",
                "--grant-types",
                grant_types,
                "--scopes",
                "openid email api",
            ],
            None,
        ));
        (
            created["client_id"].as_str().expect("id").to_string(),
            created["client_secret"]
                .as_str()
                .expect("secret")
                .to_string(),
        )
    }
}

/// The binary with a clean TESSERA_ environment plus `env`, run in a temporary directory.
pub fn run_cli(args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Output {
    let cwd = tempfile::tempdir().expect("tempdir");
    let mut command = Command::new(env!("CARGO_BIN_EXE_tessera"));
    command.args(args).current_dir(cwd.path());
    for (name, _) in std::env::vars() {
        if name.starts_with("TESSERA_") || name == "DATABASE_URL" {
            command.env_remove(name);
        }
    }
    command.env("TESSERA_LOG", "warn");
    for (name, value) in env {
        command.env(name, value);
    }
    command.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().expect("tessera binary runs");
    if let Some(input) = stdin {
        use std::io::Write;
        // A command that fails before reading stdin (bad arguments) closes it: not an error.
        if let Err(e) = child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
        {
            assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "write stdin: {e}");
        }
    }
    child.wait_with_output().expect("tessera exits")
}

pub fn stdout_json(output: &Output) -> serde_json::Value {
    assert!(
        output.status.success(),
        "command failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("stdout is JSON")
}

/// The real binary serving on a free port against a test's database and keys: a second
/// server process beside the in-process one.
pub struct ServerProcess {
    pub address: String,
    child: std::process::Child,
    logs: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    /// The thread reading stderr; it ends when the process does.
    reader: Option<std::thread::JoinHandle<()>>,
}

impl ServerProcess {
    pub fn start(env: &TestEnv) -> ServerProcess {
        ServerProcess::start_with(env, &[])
    }

    /// As `start`, with more environment variables (they win over the test's own), e.g.
    /// `TESSERA_LOG` for a chattier log or `DATABASE_URL` for another route to the database.
    pub fn start_with(env: &TestEnv, vars: &[(&str, &str)]) -> ServerProcess {
        use std::io::{BufRead, BufReader};
        let mut command = Command::new(env!("CARGO_BIN_EXE_tessera"));
        command
            .args(["serve", "--bind", "127.0.0.1:0", "--log-format", "json"])
            .env("DATABASE_URL", &env.db.url)
            .env("TESSERA_KEYS_DIR", env.keys_dir())
            .env("TESSERA_LOG", "tessera::startup=info,warn")
            // Stopping takes no drain unless a test asks for one.
            .env("TESSERA_SERVER_DRAIN_SECS", "0");
        for (name, value) in vars {
            command.env(name, value);
        }
        let mut child = command
            .current_dir(env.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tessera starts");
        let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
        let logs = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let address = loop {
            let line = lines
                .next()
                .expect("a log line before exit")
                .expect("utf-8");
            logs.lock().expect("logs").push(line.clone());
            let event: serde_json::Value = serde_json::from_str(&line).expect("JSON log line");
            if event["message"] == "listening" {
                break event["address"].as_str().expect("address").to_string();
            }
        };
        // Keep draining stderr so the server never blocks on a full pipe; keep the lines.
        let kept = logs.clone();
        let reader = std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                kept.lock().expect("logs").push(line);
            }
        });
        ServerProcess {
            address: format!("http://{address}"),
            child,
            logs,
            reader: Some(reader),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every log line the process has written so far.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().expect("logs").clone()
    }

    /// SIGKILL: no shutdown, no flush, no goodbye.
    pub fn kill(mut self) {
        self.child.kill().expect("kill -9");
        self.child.wait().expect("reaped");
    }

    /// As `stop`, and every line the process wrote, read to the end of its stderr.
    pub fn stop_keeping_logs(mut self) -> (std::process::ExitStatus, Vec<String>) {
        let reader = self.reader.take();
        let logs = self.logs.clone();
        let status = self.stop();
        if let Some(reader) = reader {
            reader.join().expect("the log reader ends");
        }
        let lines = logs.lock().expect("logs").clone();
        (status, lines)
    }

    /// SIGTERM, then the exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(sent.success());
        let started = std::time::Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(10),
                "stops within 10 s"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

impl Drop for ServerProcess {
    /// A failing test must not leave its server behind.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
