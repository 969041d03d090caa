//! The tests' kit: everything two test files would otherwise each write for themselves.
//! - `app`: the server in process, as the real binary, or as a CLI command;
//! - `backchannel`: an app's back-channel logout endpoint, which keeps the tokens it gets;
//! - `database`: a fresh database per test (PostgreSQL: a clone of a template migrated once);
//! - `eventually`: the one way to wait for a state;
//! - `fixtures`: shared passwords, PKCE values, JWT and redirect readers;
//! - `http`: a cookie-keeping HTTP client that plays a browser;
//! - `mfa`: authenticator apps set up (by the use cases or the account page), codes, what the
//!   page shows;
//! - `smtp`: a real SMTP server that keeps what it receives;
//! - `upstream`: a fake upstream OpenID Connect provider.

// The kit serves every test file; not each uses every part.
#![allow(dead_code, unused_imports)]

pub mod app;
pub mod backchannel;
pub mod database;
pub mod eventually;
pub mod fixtures;
pub mod http;
pub mod mfa;
pub mod smtp;
pub mod upstream;

pub use app::{ServerProcess, TestApp, TestEnv, once, run_cli, stdout_json, test_settings};
pub use backchannel::LogoutReceiver;
pub use database::{TestDatabase, on_postgres};
pub use eventually::{DEADLINE, eventually};
pub use fixtures::{
    PASSWORD, REDIRECT, VERIFIER, claims_of, csrf_field, location, mail_through, pkce_challenge,
    query_of, rust_files, verify_independently,
};
pub use http::HttpBrowser;
pub use smtp::SmtpSink;
pub use upstream::FakeUpstream;
