//! The token endpoint's grants (RFC 6749 §4), one module each, as plain logic over the
//! database, the hashing pool and the keys. Errors are RFC 6749 §5.2's, mapped to HTTP in
//! `http::error`.

pub mod client_credentials;
pub mod endpoint;
pub mod issue;
pub mod password;

use std::collections::HashSet;

use crate::accounts::hash_pool::HashPoolError;
use crate::clients::ClientAuth;
use crate::db::{DbError, repo};
use crate::domain::{Client, GrantType, ScopeSet, User};
use crate::services::Services;
use crate::tokens::TokenError;

#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("client authentication failed")]
    InvalidClient,
    #[error("{0}")]
    InvalidGrant(String),
    #[error("{0}")]
    UnauthorizedClient(String),
    #[error("grant type {0:?} is not supported")]
    UnsupportedGrantType(String),
    #[error("{0}")]
    InvalidScope(String),
    #[error("too many failed attempts; try again in {0} s")]
    Throttled(i64),
    #[error("too many requests are waiting; try again shortly")]
    Busy,
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("password hashing failed: {0}")]
    Hashing(String),
}

impl From<diesel::result::Error> for GrantError {
    fn from(e: diesel::result::Error) -> Self {
        GrantError::Db(DbError::Query(e))
    }
}

impl From<HashPoolError> for GrantError {
    fn from(e: HashPoolError) -> Self {
        match e {
            HashPoolError::Busy => GrantError::Busy,
            other => GrantError::Hashing(other.to_string()),
        }
    }
}

/// The token request's form parameters, each at most once (RFC 6749 §3.2), empty values
/// treated as absent (§3.1). Kept sorted by name (a request has a dozen at most; a binary
/// search of a short vector costs less than hashing each name with SipHash).
#[derive(Clone, Default)]
pub struct Params(Vec<(String, String)>);

/// Names only: values include passwords, secrets and tokens.
impl std::fmt::Debug for Params {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set()
            .entries(self.0.iter().map(|(name, _)| name))
            .finish()
    }
}

/// Beyond this many parameters, repeats are found with a hash set rather than by comparing
/// each name with every earlier one (a body of thousands of names stays linear).
const LINEAR_REPEAT_CHECK: usize = 16;

impl Params {
    pub fn parse(pairs: impl IntoIterator<Item = (String, String)>) -> Result<Params, GrantError> {
        Params::collect(
            pairs
                .into_iter()
                .map(|(name, value)| without_control(name, value)),
        )
    }

    /// `parse` of pairs whose control characters have been looked for already.
    fn collect(
        pairs: impl Iterator<Item = Result<(String, String), GrantError>>,
    ) -> Result<Params, GrantError> {
        let mut entries: Vec<(String, String)> = Vec::new();
        let mut seen: Option<HashSet<String>> = None;
        for pair in pairs {
            let (name, value) = pair?;
            let repeated = match &mut seen {
                Some(seen) => !seen.insert(name.clone()),
                None => {
                    let repeated = entries.iter().any(|(earlier, _)| *earlier == name);
                    if !repeated && entries.len() >= LINEAR_REPEAT_CHECK {
                        let mut names: HashSet<String> =
                            entries.iter().map(|(earlier, _)| earlier.clone()).collect();
                        names.insert(name.clone());
                        seen = Some(names);
                    }
                    repeated
                }
            };
            if repeated {
                return Err(GrantError::InvalidRequest(format!(
                    "parameter {name:?} is repeated"
                )));
            }
            entries.push((name, value));
        }
        entries.retain(|(_, value)| !value.is_empty());
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Ok(Params(entries))
    }

    /// An `application/x-www-form-urlencoded` body or query string, read as
    /// `form_urlencoded::parse` reads it (pieces split at `&`, empty ones skipped, `+` a space,
    /// `%XX` a byte, invalid UTF-8 replaced), in one pass per name and value; then as `parse`.
    /// A name or value of printable ASCII without `+` or `%` (a token, an id, most values) is
    /// already its decoded self and has no control character, so the one pass that finds that
    /// out is all it costs.
    pub fn from_form(input: &[u8]) -> Result<Params, GrantError> {
        Params::collect(
            input
                .split(|b| *b == b'&')
                .filter(|piece| !piece.is_empty())
                .map(|piece| {
                    let (name, value) = match piece.iter().position(|b| *b == b'=') {
                        Some(at) => (&piece[..at], &piece[at + 1..]),
                        None => (piece, &[][..]),
                    };
                    match (plain(name), plain(value)) {
                        (Some(name), Some(value)) => Ok((name.to_owned(), value.to_owned())),
                        _ => without_control(form_decode(name), form_decode(value)),
                    }
                }),
        )
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .binary_search_by(|(key, _)| key.as_str().cmp(name))
            .ok()
            .map(|at| self.0[at].1.as_str())
    }

    pub fn required(&self, name: &str) -> Result<&str, GrantError> {
        self.get(name)
            .ok_or_else(|| GrantError::InvalidRequest(format!("parameter {name:?} is missing")))
    }
}

/// The pair, unless its name or value holds a control character: NUL and the others have no
/// business in OAuth parameters, and PostgreSQL text cannot hold NUL, so they are refused here
/// rather than fail later.
fn without_control(name: String, value: String) -> Result<(String, String), GrantError> {
    if has_control(&name) || has_control(&value) {
        return Err(GrantError::InvalidRequest(format!(
            "parameter {name:?} contains control characters"
        )));
    }
    Ok((name, value))
}

/// `bytes` as text if they are printable ASCII (U+0020–U+007E) other than `+` and `%`: what
/// `form_decode` would return unchanged, with no control character.
fn plain(bytes: &[u8]) -> Option<&str> {
    if bytes
        .iter()
        .all(|b| (b' '..=b'~').contains(b) && *b != b'+' && *b != b'%')
    {
        std::str::from_utf8(bytes).ok()
    } else {
        None
    }
}

/// Whether `text` holds a control character (`char::is_control`: the Unicode category Cc,
/// U+0000–U+001F and U+007F–U+009F), by its UTF-8 bytes: U+0080–U+009F are 0xC2 0x80–0x9F.
fn has_control(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.iter().enumerate().any(|(at, &b)| {
        b < 0x20
            || b == 0x7F
            || (b == 0xC2
                && bytes
                    .get(at + 1)
                    .is_some_and(|next| (0x80..=0x9F).contains(next)))
    })
}

/// One name or value of a form: `+` is a space, `%XX` (two hex digits) the byte XX, any other
/// `%` itself; the bytes as UTF-8, invalid sequences replaced (as `form_urlencoded`).
fn form_decode(input: &[u8]) -> String {
    if !input.iter().any(|b| *b == b'+' || *b == b'%') {
        return String::from_utf8_lossy(input).into_owned();
    }
    let mut out = Vec::with_capacity(input.len());
    let mut at = 0;
    while at < input.len() {
        let b = input[at];
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = |i: usize| input.get(i).and_then(|c| (*c as char).to_digit(16));
                if let (Some(high), Some(low)) = (hex(at + 1), hex(at + 2)) {
                    out.push((high * 16 + low) as u8);
                    at += 3;
                    continue;
                }
                out.push(b'%');
            }
            other => out.push(other),
        }
        at += 1;
    }
    match String::from_utf8(out) {
        Ok(text) => text,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

pub use tessera_proto::TokenResponse;

/// Everything a token request carries besides its grant's own parameters.
#[derive(Debug)]
pub struct TokenRequest {
    pub params: Params,
    pub client: ClientAuth,
    /// The address the request came from, for throttling and audit.
    pub ip: Option<String>,
}

/// The client `auth` names, if the credentials prove it (`invalid_client` otherwise).
pub async fn authenticate_client(svc: &Services, auth: &ClientAuth) -> Result<Client, GrantError> {
    let auth = auth.clone();
    svc.db
        .run(move |conn| authenticate_client_with(conn, &auth))
        .await
}

/// As `authenticate_client`, on a connection the caller already holds.
pub fn authenticate_client_with(
    conn: &mut crate::db::DbConnection,
    auth: &ClientAuth,
) -> Result<Client, GrantError> {
    let client = repo::clients::find(conn, auth.client_id())?;
    crate::clients::authenticate(client, auth).ok_or(GrantError::InvalidClient)
}

/// `scope` less what needs a role `user` lacks (`admin`).
pub fn scope_for_user(user: &User, scope: &ScopeSet) -> ScopeSet {
    scope.filter(|s| s != ADMIN_SCOPE || user.roles.is_admin())
}

/// The client must be registered for the grant (RFC 6749 §5.2 `unauthorized_client`).
pub(crate) fn require_grant(client: &Client, grant: GrantType) -> Result<(), GrantError> {
    if client.grant_types.allows(grant) {
        Ok(())
    } else {
        Err(GrantError::UnauthorizedClient(format!(
            "this client may not use the {grant} grant"
        )))
    }
}

/// The scope of the admin API, granted only to users with the admin role.
pub const ADMIN_SCOPE: &str = "admin";

/// A refresh token that outlives the browser session it was issued in (OpenID Connect Core
/// §11). A third-party client gets it only with the person's consent, as every scope.
pub const OFFLINE_ACCESS: &str = "offline_access";

/// Scopes for this provider's own endpoints: `account` (self-service: password change,
/// account deletion, log out everywhere) and `admin` (the admin API). A token with one of them
/// has this provider as its only audience.
pub const OWN_ENDPOINT_SCOPES: [&str; 2] = ["account", ADMIN_SCOPE];

/// OpenID Connect's scopes, which this provider serves itself (userinfo, ID tokens): the only
/// ones that may be asked for together with `account` or `admin`.
const OIDC_SCOPES: [&str; 3] = ["openid", "email", "profile"];

/// Whether a token with `scope` is for this provider's own endpoints only.
pub fn for_own_endpoints(scope: &ScopeSet) -> bool {
    scope.iter().any(|s| OWN_ENDPOINT_SCOPES.contains(&s))
}

/// A `scope` parameter as the client sent it, parsed (`invalid_scope` if it is not RFC 6749
/// §3.3 scope-tokens).
pub fn requested_scope(text: Option<&str>) -> Result<Option<ScopeSet>, GrantError> {
    text.map(|t| ScopeSet::parse(t).map_err(|e| GrantError::InvalidScope(e.to_string())))
        .transpose()
}

/// The scope to grant: the requested one if every value is allowed for the client, else
/// `invalid_scope`; with none requested, everything the client may have (RFC 6749 §3.3) except
/// `account` and `admin`, which are granted only when asked for. Those two go with nothing but
/// OpenID Connect's own scopes: a token that reaches this provider's account or admin
/// endpoints must never be one a resource server also accepts, so asking for `account` and
/// another API's scope at once is `invalid_scope` (ask for two tokens).
pub fn resolve_scope(client: &Client, requested: Option<&str>) -> Result<ScopeSet, GrantError> {
    let Some(requested) = requested_scope(requested)? else {
        return Ok(client.scopes.filter(|s| !OWN_ENDPOINT_SCOPES.contains(&s)));
    };
    let granted = client.scopes.narrow(Some(&requested)).map_err(|outside| {
        GrantError::InvalidScope(format!("scope {outside:?} is not allowed for this client"))
    })?;
    if let Some(own) = granted.iter().find(|s| OWN_ENDPOINT_SCOPES.contains(s))
        && let Some(other) = granted
            .iter()
            .find(|s| !OWN_ENDPOINT_SCOPES.contains(s) && !OIDC_SCOPES.contains(s))
    {
        return Err(GrantError::InvalidScope(format!(
            "scope {own:?} is for this provider's own endpoints and cannot be combined with \
             {other:?}; ask for a separate token"
        )));
    }
    Ok(granted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(scopes: &str) -> Client {
        Client {
            id: crate::domain::ClientId::new("c"),
            name: "c".into(),
            secret_hash: None,
            grant_types: crate::domain::GrantTypes::from_stored("password"),
            scopes: ScopeSet::from_stored(scopes),
            redirect_uris: Default::default(),
            audiences: Default::default(),
            access_token_ttl_secs: None,
            refresh_idle_ttl_secs: None,
            refresh_absolute_ttl_secs: None,
            created_at: 0,
            updated_at: 0,
            consent: Default::default(),
            post_logout_redirect_uris: Default::default(),
            backchannel_logout: None,
            require_mfa: false,
            signing_alg: Default::default(),
        }
    }

    #[test]
    fn account_and_admin_are_asked_for_and_go_with_openid_scopes_only() {
        let c = client("openid email api account admin");
        assert_eq!(
            resolve_scope(&c, None).expect("default").to_string(),
            "openid email api"
        );
        assert_eq!(
            resolve_scope(&c, Some("openid email account admin"))
                .expect("own")
                .to_string(),
            "openid email account admin"
        );
        for mixed in ["account api", "openid admin api", "api openid account"] {
            assert!(
                matches!(
                    resolve_scope(&c, Some(mixed)),
                    Err(GrantError::InvalidScope(_))
                ),
                "{mixed}"
            );
        }
        assert!(for_own_endpoints(&ScopeSet::from_stored("openid account")));
        assert!(!for_own_endpoints(&ScopeSet::from_stored(
            "openid api accounts"
        )));
    }

    #[test]
    fn scopes_are_a_subset_of_the_clients() {
        let c = client("openid email api");
        assert_eq!(
            resolve_scope(&c, None).expect("default").to_string(),
            "openid email api"
        );
        assert_eq!(
            resolve_scope(&c, Some("api openid api"))
                .expect("subset")
                .to_string(),
            "api openid"
        );
        assert!(matches!(
            resolve_scope(&c, Some("openid admin")),
            Err(GrantError::InvalidScope(_))
        ));
    }

    #[test]
    fn repeated_parameters_are_refused_and_empty_ones_ignored() {
        let pairs = |list: &[(&str, &str)]| {
            list.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect::<Vec<_>>()
        };
        assert!(Params::parse(pairs(&[("scope", "a"), ("scope", "b")])).is_err());
        let params =
            Params::parse(pairs(&[("scope", ""), ("grant_type", "password")])).expect("ok");
        assert_eq!(params.get("scope"), None);
        assert_eq!(params.get("grant_type"), Some("password"));
    }

    #[test]
    fn many_parameters_are_checked_for_repeats_too() {
        let mut list: Vec<(String, String)> = (0..40)
            .map(|i| (format!("p{i}"), "v".to_string()))
            .collect();
        let params = Params::parse(list.clone()).expect("distinct names");
        assert_eq!(params.get("p0"), Some("v"));
        assert_eq!(params.get("p39"), Some("v"));
        assert_eq!(params.get("p40"), None);
        list.push(("p3".into(), "again".into()));
        assert!(Params::parse(list).is_err());
    }

    #[test]
    fn control_characters_are_refused_as_char_is_control_sees_them() {
        for c in ['\0', '\n', '\u{1f}', '\u{7f}', '\u{80}', '\u{9f}'] {
            let value = format!("a{c}b");
            assert!(Params::parse([("x".to_string(), value)]).is_err(), "{c:?}");
        }
        for c in ['\u{a0}', '\u{c0}', '\u{100}', 'é', '\u{2028}'] {
            assert!(!c.is_control());
            let value = format!("a{c}b");
            assert!(Params::parse([("x".to_string(), value)]).is_ok(), "{c:?}");
        }
        for code in 0..=0x2FFFu32 {
            let Some(c) = char::from_u32(code) else {
                continue;
            };
            assert_eq!(has_control(&c.to_string()), c.is_control(), "{code:#x}");
        }
    }

    /// `from_form` reads what `form_urlencoded::parse` reads, byte for byte.
    #[test]
    fn from_form_decodes_as_form_urlencoded_does() {
        let inputs: [&[u8]; 14] = [
            b"a=1&b=2",
            b"&&a=1&&",
            b"a&b=",
            b"=x&y",
            b"redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcallback&scope=openid%20email",
            b"q=a+b%2Bc",
            b"bad=%zz%4&half=%4",
            b"end=%",
            b"utf8=%C3%A9t%C3%A9&raw=\xc3\xa9",
            b"invalid=%FF%FE&lone=\xff",
            b"eq=a=b=c",
            b"%61=%62",
            b"upper=%2f%2F",
            b"nul=%00",
        ];
        for input in inputs {
            let ours: Vec<(String, String)> = input
                .split(|b| *b == b'&')
                .filter(|piece| !piece.is_empty())
                .map(|piece| {
                    let (name, value) = match piece.iter().position(|b| *b == b'=') {
                        Some(at) => (&piece[..at], &piece[at + 1..]),
                        None => (piece, &[][..]),
                    };
                    (form_decode(name), form_decode(value))
                })
                .collect();
            let theirs: Vec<(String, String)> =
                form_urlencoded::parse(input).into_owned().collect();
            assert_eq!(ours, theirs, "{}", String::from_utf8_lossy(input));
            let a = Params::from_form(input)
                .map(|p| p.0)
                .map_err(|e| e.to_string());
            let b = Params::parse(theirs)
                .map(|p| p.0)
                .map_err(|e| e.to_string());
            assert_eq!(a, b);
        }
    }
}
