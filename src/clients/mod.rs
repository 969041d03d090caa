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

/// Schemes that run or embed content where a redirect lands; never a redirect URI.
const FORBIDDEN_SCHEMES: &[&str] = &["javascript", "data", "file", "vbscript", "blob", "about"];

/// A redirect URI, parsed (RFC 6749 §3.1.2: absolute, no fragment) rather than matched as a
/// string, so that what is checked is the host a browser will go to:
/// - https to any host;
/// - plain http only to a loopback address, `127.0.0.1` or `[::1]` (RFC 8252 §7.3; not
///   `localhost`, which a hosts file or resolver may send elsewhere, §8.3);
/// - a private-use scheme of a native app, which must be a reverse-DNS name such as
///   `com.example.app` (RFC 8252 §7.1).
///
/// Userinfo is refused everywhere (`https://good.example@evil.example/` reads as good to a
/// person), and so is a backslash, which browsers read as a slash ending the authority.
fn validate_redirect_uri(uri: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("redirect URIs: {uri:?} {why}"));
    // The parser would quietly drop these (tabs, newlines) or reinterpret them (backslash).
    if uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("must not contain spaces or control characters");
    }
    if uri.contains('\\') {
        return bad("must not contain a backslash");
    }
    let Ok(parsed) = url::Url::parse(uri) else {
        return bad("is not an absolute URI");
    };
    if uri.contains('#') || parsed.fragment().is_some() {
        return bad("must not have a fragment");
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return bad("must not carry a user name or password");
    }
    let scheme = parsed.scheme();
    if matches!(scheme, "http" | "https") {
        // The parser forgives `https:/host` and `https:///host`; a registered URI must not
        // mean something other than it says.
        let authority = uri.get(scheme.len()..).and_then(|r| r.strip_prefix("://"));
        if authority.is_none_or(|a| a.is_empty() || a.starts_with('/')) {
            return bad("has no host");
        }
    }
    match scheme {
        "https" => match parsed.host() {
            Some(_) => Ok(()),
            None => bad("has no host"),
        },
        "http" if is_loopback_literal(&parsed) => Ok(()),
        "http" => bad("must use https unless its host is 127.0.0.1 or [::1]"),
        scheme if FORBIDDEN_SCHEMES.contains(&scheme) => bad("has a forbidden scheme"),
        scheme if is_reverse_dns(scheme) && !parsed.cannot_be_a_base() => Ok(()),
        _ => bad(
            "has an unsupported scheme (a private-use scheme is a reverse-DNS name such as com.example.app)",
        ),
    }
}

/// `127.0.0.1` or `[::1]`, the loopback hosts RFC 8252 §7.3 names.
fn is_loopback_literal(uri: &url::Url) -> bool {
    match uri.host() {
        Some(url::Host::Ipv4(ip)) => ip == std::net::Ipv4Addr::LOCALHOST,
        Some(url::Host::Ipv6(ip)) => ip == std::net::Ipv6Addr::LOCALHOST,
        _ => false,
    }
}

/// At least two dot-separated labels of lower-case letters, digits and inner hyphens.
fn is_reverse_dns(scheme: &str) -> bool {
    let labels: Vec<&str> = scheme.split('.').collect();
    labels.len() >= 2
        && labels.iter().all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

/// Whether `requested` may stand for the registered redirect URI `registered`: the same
/// string, or, for a loopback URI, the same but for the port, which a native app picks when
/// it starts listening (RFC 8252 §7.3).
pub fn redirect_uri_matches(registered: &str, requested: &str) -> bool {
    if registered == requested {
        return true;
    }
    let (Ok(registered), Ok(requested)) = (url::Url::parse(registered), url::Url::parse(requested))
    else {
        return false;
    };
    let loopback = |u: &url::Url| {
        u.scheme() == "http"
            && is_loopback_literal(u)
            && u.username().is_empty()
            && u.password().is_none()
            && u.fragment().is_none()
    };
    loopback(&registered)
        && loopback(&requested)
        && registered.host() == requested.host()
        && registered.path() == requested.path()
        && registered.query() == requested.query()
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

    /// Issue 14 item 13: URIs that string checks let through.
    #[test]
    fn redirect_uris_are_parsed_not_matched_as_strings() {
        let refused = [
            // userinfo hiding the real host (the backslash ends the authority in browsers)
            "http://evil.example\\@localhost/cb",
            "http://evil.example\\@127.0.0.1/cb",
            "https://user:pass@app.example.com/cb",
            "http://me@127.0.0.1/cb",
            // script and data schemes dressed up as private-use schemes
            "javascript:x//.a://b",
            "javascript:alert(1)//a.b",
            "data:text/html,x//.a://b",
            "vbscript:x//.a://b",
            "file:///etc/passwd",
            // private-use schemes must be reverse-DNS names
            "com..example:/cb",
            ".com.example:/cb",
            "com.example.:/cb",
            "com.exa_mple:/cb",
            "app:/cb",
            // loopback is 127.0.0.1 or [::1] (RFC 8252 §7.3; localhost may resolve elsewhere)
            "http://localhost:3000/cb",
            "http://127.0.0.1.evil.example/cb",
            "http://[::2]/cb",
            // fragments, even empty ones
            "https://app.example.com/cb#",
            "com.example.app:/cb#x",
            "not a uri",
            "https:///cb",
        ];
        for uri in refused {
            assert!(
                spec(&["authorization_code"], &[uri]).validate().is_err(),
                "{uri:?} was accepted"
            );
        }
        let accepted = [
            "https://app.example.com/cb",
            "https://app.example.com:8443/cb?x=1",
            "http://127.0.0.1/cb",
            "http://127.0.0.1:51004/oauth2redirect",
            "http://[::1]:8080/cb",
            "com.example.app:/oauth2redirect/example-provider",
            "com.example.app:/cb",
            "io.tessera-demo.app://callback",
        ];
        for uri in accepted {
            assert!(
                spec(&["authorization_code"], &[uri]).validate().is_ok(),
                "{uri:?} was refused"
            );
        }
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
