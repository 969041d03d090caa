//! `signing`: client_credentials with an RS256, an EdDSA and an ES256 client of the same
//! server, in the same run, against that server's cheapest authenticated POST that signs
//! nothing (issue 18 item 6).
//!
//! The floor is `POST /token` with client_credentials, the same client authentication and the
//! same form, asking for a scope the client may not have: the server parses the form, finds
//! and authenticates the client (the one database round trip a client_credentials grant
//! makes), resolves the scope and answers a small JSON error. That is a client_credentials
//! grant less the claims, the signature and the token response, so the ratio to it says what
//! signing costs on top of everything else. `/introspect` (and `/revoke`) of an unknown token
//! are printed beside it but are not the floor: after authenticating the client they look the
//! token up as a refresh token, a second database round trip that client_credentials does
//! not make, which would flatter the ratio.
//!
//! Load comes from wrk (Debian's package), pinned to the cores the server does not use. Each
//! round runs every load once, in turn, so all of them meet the same machine; the median
//! round's ratios count, and the spread over rounds is printed.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use base64::Engine;

use crate::server::{self, Server};

/// One load's result, as wrk reports it.
#[derive(Clone, Copy, Debug)]
struct Rate {
    /// Answers per second, whatever their status.
    per_sec: f64,
    /// Answers with a status other than the expected one's class (wrk's non-2xx count until
    /// `post` turns it round for a load whose answers should be 4xx).
    unexpected: u64,
    total: u64,
    p50_ms: f64,
    p99_ms: f64,
}

struct Wrk {
    cpus: String,
    dir: std::path::PathBuf,
}

impl Wrk {
    fn find(cpus: &str, dir: &Path) -> Result<Wrk> {
        let found = Command::new("wrk").arg("--version").output();
        if found.is_err() {
            bail!("wrk not found: apt-get install wrk");
        }
        Ok(Wrk {
            cpus: cpus.to_string(),
            dir: dir.to_path_buf(),
        })
    }

    /// POSTs `body` with HTTP Basic `basic` to `url` from `connections` connections for
    /// `time`; `ok` says whether the answers should be 2xx (else 4xx).
    fn post(
        &self,
        url: &str,
        basic: &str,
        body: &str,
        connections: usize,
        time: Duration,
        ok: bool,
    ) -> Result<Rate> {
        let script = self.dir.join(format!("post-{}.lua", std::process::id()));
        let auth = base64::engine::general_purpose::STANDARD.encode(basic);
        std::fs::write(
            &script,
            format!(
                "wrk.method = \"POST\"\n\
                 wrk.body = \"{body}\"\n\
                 wrk.headers[\"Content-Type\"] = \"application/x-www-form-urlencoded\"\n\
                 wrk.headers[\"Authorization\"] = \"Basic {auth}\"\n"
            ),
        )?;
        let output = Command::new("taskset")
            .args(["-c", &self.cpus, "wrk", "-t1"])
            .args(["-c", &connections.to_string()])
            .args(["-d", &format!("{}s", time.as_secs())])
            .arg("--latency")
            .arg("-s")
            .arg(&script)
            .arg(url)
            .output()
            .context("run wrk")?;
        if !output.status.success() {
            bail!("wrk failed: {}", String::from_utf8_lossy(&output.stderr));
        }
        let mut rate = parse_wrk(&String::from_utf8_lossy(&output.stdout))?;
        if !ok {
            // Expected: every answer a 4xx, which wrk counts as non-2xx.
            rate.unexpected = rate.total - rate.unexpected;
        }
        Ok(rate)
    }
}

/// Requests/sec, the 50% and 99% latencies, the requests made and the non-2xx answers.
fn parse_wrk(text: &str) -> Result<Rate> {
    let mut rate = Rate {
        per_sec: 0.0,
        unexpected: 0,
        total: 0,
        p50_ms: f64::NAN,
        p99_ms: f64::NAN,
    };
    let duration_ms = |value: &str| -> f64 {
        let split = value
            .find(|c: char| c.is_ascii_alphabetic())
            .unwrap_or(value.len());
        let (number, unit) = value.split_at(split);
        let number: f64 = number.parse().unwrap_or(f64::NAN);
        match unit {
            "us" => number / 1000.0,
            "ms" => number,
            "s" => number * 1000.0,
            "m" => number * 60_000.0,
            _ => f64::NAN,
        }
    };
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", value] => rate.per_sec = value.parse().unwrap_or(0.0),
            ["50%", value] => rate.p50_ms = duration_ms(value),
            ["99%", value] => rate.p99_ms = duration_ms(value),
            ["Non-2xx", "or", "3xx", "responses:", value] => {
                rate.unexpected = value.parse().unwrap_or(0)
            }
            [count, "requests", "in", ..] => rate.total = count.parse().unwrap_or(0),
            _ => {}
        }
    }
    if rate.per_sec == 0.0 {
        bail!("no Requests/sec in wrk's output:\n{text}");
    }
    Ok(rate)
}

/// Signatures per second by one thread on `cpus` for each algorithm, the key parsed once:
/// RS256 (2048-bit), EdDSA (Ed25519), ES256 (P-256).
pub(crate) fn signs_per_sec(cpus: &str, time: Duration) -> Result<[f64; 3]> {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair};
    let rsa = crate::limits::rs256_signs_per_sec_for(cpus, time)?;
    let first_cpu = cpus.split(',').next().unwrap_or("0").to_string();
    let rate = |sign: &dyn Fn()| {
        let started = Instant::now();
        let mut count = 0u64;
        while started.elapsed() < time {
            sign();
            count += 1;
        }
        count as f64 / started.elapsed().as_secs_f64()
    };
    let (ed, es) = crate::limits::pinned(&first_cpu, || -> Result<(f64, f64)> {
        let message = [b'x'; 400];
        let ed = Ed25519KeyPair::generate().map_err(|_| anyhow::anyhow!("keygen"))?;
        let es = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .map_err(|_| anyhow::anyhow!("keygen"))?;
        let rng = aws_lc_rs::rand::SystemRandom::new();
        Ok((
            rate(&|| {
                std::hint::black_box(ed.sign(&message));
            }),
            rate(&|| {
                let _ = std::hint::black_box(es.sign(&rng, &message));
            }),
        ))
    })??;
    Ok([rsa, ed, es])
}

/// A confidential client_credentials client signing with `alg`, straight into the database
/// through Tessera's own code.
fn client(setup: &server::Setup, alg: &str) -> Result<(String, String)> {
    let mut settings = tessera::config::Settings::defaults()?;
    settings.database.url = setup.database_url().to_string();
    let db = tessera::db::Database::connect(&settings.database)?;
    let mut conn = db.get()?;
    let (client, secret) = tessera::clients::create(
        &mut conn,
        &tessera::clients::ClientSpec {
            name: format!("bench {alg}"),
            grant_types: vec!["client_credentials".into()],
            scopes: vec!["api".into()],
            signing_alg: Some(tessera::domain::SigningAlg::parse(alg)?),
            ..Default::default()
        },
    )?;
    Ok((
        client.id.into_string(),
        secret.context("a confidential client")?,
    ))
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn spread(values: &[f64]) -> String {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{min:.2}–{max:.2}")
}

pub fn run(
    binary: &Path,
    server_cores: usize,
    seconds: Duration,
    rounds: usize,
    connections: usize,
) -> Result<()> {
    let (server_cpus, load_cpus) = crate::split_cores(server_cores)?;
    let dir = tempfile::tempdir()?;
    let wrk = Wrk::find(&load_cpus, dir.path())?;
    let setup = server::Setup::new(binary, dir.path(), None, Some(server_cpus.clone()));
    // The schema and the three keys exist once the server has started once.
    let started = Instant::now();
    let mut first = Server::start(&setup)?;
    first.wait_for_jwks(started)?;
    first.stop()?;
    let clients = [
        client(&setup, "RS256")?,
        client(&setup, "EdDSA")?,
        client(&setup, "ES256")?,
    ];
    let before = signs_per_sec(&server_cpus, Duration::from_secs(2))?;
    let started = Instant::now();
    let mut server = Server::start(&setup)?;
    server.wait_for_jwks(started)?;
    let base = format!("http://127.0.0.1:{}", server.port);
    let token_url = format!("{base}/token");
    let basic = |c: &(String, String)| format!("{}:{}", c.0, c.1);
    // Each client's tokens carry its algorithm.
    for (client, alg) in clients.iter().zip(["RS256", "EdDSA", "ES256"]) {
        let body = server.post_form(
            "/token",
            &basic(client),
            "grant_type=client_credentials&scope=api",
        )?;
        let issued: serde_json::Value = serde_json::from_str(&body)?;
        let token = issued["access_token"].as_str().context("no access token")?;
        let header = token.split('.').next().unwrap_or_default();
        let header: serde_json::Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header)?,
        )?;
        anyhow::ensure!(header["alg"] == alg, "{alg} client got {header}");
    }

    let cc = "grant_type=client_credentials&scope=api";
    let mut rows: Vec<[Rate; 5]> = Vec::new();
    for _ in 0..rounds.max(1) {
        let mut round = Vec::with_capacity(5);
        for client in &clients {
            round.push(wrk.post(&token_url, &basic(client), cc, connections, seconds, true)?);
        }
        // The floor: the same grant, client and authentication, a scope it may not have.
        round.push(wrk.post(
            &token_url,
            &basic(&clients[1]),
            "grant_type=client_credentials&scope=not-granted",
            connections,
            seconds,
            false,
        )?);
        round.push(wrk.post(
            &format!("{base}/introspect"),
            &basic(&clients[1]),
            "token=not-a-token-this-server-issued",
            connections,
            seconds,
            true,
        )?);
        rows.push([round[0], round[1], round[2], round[3], round[4]]);
    }
    let after = signs_per_sec(&server_cpus, Duration::from_secs(2))?;
    let rss = server.rss_kib()?;
    server.stop()?;

    println!(
        "Server pinned to {server_cores} core(s) ({server_cpus}), wrk (1 thread, {connections} connections) on {load_cpus}; {} s per load, {} rounds, each load once per round in turn; SQLite; default configuration.",
        seconds.as_secs(),
        rows.len()
    );
    println!();
    println!(
        "| round | RS256 cc/s | EdDSA cc/s | ES256 cc/s | floor: /token refused scope/s | /introspect unknown/s | EdDSA ÷ RS256 | EdDSA ÷ floor | ES256 ÷ RS256 |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for (i, r) in rows.iter().enumerate() {
        println!(
            "| {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2} |",
            i + 1,
            r[0].per_sec,
            r[1].per_sec,
            r[2].per_sec,
            r[3].per_sec,
            r[4].per_sec,
            r[1].per_sec / r[0].per_sec,
            r[1].per_sec / r[3].per_sec,
            r[2].per_sec / r[0].per_sec
        );
    }
    let ed_rs: Vec<f64> = rows.iter().map(|r| r[1].per_sec / r[0].per_sec).collect();
    let ed_floor: Vec<f64> = rows.iter().map(|r| r[1].per_sec / r[3].per_sec).collect();
    let es_rs: Vec<f64> = rows.iter().map(|r| r[2].per_sec / r[0].per_sec).collect();
    let ed_introspect: Vec<f64> = rows.iter().map(|r| r[1].per_sec / r[4].per_sec).collect();
    println!();
    println!("| ratio | median | spread over rounds | target |");
    println!("| --- | --- | --- | --- |");
    println!(
        "| EdDSA client_credentials ÷ RS256 client_credentials | {:.2} | {} | ≥ 4 |",
        median(ed_rs.clone()),
        spread(&ed_rs)
    );
    println!(
        "| EdDSA client_credentials ÷ floor (/token, refused scope) | {:.2} | {} | ≥ 0.7 |",
        median(ed_floor.clone()),
        spread(&ed_floor)
    );
    println!(
        "| ES256 client_credentials ÷ RS256 client_credentials | {:.2} | {} | |",
        median(es_rs.clone()),
        spread(&es_rs)
    );
    println!(
        "| EdDSA client_credentials ÷ /introspect of an unknown token (two database trips) | {:.2} | {} | |",
        median(ed_introspect.clone()),
        spread(&ed_introspect)
    );
    println!();
    let last = rows.last().map(|r| r.to_vec()).unwrap_or_default();
    let latency: Vec<String> = ["RS256", "EdDSA", "ES256", "floor", "introspect"]
        .iter()
        .zip(&last)
        .map(|(name, r)| format!("{name} p50 {:.2} ms p99 {:.2} ms", r.p50_ms, r.p99_ms))
        .collect();
    println!("Last round's latencies: {}.", latency.join("; "));
    let unexpected: u64 = rows.iter().flatten().map(|r| r.unexpected).sum();
    println!(
        "Signatures/s on the server's core, one thread, before and after the loads: RS256 {:.0} and {:.0}, EdDSA {:.0} and {:.0}, ES256 {:.0} and {:.0}. Answers of an unexpected status: {unexpected}. RSS after the run: {:.1} MiB.",
        before[0],
        after[0],
        before[1],
        after[1],
        before[2],
        after[2],
        rss as f64 / 1024.0
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_output_is_read() {
        let text = "Running 1s test @ http://127.0.0.1:1/token\n  1 threads and 32 connections\n  Latency Distribution\n     50%  812.00us\n     75%    1.10ms\n     90%    1.50ms\n     99%    2.31ms\n  1234 requests in 1.00s, 1.00MB read\n  Non-2xx or 3xx responses: 3\nRequests/sec:   1234.50\nTransfer/sec:      1.00MB\n";
        let rate = parse_wrk(text).expect("parses");
        assert_eq!(rate.per_sec, 1234.5);
        assert_eq!(rate.unexpected, 3);
        assert_eq!(rate.total, 1234);
        assert!((rate.p50_ms - 0.812).abs() < 1e-9);
        assert!((rate.p99_ms - 2.31).abs() < 1e-9);
    }
}
