//! Every integration test, in one binary (one link on 2 cores). Each test starts the real
//! server on port 0 against a fresh database: a temporary SQLite file, or a fresh PostgreSQL
//! database when TEST_DATABASE_URL names a server.

// Tests state their expectations with expect/panic; the crate-wide denial is for server code.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod helpers;

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
mod http_layer;
mod keys;
mod layers;
mod linking;
mod login_page;
mod metrics;
mod notes_api;
mod pages;
mod password_grant;
mod redirect_uris;
mod refresh;
mod replicas;
mod resources;
mod rotation;
mod self_service;
mod smtp_sink;
mod throttling;
mod upstream;
mod wellknown;
