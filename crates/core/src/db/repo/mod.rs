//! One module per table: plain synchronous functions over a connection. A unit of work that
//! writes more than one row runs them inside one `conn.transaction`.
//!
//! Look-ups by a unique key use `get_result`, not `first`: `first` adds `LIMIT ?`, and a bound
//! LIMIT makes SQLite re-prepare the statement on every run (measured: 12% of a refresh).

pub mod account_tokens;
pub mod audit;
pub mod clients;
pub mod federation;
pub mod known_sign_ins;
pub mod outbox;
pub mod revoked;
pub mod signing_key_material;
pub mod signing_keys;
pub mod throttles;
pub mod users;
