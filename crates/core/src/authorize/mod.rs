//! The authorization code flow (RFC 6749 §4.1, PKCE per RFC 7636), one home for both ends:
//! - `request`: checking an authorization request and issuing a code once the person signed in;
//! - `code`: redeeming the code at the token endpoint, once;
//! - `store`: the code rows.
//!
//! The login page itself is `http::authorize`.

pub mod code;
pub mod request;
pub mod store;

pub use request::{
    AuthorizationRequest, AuthorizeError, CODE_TTL_SECS, issue_code, pkce_matches, validate,
    with_query,
};
