//! Tessera's core: the domain, its use cases and the database, free of HTTP. The `tessera`
//! crate puts HTTP handlers, start-up and the command line on top; nothing here may depend on
//! them, and the compiler keeps it so (this crate has no actix).

pub mod accounts;
pub mod audit;
pub mod authorize;
pub mod clients;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod db;
pub mod domain;
pub mod federation;
pub mod grants;
pub mod keys;
pub mod mail;
pub mod metrics;
pub mod mfa;
pub mod preflight;
pub mod purge;
pub mod refresh;
pub mod services;
pub mod sso;
pub mod tokens;
pub mod usecases;
