//! Benchmarks that need a whole Tessera process. Each prints a Markdown table.
//!
//! - `startup`: cold start to the first JWKS answer with an existing key, idle RSS, binary size.
//! - `tokens`: password grants/s against the argon2 limit (cores ÷ one hash time), the JWKS p99
//!   during that login storm, client_credentials/s against cores × RS256 signs/s,
//!   introspections/s against cores × RS256 verifies/s, JWKS and discovery throughput beside
//!   nginx serving the same bytes on the same core (when nginx is installed), and the
//!   peak RSS under these loads, all measured in the same run.
//! - `refresh`: refresh grants/s against cores × RS256 signs/s and the database's single-row
//!   update rate, on SQLite or (with `--postgres`) PostgreSQL, in rounds of load each between
//!   two measurements of the signing limit (a shared host's speed drifts); the median counts.
//!
//! - `sso`: single sign-on's hot path: `GET /authorize` with a live session (303 with a code,
//!   no page), alone and followed by the code's exchange, against the database's single-row
//!   write rate (and the pair against half the RS256 signing rate), measured in the same run.
//! - `verify`: tessera-verify verifications/s on one core against raw ring RS256 verifies/s of
//!   the same token, in the same run.
//! - `signing`: client_credentials for an RS256, an EdDSA and an ES256 client of one server,
//!   against its cheapest authenticated POST that signs nothing (`signing.rs` says which and
//!   why), in rounds in the same run; load from wrk.
//! - `all`: every one of the above in one run, each table under a heading.
//! - `topology`: the failover soak (not part of `all`): `deploy/topology.sh` starts nginx,
//!   three replicas and PostgreSQL; logins, refreshes and JWKS reads go through nginx while one
//!   replica is killed with `kill -9` and another restarted with SIGTERM, again and again; then
//!   every refresh token family is checked in the database (see `topology.rs`).
//! - `rotation`: key rotation under load (not part of `all`): two replicas from
//!   `deploy/topology.sh` with the keys in PostgreSQL, client_credentials on both, every token
//!   checked by several tessera-verify verifiers at issue and before it expires, through three
//!   promotions by `tessera keys rotate` (see `rotation.rs`).
//! - `peers`: (not part of `all`) Tessera beside nginx serving its JWKS as a static file and
//!   node-oidc-provider, all on one core under the same wrk loads: JWKS GETs and
//!   client_credentials, against each other and the RS256 signing limit (see `peers.rs`).
//!
//! Load comes from `oha` (`cargo install oha`), pinned to the cores the server does not use;
//! refresh's load comes from `walk`, which presents each token once (oha picks at random).
//!
//! cargo build --release -p tessera -p tessera-bench
//! target/release/tessera-bench all
//! target/release/tessera-bench startup
//! target/release/tessera-bench tokens
//! target/release/tessera-bench refresh [--postgres postgres://postgres@127.0.0.1/postgres]
//! target/release/tessera-bench verify
//! target/release/tessera-bench sso
//! target/release/tessera-bench signing [--rounds 3]
//! target/release/tessera-bench topology [--seconds 60]
//! target/release/tessera-bench rotation [--rate 500] [--verifiers 3] [--rotations 3]
//! target/release/tessera-bench peers [--seconds 10]

mod limits;
mod load;
mod memory;
mod peers;
mod rotation;
mod server;
mod signing;
mod sso;
mod topology;
mod verify;
mod walk;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use server::Server;

#[derive(Parser)]
#[command(about = "Benchmarks of a running Tessera")]
struct Args {
    /// The tessera binary to measure (default: the one next to this program).
    #[arg(long, global = true)]
    binary: Option<PathBuf>,
    #[command(subcommand)]
    command: Bench,
}

#[derive(Subcommand)]
enum Bench {
    /// Cold start to first JWKS answer, idle memory, binary size.
    Startup {
        /// Timed starts (after one untimed start that creates the database and key).
        #[arg(long, default_value_t = 20)]
        runs: usize,
        /// Seconds to let the server sit idle before reading its memory.
        #[arg(long, default_value_t = 2)]
        idle_secs: u64,
    },
    /// Token endpoint throughput against the machine's limits.
    Tokens {
        /// CPU cores the server is pinned to (the load generator gets the rest).
        #[arg(long, default_value_t = 1)]
        server_cores: usize,
        /// Seconds each load runs.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Concurrent clients sending password grants.
        #[arg(long, default_value_t = 16)]
        login_clients: usize,
        /// Concurrent clients sending client_credentials grants.
        #[arg(long, default_value_t = 32)]
        token_clients: usize,
        /// Users to spread the logins over (one per line; oha picks at random).
        #[arg(long, default_value_t = 1000)]
        users: usize,
    },
    /// Everything above in one run: start-up, tokens, refresh on SQLite, and refresh on
    /// PostgreSQL when one answers (or `--postgres` names one).
    All {
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        #[arg(long)]
        postgres: Option<String>,
    },
    /// Refresh grant throughput against the RS256 and database limits.
    Refresh {
        #[arg(long, default_value_t = 1)]
        server_cores: usize,
        /// Seconds each round of load runs.
        #[arg(long, default_value_t = 4)]
        seconds: u64,
        /// Rounds of load, each between two measurements of the signing limit, so that a
        /// machine whose speed drifts (a shared host) is compared with itself; the median
        /// round's ratio counts.
        #[arg(long, default_value_t = 5)]
        rounds: usize,
        #[arg(long, default_value_t = 32)]
        clients: usize,
        /// Live refresh tokens to seed, dealt evenly to the rounds; each is presented once,
        /// so a round needs more than it can refresh in its seconds.
        #[arg(long, default_value_t = 250_000)]
        families: usize,
        /// A PostgreSQL server (admin URL) to run on, in a fresh database made and dropped
        /// here; SQLite otherwise.
        #[arg(long)]
        postgres: Option<String>,
        /// The client's signing algorithm (RS256, EdDSA, ES256); the limit printed stays
        /// RS256 signatures, so with another one the ratio only compares it with RS256's.
        #[arg(long, default_value = "RS256")]
        signing_alg: String,
    },
    /// `/authorize` with a live session (and then the code exchange) against the database's
    /// single-row write rate.
    Sso {
        #[arg(long, default_value_t = 1)]
        server_cores: usize,
        /// Seconds each load (`/authorize` alone, then the pair) runs.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        #[arg(long, default_value_t = 32)]
        clients: usize,
    },
    /// client_credentials with RS256, EdDSA and ES256 clients against the cheapest
    /// authenticated POST that signs nothing, in the same run.
    Signing {
        #[arg(long, default_value_t = 1)]
        server_cores: usize,
        /// Seconds each load runs.
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        /// Rounds, each running every load once in turn; the median round's ratios count.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        #[arg(long, default_value_t = 32)]
        connections: usize,
    },
    /// The failover soak: nginx, three replicas and PostgreSQL under logins, refreshes and
    /// JWKS reads, with a `kill -9` and a graceful restart every cycle.
    Topology {
        /// Seconds of load; a kill and a graceful restart happen in every 20 s of it.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Clients holding a refresh token family each.
        #[arg(long, default_value_t = 16)]
        refreshers: usize,
        #[arg(long, default_value_t = 4)]
        jwks_readers: usize,
        /// Refreshes before a client starts a new family with a password login.
        #[arg(long, default_value_t = 20)]
        refreshes_per_login: u32,
    },
    /// Key rotation under load: two replicas on PostgreSQL (keys in the database), tokens from
    /// both checked by several tessera-verify verifiers through `keys rotate` promotions.
    Rotation {
        /// Token requests offered per second, over both replicas.
        #[arg(long, default_value_t = 500)]
        rate: u32,
        /// Concurrent requesters sharing that rate.
        #[arg(long, default_value_t = 32)]
        connections: usize,
        /// tessera-verify verifiers, each with its own JWKS cache (from replica 1, replica 2
        /// and discovery through nginx, in turn).
        #[arg(long, default_value_t = 3)]
        verifiers: usize,
        /// Promotions of a `next` key.
        #[arg(long, default_value_t = 3)]
        rotations: usize,
        /// A control run: promote with `keys rotate --force` 1 s after each publication,
        /// before caches can know the key (the run should then report failures).
        #[arg(long)]
        force_promotions: bool,
    },
    /// Tessera beside nginx (its JWKS as a static file) and node-oidc-provider on one core:
    /// JWKS GETs and client_credentials under the same loads. Installs node-oidc-provider
    /// into the cache dir on first use; needs nginx, node and wrk.
    Peers {
        /// Seconds each measured load runs.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Seconds of unmeasured load on each endpoint first.
        #[arg(long, default_value_t = 2)]
        warmup_seconds: u64,
        #[arg(long, default_value_t = 64)]
        jwks_connections: usize,
        #[arg(long, default_value_t = 32)]
        cc_connections: usize,
    },
    /// RSS after a storm of concurrent password logins: the peak against the hashing threads'
    /// argon2 memory, and how soon it comes back.
    Memory {
        #[arg(long, default_value_t = 32)]
        logins: usize,
        /// The RSS to come back under, in MiB.
        #[arg(long, default_value_t = 20)]
        target_mib: u64,
        /// Seconds it may take.
        #[arg(long, default_value_t = 10)]
        within_secs: u64,
    },
    /// tessera-verify verifications/s on one core against raw ring RS256 verifies/s.
    Verify {
        /// Rounds of each (alternating, so both see the same machine); the best round counts.
        #[arg(long, default_value_t = 5)]
        rounds: usize,
        /// Seconds per round.
        #[arg(long, default_value_t = 2)]
        seconds: u64,
        /// The core to run on.
        #[arg(long, default_value = "0")]
        cpu: String,
    },
}

fn main() -> Result<()> {
    let args = Args::parse();
    let binary = match args.binary {
        Some(path) => path,
        None => std::env::current_exe()?
            .with_file_name("tessera")
            .canonicalize()
            .context("no tessera binary next to tessera-bench; build it or pass --binary")?,
    };
    match args.command {
        Bench::Startup { runs, idle_secs } => startup(&binary, runs, idle_secs),
        Bench::Tokens {
            server_cores,
            seconds,
            login_clients,
            token_clients,
            users,
        } => tokens(
            &binary,
            server_cores,
            Duration::from_secs(seconds),
            login_clients,
            token_clients,
            users,
        ),
        Bench::All { seconds, postgres } => {
            let seconds = Duration::from_secs(seconds);
            println!("## Start-up and memory\n");
            startup(&binary, 20, 2)?;
            println!("\n## Token endpoint, JWKS, discovery, introspection\n");
            tokens(&binary, 1, seconds, 16, 32, 1000)?;
            println!("\n## Refresh on SQLite\n");
            refresh(
                &binary,
                1,
                Duration::from_secs(4),
                5,
                32,
                250_000,
                RefreshTarget {
                    postgres: None,
                    signing_alg: tessera::domain::SigningAlg::default(),
                },
            )?;
            let postgres = postgres.or_else(|| {
                std::net::TcpStream::connect("127.0.0.1:5432")
                    .ok()
                    .map(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
            });
            if let Some(url) = postgres {
                println!("\n## Refresh on PostgreSQL\n");
                refresh(
                    &binary,
                    1,
                    Duration::from_secs(4),
                    5,
                    32,
                    120_000,
                    RefreshTarget {
                        postgres: Some(url),
                        signing_alg: tessera::domain::SigningAlg::default(),
                    },
                )?;
            }
            println!("\n## Single sign-on: /authorize with a session\n");
            sso::run(&binary, 1, seconds, 32)?;
            println!("\n## Signing algorithms: client_credentials per algorithm\n");
            signing::run(&binary, 1, Duration::from_secs(5), 3, 32)?;
            println!();
            memory::run(&binary, 32, 20, Duration::from_secs(10))?;
            println!("\n## Verification by resource servers (tessera-verify)\n");
            verify::run(&binary, 5, Duration::from_secs(2), "0")
        }
        Bench::Memory {
            logins,
            target_mib,
            within_secs,
        } => memory::run(
            &binary,
            logins,
            target_mib,
            Duration::from_secs(within_secs),
        ),
        Bench::Sso {
            server_cores,
            seconds,
            clients,
        } => sso::run(&binary, server_cores, Duration::from_secs(seconds), clients),
        Bench::Signing {
            server_cores,
            seconds,
            rounds,
            connections,
        } => signing::run(
            &binary,
            server_cores,
            Duration::from_secs(seconds),
            rounds,
            connections,
        ),
        Bench::Topology {
            seconds,
            refreshers,
            jwks_readers,
            refreshes_per_login,
        } => soak(
            &binary,
            seconds,
            refreshers,
            jwks_readers,
            refreshes_per_login,
        ),
        Bench::Rotation {
            rate,
            connections,
            verifiers,
            rotations,
            force_promotions,
        } => rotation::run(
            &binary,
            &rotation::Options {
                rate,
                connections,
                verifiers,
                rotations,
                force: force_promotions,
            },
        ),
        Bench::Peers {
            seconds,
            warmup_seconds,
            jwks_connections,
            cc_connections,
        } => peers::run(
            &binary,
            &peers::Options {
                seconds: Duration::from_secs(seconds),
                warmup: Duration::from_secs(warmup_seconds),
                jwks_connections,
                cc_connections,
            },
        ),
        Bench::Verify {
            rounds,
            seconds,
            cpu,
        } => verify::run(&binary, rounds, Duration::from_secs(seconds), &cpu),
        Bench::Refresh {
            server_cores,
            seconds,
            rounds,
            clients,
            families,
            postgres,
            signing_alg,
        } => refresh(
            &binary,
            server_cores,
            Duration::from_secs(seconds),
            rounds.max(1),
            clients,
            families,
            RefreshTarget {
                postgres,
                signing_alg: tessera::domain::SigningAlg::parse(&signing_alg)
                    .map_err(|_| anyhow::anyhow!("--signing-alg: RS256, EdDSA or ES256"))?,
            },
        ),
    }
}

fn startup(binary: &Path, runs: usize, idle_secs: u64) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let setup = server::Setup::new(binary, dir.path(), None, None);
    // First start: creates the SQLite database and the signing key; not timed.
    let started = Instant::now();
    let mut first = Server::start(&setup)?;
    let first_start = first.wait_for_jwks(started)?;
    first.stop()?;

    let mut times = Vec::with_capacity(runs);
    let mut rss = 0;
    for run in 0..runs.max(1) {
        let started = Instant::now();
        let mut server = Server::start(&setup)?;
        times.push(server.wait_for_jwks(started)?);
        if run == 0 {
            std::thread::sleep(Duration::from_secs(idle_secs));
            rss = server.rss_kib()?;
        }
        server.stop()?;
    }
    times.sort();
    let median = times[times.len() / 2];
    let size = std::fs::metadata(binary)?.len();
    println!("| measure | value | target |");
    println!("| --- | --- | --- |");
    println!(
        "| cold start to first JWKS answer, existing key (median of {}) | {:.1} ms (min {:.1}, max {:.1}) | < 100 ms |",
        times.len(),
        ms(median),
        ms(times[0]),
        ms(times[times.len() - 1])
    );
    println!(
        "| first start, creating database and key | {:.1} ms | |",
        ms(first_start)
    );
    println!(
        "| idle RSS after {idle_secs} s | {:.1} MiB | < 15 MiB |",
        rss as f64 / 1024.0
    );
    println!(
        "| binary size | {:.1} MiB | < 20 MiB |",
        size as f64 / (1024.0 * 1024.0)
    );
    println!(
        "| cores | {} | |",
        std::thread::available_parallelism()?.get()
    );
    Ok(())
}

/// Which cores the server gets and which the load generator gets, as taskset lists.
pub(crate) fn split_cores(server_cores: usize) -> Result<(String, String)> {
    let total = std::thread::available_parallelism()?.get();
    anyhow::ensure!(
        server_cores >= 1 && server_cores < total,
        "need at least one core for the load generator ({total} cores here)"
    );
    let list =
        |range: std::ops::Range<usize>| range.map(|c| c.to_string()).collect::<Vec<_>>().join(",");
    Ok((list(0..server_cores), list(server_cores..total)))
}

/// nginx (Debian's package) serving the JWKS and discovery bytes Tessera on `port` serves,
/// with its Cache-Control, pinned to the server's cores and loaded as Tessera was: the limit
/// for a static answer on this machine, in this run. None, said on stderr, without nginx.
fn static_peer(
    port: u16,
    cpus: &str,
    dir: &Path,
    oha: &load::Oha,
    seconds: Duration,
) -> Result<Option<(load::Outcome, load::Outcome)>> {
    const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";
    let binary = match peers::find_nginx() {
        Ok(binary) => binary,
        Err(e) => {
            eprintln!("tokens: no nginx beside JWKS and discovery ({e})");
            return Ok(None);
        }
    };
    let nginx = peers::Nginx::mirror(
        &binary,
        cpus,
        dir,
        port,
        &[server::JWKS_PATH, DISCOVERY_PATH],
    )?;
    let url = |path: &str| format!("http://127.0.0.1:{}{path}", nginx.port);
    let jwks = oha.run(
        &load::Request::get(&url(server::JWKS_PATH)),
        64,
        seconds,
        None,
    );
    let discovery = oha.run(&load::Request::get(&url(DISCOVERY_PATH)), 64, seconds, None);
    nginx.stop()?;
    Ok(Some((jwks?, discovery?)))
}

fn tokens(
    binary: &Path,
    server_cores: usize,
    seconds: Duration,
    login_clients: usize,
    token_clients: usize,
    users: usize,
) -> Result<()> {
    let (server_cpus, load_cpus) = split_cores(server_cores)?;
    let oha = load::Oha::find(&load_cpus)?;

    // The limits, measured on the server's cores while nothing else runs.
    let hash = limits::argon2_hash_time(&server_cpus)?;
    let signs_per_sec = limits::rs256_signs_per_sec(&server_cpus)?;
    let (verifies_per_sec, verifier) = limits::rs256_verifies_per_sec(&server_cpus)?;
    let login_limit = server_cores as f64 / hash.as_secs_f64();
    let sign_limit = server_cores as f64 * signs_per_sec;
    let verify_limit = server_cores as f64 * verifies_per_sec;

    let dir = tempfile::tempdir()?;
    let setup = server::Setup::new(binary, dir.path(), None, Some(server_cpus.clone()));
    let seed = setup.seed(users, 0)?;
    let started = Instant::now();
    let mut server = Server::start(&setup)?;
    server.wait_for_jwks(started)?;
    let base = format!("http://127.0.0.1:{}", server.port);
    let jwks_url = format!("{base}/.well-known/jwks.json");
    let token_url = format!("{base}/token");

    let jwks = oha.run(&load::Request::get(&jwks_url), 64, seconds, None)?;
    let discovery = oha.run(
        &load::Request::get(&format!("{base}/.well-known/openid-configuration")),
        64,
        seconds,
        None,
    )?;
    let nginx = static_peer(server.port, &server_cpus, dir.path(), &oha, seconds)?;
    let login = load::Request::form_lines(
        &token_url,
        &seed.client_id,
        &seed.client_secret,
        &seed.logins,
    );
    let (logins, jwks_during) = oha.run_beside(
        (&login, login_clients, seconds),
        (&load::Request::get(&jwks_url), 1, seconds, Some(50)),
    )?;
    let cc = load::Request::form(
        &token_url,
        &seed.client_id,
        &seed.client_secret,
        "grant_type=client_credentials&scope=api",
    );
    let client_credentials = oha.run(&cc, token_clients, seconds, None)?;
    // Introspection of a live access token: a signature check, a revocation look-up and
    // the resource server's own authentication.
    let basic = format!("{}:{}", seed.client_id, seed.client_secret);
    let issued: serde_json::Value = serde_json::from_str(&server.post_form(
        "/token",
        &basic,
        "grant_type=client_credentials&scope=api",
    )?)?;
    let access_token = issued["access_token"]
        .as_str()
        .context("no access token")?
        .to_string();
    let introspect = load::Request::form(
        &format!("{base}/introspect"),
        &seed.client_id,
        &seed.client_secret,
        &format!("token={access_token}"),
    );
    let introspection = oha.run(&introspect, token_clients, seconds, None)?;
    let rss = server.rss_kib()?;
    let peak_rss = server.peak_rss_kib()?;
    server.stop()?;

    println!(
        "Server pinned to {server_cores} core(s) ({server_cpus}), oha on {load_cpus}; {} s per load; SQLite; {users} users.",
        seconds.as_secs()
    );
    println!();
    println!("| path | req/s | p50 | p99 | limit | ratio | target |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    println!(
        "| password grant ({login_clients} clients) | {:.1} | {:.1} ms | {:.1} ms | {:.1}/s = {server_cores} ÷ {:.1} ms per argon2id hash | {:.2} | ≥ 0.9 |",
        logins.ok_per_sec,
        logins.p50_ms,
        logins.p99_ms,
        login_limit,
        ms(hash),
        logins.ok_per_sec / login_limit
    );
    println!(
        "| JWKS during the login storm (50 req/s) | {:.0} | {:.2} ms | {:.2} ms | | | p99 < 5 ms |",
        jwks_during.ok_per_sec, jwks_during.p50_ms, jwks_during.p99_ms
    );
    println!(
        "| client_credentials ({token_clients} clients) | {:.0} | {:.2} ms | {:.2} ms | {:.0}/s = {server_cores} × {:.0} RS256 signs/s | {:.2} | ≥ 0.9 |",
        client_credentials.ok_per_sec,
        client_credentials.p50_ms,
        client_credentials.p99_ms,
        sign_limit,
        signs_per_sec,
        client_credentials.ok_per_sec / sign_limit
    );
    println!(
        "| introspection of an access token ({token_clients} clients) | {:.0} | {:.2} ms | {:.2} ms | {:.0}/s = {server_cores} × RS256 verifies/s ({verifier}, key parsed once) | {:.2} | ≥ 0.6 |",
        introspection.ok_per_sec,
        introspection.p50_ms,
        introspection.p99_ms,
        verify_limit,
        introspection.ok_per_sec / verify_limit
    );
    for (name, tessera, peer) in [
        ("JWKS", &jwks, nginx.as_ref().map(|n| &n.0)),
        ("discovery", &discovery, nginx.as_ref().map(|n| &n.1)),
    ] {
        let (limit, ratio) = match peer {
            Some(peer) => (
                format!(
                    "nginx serving the same bytes on the same core: {:.0}/s, p99 {:.2} ms",
                    peer.ok_per_sec, peer.p99_ms
                ),
                format!("{:.2}", tessera.ok_per_sec / peer.ok_per_sec),
            ),
            None => ("nginx not installed".to_string(), "–".to_string()),
        };
        println!(
            "| {name} GET (64 clients) | {:.0} | {:.2} ms | {:.2} ms | {limit} | {ratio} | ≥ 0.9, p99 ≤ 2 ms |",
            tessera.ok_per_sec, tessera.p50_ms, tessera.p99_ms
        );
    }
    println!();
    println!(
        "RSS: {:.1} MiB after the run, {:.1} MiB at its peak under load. Non-2xx answers: logins {}, client_credentials {}, introspection {}, JWKS {}, discovery {}.",
        rss as f64 / 1024.0,
        peak_rss as f64 / 1024.0,
        logins.failed,
        client_credentials.failed,
        introspection.failed,
        jwks.failed + jwks_during.failed,
        discovery.failed
    );
    Ok(())
}

/// What a refresh load runs against: the database, and the client's signing algorithm.
struct RefreshTarget {
    /// A PostgreSQL admin URL; SQLite when `None`.
    postgres: Option<String>,
    signing_alg: tessera::domain::SigningAlg,
}

fn refresh(
    binary: &Path,
    server_cores: usize,
    seconds: Duration,
    rounds: usize,
    clients: usize,
    families: usize,
    target: RefreshTarget,
) -> Result<()> {
    let RefreshTarget {
        postgres,
        signing_alg,
    } = target;
    let (server_cpus, load_cpus) = split_cores(server_cores)?;
    let dir = tempfile::tempdir()?;
    let fresh = match &postgres {
        Some(admin) => Some(server::FreshPostgres::create(admin)?),
        None => None,
    };
    let database_url = fresh.as_ref().map(|f| f.url.clone());
    let backend = if fresh.is_some() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    let setup = server::Setup::new(binary, dir.path(), database_url, Some(server_cpus.clone()));

    let seed = setup.seed_signing_with(100, families, signing_alg)?;
    // Each round draws from tokens of its own: one used in an earlier round would be reuse.
    let round_tokens = split_lines(&seed.refreshes, rounds)?;
    let update_limit = limits::single_row_updates_per_sec(setup.database_url())?;
    // A local PostgreSQL runs beside the load generator, not on the server's core.
    let _pinned = fresh
        .as_ref()
        .map(|_| server::PinnedPostgres::to(&load_cpus));
    let started = Instant::now();
    let mut server = Server::start(&setup)?;
    server.wait_for_jwks(started)?;
    let token_url = format!("http://127.0.0.1:{}/token", server.port);
    let sign_limit = || -> Result<f64> {
        Ok(server_cores as f64
            * limits::rs256_signs_per_sec_for(&server_cpus, Duration::from_secs(1))?)
    };
    let mut measured = Vec::new();
    let client = (seed.client_id.as_str(), seed.client_secret.as_str());
    let mut limit_before = sign_limit()?;
    for tokens in &round_tokens {
        let outcome = walk::form_lines(&load_cpus, &token_url, client, tokens, clients, seconds)?;
        let limit_after = sign_limit()?;
        measured.push(Round {
            limit: (limit_before + limit_after) / 2.0,
            outcome,
        });
        limit_before = limit_after;
    }
    server.stop()?;
    drop(_pinned);
    drop(fresh);

    measured.sort_by(|a, b| a.ratio().total_cmp(&b.ratio()));
    let median = &measured[measured.len() / 2];
    let worst_p99 = measured
        .iter()
        .map(|r| r.outcome.p99_ms)
        .fold(f64::NAN, f64::max);
    let failed: u64 = measured.iter().map(|r| r.outcome.failed).sum();
    let sign_limit = median.limit;
    let lower = sign_limit.min(update_limit);
    let throughput = median.outcome.ok_per_sec;
    println!(
        "{backend}, a {signing_alg} client; server pinned to {server_cores} core(s) ({server_cpus}), the load (each token presented once, in order) on {load_cpus}; {rounds} rounds of {} s, the signing limit measured for 1 s before and after each; {clients} clients; {families} live families.",
        seconds.as_secs()
    );
    println!();
    println!("| path | req/s | p50 | p99 | limit | ratio | target |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    println!(
        "| refresh grant (median round) | {:.0} | {:.2} ms | {:.2} ms | {:.0}/s = {server_cores} × RS256 signs/s | {:.2} | |",
        throughput,
        median.outcome.p50_ms,
        median.outcome.p99_ms,
        sign_limit,
        throughput / sign_limit
    );
    println!(
        "| | | | | {:.0}/s single-row updates ({backend}) | {:.2} | |",
        update_limit,
        throughput / update_limit
    );
    println!(
        "| against the lower limit | | | | {:.0}/s | {:.2} | ≥ 0.8 |",
        lower,
        throughput / lower
    );
    println!();
    let rounds_text: Vec<String> = measured
        .iter()
        .map(|r| {
            format!(
                "{:.0}/{:.0} = {:.2}",
                r.outcome.ok_per_sec,
                r.limit,
                r.ratio()
            )
        })
        .collect();
    println!(
        "Rounds, lowest ratio first (refreshes/s / signs/s): {}. Worst p99 of any round: {worst_p99:.2} ms.",
        rounds_text.join(", ")
    );
    println!(
        "Non-2xx answers: {failed} (each token is presented once, so any refusal is a fault)."
    );
    Ok(())
}

/// One round of load and the signing limit around it.
struct Round {
    limit: f64,
    outcome: load::Outcome,
}

impl Round {
    fn ratio(&self) -> f64 {
        self.outcome.ok_per_sec / self.limit
    }
}

/// `path`'s lines dealt into `parts` files beside it.
fn split_lines(path: &Path, parts: usize) -> Result<Vec<PathBuf>> {
    let text = std::fs::read_to_string(path)?;
    let lines: Vec<&str> = text.lines().collect();
    let per_part = lines.len().div_ceil(parts).max(1);
    lines
        .chunks(per_part)
        .enumerate()
        .map(|(index, chunk)| {
            let part = path.with_extension(format!("part{index}"));
            std::fs::write(&part, chunk.join("\n") + "\n")?;
            Ok(part)
        })
        .collect()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `tessera-bench topology`: prints the report; fails when a target is missed.
fn soak(
    binary: &Path,
    seconds: u64,
    refreshers: usize,
    jwks_readers: usize,
    refreshes_per_login: u32,
) -> Result<()> {
    use topology::{Fault, Plan, Topology};
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/topology.sh");
    let env = [
        ("TESSERA_TOKENS_REFRESH_REUSE_GRACE_SECS", "10"),
        ("TESSERA_LOG", "warn"),
    ];
    let topology = std::sync::Arc::new(Topology::up(&script, binary, &env)?);
    let actors = topology::prepare(&topology, refreshers)?;
    // Every 20 s: kill -9 one replica at 5 s (started again 2 s later), restart another
    // gracefully at 13 s; the replicas take turns.
    let mut faults = Vec::new();
    for cycle in 0..(seconds / 20).max(1) {
        let base = Duration::from_secs(cycle * 20);
        let killed = u8::try_from(cycle % 3).unwrap_or(0) + 1;
        let restarted = killed % 3 + 1;
        faults.push((
            base + Duration::from_secs(5),
            Fault::Kill {
                replica: killed,
                restart_after: Duration::from_secs(2),
            },
        ));
        faults.push((
            base + Duration::from_secs(13),
            Fault::Restart { replica: restarted },
        ));
    }
    let plan = Plan {
        duration: Duration::from_secs(seconds.max(20)),
        jwks_readers,
        refreshes_per_login,
        faults,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let report = runtime.block_on(topology::run(topology.clone(), actors, plan))?;
    println!("{}", report.markdown());
    let missed = report.missed_targets();
    drop(runtime);
    if let Ok(topology) = std::sync::Arc::try_unwrap(topology) {
        topology.down()?;
    }
    if !missed.is_empty() {
        anyhow::bail!("targets missed:\n{}", missed.join("\n"));
    }
    Ok(())
}
