//! Benchmarks that need a whole Tessera process. `tessera-bench startup` measures, against a
//! release build: cold start to the first JWKS answer with an existing key, idle RSS, and the
//! binary's size, and prints a Markdown table.
//!
//! cargo build --release -p tessera -p tessera-bench && target/release/tessera-bench startup

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

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
    }
}

struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start(binary: &Path, dir: &Path) -> Result<Server> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = Command::new(binary)
            .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
            .current_dir(dir)
            .env("TESSERA_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("start tessera")?;
        Ok(Server { child, port })
    }

    /// Polls until the JWKS answers 200; returns how long that took from `since`.
    fn wait_for_jwks(&mut self, since: Instant) -> Result<Duration> {
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

    fn rss_kib(&self) -> Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .context("VmRSS not found")
    }

    fn stop(mut self) -> Result<()> {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        self.child.wait()?;
        Ok(())
    }
}

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

fn startup(binary: &Path, runs: usize, idle_secs: u64) -> Result<()> {
    let dir = tempfile::tempdir()?;
    // First start: creates the SQLite database and the signing key; not timed.
    let started = Instant::now();
    let mut first = Server::start(binary, dir.path())?;
    let first_start = first.wait_for_jwks(started)?;
    first.stop()?;

    let mut times = Vec::with_capacity(runs);
    let mut rss = Vec::new();
    for run in 0..runs.max(1) {
        let started = Instant::now();
        let mut server = Server::start(binary, dir.path())?;
        times.push(server.wait_for_jwks(started)?);
        if run == 0 {
            std::thread::sleep(Duration::from_secs(idle_secs));
            rss.push(server.rss_kib()?);
        }
        server.stop()?;
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
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
        rss[0] as f64 / 1024.0
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
