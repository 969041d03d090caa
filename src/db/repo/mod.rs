//! One module per table: plain synchronous functions over a connection. A unit of work that
//! writes more than one row runs them inside one `conn.transaction`.

pub mod audit;
pub mod clients;
pub mod codes;
pub mod refresh;
pub mod revoked;
pub mod signing_keys;
pub mod throttles;
pub mod users;
