//! Tessera: a standalone OAuth2 / OpenID Connect identity provider.

pub mod accounts;
pub mod audit;
pub mod authorize;
pub mod cli;
pub mod clients;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod db;
pub mod federation;
pub mod grants;
pub mod http;
pub mod keys;
pub mod mail;
pub mod metrics;
pub mod services;
pub mod sessions;
pub mod startup;
pub mod telemetry;
pub mod tokens;
pub mod usecases;
