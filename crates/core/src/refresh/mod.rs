//! Refresh tokens, one home for their whole lifecycle (RFC 6749 §6, rotation with reuse
//! detection per RFC 9700 §4.14.2):
//! - `family`: a sign-in starts a family, its first token and the cap on live families;
//! - `grant`: the refresh grant, rotating the token on every use;
//! - `store`: the rows, with the one-statement rotation the dialect provides.

pub mod family;
pub mod grant;
pub mod store;
