//! Tessera: a standalone OAuth2 / OpenID Connect identity provider. This crate is the HTTP
//! layer, start-up and the command line over `tessera_core`.

pub mod cli;
pub mod http;
pub mod listener;
pub mod startup;
pub mod telemetry;

// The core's modules under their old paths, for the handlers' and tests' imports.
pub use tessera_core::{
    accounts, audit, authorize, clients, clock, config, crypto, db, domain, federation, grants,
    keys, mail, metrics, mfa, preflight, purge, refresh, services, sso, tokens, usecases,
};
