//! The failover soak: `deploy/topology.sh` starts nginx, three replicas and a fresh PostgreSQL
//! database; this drives a steady load of password logins, refreshes and JWKS reads through
//! nginx while replicas are killed (`kill -9`) and restarted gracefully (SIGTERM), then checks
//! every refresh token family in the database.
//!
//! One file for `tessera-bench topology` (the long soak) and the API test suite's short
//! version (`tests/api/topology.rs` includes it), so both judge by the same rules:
//!
//! - A refresh that fails in flight (connection reset, 502, 503, 504) may or may not have
//!   committed, and its client cannot know which. The client presents the same token again
//!   (the topology runs with `tokens.refresh_reuse_grace_secs`): if the first try committed,
//!   the grace window answers with a fresh pair and retires the successor nobody received; if
//!   not, the retry is an ordinary rotation. Either way the family keeps one live token and the
//!   client holds it. The failed try is counted as failed; the family as "retried". A retry
//!   refused as reuse is a violation, as is any refusal of a refresh the client did not repeat.
//! - A login that fails in flight may have started a family its client never learns of: such
//!   families are checked with all the others (exactly one live token each, none revoked).
//! - A request is "in flight at the kill" when it started before the SIGKILL was sent and
//!   ended after it. Failures across a kill must each be one nginx logs as failed on the killed
//!   replica (reset or closed, not refused): in flight at the kill, or sent in the moment after
//!   it on a pooled connection nginx had not yet seen close (a sent POST is not retried).
//!   Failures across a graceful restart, and anywhere else, must be none.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

const PASSWORD: &str = "topology soak password 1";

/// A running `deploy/topology.sh up`; `down` (or drop) stops it and drops its database.
pub struct Topology {
    script: PathBuf,
    tessera: PathBuf,
    pub dir: PathBuf,
    pub nginx_url: String,
    pub database_url: String,
    state: Vec<(String, String)>,
    env: Vec<(String, String)>,
    stopped: bool,
}

impl Topology {
    /// Starts it: `script` is `deploy/topology.sh`, `tessera` the binary, `env` more variables
    /// for the replicas (e.g. cheap argon2 for a test).
    pub fn up(script: &Path, tessera: &Path, env: &[(&str, &str)]) -> Result<Topology> {
        let tessera = &tessera
            .canonicalize()
            .with_context(|| format!("{}", tessera.display()))?;
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let output = Command::new(script)
            .arg("up")
            .env("TESSERA_BIN", tessera)
            .env_remove("TOPOLOGY_DIR")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .output()
            .context("deploy/topology.sh up")?;
        if !output.status.success() {
            bail!(
                "deploy/topology.sh up failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let stdout = String::from_utf8_lossy(&output.stdout);
        let value = |name: &str| {
            stdout
                .lines()
                .find_map(|line| line.strip_prefix(&format!("{name}=")))
                .map(str::to_string)
                .ok_or_else(|| anyhow!("deploy/topology.sh up printed no {name}: {stdout}"))
        };
        let dir = PathBuf::from(value("TOPOLOGY_DIR")?);
        let state = std::fs::read_to_string(dir.join("state"))?
            .lines()
            .filter_map(|line| line.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Ok(Topology {
            script: script.to_path_buf(),
            tessera: tessera.to_path_buf(),
            nginx_url: value("NGINX_URL")?,
            database_url: value("DATABASE_URL")?,
            dir,
            state,
            env,
            stopped: false,
        })
    }

    /// `deploy/topology.sh ARGS` on this topology.
    pub fn command(&self, args: &[&str]) -> Result<()> {
        let output = Command::new(&self.script)
            .args(args)
            .env("TESSERA_BIN", &self.tessera)
            .env("TOPOLOGY_DIR", &self.dir)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("deploy/topology.sh {}", args.join(" ")))?;
        if !output.status.success() {
            bail!(
                "deploy/topology.sh {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(())
    }

    /// The loopback port of replica `n` (1-3).
    pub fn replica_port(&self, n: u8) -> Option<String> {
        let name = format!("PORT_{n}");
        self.state
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    }

    /// The tessera command line on the topology's database.
    pub fn cli(&self, args: &[&str], stdin: Option<&str>) -> Result<Output> {
        use std::io::Write;
        let mut child = Command::new(&self.tessera)
            .args(args)
            .arg("--json")
            .env("DATABASE_URL", &self.database_url)
            .env("TESSERA_KEYS_DIR", self.dir.join("keys"))
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&self.dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("tessera cli")?;
        if let (Some(text), Some(mut input)) = (stdin, child.stdin.take()) {
            input.write_all(text.as_bytes())?;
        }
        let output = child.wait_with_output()?;
        if !output.status.success() {
            bail!(
                "tessera {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(output)
    }

    /// psql on the topology's database: one row per line, columns split at `|`.
    pub fn sql(&self, query: &str) -> Result<Vec<Vec<String>>> {
        let output = Command::new("psql")
            .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", query])
            .arg(&self.database_url)
            .output()
            .context("psql")?;
        if !output.status.success() {
            bail!("psql: {}", String::from_utf8_lossy(&output.stderr));
        }
        Ok(String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter(|line| !line.is_empty())
            .map(|line| line.split('|').map(str::to_string).collect())
            .collect())
    }

    /// nginx's error log so far.
    pub fn nginx_errors(&self) -> String {
        std::fs::read_to_string(self.dir.join("nginx/error.log")).unwrap_or_default()
    }

    pub fn down(mut self) -> Result<()> {
        self.stopped = true;
        self.command(&["down"])
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        if !self.stopped {
            let _ = self.command(&["down"]);
        }
    }
}

/// What the load does to the replicas, at seconds from its start.
#[derive(Clone, Copy, Debug)]
pub enum Fault {
    /// `kill -9` replica N, then start it again `restart_after` later.
    Kill {
        replica: u8,
        restart_after: Duration,
    },
    /// SIGTERM replica N, wait for it to exit, start it again.
    Restart { replica: u8 },
}

pub struct Plan {
    pub duration: Duration,
    pub jwks_readers: usize,
    /// A client starts a new family (a password login) after this many refreshes.
    pub refreshes_per_login: u32,
    pub faults: Vec<(Duration, Fault)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Login,
    Refresh,
    Jwks,
}

#[derive(Clone, Debug)]
struct Sample {
    kind: Kind,
    start: Duration,
    end: Duration,
    /// None when the request succeeded.
    error: Option<String>,
}

/// One fault as it happened: the window in which requests are blamed on it.
#[derive(Clone, Debug)]
struct Window {
    fault: Fault,
    /// Just before and just after the signal was sent.
    signal: (Duration, Duration),
    /// When the replica answered ready again.
    ready: Duration,
}

#[derive(Default)]
struct Log {
    samples: Vec<Sample>,
    /// Refreshes answered as reuse (400) that the client had not repeated, or whose repeat was
    /// inside the grace window.
    violations: Vec<String>,
    /// Final refresh tokens the clients hold, one per family they started.
    families: Vec<String>,
    /// Families whose in-flight failure was resolved by presenting the token again.
    retried: usize,
    /// Families whose client gave up (every retry failed): checked in the database only.
    unknown: usize,
}

pub struct Report {
    pub by_kind: Vec<(Kind, usize, usize)>,
    /// Failures across each kill, with how many requests were in flight at it and how many of
    /// the failures were not (must be 0).
    pub kills: Vec<KillFigures>,
    /// Failures across each graceful restart (must be 0).
    pub restarts: Vec<usize>,
    /// Failures outside every fault window (must be 0).
    pub other_failures: Vec<String>,
    pub violations: Vec<String>,
    pub families_held: usize,
    pub families_retried: usize,
    pub families_unknown: usize,
    /// Families in the database, and those without exactly one live token (or revoked).
    pub families_in_database: usize,
    pub broken_families: Vec<String>,
    /// Families whose client holds a token that is not the family's live one.
    pub lost_refreshes: Vec<String>,
    /// nginx's error-log lines about the killed replicas other than refused connects (each a
    /// request that was in flight on it), and the refused connects nginx moved elsewhere.
    pub nginx_in_flight_errors: usize,
    pub nginx_refused: usize,
    pub elapsed: Duration,
    /// Every failed request and every fault, in time order, for the reader.
    pub timeline: Vec<String>,
}

pub struct KillFigures {
    pub failed: usize,
    pub in_flight: usize,
    pub failed_not_in_flight: usize,
}

impl Report {
    /// Every target of issue 19 item 3, as a list of what was missed (empty: all met).
    pub fn missed_targets(&self) -> Vec<String> {
        let mut missed = Vec::new();
        // A request sent just after the kill can still go to the killed replica, on a pooled
        // connection nginx has not yet seen close: it fails like one in flight, and nginx logs
        // it against that replica too. So the bound is nginx's count, not the driver's clock.
        if self.kills.iter().map(|k| k.failed).sum::<usize>() > self.nginx_in_flight_errors {
            missed.push(format!(
                "more failures across kills than requests nginx saw fail on the killed replica ({})",
                self.nginx_in_flight_errors
            ));
        }
        for (i, failed) in self.restarts.iter().enumerate() {
            if *failed > 0 {
                missed.push(format!(
                    "graceful restart {}: {failed} failed requests",
                    i + 1
                ));
            }
        }
        if !self.other_failures.is_empty() {
            missed.push(format!(
                "failures outside any fault: {:?}",
                self.other_failures
            ));
        }
        if !self.violations.is_empty() {
            missed.push(format!("reuse errors: {:?}", self.violations));
        }
        if !self.broken_families.is_empty() {
            missed.push(format!(
                "families without exactly one live token: {:?}",
                self.broken_families
            ));
        }
        if !self.lost_refreshes.is_empty() {
            missed.push(format!(
                "clients holding a token that is not their family's live one: {}",
                self.lost_refreshes.len()
            ));
        }
        missed
    }

    pub fn markdown(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "Soak of {:.0} s through nginx, three replicas, PostgreSQL\n\n",
            self.elapsed.as_secs_f64()
        ));
        out.push_str("| requests | sent | failed |\n|---|---:|---:|\n");
        for (kind, sent, failed) in &self.by_kind {
            out.push_str(&format!("| {kind:?} | {sent} | {failed} |\n"));
        }
        out.push('\n');
        for (i, kill) in self.kills.iter().enumerate() {
            out.push_str(&format!(
                "- kill -9 #{}: {} failed; {} requests in flight at the kill (all replicas); {} of the failures sent just after it (a pooled connection to the dead replica)\n",
                i + 1,
                kill.failed,
                kill.in_flight,
                kill.failed_not_in_flight
            ));
        }
        out.push_str(&format!(
            "- nginx: {} requests failed on a killed replica (reset or closed), {} refused connects passed to another replica\n",
            self.nginx_in_flight_errors, self.nginx_refused
        ));
        for (i, failed) in self.restarts.iter().enumerate() {
            out.push_str(&format!("- graceful restart #{}: {failed} failed\n", i + 1));
        }
        out.push_str(&format!(
            "- failures elsewhere: {}; reuse errors: {}\n",
            self.other_failures.len(),
            self.violations.len()
        ));
        out.push_str(&format!(
            "- families: {} held by clients ({} resolved by presenting the token again, {} unknown), {} in the database, {} without exactly one live token, {} clients not holding the live token\n",
            self.families_held,
            self.families_retried,
            self.families_unknown,
            self.families_in_database,
            self.broken_families.len(),
            self.lost_refreshes.len()
        ));
        out.push_str("\nFailures and faults:\n");
        for line in &self.timeline {
            out.push_str(&format!(
                "    {}\n",
                line.chars().take(240).collect::<String>()
            ));
        }
        out
    }
}

/// The client and users the load signs in with: one user per refresher, so no user's family
/// cap is reached.
pub struct Actors {
    client: (String, String),
    users: Vec<String>,
}

pub fn prepare(topology: &Topology, refreshers: usize) -> Result<Actors> {
    let created: serde_json::Value = serde_json::from_slice(
        &topology
            .cli(
                &[
                    "client",
                    "add",
                    "--name",
                    "soak",
                    "--grant-types",
                    "password,refresh_token",
                    "--scopes",
                    "openid api",
                ],
                None,
            )?
            .stdout,
    )?;
    let field = |name: &str| {
        created[name]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| anyhow!("client add printed no {name}"))
    };
    let client = (field("client_id")?, field("client_secret")?);
    let mut users = Vec::new();
    for i in 0..refreshers {
        let email = format!("soak{i}@example.com");
        topology.cli(
            &["user", "add", "--email", &email, "--password-stdin"],
            Some(PASSWORD),
        )?;
        users.push(email);
    }
    Ok(Actors { client, users })
}

/// Runs the plan and judges it.
pub async fn run(topology: Arc<Topology>, actors: Actors, plan: Plan) -> Result<Report> {
    let http = reqwest::Client::builder()
        .pool_idle_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(30))
        .build()?;
    let log = Arc::new(Mutex::new(Log::default()));
    let windows = Arc::new(Mutex::new(Vec::<Window>::new()));
    let started = Instant::now();
    let deadline = started + plan.duration;
    let actors = Arc::new(actors);
    let token_url = format!("{}/token", topology.nginx_url);
    let jwks_url = format!("{}/.well-known/jwks.json", topology.nginx_url);

    let mut tasks = Vec::new();
    for user in actors.users.clone() {
        let worker = Refresher {
            http: http.clone(),
            url: token_url.clone(),
            client: actors.client.clone(),
            user,
            log: log.clone(),
            started,
            per_login: plan.refreshes_per_login,
        };
        tasks.push(tokio::spawn(worker.run(deadline)));
    }
    for _ in 0..plan.jwks_readers {
        let (http, url, log) = (http.clone(), jwks_url.clone(), log.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let start = started.elapsed();
                let error = match http.get(&url).send().await {
                    Ok(r) if r.status() == 200 => match r.bytes().await {
                        Ok(_) => None,
                        Err(e) => Some(format!("body: {e}")),
                    },
                    Ok(r) => Some(format!("status {}", r.status())),
                    Err(e) => Some(error_chain(&e)),
                };
                record(&log, Kind::Jwks, start, started.elapsed(), error);
            }
        }));
    }
    // The faults, in order, on a blocking thread (the script waits for readiness).
    let faults = {
        let (topology, windows, plan_faults) = (topology.clone(), windows.clone(), plan.faults);
        tokio::task::spawn_blocking(move || -> Result<()> {
            for (at, fault) in plan_faults {
                if let Some(wait) = (started + at).checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                let before = started.elapsed();
                match fault {
                    Fault::Kill {
                        replica,
                        restart_after,
                    } => {
                        topology.command(&["kill", &replica.to_string()])?;
                        let after = started.elapsed();
                        std::thread::sleep(restart_after);
                        topology.command(&["start", &replica.to_string()])?;
                        let ready = started.elapsed();
                        push(&windows, fault, (before, after), ready);
                    }
                    Fault::Restart { replica } => {
                        topology.command(&["stop", &replica.to_string()])?;
                        let after = started.elapsed();
                        topology.command(&["start", &replica.to_string()])?;
                        let ready = started.elapsed();
                        push(&windows, fault, (before, after), ready);
                    }
                }
            }
            Ok(())
        })
    };
    faults.await??;
    for task in tasks {
        task.await?;
    }
    let elapsed = started.elapsed();
    let log = std::mem::take(&mut *lock(&log));
    let windows = lock(&windows).clone();
    judge(&topology, log, &windows, elapsed)
}

fn push(windows: &Mutex<Vec<Window>>, fault: Fault, signal: (Duration, Duration), ready: Duration) {
    lock(windows).push(Window {
        fault,
        signal,
        ready,
    });
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn record(log: &Mutex<Log>, kind: Kind, start: Duration, end: Duration, error: Option<String>) {
    lock(log).samples.push(Sample {
        kind,
        start,
        end,
        error,
    });
}

/// The error and its sources on one line (reqwest's own text is only "error sending request").
fn error_chain(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

struct Refresher {
    http: reqwest::Client,
    url: String,
    client: (String, String),
    user: String,
    log: Arc<Mutex<Log>>,
    started: Instant,
    per_login: u32,
}

/// What the token endpoint answered.
enum Answer {
    Token(String),
    /// 400: refused (for a refresh: reuse, or a dead family).
    Refused(String),
    /// Failed in flight: the client cannot tell whether it committed.
    Failed(String),
}

impl Refresher {
    async fn run(self, deadline: Instant) {
        let mut token: Option<String> = None;
        let mut refreshes = 0;
        while Instant::now() < deadline {
            match token.take() {
                Some(current) if refreshes < self.per_login => {
                    refreshes += 1;
                    token = self.refresh(current).await;
                }
                held => {
                    if let Some(done) = held {
                        lock(&self.log).families.push(done);
                    }
                    refreshes = 0;
                    let form = [
                        ("grant_type", "password"),
                        ("username", self.user.as_str()),
                        ("password", PASSWORD),
                        ("scope", "openid api"),
                    ];
                    if let Answer::Token(fresh) = self.call(Kind::Login, &form).await {
                        token = Some(fresh);
                    }
                }
            }
        }
        if let Some(done) = token {
            lock(&self.log).families.push(done);
        }
    }

    /// One refresh; after an in-flight failure, the same token again (up to 5 times).
    async fn refresh(&self, current: String) -> Option<String> {
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", current.as_str()),
        ];
        let mut repeated = false;
        for _ in 0..6 {
            match self.call(Kind::Refresh, &form).await {
                Answer::Token(next) => {
                    if repeated {
                        lock(&self.log).retried += 1;
                    }
                    return Some(next);
                }
                Answer::Refused(body) => {
                    lock(&self.log).violations.push(format!(
                        "{} refresh refused{}: {body}",
                        self.user,
                        if repeated {
                            " when presented again after an in-flight failure"
                        } else {
                            ""
                        }
                    ));
                    return None;
                }
                Answer::Failed(_) => {
                    repeated = true;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        lock(&self.log).unknown += 1;
        None
    }

    async fn call(&self, kind: Kind, form: &[(&str, &str)]) -> Answer {
        let start = self.started.elapsed();
        let sent = self
            .http
            .post(&self.url)
            .basic_auth(&self.client.0, Some(&self.client.1))
            .form(form)
            .send()
            .await;
        let answer = match sent {
            Err(e) => Answer::Failed(error_chain(&e)),
            Ok(response) => {
                let status = response.status().as_u16();
                match (status, response.text().await) {
                    (_, Err(e)) => Answer::Failed(format!("body: {}", error_chain(&e))),
                    (200, Ok(body)) => match serde_json::from_str::<serde_json::Value>(&body) {
                        Ok(json) => match json["refresh_token"].as_str() {
                            Some(t) => Answer::Token(t.to_string()),
                            None => Answer::Failed(format!("no refresh_token in {body}")),
                        },
                        Err(e) => Answer::Failed(format!("not JSON ({e}): {body}")),
                    },
                    (400, Ok(body)) => Answer::Refused(body),
                    (status, Ok(body)) => Answer::Failed(format!("status {status}: {body}")),
                }
            }
        };
        let error = match &answer {
            Answer::Token(_) => None,
            Answer::Refused(body) => Some(format!("refused: {body}")),
            Answer::Failed(e) => Some(e.clone()),
        };
        record(&self.log, kind, start, self.started.elapsed(), error);
        answer
    }
}

fn sha256_hex(text: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, text.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn judge(topology: &Topology, log: Log, windows: &[Window], elapsed: Duration) -> Result<Report> {
    let kinds = [Kind::Login, Kind::Refresh, Kind::Jwks];
    let by_kind = kinds
        .iter()
        .map(|kind| {
            let of_kind = log.samples.iter().filter(|s| s.kind == *kind);
            let failed = of_kind.clone().filter(|s| s.error.is_some()).count();
            (*kind, of_kind.count(), failed)
        })
        .collect();
    // A fault's window runs from its signal to a second after its replica is ready again.
    let margin = Duration::from_secs(1);
    let in_window = |s: &Sample, w: &Window| s.end >= w.signal.0 && s.start <= w.ready + margin;
    let failures: Vec<&Sample> = log.samples.iter().filter(|s| s.error.is_some()).collect();
    let mut kills = Vec::new();
    let mut restarts = Vec::new();
    for window in windows {
        let failed: Vec<&&Sample> = failures.iter().filter(|s| in_window(s, window)).collect();
        match window.fault {
            Fault::Kill { .. } => {
                let in_flight_at =
                    |s: &Sample| s.start <= window.signal.1 && s.end >= window.signal.0;
                kills.push(KillFigures {
                    failed: failed.len(),
                    in_flight: log.samples.iter().filter(|s| in_flight_at(s)).count(),
                    failed_not_in_flight: failed.iter().filter(|s| !in_flight_at(s)).count(),
                });
            }
            Fault::Restart { .. } => restarts.push(failed.len()),
        }
    }
    let mut timeline: Vec<(Duration, String)> = failures
        .iter()
        .map(|s| {
            let text = format!(
                "{:.3}-{:.3}s {:?} failed: {}",
                s.start.as_secs_f64(),
                s.end.as_secs_f64(),
                s.kind,
                s.error.as_deref().unwrap_or_default()
            );
            (s.start, text)
        })
        .chain(windows.iter().map(|w| {
            let text = format!(
                "{:.3}-{:.3}s {:?} sent, ready again at {:.3}s",
                w.signal.0.as_secs_f64(),
                w.signal.1.as_secs_f64(),
                w.fault,
                w.ready.as_secs_f64()
            );
            (w.signal.0, text)
        }))
        .collect();
    timeline.sort_by_key(|(at, _)| *at);
    let timeline = timeline.into_iter().map(|(_, text)| text).collect();
    let other_failures = failures
        .iter()
        .filter(|s| !windows.iter().any(|w| in_window(s, w)))
        .map(|s| {
            format!(
                "{:?} at {:.3}s: {}",
                s.kind,
                s.start.as_secs_f64(),
                s.error.as_deref().unwrap_or_default()
            )
        })
        .collect();

    let killed_ports: Vec<String> = windows
        .iter()
        .filter_map(|w| match w.fault {
            Fault::Kill { replica, .. } => topology.replica_port(replica),
            Fault::Restart { .. } => None,
        })
        .collect();
    let errors = topology.nginx_errors();
    let about_killed = |line: &&str| {
        killed_ports
            .iter()
            .any(|port| line.contains(&format!("upstream: \"http://127.0.0.1:{port}")))
    };
    let nginx_refused = errors
        .lines()
        .filter(about_killed)
        .filter(|l| l.contains("(111: Connection refused)"))
        .count();
    let nginx_in_flight_errors = errors
        .lines()
        .filter(about_killed)
        .filter(|l| l.contains("[error]") && !l.contains("(111: Connection refused)"))
        .count();

    // Every family in the database: not revoked, exactly one unused token.
    let rows = topology.sql(
        "SELECT f.id, f.revoked_at IS NOT NULL, \
         count(t.token_hash) FILTER (WHERE t.used_at IS NULL) \
         FROM refresh_token_families f LEFT JOIN refresh_tokens t ON t.family_id = f.id \
         GROUP BY f.id, f.revoked_at",
    )?;
    let families_in_database = rows.len();
    let broken_families = rows
        .iter()
        .filter(|row| {
            row.get(1).map(String::as_str) != Some("f")
                || row.get(2).map(String::as_str) != Some("1")
        })
        .map(|row| row.join("|"))
        .collect();
    // Each family a client holds: its token is that family's live one.
    let live: std::collections::HashSet<String> = topology
        .sql(
            "SELECT t.token_hash FROM refresh_tokens t \
             JOIN refresh_token_families f ON f.id = t.family_id \
             WHERE t.used_at IS NULL AND f.revoked_at IS NULL",
        )?
        .into_iter()
        .filter_map(|row| row.into_iter().next())
        .collect();
    let lost_refreshes = log
        .families
        .iter()
        .map(|token| sha256_hex(token))
        .filter(|hash| !live.contains(hash))
        .collect();
    Ok(Report {
        by_kind,
        kills,
        restarts,
        other_failures,
        violations: log.violations,
        families_held: log.families.len(),
        families_retried: log.retried,
        families_unknown: log.unknown,
        families_in_database,
        broken_families,
        lost_refreshes,
        nginx_in_flight_errors,
        nginx_refused,
        elapsed,
        timeline,
    })
}
