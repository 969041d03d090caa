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

/// The user and client a load uses.
pub struct Seed {
    pub email: String,
    pub password: String,
    pub client_id: String,
    pub client_secret: String,
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

    fn cli(&self, args: &[&str], stdin: Option<&str>) -> Result<serde_json::Value> {
        let mut child = self
            .command(args)
            .arg("--json")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("run tessera")?;
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(input.as_bytes())?;
        }
        let output = child.wait_with_output()?;
        if !output.status.success() {
            bail!(
                "tessera {args:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(serde_json::from_slice(&output.stdout)?)
    }

    /// A user and a confidential client allowed the password and client_credentials grants.
    pub fn seed(&self) -> Result<Seed> {
        let email = format!("bench-{}@example.com", std::process::id());
        let password = "bench password 0123456789".to_string();
        self.cli(
            &["user", "add", "--email", &email, "--password-stdin"],
            Some(&format!("{password}\n")),
        )?;
        let client = self.cli(
            &[
                "client",
                "add",
                "--name",
                "bench",
                "--grant-types",
                "password,client_credentials",
                "--scopes",
                "api",
            ],
            None,
        )?;
        let field = |name: &str| {
            client[name]
                .as_str()
                .map(String::from)
                .with_context(|| format!("client add printed no {name}"))
        };
        Ok(Seed {
            email,
            password,
            client_id: field("client_id")?,
            client_secret: field("client_secret")?,
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
        let deadline = since + Duration::from_secs(30);
        loop {
            if jwks_answers(self.port) {
                return Ok(since.elapsed());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!("tessera exited early: {status}");
            }
            if Instant::now() > deadline {
                bail!("no JWKS answer within 30 s");
            }
            std::thread::sleep(Duration::from_micros(500));
        }
    }

    pub fn rss_kib(&self) -> Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .context("VmRSS not found")
    }

    pub fn stop(mut self) -> Result<()> {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        self.child.wait()?;
        Ok(())
    }
}

/// One request on a fresh connection: start-up polling, not load.
fn jwks_answers(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let request = "GET /.well-known/jwks.json HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n";
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    response.starts_with(b"HTTP/1.1 200") && response.windows(7).any(|w| w == b"\"keys\":")
}
