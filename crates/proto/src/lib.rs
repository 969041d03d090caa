//! The documents Tessera puts on the wire, as types both ends share: the server builds and
//! serialises them, `tessera-verify` and the tests parse them. Only serde here, so a resource
//! server or a test can depend on it without pulling in the server.
//!
//! Field names, which optional members are left out, and member order are the wire format:
//! clients, the tests and the JWKS `ETag` depend on them, so change them only on purpose.

mod claims;
mod discovery;
mod error;
mod introspection;
mod jwks;
mod token;

pub use claims::{
    AccessClaims, Audience, BACKCHANNEL_LOGOUT_EVENT, EmptyObject, IdClaims, LOGOUT_TOKEN_TYPE,
    LogoutClaims, LogoutEvents, UserClaims,
};
pub use discovery::ProviderMetadata;
pub use error::ErrorBody;
pub use introspection::Introspection;
pub use jwks::{Jwk, JwkSet};
pub use token::TokenResponse;
