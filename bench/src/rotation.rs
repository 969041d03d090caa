//! `rotation`: key rotation under real load (issue 18 item 7).
//!
//! `deploy/topology.sh` starts two release replicas on a fresh PostgreSQL database with the
//! signing keys in it (`keys.store = "database"`, sealed under a key-encryption key made for the
//! run): the production shape for replicas, which share nothing else. A paced load issues
//! client_credentials tokens on both replicas, in turn from an RS256, an EdDSA and an ES256
//! client (`keys rotate` moves every algorithm's keys). Every token is verified by every one of
//! several `tessera-verify` verifiers in this process, each with its own JWKS cache, fetched
//! from replica 1, from replica 2, or found by discovery through nginx (round robin over
//! both): once when it is issued, and again two seconds before it expires, so a key that left
//! a JWKS too early fails too. Meanwhile `tessera keys rotate` (the CLI, on the same database
//! and key-encryption key) publishes a `next` key and, once the lifecycle allows, promotes it:
//! three promotions in all.
//!
//! The lifecycle's intervals are shortened (`Intervals`); each keeps its role, so the order of
//! events the lifecycle relies on is the production one. Targets: no failed verification, no
//! failed token request, no verifier meeting an unknown kid (a `next` key must be in every
//! cache before it signs), and no key leaving a replica's JWKS before the last token it signed
//! expired.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use tessera_verify::{CacheStats, Verifier};

use crate::topology::Topology;

const AUDIENCE: &str = "rotation-bench";
const ALGS: [&str; 3] = ["RS256", "EdDSA", "ES256"];
const REPLICAS: usize = 2;
/// A token is verified again this long before its `exp`.
const LATE_CHECK_BEFORE_EXP_SECS: f64 = 2.0;
/// Failures listed one by one in the report (all are counted).
const LISTED_FAILURES: usize = 40;

/// The key lifecycle's settings for the run, given to the replicas and to the CLI alike (the
/// CLI judges "published long enough" by its own configuration).
///
/// Production defaults: `jwks_max_age_secs` 300, `reload_interval_secs` 5,
/// `retire_leeway_secs` 60, access tokens 900 s, ID tokens 3600 s. Shortened, each keeps its
/// role: a `next` key is promoted only after max-age + one reload (every replica serves it and
/// every cache that honours max-age has refetched since: the verifiers refetch at three
/// quarters of max-age, and their floor is set below it so max-age rules, as 300 s does over
/// the default 30 s floor); a retiring key stays published for the token lifetime + leeway +
/// one reload. Two things are harder than in production, not easier: promotions come every
/// ~13 s, inside one token lifetime (20 s), so two retiring keys per algorithm are published
/// at once, and a reload or a database round trip is a larger share of each interval.
#[derive(Clone, Copy)]
struct Intervals {
    jwks_max_age_secs: u64,
    reload_interval_secs: u64,
    retire_leeway_secs: u64,
    token_ttl_secs: u64,
}

const INTERVALS: Intervals = Intervals {
    jwks_max_age_secs: 10,
    reload_interval_secs: 2,
    retire_leeway_secs: 5,
    token_ttl_secs: 20,
};

impl Intervals {
    /// `KeySettings::publish_before_signing_secs`: a `next` key is promoted only once it has
    /// been published strictly longer.
    fn publish_before_signing_secs(self) -> u64 {
        self.jwks_max_age_secs + self.reload_interval_secs
    }

    /// `lifecycle::retire_after_secs`: how long a retiring key stays published.
    fn retire_after_secs(self) -> u64 {
        self.token_ttl_secs + self.retire_leeway_secs + self.reload_interval_secs
    }

    fn env(self) -> Vec<(&'static str, String)> {
        vec![
            ("TESSERA_KEYS_JWKS_MAX_AGE_SECS", self.jwks_max_age_secs),
            (
                "TESSERA_KEYS_RELOAD_INTERVAL_SECS",
                self.reload_interval_secs,
            ),
            ("TESSERA_KEYS_RETIRE_LEEWAY_SECS", self.retire_leeway_secs),
            ("TESSERA_TOKENS_ACCESS_TOKEN_TTL_SECS", self.token_ttl_secs),
            ("TESSERA_TOKENS_ID_TOKEN_TTL_SECS", self.token_ttl_secs),
        ]
        .into_iter()
        .map(|(name, value)| (name, value.to_string()))
        .collect()
    }
}

pub struct Options {
    /// Token requests offered per second, over both replicas.
    pub rate: u32,
    /// Concurrent requesters (each paced at `connections / rate`).
    pub connections: usize,
    pub verifiers: usize,
    /// Promotions (`next` → `active`); one more `keys rotate` publishes the first `next` key.
    pub rotations: usize,
    /// A control: promote with `keys rotate --force` one second after each publication, before
    /// caches can know the key, to show what the bench reports when rotation goes wrong.
    pub force: bool,
}

pub fn run(binary: &Path, options: &Options) -> Result<()> {
    anyhow::ensure!(options.verifiers >= 1, "--verifiers: at least 1");
    anyhow::ensure!(options.rotations >= 1, "--rotations: at least 1");
    anyhow::ensure!(
        options.rate >= 1 && options.connections >= 1,
        "--rate, --connections"
    );
    // The limit first, while nothing of the run competes for the core.
    let [rs, ed, es] = crate::signing::signs_per_sec("0", Duration::from_secs(1))?;
    let mix_limit = ALGS.len() as f64 / (1.0 / rs + 1.0 / ed + 1.0 / es);

    let kek = {
        let mut bytes = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
            .map_err(|_| anyhow!("no randomness for the key-encryption key"))?;
        STANDARD.encode(bytes)
    };
    let mut env: Vec<(&str, String)> = vec![
        ("TOPOLOGY_REPLICAS", REPLICAS.to_string()),
        ("TESSERA_KEYS_STORE", "database".into()),
        ("TESSERA_KEY_ENCRYPTION_KEY", kek),
        // The key lifecycle's lines (reloads, retirements) stay in the replicas' logs.
        ("TESSERA_LOG", "warn,tessera_core::keys=info".into()),
    ];
    env.extend(INTERVALS.env());
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/topology.sh");
    let topology = Arc::new(Topology::up(&script, binary, &env)?);
    let clients = ALGS
        .iter()
        .map(|alg| client(&topology, alg))
        .collect::<Result<Vec<_>>>()?;
    let replica_urls = (1..=REPLICAS)
        .map(|n| {
            u8::try_from(n)
                .ok()
                .and_then(|n| topology.replica_port(n))
                .map(|port| format!("http://127.0.0.1:{port}"))
                .ok_or_else(|| anyhow!("no port for replica {n}"))
        })
        .collect::<Result<Vec<_>>>()?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let outcome = runtime.block_on(drive(
        topology.clone(),
        clients,
        replica_urls.clone(),
        options,
    ));
    drop(runtime);
    let report = outcome?;
    print!(
        "{}",
        report.markdown(options, &replica_urls, &topology.nginx_url, mix_limit)
    );
    let missed = report.missed_targets();
    let dir = topology.dir.clone();
    if let Ok(topology) = Arc::try_unwrap(topology) {
        topology.down()?;
    }
    if missed.is_empty() {
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    } else {
        bail!(
            "targets missed (replica logs in {}):\n{}",
            dir.display(),
            missed.join("\n")
        )
    }
}

/// A confidential client_credentials client signing with `alg`, made with the CLI.
fn client(topology: &Topology, alg: &str) -> Result<(String, String)> {
    let output = topology.cli(
        &[
            "client",
            "add",
            "--name",
            &format!("rotation {alg}"),
            "--grant-types",
            "client_credentials",
            "--scopes",
            "api",
            "--audience",
            AUDIENCE,
            "--signing-alg",
            alg,
        ],
        None,
    )?;
    let created: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    let field = |name: &str| {
        created[name]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| anyhow!("client add printed no {name}"))
    };
    Ok((field("client_id")?, field("client_secret")?))
}

/// Where a verifier fetches its JWKS.
#[derive(Clone, Copy, Debug)]
enum Source {
    Replica(usize),
    /// Discovery through nginx, whose `jwks_uri` nginx balances over both replicas.
    Discovery,
}

impl Source {
    fn of(verifier: usize) -> Source {
        match verifier % (REPLICAS + 1) {
            n if n < REPLICAS => Source::Replica(n),
            _ => Source::Discovery,
        }
    }

    fn describe(self) -> String {
        match self {
            Source::Replica(n) => format!("replica {}'s JWKS", n + 1),
            Source::Discovery => "discovery through nginx".into(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    AtIssue,
    BeforeExpiry,
}

struct Failure {
    token: usize,
    verifier: usize,
    stage: Stage,
    at: Duration,
    error: String,
}

/// One issued token, without the token itself once it has been checked for the last time.
struct Issued {
    issued: Duration,
    replica: usize,
    alg: &'static str,
    kid: Arc<str>,
    exp: i64,
    checked_before_expiry: bool,
}

#[derive(Default)]
struct Log {
    tokens: Vec<Issued>,
    failures: Vec<Failure>,
    /// Token requests that did not give a token: when, which replica, what.
    request_failures: Vec<(Duration, usize, String)>,
    /// When each kid was first and last seen in a token from each replica.
    signed: BTreeMap<(Arc<str>, usize), (Duration, Duration)>,
}

/// Per replica and kid: when the kid first appeared in that replica's JWKS and when it left.
#[derive(Default)]
struct Published {
    first_seen: BTreeMap<(String, usize), Duration>,
    gone: BTreeMap<(String, usize), Duration>,
}

/// One `keys rotate` that succeeded.
struct Step {
    /// Just before the successful call, and when it returned.
    started: Duration,
    ended: Duration,
    /// Earlier calls refused as too early (each waited for and retried).
    refused: u32,
    /// Per algorithm: activated, retiring, next.
    moves: Vec<(String, Option<String>, Option<String>, String)>,
    /// Every verifier's cache counters just before the call.
    stats_before: Vec<CacheStats>,
}

struct Shared {
    http: reqwest::Client,
    replicas: Vec<String>,
    clients: Vec<(String, String)>,
    verifiers: Vec<Verifier>,
    started: Instant,
    /// `started` as Unix time, for comparing with `exp`.
    started_unix: f64,
    log: Mutex<Log>,
    /// Tokens waiting for their check before expiry, in issue order: (exp, index, token).
    late: Mutex<VecDeque<(i64, usize, String)>>,
    issuing: AtomicBool,
}

struct Report {
    steps: Vec<Step>,
    stats_end: Vec<CacheStats>,
    stats_start: Vec<CacheStats>,
    log: Log,
    published: Published,
    load_seconds: f64,
    started_unix: f64,
    /// Per replica: the published kids with their state at the end (`keys list`).
    final_states: Vec<(String, String, String)>,
}

async fn drive(
    topology: Arc<Topology>,
    clients: Vec<(String, String)>,
    replicas: Vec<String>,
    options: &Options,
) -> Result<Report> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let mut verifiers = Vec::new();
    for n in 0..options.verifiers {
        let builder = Verifier::builder(topology.nginx_url.clone())
            .audience(AUDIENCE)
            .cache_floor(Duration::from_secs(1));
        let verifier = match Source::of(n) {
            Source::Replica(r) => {
                builder.jwks_url(format!("{}/.well-known/jwks.json", replicas[r]))
            }
            Source::Discovery => builder,
        }
        .build()?;
        // A resource server fetches its keys at start-up.
        verifier.refresh().await?;
        verifiers.push(verifier);
    }
    let shared = Arc::new(Shared {
        http,
        replicas,
        clients,
        verifiers,
        started: Instant::now(),
        started_unix: unix_now(),
        log: Mutex::new(Log::default()),
        late: Mutex::new(VecDeque::new()),
        issuing: AtomicBool::new(true),
    });
    let stats_start = stats(&shared.verifiers);

    let period = Duration::from_secs_f64(options.connections as f64 / f64::from(options.rate));
    let mut issuers = Vec::new();
    for worker in 0..options.connections {
        issuers.push(tokio::spawn(issue_loop(
            shared.clone(),
            worker,
            options.connections,
            period,
        )));
    }
    let late_checker = tokio::spawn(late_checks(shared.clone()));
    let watching = Arc::new(AtomicBool::new(true));
    let published = Arc::new(Mutex::new(Published::default()));
    let watchers: Vec<_> = (0..REPLICAS)
        .map(|r| {
            tokio::spawn(watch_jwks(
                shared.clone(),
                r,
                published.clone(),
                watching.clone(),
            ))
        })
        .collect();

    let rotations = {
        let (topology, shared) = (topology.clone(), shared.clone());
        let (count, force) = (options.rotations, options.force);
        tokio::task::spawn_blocking(move || rotate_through(&topology, &shared, count, force))
    };
    let steps = rotations.await?;
    shared.issuing.store(false, Ordering::Relaxed);
    for issuer in issuers {
        issuer.await?;
    }
    let load_seconds = shared.started.elapsed().as_secs_f64();
    let stats_end = stats(&shared.verifiers);
    // Every token still gets its check before expiry; the watchers see the JWKS meanwhile.
    late_checker.await?;
    watching.store(false, Ordering::Relaxed);
    for watcher in watchers {
        watcher.await?;
    }
    let steps = steps?;
    let final_states = {
        let topology = topology.clone();
        tokio::task::spawn_blocking(move || key_states(&topology)).await??
    };
    let log = std::mem::take(&mut *lock(&shared.log));
    let published = std::mem::take(&mut *lock(&published));
    Ok(Report {
        steps,
        stats_end,
        stats_start,
        log,
        published,
        load_seconds,
        started_unix: shared.started_unix,
        final_states,
    })
}

fn stats(verifiers: &[Verifier]) -> Vec<CacheStats> {
    verifiers.iter().map(Verifier::stats).collect()
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The header's `kid` and the payload's `exp` (the verifiers judge the rest).
fn kid_and_exp(token: &str) -> Result<(String, i64)> {
    let mut parts = token.split('.');
    let mut segment = || -> Result<serde_json::Value> {
        let text = parts.next().context("a JWS has three parts")?;
        Ok(serde_json::from_slice(&URL_SAFE_NO_PAD.decode(text)?)?)
    };
    let header = segment()?;
    let payload = segment()?;
    Ok((
        header["kid"].as_str().context("no kid")?.to_string(),
        payload["exp"].as_i64().context("no exp")?,
    ))
}

/// One requester: a token every `period`, from alternating replicas and algorithms; each token
/// is checked by every verifier at once and queued for its check before expiry.
async fn issue_loop(shared: Arc<Shared>, worker: usize, workers: usize, period: Duration) {
    let mut ticker = tokio::time::interval(period);
    // A request held up (the host is shared) is made up for at once, so the rate offered over
    // the run is the one asked for as long as the replicas keep up.
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    // Requesters start spread over one period, not all on the same tick.
    tokio::time::sleep(period.mul_f64(worker as f64 / workers as f64)).await;
    let mut turn = worker;
    while shared.issuing.load(Ordering::Relaxed) {
        ticker.tick().await;
        turn += workers;
        let replica = turn % REPLICAS;
        let alg_index = (turn / REPLICAS + worker) % ALGS.len();
        let (id, secret) = &shared.clients[alg_index];
        let sent = shared.started.elapsed();
        let token = match request_token(&shared, replica, id, secret).await {
            Ok(token) => token,
            Err(error) => {
                lock(&shared.log)
                    .request_failures
                    .push((sent, replica, format!("{error:#}")));
                continue;
            }
        };
        let issued = shared.started.elapsed();
        let (kid, exp) = match kid_and_exp(&token) {
            Ok(found) => found,
            Err(error) => {
                lock(&shared.log).request_failures.push((
                    sent,
                    replica,
                    format!("unreadable token: {error:#}"),
                ));
                continue;
            }
        };
        let index = {
            let mut log = lock(&shared.log);
            let kid: Arc<str> = log
                .signed
                .keys()
                .find(|(k, _)| **k == *kid)
                .map_or_else(|| Arc::from(kid.as_str()), |(k, _)| k.clone());
            let seen = log
                .signed
                .entry((kid.clone(), replica))
                .or_insert((issued, issued));
            seen.1 = issued;
            log.tokens.push(Issued {
                issued,
                replica,
                alg: ALGS[alg_index],
                kid,
                exp,
                checked_before_expiry: false,
            });
            log.tokens.len() - 1
        };
        check(&shared, index, &token, Stage::AtIssue).await;
        lock(&shared.late).push_back((exp, index, token));
    }
}

async fn request_token(shared: &Shared, replica: usize, id: &str, secret: &str) -> Result<String> {
    let response = shared
        .http
        .post(format!("{}/token", shared.replicas[replica]))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials"), ("scope", "api")])
        .send()
        .await?;
    let status = response.status();
    let body = response.text().await?;
    if status != 200 {
        bail!(
            "status {status}: {}",
            body.chars().take(200).collect::<String>()
        );
    }
    let json: serde_json::Value = serde_json::from_str(&body)?;
    json["access_token"]
        .as_str()
        .map(str::to_string)
        .context("no access_token")
}

/// Every verifier checks the token; each refusal is logged with what identifies it.
async fn check(shared: &Shared, index: usize, token: &str, stage: Stage) {
    for (n, verifier) in shared.verifiers.iter().enumerate() {
        if let Err(error) = verifier.verify(token).await {
            lock(&shared.log).failures.push(Failure {
                token: index,
                verifier: n,
                stage,
                at: shared.started.elapsed(),
                error: error.to_string(),
            });
        }
    }
}

/// Checks each queued token again shortly before it expires, until the load has stopped and
/// the queue is empty.
async fn late_checks(shared: Arc<Shared>) {
    loop {
        let due = {
            let mut late = lock(&shared.late);
            let now = unix_now();
            let mut due = Vec::new();
            while late
                .front()
                .is_some_and(|(exp, _, _)| *exp as f64 - now <= LATE_CHECK_BEFORE_EXP_SECS)
            {
                if let Some(entry) = late.pop_front() {
                    due.push(entry);
                }
            }
            if due.is_empty() && late.is_empty() && !shared.issuing.load(Ordering::Relaxed) {
                return;
            }
            due
        };
        for (_, index, token) in due {
            check(&shared, index, &token, Stage::BeforeExpiry).await;
            if let Some(issued) = lock(&shared.log).tokens.get_mut(index) {
                issued.checked_before_expiry = true;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls one replica's JWKS (uncached) and notes when each kid appears and leaves.
async fn watch_jwks(
    shared: Arc<Shared>,
    replica: usize,
    published: Arc<Mutex<Published>>,
    watching: Arc<AtomicBool>,
) {
    let url = format!("{}/.well-known/jwks.json", shared.replicas[replica]);
    let mut seen: HashSet<String> = HashSet::new();
    while watching.load(Ordering::Relaxed) {
        let answer = async {
            let jwks: serde_json::Value = shared.http.get(&url).send().await?.json().await?;
            Ok::<_, reqwest::Error>(jwks)
        }
        .await;
        let at = shared.started.elapsed();
        if let Ok(jwks) = answer {
            let now: HashSet<String> = jwks["keys"]
                .as_array()
                .map(|keys| {
                    keys.iter()
                        .filter_map(|k| k["kid"].as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            let mut published = lock(&published);
            for kid in &now {
                published
                    .first_seen
                    .entry((kid.clone(), replica))
                    .or_insert(at);
            }
            for kid in seen.difference(&now) {
                published.gone.entry((kid.clone(), replica)).or_insert(at);
            }
            seen.extend(now);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The rotations, on a blocking thread: a lead-in, the `keys rotate` that publishes the first
/// `next` key, then `count` promotions each as soon as the CLI allows, then load until the key
/// the last promotion retired has served its tokens' lifetime and left the JWKS.
fn rotate_through(
    topology: &Topology,
    shared: &Shared,
    count: usize,
    force: bool,
) -> Result<Vec<Step>> {
    let steps = rotations(topology, shared, count, force);
    // Stops the load whatever happened, so a failed step does not leave it running.
    shared.issuing.store(false, Ordering::Relaxed);
    steps
}

fn rotations(topology: &Topology, shared: &Shared, count: usize, force: bool) -> Result<Vec<Step>> {
    std::thread::sleep(Duration::from_secs(5));
    let mut steps = Vec::new();
    for promotion in 0..=count {
        if let Some(previous) = steps.last().map(|s: &Step| s.ended) {
            // The key the last call published must have been so for strictly longer than
            // publish_before_signing_secs, in the whole seconds the database keeps.
            let wait = if force {
                1
            } else {
                INTERVALS.publish_before_signing_secs() + 1
            };
            let ready = previous + Duration::from_secs(wait) + Duration::from_millis(100);
            if let Some(wait) = ready.checked_sub(shared.started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        let step = rotate_once(topology, shared, force && promotion > 0)?;
        let promoted = step.moves.iter().all(|m| m.1.is_some());
        if promoted != (promotion > 0) {
            bail!(
                "keys rotate #{promotion}: expected {} a promotion, got {:?}",
                if promotion > 0 { "" } else { "no" },
                step.moves
            );
        }
        steps.push(step);
    }
    // The load runs on until the last retiring key has left the JWKS (plus a reload).
    std::thread::sleep(Duration::from_secs(
        INTERVALS.retire_after_secs() + 2 * INTERVALS.reload_interval_secs + 1,
    ));
    Ok(steps)
}

/// `keys rotate` until it is not refused as too early (the CLI's own readiness check).
fn rotate_once(topology: &Topology, shared: &Shared, force: bool) -> Result<Step> {
    let mut refused = 0;
    let args: &[&str] = if force {
        &["keys", "rotate", "--force"]
    } else {
        &["keys", "rotate"]
    };
    loop {
        let stats_before = stats(&shared.verifiers);
        let started = shared.started.elapsed();
        match topology.cli(args, None) {
            Ok(output) => {
                let ended = shared.started.elapsed();
                let moves: serde_json::Value = serde_json::from_slice(&output.stdout)?;
                let text = |v: &serde_json::Value| v.as_str().map(str::to_string);
                let moves = moves
                    .as_array()
                    .context("keys rotate printed no list")?
                    .iter()
                    .map(|m| {
                        (
                            text(&m["alg"]).unwrap_or_default(),
                            text(&m["activated"]),
                            text(&m["retiring"]),
                            text(&m["next"]).unwrap_or_default(),
                        )
                    })
                    .collect();
                return Ok(Step {
                    started,
                    ended,
                    refused,
                    moves,
                    stats_before,
                });
            }
            Err(error) if format!("{error:#}").contains("--force") && refused < 10 => {
                refused += 1;
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(error) => return Err(error),
        }
    }
}

/// `keys list` at the end: (kid, algorithm, state).
fn key_states(topology: &Topology) -> Result<Vec<(String, String, String)>> {
    let output = topology.cli(&["keys", "list"], None)?;
    let keys: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    Ok(keys
        .as_array()
        .context("keys list printed no list")?
        .iter()
        .map(|k| {
            let text = |name: &str| k[name].as_str().unwrap_or_default().to_string();
            (text("kid"), text("algorithm"), text("state"))
        })
        .collect())
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

impl Report {
    /// The windows tokens are counted in: before the first `keys rotate`, then rotation k
    /// from the call that published key k to the one that promoted it, then after the last
    /// promotion.
    fn windows(&self) -> Vec<(String, Duration, Duration, usize, usize)> {
        let mut bounds = vec![Duration::ZERO];
        bounds.extend(self.steps.iter().map(|s| s.started));
        bounds.push(Duration::MAX);
        (0..bounds.len() - 1)
            .map(|w| {
                let name = match w {
                    0 => "before the first `keys rotate`".to_string(),
                    w if w == bounds.len() - 2 => {
                        format!("after promotion {} (to the end)", w - 1)
                    }
                    w => format!("rotation {w}: key {w} published → promoted"),
                };
                // Counter snapshots: index w of [start, each step, end].
                (name, bounds[w], bounds[w + 1], w, w + 1)
            })
            .collect()
    }

    fn snapshots(&self) -> Vec<&Vec<CacheStats>> {
        std::iter::once(&self.stats_start)
            .chain(self.steps.iter().map(|s| &s.stats_before))
            .chain(std::iter::once(&self.stats_end))
            .collect()
    }

    fn failed_tokens(&self) -> HashSet<usize> {
        self.log.failures.iter().map(|f| f.token).collect()
    }

    fn unknown_kid_fetches(&self) -> u64 {
        self.stats_end
            .iter()
            .zip(&self.stats_start)
            .map(|(end, start)| end.unknown_kid_fetches - start.unknown_kid_fetches)
            .sum()
    }

    /// Keys that left a replica's JWKS at or before the `exp` of a token they signed.
    fn early_removals(&self) -> Vec<String> {
        let mut last_exp: HashMap<&str, i64> = HashMap::new();
        for token in &self.log.tokens {
            let exp = last_exp.entry(&token.kid).or_insert(token.exp);
            *exp = (*exp).max(token.exp);
        }
        let started_unix = self.started_unix;
        self.published
            .gone
            .iter()
            .filter_map(|((kid, replica), gone)| {
                let exp = *last_exp.get(kid.as_str())?;
                let gone_unix = started_unix + secs(*gone);
                (gone_unix <= exp as f64).then(|| {
                    format!(
                        "{kid} left replica {}'s JWKS at +{:.1} s, before its last token's exp (+{:.1} s)",
                        replica + 1,
                        secs(*gone),
                        exp as f64 - started_unix
                    )
                })
            })
            .collect()
    }

    fn missed_targets(&self) -> Vec<String> {
        let mut missed = Vec::new();
        let failed = self.failed_tokens().len();
        if failed > 0 {
            missed.push(format!(
                "{failed} tokens failed verification ({} refusals)",
                self.log.failures.len()
            ));
        }
        if !self.log.request_failures.is_empty() {
            missed.push(format!(
                "{} token requests failed",
                self.log.request_failures.len()
            ));
        }
        if self.unknown_kid_fetches() > 0 {
            missed.push(format!(
                "verifiers refetched for an unknown kid {} times",
                self.unknown_kid_fetches()
            ));
        }
        missed.extend(self.early_removals());
        let unchecked = self
            .log
            .tokens
            .iter()
            .filter(|t| !t.checked_before_expiry)
            .count();
        if unchecked > 0 {
            missed.push(format!("{unchecked} tokens never checked before expiry"));
        }
        missed
    }

    fn markdown(
        &self,
        options: &Options,
        replicas: &[String],
        nginx: &str,
        mix_limit: f64,
    ) -> String {
        let mut out = String::new();
        let issued = self.log.tokens.len();
        let failed_tokens = self.failed_tokens();
        let verifiers = options.verifiers;
        let rate = issued as f64 / self.load_seconds;
        out.push_str(&format!(
            "Two replicas ({}), PostgreSQL, keys.store = database; {} promotions by `tessera keys rotate`{}; \
             jwks_max_age_secs {}, reload_interval_secs {}, retire_leeway_secs {}, token lifetime {} s (a next key signs after > {} s, a retiring key leaves after {} s). \
             Load: client_credentials offered at {}/s by {} requesters, RS256, EdDSA and ES256 clients in turn, both replicas in turn; \
             {verifiers} tessera-verify verifiers, each token checked by each at issue and {LATE_CHECK_BEFORE_EXP_SECS:.0} s before its exp.\n\n",
            replicas.join(", "),
            options.rotations,
            if options.force {
                " --force, 1 s after each publication (a control: caches cannot know the keys yet)"
            } else {
                ""
            },
            INTERVALS.jwks_max_age_secs,
            INTERVALS.reload_interval_secs,
            INTERVALS.retire_leeway_secs,
            INTERVALS.token_ttl_secs,
            INTERVALS.publish_before_signing_secs(),
            INTERVALS.retire_after_secs(),
            options.rate,
            options.connections,
        ));
        out.push_str("| window | from | tokens issued | verified by all | failed | checks | refused checks | JWKS fetches (per verifier) | unknown-kid refetches |\n");
        out.push_str("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |\n");
        let snapshots = self.snapshots();
        let mut total_checks = 0;
        for (name, from, to, before, after) in self.windows() {
            let tokens: Vec<usize> = self
                .log
                .tokens
                .iter()
                .enumerate()
                .filter(|(_, t)| t.issued >= from && t.issued < to)
                .map(|(i, _)| i)
                .collect();
            let failed = tokens.iter().filter(|i| failed_tokens.contains(i)).count();
            let checks: usize = tokens
                .iter()
                .map(|i| verifiers * (1 + usize::from(self.log.tokens[*i].checked_before_expiry)))
                .sum();
            total_checks += checks;
            let in_window: HashSet<usize> = tokens.iter().copied().collect();
            let refused = self
                .log
                .failures
                .iter()
                .filter(|f| in_window.contains(&f.token))
                .count();
            let fetches: Vec<String> = snapshots[after]
                .iter()
                .zip(snapshots[before])
                .map(|(a, b)| (a.fetches - b.fetches).to_string())
                .collect();
            let unknown: u64 = snapshots[after]
                .iter()
                .zip(snapshots[before])
                .map(|(a, b)| a.unknown_kid_fetches - b.unknown_kid_fetches)
                .sum();
            out.push_str(&format!(
                "| {name} | +{:.1} s | {} | {} | {failed} | {checks} | {refused} | {} | {unknown} |\n",
                secs(from),
                tokens.len(),
                tokens.len() - failed,
                fetches.join(" / "),
            ));
        }
        out.push_str(&format!(
            "| **total** | | **{issued}** | **{}** | **{}** | {total_checks} | {} | | {} |\n\n",
            issued - failed_tokens.len(),
            failed_tokens.len(),
            self.log.failures.len(),
            self.unknown_kid_fetches()
        ));
        out.push_str(&format!(
            "Issued {rate:.0} tokens/s over {:.1} s of load: {:.2} of the {} /s offered, {:.2} of one core's signatures/s for the same mix ({mix_limit:.0}/s, measured before the run). Token requests that failed: {}.\n\n",
            self.load_seconds,
            rate / f64::from(options.rate),
            options.rate,
            rate / mix_limit,
            self.log.request_failures.len()
        ));
        out.push_str("| verifier | JWKS from | fetches | failed fetches | unknown-kid refetches | keys cached at the end |\n");
        out.push_str("| --- | --- | ---: | ---: | ---: | ---: |\n");
        for (n, (end, start)) in self.stats_end.iter().zip(&self.stats_start).enumerate() {
            let from = match Source::of(n) {
                Source::Discovery => format!("{} ({nginx})", Source::of(n).describe()),
                source => source.describe(),
            };
            out.push_str(&format!(
                "| {} | {from} | {} | {} | {} | {} |\n",
                n + 1,
                end.fetches - start.fetches,
                end.failed_fetches - start.failed_fetches,
                end.unknown_kid_fetches - start.unknown_kid_fetches,
                end.keys
            ));
        }
        out.push('\n');
        out.push_str("Rotation steps (times from the start of the load):\n\n");
        for (k, step) in self.steps.iter().enumerate() {
            let what = if k == 0 {
                "publishes key 1".to_string()
            } else {
                format!("promotes key {k}, publishes key {}", k + 1)
            };
            out.push_str(&format!(
                "- `keys rotate` #{k} ({what}): +{:.2}-{:.2} s, after {} refusals as too early\n",
                secs(step.started),
                secs(step.ended),
                step.refused
            ));
            for (alg, activated, retiring, next) in &step.moves {
                let mut line = format!("    - {alg}: next {next}");
                if let Some(kid) = activated {
                    line.push_str(&format!(
                        " (in JWKS {}); active {kid} (signed first {})",
                        self.first_seen_text(next),
                        self.first_signed_text(kid)
                    ));
                } else {
                    line.push_str(&format!(" (in JWKS {})", self.first_seen_text(next)));
                }
                if let Some(kid) = retiring {
                    line.push_str(&format!(
                        "; retiring {kid} (signed last {}, left JWKS {})",
                        self.last_signed_text(kid),
                        self.gone_text(kid)
                    ));
                }
                out.push_str(&line);
                out.push('\n');
            }
        }
        let mut states: BTreeMap<(&str, &str), usize> = BTreeMap::new();
        for (_, alg, state) in &self.final_states {
            *states.entry((alg, state)).or_default() += 1;
        }
        let states: Vec<String> = states
            .iter()
            .map(|((alg, state), n)| format!("{alg} {n} {state}"))
            .collect();
        out.push_str(&format!(
            "\nKeys at the end (`keys list`): {}.\n",
            states.join(", ")
        ));
        if !self.log.failures.is_empty() {
            out.push_str(&format!(
                "\nRefused checks ({} listed of {}):\n\n",
                self.log.failures.len().min(LISTED_FAILURES),
                self.log.failures.len()
            ));
            for failure in self.log.failures.iter().take(LISTED_FAILURES) {
                out.push_str(&format!("- {}\n", self.describe(failure)));
            }
        }
        for (at, replica, error) in self.log.request_failures.iter().take(LISTED_FAILURES) {
            out.push_str(&format!(
                "- token request to replica {} at +{:.3} s failed: {error}\n",
                replica + 1,
                secs(*at)
            ));
        }
        out
    }

    /// A refusal with the kid, the replica, when the token was issued and checked, and where
    /// that falls between the rotation steps.
    fn describe(&self, failure: &Failure) -> String {
        let Some(token) = self.log.tokens.get(failure.token) else {
            return format!("token #{} (unrecorded): {}", failure.token, failure.error);
        };
        let relative = |at: Duration| -> String {
            match self
                .steps
                .iter()
                .enumerate()
                .rev()
                .find(|(_, s)| s.started <= at)
            {
                Some((k, step)) => format!(
                    "+{:.3} s, {:.3} s after `keys rotate` #{k}",
                    secs(at),
                    secs(at) - secs(step.started)
                ),
                None => format!("+{:.3} s, before the first `keys rotate`", secs(at)),
            }
        };
        format!(
            "verifier {} ({}) refused a {} token of kid {} from replica {} {}: {}; issued {}, checked {}; kid in JWKS {}",
            failure.verifier + 1,
            Source::of(failure.verifier).describe(),
            token.alg,
            token.kid,
            token.replica + 1,
            match failure.stage {
                Stage::AtIssue => "at issue",
                Stage::BeforeExpiry => "before expiry",
            },
            failure.error,
            relative(token.issued),
            relative(failure.at),
            self.first_seen_text(&token.kid)
        )
    }

    fn per_replica(&self, of: impl Fn(usize) -> Option<Duration>) -> String {
        (0..REPLICAS)
            .map(|r| match of(r) {
                Some(at) => format!("r{} +{:.2} s", r + 1, secs(at)),
                None => format!("r{} never", r + 1),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn first_seen_text(&self, kid: &str) -> String {
        self.per_replica(|r| {
            self.published
                .first_seen
                .get(&(kid.to_string(), r))
                .copied()
        })
    }

    fn gone_text(&self, kid: &str) -> String {
        self.per_replica(|r| self.published.gone.get(&(kid.to_string(), r)).copied())
    }

    fn first_signed_text(&self, kid: &str) -> String {
        self.per_replica(|r| {
            self.log
                .signed
                .get(&(Arc::from(kid), r))
                .map(|(first, _)| *first)
        })
    }

    fn last_signed_text(&self, kid: &str) -> String {
        self.per_replica(|r| {
            self.log
                .signed
                .get(&(Arc::from(kid), r))
                .map(|(_, last)| *last)
        })
    }
}
