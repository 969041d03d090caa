//! Sign-in through upstream OpenID Connect providers (Google first; more by configuration).
//!
//! Tessera is the broker: the browser goes to the upstream with a fresh `state`, `nonce` and PKCE
//! challenge, comes back to `/auth/<name>/callback`, Tessera exchanges the code, verifies the ID
//! token against the upstream's published keys, maps the upstream identity to a Tessera account
//! ([`link`]) and continues the app's own authorization request. Apps only ever see Tessera's
//! tokens. Free of HTTP framework types; `http::federation` translates.

pub mod flow;
mod id_token;
pub mod link;
pub mod provider;
mod upstream_error;

pub use id_token::UpstreamIdentity;
pub use provider::{Federation, Provider};
pub use upstream_error::UpstreamError;

use crate::authorize::AuthorizeError;
use crate::db::DbError;

#[derive(Debug, thiserror::Error)]
pub enum FederationError {
    #[error("no such sign-in provider")]
    UnknownProvider,
    /// The callback's `state` is missing, unknown, used, expired, or was started in another
    /// browser: nothing may be issued (RFC 6749 §10.12, RFC 9700 §4.7).
    #[error("{0}")]
    BadState(&'static str),
    /// The person declined at the upstream, or it refused the request.
    #[error("the upstream provider answered {error}")]
    Denied {
        error: String,
        request: Option<Box<crate::authorize::AuthorizationRequest>>,
    },
    /// The upstream failed or answered something that cannot be trusted; the detail is for
    /// the log only.
    #[error("upstream sign-in failed: {0}")]
    Upstream(String),
    #[error("the account is disabled")]
    AccountDisabled,
    /// The password given to prove the existing account (before a link) is not its password.
    #[error("the password is not right")]
    WrongPassword,
    /// Too many failed passwords for that account: seconds to wait.
    #[error("too many failed attempts; try again in {0} s")]
    Throttled(i64),
    /// The app's authorization request carried through the sign-in is no longer valid.
    #[error(transparent)]
    Authorize(#[from] AuthorizeError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("{0}")]
    Internal(String),
}

impl From<UpstreamError> for FederationError {
    fn from(e: UpstreamError) -> Self {
        FederationError::Upstream(e.0)
    }
}
