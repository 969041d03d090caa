//! OAuth clients: registration (with a generated secret for confidential clients) and lookup.

use crate::db::models::{Client, NewClient};
use crate::db::repo::clients;
use crate::db::{DbConnection, DbError};

/// Grant types a client may be given.
pub const GRANT_TYPES: &[&str] = &[
    "authorization_code",
    "refresh_token",
    "password",
    "client_credentials",
];

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for ClientError {
    fn from(e: diesel::result::Error) -> Self {
        ClientError::Db(DbError::Query(e))
    }
}

/// What the API and the CLI show of a client: never its secret or the secret's hash.
#[derive(Debug, serde::Serialize)]
pub struct ClientView {
    pub client_id: String,
    pub name: String,
    pub public: bool,
    pub grant_types: Vec<String>,
    pub redirect_uris: Vec<String>,
    pub scopes: Vec<String>,
    pub audiences: Vec<String>,
    pub created_at: i64,
    /// Only in the answer to the request that created the client.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
}

impl From<&Client> for ClientView {
    fn from(c: &Client) -> Self {
        let list = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
        ClientView {
            client_id: c.id.clone(),
            name: c.name.clone(),
            public: c.secret_hash.is_none(),
            grant_types: list(&c.grant_types),
            redirect_uris: list(&c.redirect_uris),
            scopes: list(&c.scopes),
            audiences: list(&c.audiences),
            created_at: c.created_at,
            client_secret: None,
        }
    }
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientSpec {
    pub name: String,
    #[serde(default)]
    pub public: bool,
    pub grant_types: Vec<String>,
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub audiences: Vec<String>,
}

impl ClientSpec {
    pub fn validate(&self) -> Result<(), ClientError> {
        let invalid = |msg: String| Err(ClientError::Invalid(msg));
        if self.name.trim().is_empty() {
            return invalid("name: is required".into());
        }
        if self.grant_types.is_empty() {
            return invalid("grant types: at least one is required".into());
        }
        for grant in &self.grant_types {
            if !GRANT_TYPES.contains(&grant.as_str()) {
                return invalid(format!(
                    "grant types: {grant:?} is not one of {}",
                    GRANT_TYPES.join(", ")
                ));
            }
        }
        if self.public && self.grant_types.iter().any(|g| g == "client_credentials") {
            return invalid("grant types: a public client cannot use client_credentials".into());
        }
        if self.grant_types.iter().any(|g| g == "authorization_code")
            && self.redirect_uris.is_empty()
        {
            return invalid("redirect URIs: authorization_code needs at least one".into());
        }
        for uri in &self.redirect_uris {
            validate_redirect_uri(uri).map_err(ClientError::Invalid)?;
        }
        for scope in &self.scopes {
            if !is_scope_token(scope) {
                return invalid(format!("scopes: {scope:?} is not a valid scope"));
            }
        }
        Ok(())
    }
}

/// RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ).
pub fn is_scope_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

/// RFC 6749 §3.1.2: absolute, no fragment. Plain http only for loopback (RFC 8252 §7.3).
fn validate_redirect_uri(uri: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("redirect URIs: {uri:?} {why}"));
    let Some((scheme, rest)) = uri.split_once("://") else {
        return bad("is not an absolute URI");
    };
    if rest.is_empty() || rest.starts_with('/') {
        return bad("has no host");
    }
    if uri.contains('#') {
        return bad("must not have a fragment");
    }
    if uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("must not contain spaces");
    }
    let host = rest.split(['/', '?']).next().unwrap_or_default();
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    let loopback = ["localhost", "127.0.0.1", "[::1]"]
        .iter()
        .any(|l| host == *l || host.starts_with(&format!("{l}:")));
    match scheme {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        "http" => bad("must use https unless it is a loopback address"),
        // Private-use schemes for native apps (RFC 8252 §7.1) carry a dot, e.g. com.example.app.
        s if s.contains('.') => Ok(()),
        _ => bad("has an unsupported scheme"),
    }
}

/// How a client identified itself at the token endpoint (RFC 6749 §2.3.1).
#[derive(Clone)]
pub enum ClientAuth {
    /// `client_secret_basic` or `client_secret_post`.
    Secret { client_id: String, secret: String },
    /// A public client: its id, no secret.
    Public { client_id: String },
}

impl std::fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientAuth::Secret { client_id, .. } => write!(f, "Secret({client_id}, [redacted])"),
            ClientAuth::Public { client_id } => write!(f, "Public({client_id})"),
        }
    }
}

impl ClientAuth {
    pub fn client_id(&self) -> &str {
        match self {
            ClientAuth::Secret { client_id, .. } | ClientAuth::Public { client_id } => client_id,
        }
    }
}

/// The client, if `auth` proves it: a confidential client's secret must match its stored
/// SHA-256 (compared in constant time); a public client must present no secret.
pub fn authenticate(client: Option<Client>, auth: &ClientAuth) -> Option<Client> {
    let presented = match auth {
        ClientAuth::Secret { secret, .. } => Some(crate::crypto::sha256_hex(secret.as_bytes())),
        ClientAuth::Public { .. } => None,
    };
    let client = client?;
    let ok = match (&client.secret_hash, &presented) {
        (Some(stored), Some(presented)) => {
            crate::crypto::constant_time_eq(stored.as_bytes(), presented.as_bytes())
        }
        (None, None) => true,
        _ => false,
    };
    ok.then_some(client)
}

pub fn delete(conn: &mut DbConnection, id: &str) -> Result<bool, ClientError> {
    Ok(clients::delete(conn, id)? > 0)
}

/// Registers a client. Confidential clients get a 256-bit secret, returned here once and
/// stored only as its SHA-256 (a random secret needs no slow hash).
pub fn create(
    conn: &mut DbConnection,
    spec: &ClientSpec,
) -> Result<(Client, Option<String>), ClientError> {
    spec.validate()?;
    let random = |bytes| {
        crate::crypto::random_token(bytes)
            .map_err(|e| ClientError::Db(DbError::Task(e.to_string())))
    };
    // Hex, not base64url: an id starting with '-' would read as a flag on command lines.
    let id = crate::crypto::hex(
        &crate::crypto::random_bytes::<16>()
            .map_err(|e| ClientError::Db(DbError::Task(e.to_string())))?,
    );
    let secret = if spec.public { None } else { Some(random(32)?) };
    let secret_hash = secret
        .as_deref()
        .map(|s| crate::crypto::sha256_hex(s.as_bytes()));
    let now = crate::db::now();
    clients::insert(
        conn,
        &NewClient {
            id: &id,
            name: spec.name.trim(),
            secret_hash: secret_hash.as_deref(),
            grant_types: &spec.grant_types.join(" "),
            scopes: &spec.scopes.join(" "),
            redirect_uris: &spec.redirect_uris.join(" "),
            audiences: &spec.audiences.join(" "),
            created_at: now,
            updated_at: now,
        },
    )?;
    let client = clients::find(conn, &id)?.ok_or(ClientError::Db(DbError::Query(
        diesel::result::Error::NotFound,
    )))?;
    Ok((client, secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(grants: &[&str], uris: &[&str]) -> ClientSpec {
        ClientSpec {
            name: "app".into(),
            grant_types: grants.iter().map(|s| s.to_string()).collect(),
            redirect_uris: uris.iter().map(|s| s.to_string()).collect(),
            ..ClientSpec::default()
        }
    }

    #[test]
    fn redirect_uris_are_checked() {
        assert!(
            spec(&["authorization_code"], &["https://app.example.com/cb"])
                .validate()
                .is_ok()
        );
        assert!(
            spec(&["authorization_code"], &["http://127.0.0.1:3000/cb"])
                .validate()
                .is_ok()
        );
        assert!(
            spec(&["authorization_code"], &["com.example.app:/cb"])
                .validate()
                .is_err()
        );
        assert!(
            spec(&["authorization_code"], &["http://app.example.com/cb"])
                .validate()
                .is_err()
        );
        assert!(
            spec(&["authorization_code"], &["https://app.example.com/cb#x"])
                .validate()
                .is_err()
        );
        assert!(spec(&["authorization_code"], &[]).validate().is_err());
        assert!(spec(&["teleport"], &[]).validate().is_err());
    }

    #[test]
    fn scope_tokens_follow_rfc6749() {
        assert!(is_scope_token("openid"));
        assert!(is_scope_token("api:read"));
        assert!(!is_scope_token("a b"));
        assert!(!is_scope_token("quote\""));
        assert!(!is_scope_token(""));
    }
}
