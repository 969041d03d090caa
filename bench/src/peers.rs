//! `peers`: Tessera beside two peers on the same core, under the same load (issue 18, items 1
//! and 8). Not part of `all`: it needs nginx, node and an npm package.
//!
//! - nginx (Debian's package) serving Tessera's own JWKS bytes, fetched from the running
//!   Tessera, as a static file with the same Cache-Control: what a JWKS GET could cost at
//!   best. Its configuration is the usual one for static files (one worker, sendfile, an open
//!   file cache, no access log) with the keep-alive request limit lifted, because wrk and
//!   Tessera keep a connection open for the whole load and nginx would otherwise close each
//!   one after 1000 requests.
//! - node-oidc-provider (`bench/peers/`: the npm package, pinned, and a small script), with
//!   its in-memory adapter, one RS256 key and one client_credentials client whose access
//!   tokens are RS256 JWTs. It is installed with `npm ci` on first use into the cache dir
//!   (`$XDG_CACHE_HOME` or `~/.cache`, then `tessera-bench/peers`).
//! - Tessera, release build, default configuration, SQLite.
//!
//! All three are pinned to the first core and stay up for the whole run; wrk (one thread)
//! runs on the second. Every load is warmed up for a short while first (node's JIT most of
//! all), then: the RS256 signing limit, the three JWKS loads, the two client_credentials
//! loads, and the signing limit again; the limit is the mean of the two. The CPU time the
//! server and wrk spent during each load, as a share of one core, says which was the
//! bottleneck: a server well under 100% while wrk is at 100% is measuring wrk, and one under
//! 100% while wrk is too shares its core with something else. The server's CPU time per
//! request compares the servers' own cost even where wrk sets the rate.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use base64::Engine;

use crate::load::{Rate, Wrk};
use crate::server::{self, Server};

const PACKAGE_JSON: &str = include_str!("../peers/package.json");
const PACKAGE_LOCK: &str = include_str!("../peers/package-lock.json");
const PROVIDER_SCRIPT: &str = include_str!("../peers/oidc-provider.mjs");
const PEER_CLIENT_ID: &str = "bench-peer";
const CC_BODY: &str = "grant_type=client_credentials&scope=api";

pub struct Options {
    pub seconds: Duration,
    pub warmup: Duration,
    pub jwks_connections: usize,
    pub cc_connections: usize,
}

pub fn run(binary: &Path, options: &Options) -> Result<()> {
    let (server_cpus, load_cpus) = crate::split_cores(1)?;
    let load_before = load_average()?;
    let dir = tempfile::tempdir()?;
    let wrk = Wrk::find(&load_cpus, dir.path())?;
    let nginx_binary = find_nginx()?;
    let provider_dir = install_oidc_provider()?;

    let tessera_dir = dir.path().join("tessera");
    std::fs::create_dir_all(&tessera_dir)?;
    let setup = server::Setup::new(binary, &tessera_dir, None, Some(server_cpus.clone()));
    let tessera_client = crate::signing::client(&setup, "RS256")?;
    let started = Instant::now();
    let mut tessera = Server::start(&setup)?;
    tessera.wait_for_jwks(started)?;
    let nginx = Nginx::mirror(
        &nginx_binary,
        &server_cpus,
        dir.path(),
        tessera.port,
        &[server::JWKS_PATH],
    )?;
    let jwks_bytes = nginx.bodies[0].len();

    let peer_secret = random_secret()?;
    let provider = Provider::start(&provider_dir, &server_cpus, dir.path(), &peer_secret)?;

    let tessera_basic = format!("{}:{}", tessera_client.0, tessera_client.1);
    let provider_basic = format!("{PEER_CLIENT_ID}:{peer_secret}");
    // Both issue RS256 JWTs for this grant, so both loads pay one RS256 signature a grant.
    for (port, basic, name) in [
        (tessera.port, &tessera_basic, "Tessera"),
        (provider.port, &provider_basic, "node-oidc-provider"),
    ] {
        let issued: serde_json::Value =
            serde_json::from_str(&server::post_form(port, "/token", basic, CC_BODY)?)?;
        let token = issued["access_token"]
            .as_str()
            .with_context(|| format!("no access token from {name}"))?;
        let alg = jwt_alg(token)?;
        anyhow::ensure!(alg == "RS256", "{name}'s access token is signed with {alg}");
    }

    let url = |port: u16, path: &str| format!("http://127.0.0.1:{port}{path}");
    let jwks_loads = [
        (
            "Tessera",
            tessera.pid(),
            url(tessera.port, server::JWKS_PATH),
        ),
        (
            "nginx (static file)",
            nginx.child.id(),
            url(nginx.port, server::JWKS_PATH),
        ),
        (
            "node-oidc-provider",
            provider.child.id(),
            url(provider.port, "/jwks"),
        ),
    ];
    let cc_loads = [
        (
            "Tessera",
            tessera.pid(),
            url(tessera.port, "/token"),
            &tessera_basic,
        ),
        (
            "node-oidc-provider",
            provider.child.id(),
            url(provider.port, "/token"),
            &provider_basic,
        ),
    ];
    for (_, _, url) in &jwks_loads {
        wrk.get(url, options.jwks_connections, options.warmup)?;
    }
    for (_, _, url, basic) in &cc_loads {
        wrk.post(
            url,
            basic,
            CC_BODY,
            options.cc_connections,
            options.warmup,
            true,
        )?;
    }

    let limit_time = Duration::from_secs(2);
    let signs_before = crate::limits::rs256_signs(&server_cpus, limit_time)?;
    let mut rows = Vec::new();
    for (name, pid, url) in &jwks_loads {
        let (rate, cpu) = with_cpu_shares(*pid, || {
            wrk.get(url, options.jwks_connections, options.seconds)
        })?;
        rows.push(Row {
            server: name,
            request: "JWKS GET",
            connections: options.jwks_connections,
            rate,
            cpu,
        });
    }
    for (name, pid, url, basic) in &cc_loads {
        let (rate, cpu) = with_cpu_shares(*pid, || {
            wrk.post(
                url,
                basic,
                CC_BODY,
                options.cc_connections,
                options.seconds,
                true,
            )
        })?;
        rows.push(Row {
            server: name,
            request: "client_credentials",
            connections: options.cc_connections,
            rate,
            cpu,
        });
    }
    let signs_after = crate::limits::rs256_signs(&server_cpus, limit_time)?;
    let sign_limit = (signs_before.per_wall_sec + signs_after.per_wall_sec) / 2.0;
    let cpu_sign_limit = (signs_before.per_cpu_sec + signs_after.per_cpu_sec) / 2.0;
    let tessera_rss = tessera.rss_kib()?;
    let provider_rss = server::rss_kib(provider.child.id())?;
    tessera.stop()?;
    nginx.stop()?;
    provider.stop()?;
    let load_after = load_average()?;

    println!(
        "All three servers pinned to core {server_cpus} and up for the whole run, wrk (1 thread) on {load_cpus}; {} s per load after {} s of warm-up each; Tessera release build, default configuration, SQLite; {}; {}, {}; {}; {} B of JWKS. Load average (1, 5, 15 min) {load_before} before, {load_after} after.",
        options.seconds.as_secs(),
        options.warmup.as_secs(),
        version_line(&nginx_binary, &["-v"])?,
        version_line(Path::new("node"), &["--version"]).map(|v| format!("node {v}"))?,
        oidc_provider_version()?,
        version_line(Path::new("wrk"), &["--version"]).map(|v| v
            .split(" Copyright")
            .next()
            .unwrap_or(&v)
            .to_string())?,
        jwks_bytes,
    );
    println!();
    println!(
        "| server | request | connections | req/s | p50 | p99 | unexpected status | server CPU | server CPU per request | wrk CPU |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for row in &rows {
        println!(
            "| {} | {} | {} | {:.0} | {:.2} ms | {:.2} ms | {} | {:.0}% | {:.1} µs | {:.0}% |",
            row.server,
            row.request,
            row.connections,
            row.rate.per_sec,
            row.rate.p50_ms,
            row.rate.p99_ms,
            row.rate.unexpected,
            row.cpu.0 * 100.0,
            row.cpu.0 / row.rate.per_sec * 1e6,
            row.cpu.1 * 100.0
        );
    }
    let [
        tessera_jwks,
        nginx_jwks,
        provider_jwks,
        tessera_cc,
        provider_cc,
    ] = [0, 1, 2, 3, 4].map(|i| rows[i].rate);
    println!();
    println!("| measure | value | target |");
    println!("| --- | --- | --- |");
    println!(
        "| Tessera JWKS ÷ nginx JWKS ({} connections) | {:.2} | ≥ 0.9 |",
        options.jwks_connections,
        tessera_jwks.per_sec / nginx_jwks.per_sec
    );
    println!(
        "| Tessera JWKS p99 ({} connections) | {:.2} ms | ≤ 2 ms |",
        options.jwks_connections, tessera_jwks.p99_ms
    );
    let cpu_per_request = |row: &Row| row.cpu.0 / row.rate.per_sec;
    println!(
        "| nginx's CPU per JWKS GET ÷ Tessera's (the same comparison by cost, whatever sets the rate) | {:.2} | |",
        cpu_per_request(&rows[1]) / cpu_per_request(&rows[0])
    );
    println!(
        "| node-oidc-provider JWKS ÷ nginx JWKS | {:.2} | |",
        provider_jwks.per_sec / nginx_jwks.per_sec
    );
    println!(
        "| Tessera client_credentials ÷ node-oidc-provider client_credentials ({} connections) | {:.2} | |",
        options.cc_connections,
        tessera_cc.per_sec / provider_cc.per_sec
    );
    println!(
        "| Tessera client_credentials ÷ RS256 signing limit ({sign_limit:.0}/s = 1 core × signs/s) | {:.2} | ≥ 0.9 |",
        tessera_cc.per_sec / sign_limit
    );
    println!(
        "| node-oidc-provider client_credentials ÷ RS256 signing limit | {:.2} | |",
        provider_cc.per_sec / sign_limit
    );
    // Grants per second of the server's own CPU time against signatures per second of the
    // signing thread's: the same ratio with the host's other work taken out of both sides.
    let per_cpu_sec = |row: &Row| 1.0 / cpu_per_request(row);
    println!(
        "| Tessera client_credentials ÷ RS256 signing limit, both per CPU-second ({cpu_sign_limit:.0} signs per CPU-second) | {:.2} | |",
        per_cpu_sec(&rows[3]) / cpu_sign_limit
    );
    println!(
        "| node-oidc-provider client_credentials ÷ RS256 signing limit, both per CPU-second | {:.2} | |",
        per_cpu_sec(&rows[4]) / cpu_sign_limit
    );
    println!();
    println!(
        "RS256 signs/s on core {server_cpus} (aws-lc-rs, one thread), before and after the loads: {:.0} and {:.0} per second of wall time, {:.0} and {:.0} per CPU-second. RSS after the run: Tessera {:.1} MiB, node-oidc-provider {:.1} MiB.",
        signs_before.per_wall_sec,
        signs_after.per_wall_sec,
        signs_before.per_cpu_sec,
        signs_after.per_cpu_sec,
        tessera_rss as f64 / 1024.0,
        provider_rss as f64 / 1024.0
    );
    Ok(())
}

struct Row {
    server: &'static str,
    request: &'static str,
    connections: usize,
    rate: Rate,
    /// The CPU time the server and wrk spent, as shares of the load's wall time (1.0 is one
    /// whole core).
    cpu: (f64, f64),
}

/// Runs `load` and returns its result with the CPU time the server (`server_pid` and its
/// descendants, as nginx's worker) and the load generator (this process's children waited
/// for meanwhile: wrk) spent, each as a share of the load's wall time.
fn with_cpu_shares(
    server_pid: u32,
    load: impl FnOnce() -> Result<Rate>,
) -> Result<(Rate, (f64, f64))> {
    let started = Instant::now();
    let server_before = tree_cpu_secs(server_pid)?;
    let children_before = children_cpu_secs();
    let rate = load()?;
    let server_after = tree_cpu_secs(server_pid)?;
    let children_after = children_cpu_secs();
    let wall = started.elapsed().as_secs_f64();
    Ok((
        rate,
        (
            (server_after - server_before) / wall,
            (children_after - children_before) / wall,
        ),
    ))
}

/// User and system CPU seconds of `pid` and all its descendants, from /proc.
fn tree_cpu_secs(pid: u32) -> Result<f64> {
    // SAFETY: sysconf has no preconditions.
    let ticks_per_sec = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let mut total = 0.0;
    let mut pending = vec![pid];
    while let Some(pid) = pending.pop() {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        // The fields after the command name, which is in parentheses and may hold spaces:
        // utime and stime are the 14th and 15th fields of the line, so the 12th and 13th here.
        let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        let ticks: f64 = [11, 12]
            .iter()
            .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<f64>().ok()))
            .sum();
        total += ticks / ticks_per_sec;
        for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
            let children = std::fs::read_to_string(task?.path().join("children"))?;
            pending.extend(
                children
                    .split_whitespace()
                    .filter_map(|c| c.parse::<u32>().ok()),
            );
        }
    }
    Ok(total)
}

/// CPU seconds of this process's children that have been waited for.
fn children_cpu_secs() -> f64 {
    // SAFETY: rusage is plain data, filled in by getrusage.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage);
        usage
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

fn load_average() -> Result<String> {
    let text = std::fs::read_to_string("/proc/loadavg")?;
    Ok(text
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(", "))
}

/// The value of header `name` (lower case) in an HTTP answer's head.
pub(crate) fn header(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.eq_ignore_ascii_case(name)
            .then(|| value.trim().to_string())
    })
}

fn jwt_alg(token: &str) -> Result<String> {
    let header = token.split('.').next().unwrap_or_default();
    let header: serde_json::Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header)?)?;
    Ok(header["alg"].as_str().unwrap_or_default().to_string())
}

/// A client secret for the peer's one client, made here so that none is committed.
fn random_secret() -> Result<String> {
    use aws_lc_rs::rand::SecureRandom;
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| anyhow::anyhow!("no random bytes"))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// The first line a tool prints for `args` (nginx prints its version on stderr).
fn version_line(program: &Path, args: &[&str]) -> Result<String> {
    let output = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("run {}", program.display()))?;
    let text = if output.stdout.is_empty() {
        output.stderr
    } else {
        output.stdout
    };
    Ok(String::from_utf8_lossy(&text)
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_string())
}

fn oidc_provider_version() -> Result<String> {
    let package: serde_json::Value = serde_json::from_str(PACKAGE_JSON)?;
    let version = package["dependencies"]["oidc-provider"]
        .as_str()
        .context("bench/peers/package.json names no oidc-provider version")?;
    Ok(format!("oidc-provider {version}"))
}

pub(crate) fn find_nginx() -> Result<PathBuf> {
    let debian = PathBuf::from("/usr/sbin/nginx");
    if debian.is_file() {
        return Ok(debian);
    }
    if Command::new("nginx").arg("-v").output().is_ok() {
        return Ok(PathBuf::from("nginx"));
    }
    bail!("nginx not found: apt-get install nginx")
}

/// `$XDG_CACHE_HOME/tessera-bench/peers`, or `~/.cache/tessera-bench/peers`.
fn cache_dir() -> Result<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .context("neither XDG_CACHE_HOME nor HOME is set")?;
    Ok(base.join("tessera-bench").join("peers"))
}

/// The npm side in the cache dir: the package files as built into this program, and
/// node_modules from `npm ci` whenever the lock they were installed from is not this one.
fn install_oidc_provider() -> Result<PathBuf> {
    let dir = cache_dir()?;
    std::fs::create_dir_all(&dir)?;
    let installed_from = dir
        .join("node_modules")
        .join(".tessera-bench-installed-lock.json");
    if std::fs::read_to_string(&installed_from).ok().as_deref() != Some(PACKAGE_LOCK) {
        eprintln!(
            "peers: installing {} into {} (npm ci, first use)",
            oidc_provider_version()?,
            dir.display()
        );
        std::fs::write(dir.join("package.json"), PACKAGE_JSON)?;
        std::fs::write(dir.join("package-lock.json"), PACKAGE_LOCK)?;
        let status = Command::new("nice")
            .args(["-n", "10", "npm", "ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .stdout(Stdio::null())
            .status()
            .context("run npm (is node installed? apt-get install nodejs npm)")?;
        if !status.success() {
            bail!("npm ci in {} failed: {status}", dir.display());
        }
        std::fs::write(&installed_from, PACKAGE_LOCK)?;
    }
    std::fs::write(dir.join("oidc-provider.mjs"), PROVIDER_SCRIPT)?;
    Ok(dir)
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Sends SIGTERM and waits for the process to end.
fn terminate(mut child: Child) -> Result<()> {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()?;
    child.wait()?;
    Ok(())
}

/// nginx in the foreground (master and one worker) with a configuration of its own in `dir`,
/// serving as static files what an origin served.
pub(crate) struct Nginx {
    child: Child,
    pub port: u16,
    /// The bytes of each path, as the origin served them and nginx serves them.
    pub bodies: Vec<Vec<u8>>,
}

impl Nginx {
    /// Serves the bytes that the server on `origin_port` answers at each of `paths` (the first
    /// must answer while nginx starts), with the origin's Cache-Control, on a free loopback
    /// port; checks byte for byte that nginx serves them.
    pub(crate) fn mirror(
        binary: &Path,
        cpus: &str,
        dir: &Path,
        origin_port: u16,
        paths: &[&str],
    ) -> Result<Nginx> {
        let prefix = dir.join("nginx");
        let root = prefix.join("www");
        let mut locations = String::new();
        let mut bodies = Vec::new();
        for path in paths {
            let (head, body) = server::get(origin_port, path)?;
            let cache_control = header(&head, "cache-control")
                .with_context(|| format!("no Cache-Control on {path}"))?;
            let on_disk = root.join(path.trim_start_matches('/'));
            std::fs::create_dir_all(on_disk.parent().context("a file at the root")?)?;
            std::fs::write(&on_disk, &body)?;
            locations.push_str(&format!(
                "        location = {path} {{\n            default_type application/json;\n            add_header Cache-Control \"{cache_control}\";\n        }}\n"
            ));
            bodies.push(body);
        }
        let first = *paths.first().context("nginx needs a file to serve")?;
        let port = free_port()?;
        // As root, the worker would otherwise run as nobody, who may not read a private
        // temporary directory.
        // SAFETY: geteuid has no preconditions.
        let user = if unsafe { libc::geteuid() } == 0 {
            "user root;"
        } else {
            ""
        };
        let prefix_text = prefix.display();
        let config = format!(
            "{user}
worker_processes 1;
daemon off;
pid {prefix_text}/nginx.pid;
error_log {prefix_text}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_requests 100000000;
    keepalive_timeout 75s;
    open_file_cache max=16 inactive=60s;
    open_file_cache_valid 60s;
    client_body_temp_path {prefix_text}/client_body;
    proxy_temp_path {prefix_text}/proxy;
    fastcgi_temp_path {prefix_text}/fastcgi;
    uwsgi_temp_path {prefix_text}/uwsgi;
    scgi_temp_path {prefix_text}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {root};
{locations}    }}
}}
",
            root = root.display(),
        );
        let config_path = prefix.join("nginx.conf");
        std::fs::write(&config_path, config)?;
        let mut child = Command::new("taskset")
            .args(["-c", cpus])
            .arg(binary)
            .arg("-e")
            .arg(prefix.join("error.log"))
            .arg("-p")
            .arg(&prefix)
            .arg("-c")
            .arg(&config_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("start nginx")?;
        if let Err(e) = server::wait_for_keys(&mut child, "nginx", port, first, Instant::now()) {
            let log = std::fs::read_to_string(prefix.join("error.log")).unwrap_or_default();
            let _ = terminate(child);
            bail!("{e}\nnginx's error log:\n{log}");
        }
        let nginx = Nginx {
            child,
            port,
            bodies,
        };
        let check = || -> Result<()> {
            for (path, body) in paths.iter().zip(&nginx.bodies) {
                let (_, served) = server::get(port, path)?;
                anyhow::ensure!(
                    &served == body,
                    "nginx does not serve the origin's bytes of {path}"
                );
            }
            Ok(())
        };
        if let Err(e) = check() {
            let _ = nginx.stop();
            return Err(e);
        }
        Ok(nginx)
    }

    pub(crate) fn stop(self) -> Result<()> {
        terminate(self.child)
    }
}

/// node-oidc-provider, from the cache dir's script and node_modules.
struct Provider {
    child: Child,
    port: u16,
}

impl Provider {
    fn start(installed: &Path, cpus: &str, dir: &Path, secret: &str) -> Result<Provider> {
        let port = free_port()?;
        // Its warnings (the in-memory adapter, and so on) go to a log read only on failure.
        let log_path = dir.join("oidc-provider.log");
        let log = std::fs::File::create(&log_path)?;
        let mut child = Command::new("taskset")
            .args(["-c", cpus, "node"])
            .arg(installed.join("oidc-provider.mjs"))
            .current_dir(installed)
            .env("NODE_ENV", "production")
            .env("PEER_PORT", port.to_string())
            .env("PEER_CLIENT_ID", PEER_CLIENT_ID)
            .env("PEER_CLIENT_SECRET", secret)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("start node (apt-get install nodejs)")?;
        if let Err(e) = server::wait_for_keys(
            &mut child,
            "node-oidc-provider",
            port,
            "/jwks",
            Instant::now(),
        ) {
            let _ = terminate(child);
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            bail!("{e}\nits output:\n{log}");
        }
        Ok(Provider { child, port })
    }

    fn stop(self) -> Result<()> {
        terminate(self.child)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_is_found_whatever_its_case() {
        let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nCache-Control: public, max-age=300";
        assert_eq!(
            header(head, "cache-control").as_deref(),
            Some("public, max-age=300")
        );
        assert_eq!(header(head, "etag"), None);
    }

    #[test]
    fn the_committed_package_pins_one_oidc_provider_version() {
        let version = oidc_provider_version().expect("a version");
        let pinned = version.trim_start_matches("oidc-provider ");
        assert!(
            pinned.chars().all(|c| c.is_ascii_digit() || c == '.'),
            "not an exact version: {pinned}"
        );
        let lock: serde_json::Value = serde_json::from_str(PACKAGE_LOCK).expect("lock JSON");
        assert_eq!(
            lock["packages"]["node_modules/oidc-provider"]["version"],
            pinned
        );
    }
}
