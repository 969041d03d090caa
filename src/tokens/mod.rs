//! JSON Web Tokens: minted here with the active key (parsed once, see `keys`), verified with
//! `jsonwebtoken` against the published keys.

mod jwt;

pub use jwt::{TokenError, sign};
