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
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use base64::Engine;

use crate::load::{Rate, Wrk};
use crate::server::{self, Server};

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
pub(crate) fn client(setup: &server::Setup, alg: &str) -> Result<(String, String)> {
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

pub(crate) fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

pub(crate) fn spread(values: &[f64]) -> String {
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
