//! `verify`: what tessera-verify costs per token compared with the RSA verification alone.
//!
//! A real Tessera process publishes its JWKS and discovery; the token is minted with
//! Tessera's own signing code and key. The verifier is built against the running server the
//! way a resource server would (discovery, then JWKS), then the same token is verified in a
//! loop on one pinned core; the limit is ring verifying the same signature over the same
//! signing input with the same public key, measured in alternating rounds in the same run.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, ensure};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::limits::pinned;
use crate::server::{Server, Setup};

pub fn run(binary: &Path, rounds: usize, round: Duration, cpu: &str) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let setup = Setup::new(binary, dir.path(), None, None);
    let mut server = Server::start(&setup)?;
    server.wait_for_jwks(Instant::now())?;
    let issuer = format!("http://127.0.0.1:{}", server.port);
    let (token, n, e) = mint(&setup, dir.path(), &issuer)?;
    let (verifier_rates, ring_rates) =
        pinned(cpu, || measure(&issuer, &token, &n, &e, rounds, round))??;
    server.stop()?;

    let best = |rates: &[f64]| rates.iter().copied().fold(0.0, f64::max);
    let (verifier, raw) = (best(&verifier_rates), best(&ring_rates));
    println!("| path | verifications/s (1 core) | limit | ratio | target |");
    println!("| --- | --- | --- | --- | --- |");
    println!(
        "| tessera-verify `Verifier::verify` | {verifier:.0} | {raw:.0}/s raw ring RS256 verifies | {:.2} | ≥ 0.9 |",
        verifier / raw
    );
    let mut pairs: Vec<f64> = verifier_rates
        .iter()
        .zip(&ring_rates)
        .map(|(v, r)| v / r)
        .collect();
    pairs.sort_by(f64::total_cmp);
    println!(
        "| median of the per-round ratios | | | {:.2} | ≥ 0.9 |",
        pairs[pairs.len() / 2]
    );
    println!();
    println!(
        "Best of {rounds} alternating {}-s rounds on cpu {cpu}; every round: verifier {:?}/s, ring {:?}/s.",
        round.as_secs(),
        verifier_rates
            .iter()
            .map(|r| r.round() as u64)
            .collect::<Vec<_>>(),
        ring_rates
            .iter()
            .map(|r| r.round() as u64)
            .collect::<Vec<_>>()
    );
    Ok(())
}

/// An access token signed by the server's active key, as its token endpoint would sign it,
/// plus that key's public modulus and exponent.
fn mint(setup: &Setup, dir: &Path, issuer: &str) -> Result<(String, Vec<u8>, Vec<u8>)> {
    let mut settings = tessera::config::Settings::defaults()?;
    settings.database.url = setup.database_url().to_string();
    let db = tessera::db::Database::connect(&settings.database)?;
    let mut conn = db.get()?;
    settings.keys.dir = dir.join("keys");
    let store = tessera::keys::KeyMaterialStore::open(&settings.keys)?;
    let ring = tessera::keys::load(&mut conn, &store)?;
    let now = tessera::db::now();
    let claims = tessera::tokens::AccessClaims {
        iss: issuer.to_string(),
        sub: "0190f1c2-7a7b-7cc3-8c4e-1f2a3b4c5d6e".into(),
        aud: tessera::tokens::Audience::Many(vec!["notes".into(), issuer.to_string()]),
        exp: now + 3600,
        iat: now,
        jti: "bench-jti-0123456789abcdef".into(),
        client_id: "4f1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e".into(),
        scope: "openid notes".into(),
        auth_time: Some(now),
        // What a real user token carries (the verify bench measures a realistic size).
        stamp: Some("0123456789abcdef".into()),
        roles: vec!["admin".into()],
        nbf: None,
        sid: None,
        acr: None,
    };
    let token = tessera::tokens::sign(ring.active(), tessera::tokens::ACCESS_TOKEN_TYPE, &claims)?;
    let jwk = ring.active().jwk();
    let component = |value: &Option<String>| {
        URL_SAFE_NO_PAD
            .decode(
                value
                    .as_deref()
                    .context("the active key's JWK lacks n or e")?,
            )
            .context("the active key's JWK is not base64url")
    };
    Ok((token, component(&jwk.n)?, component(&jwk.e)?))
}

fn measure(
    issuer: &str,
    token: &str,
    n: &[u8],
    e: &[u8],
    rounds: usize,
    round: Duration,
) -> Result<(Vec<f64>, Vec<f64>)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let verifier = tessera_verify::Verifier::builder(issuer)
        .audience("notes")
        .build()?;
    runtime
        .block_on(verifier.refresh())
        .context("fetch the JWKS")?;
    let claims = runtime
        .block_on(verifier.verify(token))
        .map_err(|e| anyhow!("the bench token does not verify: {e}"))?;
    ensure!(claims.has_scope("notes"));

    let (input, signature) = token.rsplit_once('.').context("a JWS")?;
    let signature = URL_SAFE_NO_PAD.decode(signature)?;
    let public = ring::signature::RsaPublicKeyComponents { n, e };
    public
        .verify(
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            input.as_bytes(),
            &signature,
        )
        .map_err(|_| anyhow!("ring rejects the bench token"))?;

    let (mut verifier_rates, mut ring_rates) = (Vec::new(), Vec::new());
    for _ in 0..rounds.max(1) {
        let rate = runtime.block_on(async {
            let started = Instant::now();
            let mut count = 0u64;
            while started.elapsed() < round {
                for _ in 0..64 {
                    std::hint::black_box(verifier.verify(std::hint::black_box(token)).await)
                        .map_err(|e| anyhow!("verify: {e}"))?;
                }
                count += 64;
            }
            Ok::<_, anyhow::Error>(count as f64 / started.elapsed().as_secs_f64())
        })?;
        verifier_rates.push(rate);

        let started = Instant::now();
        let mut count = 0u64;
        while started.elapsed() < round {
            for _ in 0..64 {
                public
                    .verify(
                        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
                        std::hint::black_box(input.as_bytes()),
                        std::hint::black_box(&signature),
                    )
                    .map_err(|_| anyhow!("ring verify"))?;
            }
            count += 64;
        }
        ring_rates.push(count as f64 / started.elapsed().as_secs_f64());
    }
    Ok((verifier_rates, ring_rates))
}
