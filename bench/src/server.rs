//! A Tessera process for benchmarks: seeded through its own CLI, optionally pinned to cores.

use std::io::{Read, Write};

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

pub struct Setup {
    binary: PathBuf,
    dir: PathBuf,
    database_url: String,
    cpus: Option<String>,
}

/// The client a load uses, and files of request bodies.
pub struct Seed {
    pub client_id: String,
    pub client_secret: String,
    /// Password grants, one user per line.
    pub logins: PathBuf,
    /// Refresh grants, one live refresh token per line.
    pub refreshes: PathBuf,
}

impl Setup {
    pub fn new(
        binary: &Path,
        dir: &Path,
        database_url: Option<String>,
        cpus: Option<String>,
    ) -> Setup {
        Setup {
            binary: binary.to_path_buf(),
            dir: dir.to_path_buf(),
            database_url: database_url
                .unwrap_or_else(|| format!("sqlite://{}", dir.join("tessera.db").display())),
            cpus,
        }
    }

    pub fn database_url(&self) -> &str {
        &self.database_url
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = match &self.cpus {
            Some(cpus) => {
                let mut c = Command::new("taskset");
                c.args(["-c", cpus]).arg(&self.binary);
                c
            }
            None => Command::new(&self.binary),
        };
        command
            .args(args)
            .current_dir(&self.dir)
            .env("DATABASE_URL", &self.database_url)
            .env("TESSERA_KEYS_DIR", self.dir.join("keys"))
            .env("TESSERA_LOG", "warn");
        command
    }

    /// Users, one confidential client, and live refresh tokens, written straight into the
    /// database through Tessera's own code (one shared password hash, so seeding is quick),
    /// plus the request bodies for oha: one line each, oha picks lines at random.
    pub fn seed(&self, users: usize, families: usize) -> Result<Seed> {
        self.seed_signing_with(users, families, tessera::domain::SigningAlg::default())
    }

    /// `seed`, with a client whose tokens `signing_alg` signs.
    pub fn seed_signing_with(
        &self,
        users: usize,
        families: usize,
        signing_alg: tessera::domain::SigningAlg,
    ) -> Result<Seed> {
        use diesel::Connection;
        use tessera::accounts::{self, NewAccount};
        use tessera::clients::{self, ClientSpec};
        use tessera::refresh::family::{self, Lifetimes};

        let mut settings = tessera::config::Settings::defaults()?;
        settings.database.url = self.database_url.clone();
        let db = tessera::db::Database::connect(&settings.database)?;
        let mut conn = db.get()?;
        let password = "bench-password-0123456789".to_string();
        let hash =
            tessera::accounts::password::Hasher::new(&settings.passwords)?.hash(&password)?;
        let now = tessera::db::now();
        let lifetimes = Lifetimes {
            idle_secs: settings.tokens.refresh_idle_ttl_secs,
            absolute_secs: settings.tokens.refresh_absolute_ttl_secs,
            // The seed may give one user more sessions than a login would keep.
            max_live_families: i64::MAX,
        };
        let (client, secret, emails, tokens) = conn.transaction(|conn| {
            let mut created = Vec::with_capacity(users);
            let mut emails = Vec::with_capacity(users);
            for i in 0..users.max(1) {
                let email = format!("bench{i}@example.com");
                let account = NewAccount::validate(&email, None, &[], true)?;
                created.push(accounts::create(conn, &account, Some(&hash))?);
                emails.push(email);
            }
            let (client, secret) = clients::create(
                conn,
                &ClientSpec {
                    name: "bench".into(),
                    grant_types: ["password", "client_credentials", "refresh_token"]
                        .map(String::from)
                        .to_vec(),
                    scopes: vec!["api".into()],
                    signing_alg: Some(signing_alg),
                    ..ClientSpec::default()
                },
            )?;
            let mut tokens = Vec::with_capacity(families);
            let scope = tessera::domain::ScopeSet::from_stored("api");
            for i in 0..families {
                let user = &created[i % created.len()];
                tokens.push(family::start_family(
                    conn,
                    user,
                    &client.id,
                    &scope,
                    lifetimes,
                    &tessera::domain::Authentication::without_session(
                        now,
                        tessera::domain::AuthMethod::Password,
                    ),
                    now,
                )?);
            }
            Ok::<_, anyhow::Error>((client, secret, emails, tokens))
        })?;
        let logins = self.dir.join("logins.txt");
        let lines: Vec<String> = emails
            .iter()
            .map(|e| format!("grant_type=password&username={e}&password={password}&scope=api"))
            .collect();
        std::fs::write(&logins, lines.join("\n") + "\n")?;
        let refreshes = self.dir.join("refreshes.txt");
        let lines: Vec<String> = tokens
            .iter()
            .map(|(t, _)| format!("grant_type=refresh_token&refresh_token={t}"))
            .collect();
        std::fs::write(&refreshes, lines.join("\n") + "\n")?;
        Ok(Seed {
            client_id: client.id.into_string(),
            client_secret: secret.context("a confidential client")?,
            logins,
            refreshes,
        })
    }
}

/// One person who signs in at the login page, and a public code-flow app (PKCE) for them.
pub struct SsoSeed {
    pub client_id: String,
    pub email: String,
    pub password: String,
}

/// The redirect URI of the single-sign-on bench's app; nothing listens there, the load reads
/// the redirect and never follows it.
pub const SSO_REDIRECT: &str = "http://127.0.0.1:9/callback";

impl Setup {
    /// The single-sign-on bench's person (a real argon2id hash at the default cost: they sign
    /// in once, at the login page) and app (public, authorization code only, so a code buys
    /// an access token and an ID token and nothing else).
    pub fn seed_sso(&self) -> Result<SsoSeed> {
        use diesel::Connection;
        use tessera::accounts::{self, NewAccount};
        use tessera::clients::{self, ClientSpec};

        let mut settings = tessera::config::Settings::defaults()?;
        settings.database.url = self.database_url.clone();
        let db = tessera::db::Database::connect(&settings.database)?;
        let mut conn = db.get()?;
        let email = "sso@example.com".to_string();
        let password = "bench-password-0123456789".to_string();
        let hash =
            tessera::accounts::password::Hasher::new(&settings.passwords)?.hash(&password)?;
        let client = conn.transaction(|conn| {
            let account = NewAccount::validate(&email, None, &[], true)?;
            accounts::create(conn, &account, Some(&hash))?;
            let (client, _) = clients::create(
                conn,
                &ClientSpec {
                    name: "sso bench".into(),
                    public: true,
                    grant_types: vec!["authorization_code".into()],
                    redirect_uris: vec![SSO_REDIRECT.into()],
                    scopes: ["openid", "email"].map(String::from).to_vec(),
                    ..ClientSpec::default()
                },
            )?;
            Ok::<_, anyhow::Error>(client)
        })?;
        Ok(SsoSeed {
            client_id: client.id.into_string(),
            email,
            password,
        })
    }
}

pub struct Server {
    child: Child,
    pub port: u16,
}

impl Server {
    pub fn start(setup: &Setup) -> Result<Server> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = setup
            .command(&["serve", "--bind", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("start tessera")?;
        Ok(Server { child, port })
    }

    /// Polls until the JWKS answers 200; returns how long that took from `since`.
    pub fn wait_for_jwks(&mut self, since: Instant) -> Result<Duration> {
        wait_for_keys(&mut self.child, "tessera", self.port, JWKS_PATH, since)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn rss_kib(&self) -> Result<u64> {
        rss_kib(self.child.id())
    }

    /// The most memory the process has held (VmHWM): its RSS under the loads it has served.
    pub fn peak_rss_kib(&self) -> Result<u64> {
        status_kib(self.child.id(), "VmHWM")
    }

    /// One form POST with client_secret_basic on a fresh connection (setting up a load, not
    /// load itself); returns the body of a 200 answer.
    pub fn post_form(&self, path: &str, basic: &str, body: &str) -> Result<String> {
        post_form(self.port, path, basic, body)
    }

    pub fn stop(mut self) -> Result<()> {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        self.child.wait()?;
        Ok(())
    }
}

pub const JWKS_PATH: &str = "/.well-known/jwks.json";

/// Polls `port` until `path` answers 200 with a key set, or `child` (called `name` in the
/// error) exits; returns how long that took from `since`.
pub fn wait_for_keys(
    child: &mut Child,
    name: &str,
    port: u16,
    path: &str,
    since: Instant,
) -> Result<Duration> {
    let deadline = since + Duration::from_secs(30);
    loop {
        if keys_answer(port, path) {
            return Ok(since.elapsed());
        }
        if let Some(status) = child.try_wait()? {
            bail!("{name} exited early: {status}");
        }
        if Instant::now() > deadline {
            bail!("no answer from {name}'s {path} within 30 s");
        }
        std::thread::sleep(Duration::from_micros(500));
    }
}

/// One form POST with client_secret_basic to 127.0.0.1:`port` on a fresh connection (setting
/// up a load, not load itself); returns the body of a 200 answer.
pub fn post_form(port: u16, path: &str, basic: &str, body: &str) -> Result<String> {
    use base64::Engine;
    let auth = base64::engine::general_purpose::STANDARD.encode(basic);
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\nAuthorization: Basic {auth}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let (head, body) = exchange(port, &request)?;
    if !head.starts_with("HTTP/1.1 200") {
        bail!("POST {path}: {head}");
    }
    Ok(String::from_utf8(body)?)
}

/// One GET to 127.0.0.1:`port` on a fresh connection; the head and body of a 200 answer.
pub fn get(port: u16, path: &str) -> Result<(String, Vec<u8>)> {
    let request = format!("GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n");
    let (head, body) = exchange(port, &request)?;
    if !head.starts_with("HTTP/1.1 200") {
        bail!("GET {path}: {head}");
    }
    Ok((head, body))
}

/// Sends `request` on a fresh connection and reads the answer to its close: head and body.
fn exchange(port: u16, request: &str) -> Result<(String, Vec<u8>)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.write_all(request.as_bytes())?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("no HTTP answer")?;
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    Ok((head, response[split + 4..].to_vec()))
}

/// One request on a fresh connection: start-up polling, not load.
fn keys_answer(port: u16, path: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let request = format!("GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    response.starts_with(b"HTTP/1.1 200") && response.windows(7).any(|w| w == b"\"keys\":")
}

/// A PostgreSQL database made for one run and dropped after it.
pub struct FreshPostgres {
    admin: String,
    name: String,
    pub url: String,
}

impl FreshPostgres {
    pub fn create(admin: &str) -> Result<FreshPostgres> {
        use diesel::Connection;
        use diesel::connection::SimpleConnection;
        let name = format!("tessera_bench_{}", std::process::id());
        let mut conn = diesel::PgConnection::establish(admin)?;
        // One statement per call: PostgreSQL runs a multi-statement batch as one transaction,
        // and CREATE/DROP DATABASE refuse to run inside one.
        conn.batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))?;
        conn.batch_execute(&format!("CREATE DATABASE {name}"))?;
        let base = admin.rsplit_once('/').map_or(admin, |(base, _)| base);
        Ok(FreshPostgres {
            admin: admin.to_string(),
            url: format!("{base}/{name}"),
            name,
        })
    }
}

impl Drop for FreshPostgres {
    fn drop(&mut self) {
        use diesel::Connection;
        use diesel::connection::SimpleConnection;
        if let Ok(mut conn) = diesel::PgConnection::establish(&self.admin) {
            let _ = conn.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// While alive, keeps the local PostgreSQL server's processes (and the backends they fork) on
/// the load generator's cores, so the server's core is Tessera's alone and the limits stay
/// one core's; restores their affinity when dropped. Only for a server on this machine.
pub struct PinnedPostgres {
    pids: Vec<String>,
}

impl PinnedPostgres {
    pub fn to(cpus: &str) -> PinnedPostgres {
        let pids: Vec<String> = Command::new("pgrep")
            .arg("postgres")
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .split_whitespace()
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default();
        for pid in &pids {
            let _ = Command::new("taskset")
                .args(["-a", "-cp", cpus, pid])
                .output();
        }
        PinnedPostgres { pids }
    }
}

impl Drop for PinnedPostgres {
    fn drop(&mut self) {
        let all = format!(
            "0-{}",
            std::thread::available_parallelism().map_or(1, |n| n.get()) - 1
        );
        for pid in &self.pids {
            let _ = Command::new("taskset")
                .args(["-a", "-cp", &all, pid])
                .output();
        }
    }
}

/// The resident set of process `pid`, in KiB.
pub fn rss_kib(pid: u32) -> Result<u64> {
    status_kib(pid, "VmRSS")
}

/// One memory line (`VmRSS`, `VmHWM`, …) of `/proc/<pid>/status`, in KiB.
fn status_kib(pid: u32, field: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("{field} not found"))
}
