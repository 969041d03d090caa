//! Benchmarks that need a whole Tessera process. Each prints a Markdown table.
//!
//! - `startup`: cold start to the first JWKS answer with an existing key, idle RSS, binary size.
//! - `tokens`: password grants/s against the argon2 limit (cores ÷ one hash time), the JWKS p99
//!   during that login storm, client_credentials/s against cores × RS256 signs/s, and JWKS
//!   throughput, all measured in the same run. Load comes from `oha` (`cargo install oha`).
//!
//! cargo build --release -p tessera -p tessera-bench
//! target/release/tessera-bench startup
//! target/release/tessera-bench tokens

mod limits;
mod load;
mod server;

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
        /// Database URL (default: a fresh SQLite file).
        #[arg(long)]
        database_url: Option<String>,
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
            database_url,
        } => tokens(
            &binary,
            server_cores,
            Duration::from_secs(seconds),
            login_clients,
            token_clients,
            database_url,
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
        "| idle RSS after {idle_secs} s | {:.1} MiB | < 15 MB |",
        rss as f64 / 1024.0
    );
    println!(
        "| binary size | {:.1} MiB | |",
        size as f64 / (1024.0 * 1024.0)
    );
    println!(
        "| cores | {} | |",
        std::thread::available_parallelism()?.get()
    );
    Ok(())
}

fn tokens(
    binary: &Path,
    server_cores: usize,
    seconds: Duration,
    login_clients: usize,
    token_clients: usize,
    database_url: Option<String>,
) -> Result<()> {
    let total_cores = std::thread::available_parallelism()?.get();
    anyhow::ensure!(
        server_cores >= 1 && server_cores < total_cores,
        "need at least one core for the load generator ({total_cores} cores here)"
    );
    let server_cpus = (0..server_cores)
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let load_cpus = (server_cores..total_cores)
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let oha = load::Oha::find(&load_cpus)?;

    // The limits, measured on the server's cores while nothing else runs.
    let hash = limits::argon2_hash_time(&server_cpus)?;
    let signs_per_sec = limits::rs256_signs_per_sec(&server_cpus)?;
    let login_limit = server_cores as f64 / hash.as_secs_f64();
    let sign_limit = server_cores as f64 * signs_per_sec;

    let dir = tempfile::tempdir()?;
    let setup = server::Setup::new(binary, dir.path(), database_url, Some(server_cpus.clone()));
    let seed = setup.seed()?;
    let started = Instant::now();
    let mut server = Server::start(&setup)?;
    server.wait_for_jwks(started)?;
    let base = format!("http://127.0.0.1:{}", server.port);
    let jwks_url = format!("{base}/.well-known/jwks.json");
    let token_url = format!("{base}/token");

    let jwks = oha.run(&load::Request::get(&jwks_url), 64, seconds, None)?;
    let login = load::Request::form(
        &token_url,
        &seed.client_id,
        &seed.client_secret,
        &format!(
            "grant_type=password&username={}&password={}&scope=api",
            seed.email, seed.password
        ),
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
    let rss = server.rss_kib()?;
    server.stop()?;

    println!(
        "Server pinned to {server_cores} core(s) ({server_cpus}), oha on {load_cpus}; {} s per load.",
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
        "| client_credentials ({token_clients} clients) | {:.0} | {:.2} ms | {:.2} ms | {:.0}/s = {server_cores} × RS256 signs/s | {:.2} | ≥ 0.85 |",
        client_credentials.ok_per_sec,
        client_credentials.p50_ms,
        client_credentials.p99_ms,
        sign_limit,
        client_credentials.ok_per_sec / sign_limit
    );
    println!(
        "| JWKS GET (64 clients) | {:.0} | {:.2} ms | {:.2} ms | | | |",
        jwks.ok_per_sec, jwks.p50_ms, jwks.p99_ms
    );
    println!();
    println!(
        "RSS after the run: {:.1} MiB. Non-2xx answers: logins {}, client_credentials {}, JWKS {}.",
        rss as f64 / 1024.0,
        logins.failed,
        client_credentials.failed,
        jwks.failed + jwks_during.failed
    );
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
