//! Settings: compiled-in defaults (`config/default.toml`) → a config file → environment → flags.
//!
//! Every layer is merged as TOML before one typed deserialisation, so a bad value is reported the
//! same way whichever layer it came from: one line naming the key.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::{Table, Value};

/// The documented defaults; the file is the single source of truth for them.
const DEFAULTS: &str = include_str!("../../../config/default.toml");
/// Read when no `--config` is given and the file is present in the working directory.
const LOCAL_CONFIG: &str = "config/default.toml";
/// Settings that have no default value (so are absent from the defaults file) but may be set.
const OPTIONAL_STRING_KEYS: &[&str] = &[
    "server.issuer",
    "metrics.bind",
    "keys.encryption_key",
    "keys.encryption_key_file",
    "keys.previous_encryption_key",
    "keys.previous_encryption_key_file",
];
/// Short environment names for the settings people set most.
const ENV_ALIASES: &[(&str, &str)] = &[
    ("TESSERA_BIND", "server.bind"),
    ("TESSERA_ISSUER", "server.issuer"),
    ("DATABASE_URL", "database.url"),
    ("TESSERA_KEYS_DIR", "keys.dir"),
    ("TESSERA_KEY_ENCRYPTION_KEY", "keys.encryption_key"),
    (
        "TESSERA_KEY_ENCRYPTION_KEY_FILE",
        "keys.encryption_key_file",
    ),
    (
        "TESSERA_KEY_ENCRYPTION_KEY_PREVIOUS",
        "keys.previous_encryption_key",
    ),
    (
        "TESSERA_KEY_ENCRYPTION_KEY_PREVIOUS_FILE",
        "keys.previous_encryption_key_file",
    ),
    ("TESSERA_LOG", "log.filter"),
    ("TESSERA_LOG_FORMAT", "log.format"),
];
/// TESSERA_ variables read by the command line itself rather than mapped to a setting.
const ENV_NOT_SETTINGS: &[&str] = &["TESSERA_CONFIG"];
/// The filter Rust programs read; `log.filter` follows it when `TESSERA_LOG` is unset.
const RUST_LOG: &str = "RUST_LOG";

#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(pub String);

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub keys: KeySettings,
    pub tokens: TokenSettings,
    pub sessions: SessionSettings,
    pub accounts: AccountSettings,
    pub throttle: ThrottleSettings,
    pub purge: PurgeSettings,
    pub passwords: PasswordSettings,
    pub smtp: SmtpSettings,
    pub mail: MailSettings,
    pub backchannel: BackchannelSettings,
    pub log: LogSettings,
    pub metrics: MetricsSettings,
    pub google: UpstreamSettings,
    pub federation: FederationSettings,
    /// Further OpenID Connect upstreams by name (config file only: `[upstreams.<name>]`).
    #[serde(default)]
    pub upstreams: BTreeMap<String, UpstreamSettings>,
    /// What the consent page says of a scope (`[scopes.<name>] description = "…"`), over the
    /// built-in descriptions of `openid`, `email`, `profile` and `offline_access`.
    #[serde(default)]
    pub scopes: BTreeMap<String, ScopeSettings>,
    /// `TESSERA_*` variables that name no section of ours (Kubernetes service links such as
    /// `TESSERA_SERVICE_HOST`, a wrapper script's own variables): ignored, and named once in a
    /// warning when logging starts. Names only; their values may be secrets.
    #[serde(skip)]
    pub ignored_env: Vec<String>,
}

/// An OpenID Connect provider people may sign in with. Off while `client_id` is empty.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamSettings {
    #[serde(default)]
    pub display_name: Option<String>,
    pub issuer: String,
    #[serde(default)]
    pub client_id: String,
    #[serde(default)]
    pub client_secret: Secret,
    /// Whether this upstream's verified addresses are believed: only then may its address
    /// link to an existing account or own an address here. On for Google (in the defaults),
    /// off for every `[upstreams.*]` unless set.
    #[serde(default)]
    pub trust_email: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSettings {
    pub enabled: bool,
    pub bind: Option<SocketAddr>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FederationSettings {
    pub http_timeout_secs: u64,
    pub sign_ins_per_ip: i64,
}

/// A configured secret: kept out of `Debug`, so settings can be logged whole.
#[derive(Clone, Default, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() {
            "\"\""
        } else {
            "<redacted>"
        })
    }
}

/// One enabled upstream, with the name its paths use (`/auth/<name>/…`).
#[derive(Debug, Clone)]
pub struct Upstream {
    pub name: String,
    pub display_name: String,
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Secret,
    pub trust_email: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub bind: SocketAddr,
    pub issuer: Option<String>,
    pub workers: usize,
    pub max_connections_per_worker: usize,
    pub body_limit_bytes: usize,
    pub shutdown_timeout_secs: u64,
    pub drain_secs: u64,
    pub cors_allowed_origins: Vec<String>,
    pub trusted_proxies: crate::domain::TrustedProxies,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    pub url: String,
    pub max_connections: u32,
    pub connect_timeout_secs: u64,
    pub sqlite_busy_timeout_ms: u32,
    /// SQLite: the hot paths' writes waiting at the same moment share one COMMIT
    /// (`db::group`). Off, each commits alone.
    pub group_commit: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySettings {
    /// Where the private halves live: `files` in `dir`, or `database`, sealed under the
    /// key-encryption key (`keys::store`).
    pub store: KeyStoreKind,
    pub dir: PathBuf,
    /// The key-encryption key (32 bytes, base64) for `store = "database"`, or a file holding it.
    pub encryption_key: Option<Secret>,
    pub encryption_key_file: Option<PathBuf>,
    /// The key-encryption key before the last change, still accepted until `keys rewrap`.
    pub previous_encryption_key: Option<Secret>,
    pub previous_encryption_key_file: Option<PathBuf>,
    pub rsa_bits: u32,
    pub jwks_max_age_secs: u32,
    pub reload_interval_secs: u64,
    pub retire_leeway_secs: i64,
    pub rotate_interval_secs: u64,
}

/// `keys.store`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyStoreKind {
    Files,
    Database,
}

impl KeySettings {
    /// How long a `next` key is published before it may sign: long enough for every resource
    /// server's cached JWKS and every replica's key ring to have it.
    pub fn publish_before_signing_secs(&self) -> i64 {
        i64::from(self.jwks_max_age_secs) + self.reload_interval_secs as i64
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenSettings {
    pub access_token_ttl_secs: i64,
    pub id_token_ttl_secs: i64,
    pub refresh_idle_ttl_secs: i64,
    pub refresh_absolute_ttl_secs: i64,
    pub refresh_reuse_grace_secs: i64,
    pub max_live_refresh_families: i64,
}

/// The browser session at Tessera itself (single sign-on).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionSettings {
    /// A session ends after this long without use ...
    pub idle_ttl_secs: i64,
    /// ... and this long after the sign-in that started it, whatever happens.
    pub absolute_ttl_secs: i64,
    /// Live browser sessions one person may hold; a sign-in beyond it ends their oldest.
    pub max_live_per_user: i64,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopeSettings {
    pub description: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PurgeSettings {
    pub interval_secs: u64,
    pub retention_secs: i64,
    pub audit_retention_secs: i64,
    pub batch_size: i64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountSettings {
    pub self_registration: bool,
    pub verification_ttl_secs: i64,
    pub reset_ttl_secs: i64,
    pub mail_requests_per_email: i64,
    pub mail_requests_per_ip: i64,
    pub mail_request_window_secs: i64,
    /// With mail on, accounts that never verified their address are deleted this long after
    /// they were made (0: never).
    pub unverified_ttl_secs: i64,
    pub registrations_per_ip: i64,
    pub reauth_max_age_secs: i64,
    /// Whether everyone must sign in with a second factor (`required`: who has none enrols
    /// during sign-in, and the password grant is refused).
    pub mfa: MfaPolicy,
}

/// `accounts.mfa`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MfaPolicy {
    /// A second factor is asked of those who enrolled one (and when an app asks for it).
    Optional,
    /// Everyone signs in with a second factor.
    Required,
}

impl MfaPolicy {
    pub fn is_required(self) -> bool {
        self == MfaPolicy::Required
    }
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpSettings {
    pub url: String,
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub username: String,
    pub password: String,
    pub from: String,
    pub ca_file: String,
    pub timeout_secs: u64,
}

/// Never prints the password.
impl std::fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("username", &self.username)
            .field("from", &self.from)
            .field("ca_file", &self.ca_file)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    None,
    Starttls,
    Tls,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailSettings {
    pub poll_interval_ms: u64,
    pub retry_base_secs: i64,
    pub retry_max_secs: i64,
    pub max_attempts: i64,
    pub claim_secs: i64,
    pub batch_size: i64,
}

/// The sender of OpenID Connect Back-Channel Logout tokens (`sso::backchannel`): the same
/// outbox as mail, with its own pace, since its receivers are apps, not an SMTP server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackchannelSettings {
    pub timeout_secs: u64,
    pub poll_interval_ms: u64,
    pub retry_base_secs: i64,
    pub retry_max_secs: i64,
    pub max_attempts: i64,
    pub claim_secs: i64,
    pub batch_size: i64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThrottleSettings {
    pub account_free_attempts: i64,
    pub account_total_free_attempts: i64,
    pub ip_free_attempts: i64,
    pub window_secs: i64,
    pub max_backoff_secs: i64,
    pub known_sign_ins_per_account: i64,
    pub known_sign_in_ttl_secs: i64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordSettings {
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub argon2_parallelism: u32,
    pub min_length: usize,
    pub hash_threads: usize,
    pub hash_queue: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub filter: String,
    pub format: LogFormat,
    /// The access log: every request's line (method, path, status, time) at `info`; off, the
    /// line is at `debug` (every request is still counted in the metrics, and a 5xx still
    /// logs its warning).
    pub access: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Auto,
    Pretty,
    Json,
}

/// Where the settings come from, besides the compiled-in defaults.
#[derive(Debug, Default)]
pub struct Sources {
    /// An explicit config file; it must exist.
    pub file: Option<PathBuf>,
    /// Environment variables, usually `std::env::vars()`.
    pub env: Vec<(String, String)>,
    /// Command-line flags as (`section.key`, value) pairs; they win over everything else.
    pub flags: Vec<(&'static str, String)>,
}

impl Settings {
    /// The compiled-in defaults alone: what tests and tools start from.
    pub fn defaults() -> Result<Settings, ConfigError> {
        Settings::from_table(defaults_table()?)
    }

    pub fn load(sources: Sources) -> Result<Settings, ConfigError> {
        let mut table = defaults_table()?;
        let file = match sources.file {
            Some(path) => Some(path),
            None => Some(PathBuf::from(LOCAL_CONFIG)).filter(|p| p.is_file()),
        };
        if let Some(path) = file {
            merge(&mut table, read_file(&path)?);
        }
        let defaults = defaults_table()?;
        let tessera_log_set = sources.env.iter().any(|(name, _)| name == "TESSERA_LOG");
        let mut ignored_env = Vec::new();
        for (name, raw) in &sources.env {
            if name == RUST_LOG && !tessera_log_set {
                set(&mut table, "log.filter", Value::String(raw.clone()));
                continue;
            }
            match env_key(&defaults, name, raw)? {
                EnvKey::Setting(key) => {
                    set(&mut table, &key, typed_value(&defaults, &key, raw, name)?);
                }
                EnvKey::Foreign => ignored_env.push(name.clone()),
                EnvKey::NotOurs => {}
            }
        }
        for (key, raw) in &sources.flags {
            let flag = format!("the flag for {key}");
            set(&mut table, key, typed_value(&defaults, key, raw, &flag)?);
        }
        let mut settings = Settings::from_table(table)?;
        ignored_env.sort();
        settings.ignored_env = ignored_env;
        Ok(settings)
    }

    fn from_table(table: Table) -> Result<Settings, ConfigError> {
        let settings: Settings = serde_path_to_error::deserialize(Value::Table(table))
            .map_err(|e| ConfigError(format!("{}: {}", e.path(), e.inner().message().trim())))?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if let Some(issuer) = &self.server.issuer {
            validate_issuer(issuer)?;
        }
        if self.server.drain_secs > 300 {
            return Err(ConfigError("server.drain_secs: must be at most 300".into()));
        }
        if self.server.max_connections_per_worker == 0 {
            return Err(ConfigError(
                "server.max_connections_per_worker: must be at least 1".into(),
            ));
        }
        if self.database.max_connections == 0 {
            return Err(ConfigError(
                "database.max_connections: must be at least 1".into(),
            ));
        }
        if ![2048, 3072, 4096].contains(&self.keys.rsa_bits) {
            return Err(ConfigError(format!(
                "keys.rsa_bits: {} is not one of 2048, 3072, 4096",
                self.keys.rsa_bits
            )));
        }
        if self.keys.reload_interval_secs == 0 || self.keys.retire_leeway_secs < 0 {
            return Err(ConfigError(
                "keys: reload_interval_secs must be at least 1 and retire_leeway_secs not negative"
                    .into(),
            ));
        }
        let publish = self.keys.publish_before_signing_secs();
        if self.keys.rotate_interval_secs != 0 && (self.keys.rotate_interval_secs as i64) < publish
        {
            return Err(ConfigError(format!(
                "keys.rotate_interval_secs: must be 0 (off) or at least {publish} \
                 (jwks_max_age_secs + reload_interval_secs), the time a next key is published \
                 before it signs"
            )));
        }
        if self.server.body_limit_bytes < 1024 {
            return Err(ConfigError(
                "server.body_limit_bytes: must be at least 1024".into(),
            ));
        }
        for origin in &self.server.cors_allowed_origins {
            validate_origin(origin)?;
        }
        for (key, value) in [
            (
                "tokens.access_token_ttl_secs",
                self.tokens.access_token_ttl_secs,
            ),
            ("tokens.id_token_ttl_secs", self.tokens.id_token_ttl_secs),
            (
                "tokens.refresh_idle_ttl_secs",
                self.tokens.refresh_idle_ttl_secs,
            ),
            (
                "tokens.refresh_absolute_ttl_secs",
                self.tokens.refresh_absolute_ttl_secs,
            ),
            ("sessions.idle_ttl_secs", self.sessions.idle_ttl_secs),
            (
                "sessions.absolute_ttl_secs",
                self.sessions.absolute_ttl_secs,
            ),
            (
                "throttle.account_free_attempts",
                self.throttle.account_free_attempts,
            ),
            ("throttle.ip_free_attempts", self.throttle.ip_free_attempts),
            (
                "throttle.account_total_free_attempts",
                self.throttle.account_total_free_attempts,
            ),
            ("throttle.window_secs", self.throttle.window_secs),
            ("throttle.max_backoff_secs", self.throttle.max_backoff_secs),
            (
                "accounts.verification_ttl_secs",
                self.accounts.verification_ttl_secs,
            ),
            ("accounts.reset_ttl_secs", self.accounts.reset_ttl_secs),
            (
                "accounts.mail_requests_per_email",
                self.accounts.mail_requests_per_email,
            ),
            (
                "accounts.mail_requests_per_ip",
                self.accounts.mail_requests_per_ip,
            ),
            (
                "accounts.mail_request_window_secs",
                self.accounts.mail_request_window_secs,
            ),
            (
                "accounts.registrations_per_ip",
                self.accounts.registrations_per_ip,
            ),
            (
                "throttle.known_sign_ins_per_account",
                self.throttle.known_sign_ins_per_account,
            ),
            (
                "throttle.known_sign_in_ttl_secs",
                self.throttle.known_sign_in_ttl_secs,
            ),
            (
                "federation.sign_ins_per_ip",
                self.federation.sign_ins_per_ip,
            ),
            (
                "tokens.max_live_refresh_families",
                self.tokens.max_live_refresh_families,
            ),
            (
                "accounts.reauth_max_age_secs",
                self.accounts.reauth_max_age_secs,
            ),
            ("mail.retry_base_secs", self.mail.retry_base_secs),
            ("mail.retry_max_secs", self.mail.retry_max_secs),
            ("mail.max_attempts", self.mail.max_attempts),
            ("mail.claim_secs", self.mail.claim_secs),
            ("mail.batch_size", self.mail.batch_size),
            (
                "backchannel.retry_base_secs",
                self.backchannel.retry_base_secs,
            ),
            (
                "backchannel.retry_max_secs",
                self.backchannel.retry_max_secs,
            ),
            ("backchannel.max_attempts", self.backchannel.max_attempts),
            ("backchannel.claim_secs", self.backchannel.claim_secs),
            ("backchannel.batch_size", self.backchannel.batch_size),
        ] {
            if value < 1 {
                return Err(ConfigError(format!("{key}: must be at least 1")));
            }
        }
        if !(0..=60).contains(&self.tokens.refresh_reuse_grace_secs) {
            return Err(ConfigError(
                "tokens.refresh_reuse_grace_secs: must be between 0 and 60".into(),
            ));
        }
        if self.accounts.unverified_ttl_secs < 0 {
            return Err(ConfigError(
                "accounts.unverified_ttl_secs: must not be negative (0 keeps unverified accounts)"
                    .into(),
            ));
        }
        if self.purge.batch_size < 1
            || self.purge.retention_secs < 0
            || self.purge.audit_retention_secs < 0
        {
            return Err(ConfigError(
                "purge: batch_size must be at least 1, and retention_secs and \
                 audit_retention_secs not negative"
                    .into(),
            ));
        }
        if self.passwords.hash_queue == 0 {
            return Err(ConfigError(
                "passwords.hash_queue: must be at least 1".into(),
            ));
        }
        if self.passwords.min_length < 8 {
            return Err(ConfigError(
                "passwords.min_length: must be at least 8".into(),
            ));
        }
        if self.mail.claim_secs <= self.smtp.timeout_secs as i64 {
            return Err(ConfigError(
                "mail.claim_secs: must be longer than smtp.timeout_secs, or a slow send could \
                 be taken over and sent twice"
                    .into(),
            ));
        }
        if self.mail.poll_interval_ms < 10 {
            return Err(ConfigError(
                "mail.poll_interval_ms: must be at least 10".into(),
            ));
        }
        if self.backchannel.timeout_secs == 0
            || self.backchannel.claim_secs <= self.backchannel.timeout_secs as i64
        {
            return Err(ConfigError(
                "backchannel.timeout_secs: must be at least 1 and shorter than \
                 backchannel.claim_secs, or a slow delivery could be taken over and sent twice"
                    .into(),
            ));
        }
        if self.backchannel.poll_interval_ms < 10 {
            return Err(ConfigError(
                "backchannel.poll_interval_ms: must be at least 10".into(),
            ));
        }
        self.log
            .filter
            .parse::<tracing_subscriber::filter::Targets>()
            .map_err(|e| ConfigError(format!("log.filter: {e}")))?;
        if self.federation.http_timeout_secs == 0 {
            return Err(ConfigError(
                "federation.http_timeout_secs: must be at least 1".into(),
            ));
        }
        for name in self.upstreams.keys() {
            if name == "google"
                || name.is_empty()
                || name.len() > 32
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            {
                return Err(ConfigError(format!(
                    "upstreams.{name}: a name is 1 to 32 of a-z, 0-9 and '-', and not \"google\" (configure Google in [google])"
                )));
            }
        }
        let all = std::iter::once(("google".to_string(), &self.google)).chain(
            self.upstreams
                .iter()
                .map(|(n, u)| (format!("upstreams.{n}"), u)),
        );
        for (key, upstream) in all {
            validate_upstream_issuer(&key, &upstream.issuer)?;
            if !upstream.client_id.is_empty() && upstream.client_secret.is_empty() {
                return Err(ConfigError(format!(
                    "{key}.client_secret: must be set when {key}.client_id is"
                )));
            }
        }
        Ok(())
    }

    /// The upstream sign-in providers that are switched on (a client id is set).
    pub fn enabled_upstreams(&self) -> Vec<Upstream> {
        let google = Upstream {
            name: "google".into(),
            display_name: self
                .google
                .display_name
                .clone()
                .unwrap_or_else(|| "Google".into()),
            issuer: self.google.issuer.trim_end_matches('/').to_string(),
            client_id: self.google.client_id.clone(),
            client_secret: self.google.client_secret.clone(),
            trust_email: self.google.trust_email,
        };
        let others = self.upstreams.iter().map(|(name, u)| Upstream {
            name: name.clone(),
            display_name: u.display_name.clone().unwrap_or_else(|| name.clone()),
            issuer: u.issuer.trim_end_matches('/').to_string(),
            client_id: u.client_id.clone(),
            client_secret: u.client_secret.clone(),
            trust_email: u.trust_email,
        });
        std::iter::once(google)
            .chain(others)
            .filter(|u| !u.client_id.is_empty())
            .collect()
    }

    /// The longest window any throttle counter uses: the purge keeps counters that long.
    pub fn counter_window_secs(&self) -> i64 {
        self.throttle
            .window_secs
            .max(self.accounts.mail_request_window_secs)
    }

    /// The issuer: the configured one, or `http://` + the address actually bound.
    pub fn issuer_for(&self, bound: SocketAddr) -> String {
        match &self.server.issuer {
            Some(issuer) => issuer.trim_end_matches('/').to_string(),
            None => format!("http://{bound}"),
        }
    }
}

/// An issuer is an http(s) URL with no query or fragment (OIDC Discovery §3, RFC 8414 §2).
fn validate_issuer(issuer: &str) -> Result<(), ConfigError> {
    let bad = |why: &str| Err(ConfigError(format!("server.issuer: {issuer:?} {why}")));
    let rest = match issuer
        .strip_prefix("https://")
        .or_else(|| issuer.strip_prefix("http://"))
    {
        Some(rest) => rest,
        None => return bad("must start with https:// or http://"),
    };
    if rest.is_empty() || rest.starts_with('/') {
        return bad("has no host");
    }
    if issuer.contains(['?', '#']) {
        return bad("must not have a query or fragment");
    }
    if issuer.contains(char::is_whitespace) {
        return bad("must not contain spaces");
    }
    Ok(())
}

/// An upstream's issuer: https, or plain http to this machine only (a provider under test);
/// its tokens and codes must never cross a network in the clear.
fn validate_upstream_issuer(key: &str, issuer: &str) -> Result<(), ConfigError> {
    let bad = |why: &str| Err(ConfigError(format!("{key}.issuer: {issuer:?} {why}")));
    if issuer.contains(['?', '#']) || issuer.contains(char::is_whitespace) {
        return bad("must be a URL without query, fragment or spaces");
    }
    if let Some(rest) = issuer.strip_prefix("https://") {
        if rest.is_empty() || rest.starts_with('/') {
            return bad("has no host");
        }
        return Ok(());
    }
    if issuer.contains('\\') {
        return bad("must not contain a backslash");
    }
    let loopback = issuer.starts_with("http://")
        && url::Url::parse(issuer).is_ok_and(|url| {
            let host_is_loopback = match url.host() {
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                Some(url::Host::Domain(name)) => name == "localhost",
                None => false,
            };
            host_is_loopback && url.username().is_empty() && url.password().is_none()
        });
    if loopback {
        Ok(())
    } else {
        bad(
            "must start with https:// (plain http only to a loopback address: 127.0.0.0/8, ::1, localhost)",
        )
    }
}

/// A CORS origin is exactly scheme://host[:port]; "*" would let any site read tokens.
fn validate_origin(origin: &str) -> Result<(), ConfigError> {
    let bad = |why: &str| {
        Err(ConfigError(format!(
            "server.cors_allowed_origins: {origin:?} {why}"
        )))
    };
    if origin == "*" {
        return bad("is a wildcard; list each origin instead");
    }
    let Some((scheme, host)) = origin.split_once("://") else {
        return bad("is not scheme://host[:port]");
    };
    if !matches!(scheme, "http" | "https") || host.is_empty() || host.contains(['/', '?', '#', ' '])
    {
        return bad("is not scheme://host[:port] (no path, no trailing slash)");
    }
    Ok(())
}

fn defaults_table() -> Result<Table, ConfigError> {
    DEFAULTS
        .parse::<Table>()
        .map_err(|e| ConfigError(format!("built-in defaults: {}", e.message())))
}

fn read_file(path: &Path) -> Result<Table, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))?;
    text.parse::<Table>().map_err(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start].lines().count().max(1))
            .unwrap_or(0);
        ConfigError(format!(
            "{} line {line}: {}",
            path.display(),
            e.message().trim()
        ))
    })
}

/// Deep merge: tables merge key by key, anything else is replaced.
fn merge(base: &mut Table, over: Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(Value::Table(b)), Value::Table(o)) => merge(b, o),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

fn set(table: &mut Table, key: &str, value: Value) {
    let (section, name) = key.split_once('.').unwrap_or(("", key));
    let entry = table
        .entry(section.to_string())
        .or_insert_with(|| Value::Table(Table::new()));
    if let Value::Table(section) = entry {
        section.insert(name.to_string(), value);
    }
}

fn known_keys(defaults: &Table) -> Vec<String> {
    let mut keys: Vec<String> = OPTIONAL_STRING_KEYS.iter().map(|k| k.to_string()).collect();
    for (section, value) in defaults {
        if let Value::Table(inner) = value {
            keys.extend(inner.keys().map(|k| format!("{section}.{k}")));
        }
    }
    keys
}

/// What an environment variable is to the settings.
#[derive(Debug, PartialEq, Eq)]
enum EnvKey {
    /// It sets this setting (`section.key`).
    Setting(String),
    /// A `TESSERA_` name of someone else's: no section of ours, or a Kubernetes service link.
    Foreign,
    /// Not a `TESSERA_` name, or one the command line reads itself.
    NotOurs,
}

/// Maps an environment variable to a setting. A `TESSERA_` name that starts with one of our
/// sections but names no key in it is a mistake worth stopping for (a typo would otherwise be
/// silently ignored); one that names no section at all is someone else's.
fn env_key(defaults: &Table, name: &str, value: &str) -> Result<EnvKey, ConfigError> {
    if let Some((_, key)) = ENV_ALIASES.iter().find(|(alias, _)| *alias == name) {
        return Ok(EnvKey::Setting(key.to_string()));
    }
    let Some(rest) = name.strip_prefix("TESSERA_") else {
        return Ok(EnvKey::NotOurs);
    };
    if ENV_NOT_SETTINGS.contains(&name) {
        return Ok(EnvKey::NotOurs);
    }
    if is_kubernetes_service_link(rest, value) {
        return Ok(EnvKey::Foreign);
    }
    if let Some(key) = known_keys(defaults)
        .into_iter()
        .find(|key| env_name(key) == name)
    {
        return Ok(EnvKey::Setting(key));
    }
    let names_our_section = defaults
        .iter()
        .filter(|(_, value)| value.is_table())
        .map(|(section, _)| section.as_str())
        .chain(["upstreams", "scopes"])
        .any(|section| {
            rest.strip_prefix(&section.to_uppercase())
                .is_some_and(|tail| tail.starts_with('_'))
        });
    if names_our_section {
        return Err(ConfigError(format!("unknown environment variable {name}")));
    }
    Ok(EnvKey::Foreign)
}

/// A variable Kubernetes injects for a Service, judged by name and value together:
/// `<NAME>_SERVICE_HOST=<ip>`, `<NAME>_SERVICE_PORT[_<PORT NAME>]=<port>`,
/// `<NAME>_PORT=tcp://…`, `<NAME>_PORT_<N>_<PROTO>=tcp://…` and its `_ADDR=<ip>`, `_PORT=<port>`,
/// `_PROTO=tcp`. So a Service named `tessera-smtp` (`TESSERA_SMTP_PORT=tcp://10.0.0.3:25`)
/// cannot stop the start, while `TESSERA_SERVER_PORT=9000`, a setting that does not exist, is
/// still an error.
fn is_kubernetes_service_link(rest: &str, value: &str) -> bool {
    let ip = || value.parse::<std::net::IpAddr>().is_ok();
    let port = || !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit());
    let url = |proto: &str| {
        value
            .strip_prefix(&format!("{}://", proto.to_ascii_lowercase()))
            .is_some_and(|rest| !rest.is_empty())
    };
    let proto = |p: &str| matches!(p, "TCP" | "UDP" | "SCTP");
    let parts: Vec<&str> = rest.split('_').collect();
    (1..parts.len()).any(|i| match (parts[i], &parts[i + 1..]) {
        ("SERVICE", ["HOST"]) => ip(),
        ("SERVICE", ["PORT", ..]) => port(),
        ("PORT", []) => ["tcp", "udp", "sctp"].iter().any(|p| url(p)),
        ("PORT", [n, p, tail @ ..]) if n.bytes().all(|b| b.is_ascii_digit()) && proto(p) => {
            match tail {
                [] => url(p),
                ["ADDR"] => ip(),
                ["PORT"] => port(),
                ["PROTO"] => value.eq_ignore_ascii_case(p),
                _ => false,
            }
        }
        _ => false,
    })
}

fn env_name(key: &str) -> String {
    format!("TESSERA_{}", key.replace('.', "_").to_uppercase())
}

/// Parses a raw string as the type its default has, so `TESSERA_SERVER_WORKERS=4` is a number.
fn typed_value(defaults: &Table, key: &str, raw: &str, source: &str) -> Result<Value, ConfigError> {
    let (section, name) = key.split_once('.').unwrap_or(("", key));
    let default = defaults
        .get(section)
        .and_then(Value::as_table)
        .and_then(|t| t.get(name));
    match default {
        Some(Value::Integer(_)) => raw.trim().parse::<i64>().map(Value::Integer).map_err(|_| {
            ConfigError(format!(
                "{key} (from {source}): {raw:?} is not a whole number"
            ))
        }),
        Some(Value::Boolean(_)) => raw.trim().parse::<bool>().map(Value::Boolean).map_err(|_| {
            ConfigError(format!(
                "{key} (from {source}): {raw:?} is not true or false"
            ))
        }),
        Some(Value::Array(_)) => Ok(Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Value::String(s.to_string()))
                .collect(),
        )),
        Some(_) => Ok(Value::String(raw.to_string())),
        None if OPTIONAL_STRING_KEYS.contains(&key) => Ok(Value::String(raw.to_string())),
        None => Err(ConfigError(format!(
            "unknown setting {key} (from {source})"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(env: &[(&str, &str)], file: Option<&str>) -> Result<Settings, ConfigError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = file.map(|text| {
            let path = dir.path().join("tessera.toml");
            std::fs::write(&path, text).expect("write config");
            path
        });
        Settings::load(Sources {
            // An explicit empty file keeps a developer's local config out of the test.
            file: Some(path.unwrap_or_else(|| {
                let empty = dir.path().join("empty.toml");
                std::fs::write(&empty, "").expect("write config");
                empty
            })),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            flags: vec![],
        })
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let s = Settings::defaults().expect("defaults load");
        assert_eq!(s.server.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(s.database.url, "sqlite://data/tessera.db");
        assert_eq!(s.keys.dir, PathBuf::from("keys"));
        assert_eq!(s.server.issuer, None);
        assert_eq!(s.issuer_for(s.server.bind), "http://127.0.0.1:8080");
    }

    #[test]
    fn layers_apply_in_order() {
        let s = load(
            &[
                ("TESSERA_BIND", "0.0.0.0:9000"),
                ("TESSERA_KEYS_RSA_BITS", "3072"),
            ],
            Some("[server]\nbind = \"127.0.0.1:1\"\nworkers = 3\n"),
        )
        .expect("loads");
        assert_eq!(s.server.bind.to_string(), "0.0.0.0:9000", "env beats file");
        assert_eq!(s.server.workers, 3, "file beats defaults");
        assert_eq!(s.keys.rsa_bits, 3072);
        let listed = load(
            &[(
                "TESSERA_SERVER_CORS_ALLOWED_ORIGINS",
                "https://a.example, http://localhost:3000",
            )],
            None,
        )
        .expect("loads");
        assert_eq!(
            listed.server.cors_allowed_origins,
            ["https://a.example", "http://localhost:3000"]
        );
        let flagged = Settings::load(Sources {
            file: None,
            env: vec![("TESSERA_BIND".into(), "0.0.0.0:9000".into())],
            flags: vec![("server.bind", "127.0.0.1:7000".into())],
        })
        .expect("loads");
        assert_eq!(
            flagged.server.bind.to_string(),
            "127.0.0.1:7000",
            "flag beats env"
        );
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = load(&[], Some("[server]\nbindd = \"x\"\n")).expect_err("rejected");
        assert!(err.to_string().contains("bindd"), "{err}");
        let err = load(&[("TESSERA_SERVER_BND", "x")], None).expect_err("rejected");
        assert!(err.to_string().contains("TESSERA_SERVER_BND"), "{err}");
        let err = load(&[], Some("[serverr]\n")).expect_err("rejected");
        assert!(err.to_string().contains("serverr"), "{err}");
    }

    /// Issue 14 item 16: what Kubernetes injects for a Service named `tessera` (or
    /// `tessera-metrics`), and a wrapper's own variables, are ignored and named once; a typo
    /// inside one of our sections still stops the start.
    #[test]
    fn variables_of_no_section_of_ours_are_ignored_and_listed() {
        let kubernetes = [
            ("TESSERA_SERVICE_HOST", "10.96.0.12"),
            ("TESSERA_SERVICE_PORT", "8080"),
            ("TESSERA_SERVICE_PORT_HTTP", "8080"),
            ("TESSERA_PORT", "tcp://10.96.0.12:8080"),
            ("TESSERA_PORT_8080_TCP", "tcp://10.96.0.12:8080"),
            ("TESSERA_PORT_8080_TCP_ADDR", "10.96.0.12"),
            ("TESSERA_PORT_8080_TCP_PORT", "8080"),
            ("TESSERA_PORT_8080_TCP_PROTO", "tcp"),
            ("TESSERA_METRICS_SERVICE_HOST", "10.96.0.13"),
            ("TESSERA_METRICS_PORT_9100_TCP", "tcp://10.96.0.13:9100"),
            ("TESSERA_WRAPPER_HOME", "/opt/tessera"),
            ("TESSERA_BIND", "0.0.0.0:9000"),
        ];
        let settings = load(&kubernetes, None).expect("starts");
        assert_eq!(settings.server.bind.to_string(), "0.0.0.0:9000");
        let mut expected: Vec<String> = kubernetes[..11]
            .iter()
            .map(|(n, _)| n.to_string())
            .collect();
        expected.sort();
        assert_eq!(settings.ignored_env, expected);

        for typo in [
            "TESSERA_TOKENS_FOO",
            "TESSERA_SERVER_WORKER",
            "TESSERA_UPSTREAMS_ACME_ISSUER",
            // Shaped like a service link, but with a value Kubernetes would not give it.
            "TESSERA_SERVER_PORT",
            "TESSERA_METRICS_SERVICE_PORT_X",
        ] {
            let err = load(&[(typo, "9000x")], None).expect_err(typo);
            assert!(err.to_string().contains(typo), "{err}");
        }
        let err = load(&[("TESSERA_SERVER_PORT", "9000")], None).expect_err("no such setting");
        assert!(err.to_string().contains("TESSERA_SERVER_PORT"), "{err}");
        // A Service named `tessera-smtp` shadows a real setting's name with a link's value.
        let settings = load(
            &[
                ("TESSERA_SMTP_PORT", "tcp://10.96.0.3:25"),
                ("TESSERA_SMTP_SERVICE_PORT", "25"),
            ],
            None,
        )
        .expect("starts");
        assert_eq!(
            settings.ignored_env,
            ["TESSERA_SMTP_PORT", "TESSERA_SMTP_SERVICE_PORT"]
        );
    }

    /// Issue 14 item 17: `RUST_LOG` when `TESSERA_LOG` is unset; `TESSERA_LOG` wins.
    #[test]
    fn rust_log_sets_the_filter_unless_tessera_log_does() {
        let settings = load(&[("RUST_LOG", "tessera=debug,warn")], None).expect("loads");
        assert_eq!(settings.log.filter, "tessera=debug,warn");
        let settings = load(
            &[("RUST_LOG", "tessera=debug"), ("TESSERA_LOG", "error")],
            None,
        )
        .expect("loads");
        assert_eq!(settings.log.filter, "error");
        let settings = load(
            &[("TESSERA_LOG", "error"), ("RUST_LOG", "tessera=debug")],
            None,
        )
        .expect("loads");
        assert_eq!(settings.log.filter, "error", "whatever the order");
        let err = load(&[("RUST_LOG", "tessera=loud")], None).expect_err("rejected");
        assert!(err.to_string().contains("log.filter"), "{err}");
    }

    /// The filter is tracing-subscriber's `Targets` (issue 18: no regex engine in the binary): a
    /// level and target=level directives. EnvFilter's span filters with field values are refused
    /// in one line that names the key.
    #[test]
    fn the_log_filter_takes_levels_and_targets_and_refuses_span_filters() {
        for filter in [
            "warn",
            "tessera::startup=info,warn",
            "tessera=debug,actix_server=off",
        ] {
            let settings = load(&[("TESSERA_LOG", filter)], None).expect(filter);
            assert_eq!(settings.log.filter, filter);
        }
        for filter in ["tessera[login{user=alice}]=debug", "[{user=1}]=trace"] {
            let err = load(&[("TESSERA_LOG", filter)], None).expect_err(filter);
            assert!(err.to_string().contains("log.filter"), "{filter}: {err}");
        }
    }

    #[test]
    fn bad_values_are_one_line_and_name_the_key() {
        for (env, needle) in [
            (("TESSERA_BIND", "localhost"), "server.bind"),
            (("TESSERA_SERVER_WORKERS", "many"), "server.workers"),
            (("TESSERA_ISSUER", "id.example.com"), "server.issuer"),
            (
                ("TESSERA_ISSUER", "https://id.example.com/?a=b"),
                "server.issuer",
            ),
            (("TESSERA_KEYS_RSA_BITS", "1024"), "keys.rsa_bits"),
            (("TESSERA_LOG_FORMAT", "xml"), "log.format"),
            (
                ("TESSERA_SERVER_TRUSTED_PROXIES", "10.0.0.1,0.0.0.0/0"),
                "server.trusted_proxies",
            ),
            (
                ("TESSERA_SERVER_TRUSTED_PROXIES", "ingress.local"),
                "server.trusted_proxies",
            ),
            (
                ("TESSERA_SERVER_MAX_CONNECTIONS_PER_WORKER", "0"),
                "server.max_connections_per_worker",
            ),
            (
                ("TESSERA_SERVER_CORS_ALLOWED_ORIGINS", "*"),
                "cors_allowed_origins",
            ),
            (
                ("TESSERA_SERVER_CORS_ALLOWED_ORIGINS", "https://a.example/"),
                "cors_allowed_origins",
            ),
            (
                ("TESSERA_TOKENS_ACCESS_TOKEN_TTL_SECS", "0"),
                "access_token_ttl_secs",
            ),
            (
                ("TESSERA_ACCOUNTS_SELF_REGISTRATION", "maybe"),
                "self_registration",
            ),
            (("TESSERA_SMTP_TLS", "ssl"), "smtp.tls"),
            (("TESSERA_ACCOUNTS_MFA", "sometimes"), "accounts.mfa"),
            (
                ("TESSERA_MAIL_POLL_INTERVAL_MS", "0"),
                "mail.poll_interval_ms",
            ),
            (
                ("TESSERA_BACKCHANNEL_CLAIM_SECS", "5"),
                "backchannel.claim_secs",
            ),
            (
                ("TESSERA_BACKCHANNEL_MAX_ATTEMPTS", "0"),
                "backchannel.max_attempts",
            ),
            (
                ("TESSERA_BACKCHANNEL_POLL_INTERVAL_MS", "1"),
                "backchannel.poll_interval_ms",
            ),
        ] {
            let err = load(&[env], None).expect_err("rejected");
            let text = err.to_string();
            assert!(text.contains(needle), "{text}");
            assert!(!text.contains('\n'), "one line: {text}");
        }
        let err = load(&[], Some("[server\n")).expect_err("rejected");
        assert!(err.to_string().contains("line 1"), "{err}");
    }

    #[test]
    fn other_environment_variables_are_ignored() {
        let s = load(&[("PATH", "/bin"), ("TESSERA_CONFIG", "x")], None).expect("loads");
        assert_eq!(s.server.workers, 0);
    }

    #[test]
    fn google_comes_from_the_environment_and_more_upstreams_from_the_file() {
        assert!(
            load(&[], None)
                .expect("loads")
                .enabled_upstreams()
                .is_empty()
        );
        let s = load(
            &[
                ("TESSERA_GOOGLE_CLIENT_ID", "abc.apps.googleusercontent.com"),
                ("TESSERA_GOOGLE_CLIENT_SECRET", "s3cret"),
            ],
            Some(
                "[upstreams.acme]\ndisplay_name = \"Acme SSO\"\nissuer = \"https://sso.acme.example/\"\nclient_id = \"t\"\nclient_secret = \"u\"\n",
            ),
        )
        .expect("loads");
        let upstreams = s.enabled_upstreams();
        let names: Vec<_> = upstreams.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(names, ["google", "acme"]);
        assert_eq!(upstreams[0].issuer, "https://accounts.google.com");
        assert_eq!(upstreams[0].client_secret.expose(), "s3cret");
        assert_eq!(upstreams[1].issuer, "https://sso.acme.example");
        assert!(
            upstreams[0].trust_email,
            "Google's verified addresses are believed"
        );
        assert!(
            !upstreams[1].trust_email,
            "others' are not, unless configured"
        );
        assert!(
            !format!("{s:?}").contains("s3cret"),
            "secrets stay out of Debug"
        );
    }

    #[test]
    fn item5_trust_email_is_set_per_upstream_in_the_file_and_the_environment() {
        let s = load(
            &[
                ("TESSERA_GOOGLE_CLIENT_ID", "abc"),
                ("TESSERA_GOOGLE_CLIENT_SECRET", "s"),
                ("TESSERA_GOOGLE_TRUST_EMAIL", "false"),
            ],
            Some(
                "[upstreams.corp]\nissuer = \"https://sso.corp.example\"\nclient_id = \"t\"\nclient_secret = \"u\"\ntrust_email = true\n",
            ),
        )
        .expect("loads");
        let trusted: Vec<_> = s
            .enabled_upstreams()
            .iter()
            .map(|u| (u.name.clone(), u.trust_email))
            .collect();
        assert_eq!(
            trusted,
            [("google".to_string(), false), ("corp".to_string(), true)]
        );
        let err = load(&[("TESSERA_GOOGLE_TRUST_EMAIL", "yes")], None).expect_err("rejected");
        assert!(err.to_string().contains("google.trust_email"), "{err}");
    }

    #[test]
    fn item4_unverified_accounts_live_a_week_by_default() {
        let s = Settings::defaults().expect("defaults");
        assert_eq!(s.accounts.unverified_ttl_secs, 604_800);
        let err =
            load(&[("TESSERA_ACCOUNTS_UNVERIFIED_TTL_SECS", "-1")], None).expect_err("rejected");
        assert!(err.to_string().contains("unverified_ttl_secs"), "{err}");
        let off = load(&[("TESSERA_ACCOUNTS_UNVERIFIED_TTL_SECS", "0")], None).expect("loads");
        assert_eq!(off.accounts.unverified_ttl_secs, 0);
    }

    #[test]
    fn upstream_mistakes_are_refused() {
        for (env, file, needle) in [
            (
                vec![("TESSERA_GOOGLE_CLIENT_ID", "abc")],
                None,
                "google.client_secret",
            ),
            (
                vec![("TESSERA_GOOGLE_ISSUER", "http://accounts.example.com")],
                None,
                "google.issuer",
            ),
            (
                vec![],
                Some("[upstreams.Bad_Name]\nissuer = \"https://x.example\"\n"),
                "upstreams.Bad_Name",
            ),
            (
                vec![],
                Some("[upstreams.google]\nissuer = \"https://x.example\"\n"),
                "upstreams.google",
            ),
        ] {
            let err = load(&env, file).expect_err("rejected");
            assert!(err.to_string().contains(needle), "{err}");
        }
        let local = load(&[("TESSERA_GOOGLE_ISSUER", "http://127.0.0.1:9000")], None);
        assert!(local.is_ok(), "plain http is fine on loopback");
    }

    /// Issue 14 item 18: loopback is 127.0.0.0/8 and ::1, and nothing that merely looks like it.
    #[test]
    fn plain_http_upstreams_are_allowed_on_every_loopback_address_only() {
        for issuer in [
            "http://127.0.0.2:9000",
            "http://127.255.0.9",
            "http://[::1]:9000",
            "http://localhost:9000/realm",
        ] {
            let loaded = load(&[("TESSERA_GOOGLE_ISSUER", issuer)], None);
            assert!(loaded.is_ok(), "{issuer}: {:?}", loaded.err());
        }
        for issuer in [
            "http://127.0.0.1.evil.example",
            "http://10.0.0.1:9000",
            "http://[::2]",
            "http://user@127.0.0.1",
            "http://evil.example\\@127.0.0.1",
            "http://localhost.evil.example",
        ] {
            let err = load(&[("TESSERA_GOOGLE_ISSUER", issuer)], None).expect_err(issuer);
            assert!(err.to_string().contains("google.issuer"), "{err}");
        }
    }
}
