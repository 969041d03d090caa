//! Every integration test, in one binary (one link on 2 cores). Each test starts the real
//! server on port 0 against a fresh database: a temporary SQLite file, or a fresh PostgreSQL
//! database when TEST_DATABASE_URL names a server (a copy of a template this run migrated
//! once). What the tests share lives in `testkit`.
//!
//! Tests for one backend only are `#[ignore]`d and named for it: `postgres_only_…` and
//! `sqlite_only_…` (libtest decides what is ignored at compile time, and the backend is chosen
//! at run time). So a plain `cargo test` reports them "ignored", never "ok" for a test that
//! did nothing, and `scripts/test` runs each pass with `--include-ignored --skip` the other
//! backend's prefix. No other test may be `#[ignore]`d (`no_test_is_ignored_but_backend_only`
//! checks it), and each backend-only test fails if run against the other backend.

// Tests state their expectations with expect/panic; the crate-wide denial is for server code.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod testkit;

mod audit_parity;
mod authorize;
mod bad_input;
mod browser;
mod cli;
mod cookies;
mod db_seam;
mod errors;
mod faults;
mod federation;
mod fuzz;
mod health;
mod k8s;
mod keys;
mod keystore;
mod layers;
mod linking;
mod login_page;
mod metrics;
mod notes_api;
mod pages;
mod passkeys;
mod password_grant;
mod postgres_tls;
mod redirect_uris;
mod refresh;
mod replicas;
mod resources;
mod rotation;
mod security;
mod self_service;
mod signing_algorithms;
mod sso;
mod throttling;
mod topology;
mod wellknown;

/// Backend-only tests are the only ignored ones, so `--include-ignored` on a pass runs
/// nothing else that was meant to stay off.
#[test]
fn no_test_is_ignored_but_backend_only() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/api");
    let mut offenders = Vec::new();
    let mut stack = vec![dir];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read tests/api") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("read");
            let lines: Vec<&str> = text.lines().collect();
            for (i, line) in lines.iter().enumerate() {
                if !line.trim_start().starts_with("#[ignore") {
                    continue;
                }
                let test_name = lines[i..]
                    .iter()
                    .find_map(|l| l.split("fn ").nth(1))
                    .unwrap_or_default();
                if !(test_name.starts_with("postgres_only_")
                    || test_name.starts_with("sqlite_only_"))
                {
                    offenders.push(format!("{}:{}", path.display(), i + 1));
                }
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "ignored but not backend-only: {offenders:?}"
    );
}
