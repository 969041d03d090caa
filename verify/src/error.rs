/// Why a token was refused. The `Display` text is safe to send back to the client in
/// `error_description`: it never repeats the token or a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the token is not a well-formed JWS")]
    Malformed,
    /// The header's `alg` (kept for logs; not repeated to the client).
    #[error("the token's algorithm is not accepted (RS256, ES256 or EdDSA, that of its key)")]
    Algorithm(String),
    #[error("the token is not an access token (typ must be at+jwt)")]
    WrongType,
    #[error("the token uses a header extension this server does not understand")]
    UnsupportedHeader,
    #[error("the token was signed by an unknown key")]
    UnknownKey,
    #[error("the token's signature is invalid")]
    Signature,
    #[error("the token is expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token was issued by another issuer")]
    WrongIssuer,
    #[error("the token is not meant for this server")]
    WrongAudience,
    #[error("the token lacks a required claim or has a malformed one")]
    Claims,
    #[error("the token is not a logout token (typ must be logout+jwt)")]
    NotALogoutToken,
    /// A logout token that breaks a rule of Back-Channel Logout 1.0 §2.6 (which one is said).
    #[error("the logout token is invalid: {0}")]
    Logout(&'static str),
}

/// Why the verifier could not be built or could not reach its keys.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("cannot fetch {url}: {reason}")]
    Fetch { url: String, reason: String },
    #[error("{url} did not return a usable document: {reason}")]
    Document { url: String, reason: String },
}
