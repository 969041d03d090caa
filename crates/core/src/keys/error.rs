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
    #[error("cannot parse the public half of a {0} key for verification")]
    Verifier(crate::domain::SigningAlg),
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
    Store(#[from] StoreError),
}

/// What the key material store (`store.rs`) can refuse.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "keys.store = \"database\" needs a key-encryption key: set TESSERA_KEY_ENCRYPTION_KEY \
         (32 random bytes, base64: `openssl rand -base64 32`) or keys.encryption_key_file \
         (TESSERA_KEY_ENCRYPTION_KEY_FILE)"
    )]
    NoKek,
    #[error("{0} and {0}_file are both set: give the key one way")]
    BothGiven(&'static str),
    #[error(
        "{0} is not a key-encryption key: it must be 32 bytes in base64 (standard alphabet), \
         e.g. from `openssl rand -base64 32`"
    )]
    BadKek(&'static str),
    #[error("cannot read the key-encryption key file {path}: {source}")]
    KekFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "signing key {kid} is sealed under key-encryption key {kek_id}, but the key-encryption \
         key given is {current}{previous}: start with the key it was sealed under (as \
         TESSERA_KEY_ENCRYPTION_KEY_PREVIOUS beside the new one, then run `tessera keys rewrap`)"
    )]
    UnknownKek {
        kid: String,
        kek_id: String,
        current: String,
        previous: String,
    },
    #[error(
        "signing key {kid} does not open with key-encryption key {kek_id}: its sealed row was \
         altered or copied from another key"
    )]
    Unreadable { kid: String, kek_id: String },
    #[error(
        "signing key {kid} is {state} in the database but its private key is not stored there: \
         run `tessera keys import-files` with the keys directory it is in"
    )]
    NoMaterial { kid: String, state: String },
    #[error("this needs keys.store = \"database\" (TESSERA_KEYS_STORE=database)")]
    NotDatabase,
    #[error("{path} is not a secrets key (32 bytes, base64); restore it from a backup")]
    BadSecretsKey { path: PathBuf },
    #[error(
        "{path} is not the key the database holds for TOTP secrets: remove it (the database's \
         key is the one in use) or restore the database's row from a backup"
    )]
    SecretsKeyDiffers { path: PathBuf },
    #[error(
        "TOTP secrets exist but the database holds no key for them and {path} is missing: copy \
         the secrets.key the files store used there and start again"
    )]
    SecretsKeyMissing { path: PathBuf },
    #[error("cannot read the secrets key {path}: {source}")]
    SecretsKeyFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Random(#[from] crate::crypto::RandomError),
}
