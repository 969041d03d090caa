use crate::db::DbError;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{0} key generation failed")]
    Generate(crate::domain::SigningAlg),
    #[error("cannot serialise the JWKS")]
    Serialise,
    #[error("signing failed")]
    Sign,
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a PKCS#8 private key")]
    Parse { path: PathBuf },
    #[error("{path} is not a PKCS#8 {alg} private key")]
    WrongKind {
        path: PathBuf,
        alg: crate::domain::SigningAlg,
    },
    #[error("key {kid} is {state} in the database but its file {path} is missing")]
    Missing {
        kid: String,
        state: String,
        path: PathBuf,
    },
    #[error("{path} holds a different key than its name (thumbprint {actual})")]
    Mismatch { path: PathBuf, actual: String },
    #[error("the database lists no active {0} signing key")]
    NoActive(crate::domain::SigningAlg),
    #[error("unknown signing algorithm {0:?} in the database")]
    UnknownAlgorithm(String),
    #[error("unknown key state {0:?} in the database")]
    UnknownState(String),
    #[error(
        "key {kid} has been published for {published_secs} s, but resource servers may cache \
         the JWKS for {required_secs} s (keys.jwks_max_age_secs plus keys.reload_interval_secs): \
         rotate again in {wait_secs} s, or pass --force and accept that verifiers with a cached \
         JWKS meet an unknown kid and must refetch"
    )]
    TooEarly {
        kid: String,
        published_secs: i64,
        required_secs: i64,
        wait_secs: i64,
    },
    #[error("another process changed the signing keys at the same moment; try again")]
    Conflict,
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Store(#[from] super::store::StoreError),
}
