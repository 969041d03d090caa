//! Micro-benchmarks of the hot operations, on Tessera's own code: RS256 signing of an access
//! token (the token endpoint's cost), verifying one (introspection, Tessera's own endpoints),
//! an argon2id hash at the default cost (a password login), and serialising the JWKS (done once
//! per key change, never per request). `cargo bench -p tessera-bench`.

// A benchmark that cannot set up has nothing to measure: stopping with the reason is right.
#![allow(clippy::expect_used)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use tessera::config::Settings;
use tessera::tokens::{self as jwt, AccessClaims, Audience};

fn key_ring() -> (tempfile::TempDir, std::sync::Arc<tessera::keys::KeyRing>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut settings = Settings::defaults().expect("defaults");
    settings.database.url = format!("sqlite://{}", dir.path().join("bench.db").display());
    settings.keys.dir = dir.path().join("keys");
    let db = tessera::db::Database::connect(&settings.database).expect("database");
    let mut conn = db.get().expect("connection");
    let ring = tessera::keys::load_or_init(&mut conn, &settings.keys).expect("keys");
    (dir, std::sync::Arc::new(ring))
}

fn claims(now: i64) -> AccessClaims {
    AccessClaims {
        iss: "https://id.example.com".into(),
        sub: "0193a0c4-6f0e-7c4a-9a51-3f1d2b9e8a77".into(),
        aud: Audience::One("https://api.example.com".into()),
        exp: now + 900,
        iat: now,
        jti: "0193a0c4-6f0e-7c4a-9a51-3f1d2b9e8a78".into(),
        client_id: "5c1b0f4a9e2d7c3b".into(),
        scope: "openid api".into(),
        auth_time: Some(now),
        stamp: Some("0123456789abcdef".into()),
        roles: vec!["user".into()],
        nbf: None,
        sid: None,
        acr: None,
    }
}

fn benches(c: &mut Criterion) {
    let (_dir, ring) = key_ring();
    let now = tessera::db::now();
    let claims = claims(now);
    c.bench_function("sign access token (RS256, key parsed once)", |b| {
        b.iter(|| jwt::sign(ring.active(), "at+jwt", black_box(&claims)).expect("sign"))
    });
    let token = jwt::sign(ring.active(), "at+jwt", &claims).expect("sign");
    c.bench_function("verify access token (RS256 + claims)", |b| {
        b.iter(|| {
            jwt::decode_access_token(black_box(&token), &ring, "https://id.example.com", now)
                .expect("valid")
        })
    });
    let jwks: Vec<_> = ring.keys().iter().map(|k| k.jwk().clone()).collect();
    c.bench_function("serialise JWKS", |b| {
        b.iter(|| serde_json::to_vec(&serde_json::json!({ "keys": black_box(&jwks) })))
    });
    let settings = Settings::defaults().expect("defaults");
    let hasher = tessera::accounts::password::Hasher::new(&settings.passwords).expect("hasher");
    let mut group = c.benchmark_group("password");
    group.sample_size(10);
    group.bench_function("argon2id hash at the default cost", |b| {
        b.iter(|| {
            hasher
                .hash(black_box("correct horse battery staple"))
                .expect("hash")
        })
    });
    group.finish();
}

criterion_group!(micro, benches);
criterion_main!(micro);
