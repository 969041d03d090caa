//! Tokens: RFC 9068 access tokens and OIDC ID tokens (JWTs minted with the active key, parsed
//! once, see `keys`; verified against the published keys: access tokens with each key's
//! public half parsed once, ID token hints with `jsonwebtoken`), and opaque refresh tokens
//! stored only as hashes.

mod claims;
mod jwt;
pub mod status;

pub use claims::{
    AccessClaims, Audience, IdClaims, UserClaims, stamp_matches, stamp_of, user_claims,
};
pub use jwt::{
    ACCESS_TOKEN_TYPE, TokenError, VerifyError, decode_access_token, decode_id_token_hint, sign,
    verify_access_token,
};
