//! OAuth clients: registration (with a generated secret for confidential clients) and lookup.

use crate::db::models::{ClientChanges, NewClient};
use crate::db::repo::clients;
use crate::db::{DbConnection, DbError};
use crate::domain::{
    Audiences, BackchannelLogout, Client, Consent, GrantType, GrantTypes, RedirectUris, ScopeSet,
    SigningAlg,
};

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
    /// `first_party` or `required`.
    pub consent: &'static str,
    pub post_logout_redirect_uris: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backchannel_logout_uri: Option<String>,
    pub backchannel_logout_session_required: bool,
    pub require_mfa: bool,
    /// `RS256`, `EdDSA` or `ES256`: what signs its access and ID tokens.
    pub signing_alg: &'static str,
    pub created_at: i64,
    /// Only in the answer to the request that created the client.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
}

impl From<&Client> for ClientView {
    fn from(c: &Client) -> Self {
        ClientView {
            client_id: c.id.to_string(),
            name: c.name.clone(),
            public: c.is_public(),
            grant_types: c.grant_types.names(),
            redirect_uris: c.redirect_uris.to_vec(),
            scopes: c.scopes.to_vec(),
            audiences: c.audiences.to_vec(),
            consent: c.consent.as_str(),
            post_logout_redirect_uris: c.post_logout_redirect_uris.to_vec(),
            backchannel_logout_uri: c.backchannel_logout.as_ref().map(|b| b.uri.clone()),
            backchannel_logout_session_required: session_required(c.backchannel_logout.as_ref()),
            require_mfa: c.require_mfa,
            signing_alg: c.signing_alg.as_str(),
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
    /// `first_party` (the default: no consent page) or `required` (a third-party app).
    #[serde(default)]
    pub consent: Option<String>,
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    #[serde(default)]
    pub backchannel_logout_uri: Option<String>,
    #[serde(default)]
    pub backchannel_logout_session_required: bool,
    /// Its users sign in with a second factor (or set one up first) before it gets a code.
    #[serde(default)]
    pub require_mfa: bool,
    /// `RS256` (the default), `EdDSA` or `ES256`: what signs its access and ID tokens.
    #[serde(default)]
    pub signing_alg: Option<SigningAlg>,
}

/// A registration, checked: what `create` stores.
#[derive(Debug)]
pub struct ValidClient {
    pub name: String,
    pub public: bool,
    pub grant_types: GrantTypes,
    pub redirect_uris: RedirectUris,
    pub scopes: ScopeSet,
    pub audiences: Audiences,
    pub consent: Consent,
    pub post_logout_redirect_uris: RedirectUris,
    pub backchannel_logout: Option<BackchannelLogout>,
    pub require_mfa: bool,
    pub signing_alg: SigningAlg,
}

impl ClientSpec {
    pub fn validate(&self) -> Result<ValidClient, ClientError> {
        let invalid = |msg: String| ClientError::Invalid(msg);
        let name = self.name.trim();
        if name.is_empty() {
            return Err(invalid("name: is required".into()));
        }
        let grant_types =
            GrantTypes::parse(&self.grant_types).map_err(|e| invalid(e.to_string()))?;
        if grant_types.is_empty() {
            return Err(invalid("grant types: at least one is required".into()));
        }
        if self.public && grant_types.allows(GrantType::ClientCredentials) {
            return Err(invalid(
                "grant types: a public client cannot use client_credentials".into(),
            ));
        }
        if grant_types.allows(GrantType::AuthorizationCode) && self.redirect_uris.is_empty() {
            return Err(invalid(
                "redirect URIs: authorization_code needs at least one".into(),
            ));
        }
        let redirect_uris =
            RedirectUris::parse(&self.redirect_uris).map_err(|e| invalid(e.to_string()))?;
        let scopes =
            ScopeSet::from_list(&self.scopes).map_err(|e| invalid(format!("scopes: {e}")))?;
        let consent = match &self.consent {
            Some(value) => Consent::parse(value).map_err(|e| invalid(e.to_string()))?,
            None => Consent::default(),
        };
        if consent == Consent::Required && grant_types.allows(GrantType::Password) {
            return Err(invalid(
                "grant types: a third-party client (consent: required) cannot use the password \
                 grant, which would hand it the person's password and skip their consent"
                    .into(),
            ));
        }
        let post_logout_redirect_uris = RedirectUris::parse(&self.post_logout_redirect_uris)
            .map_err(|e| invalid(format!("post-logout {e}")))?;
        let backchannel_logout = match &self.backchannel_logout_uri {
            Some(uri) => Some(BackchannelLogout {
                uri: validate_backchannel_uri(uri)?,
                session_required: self.backchannel_logout_session_required,
            }),
            None if self.backchannel_logout_session_required => {
                return Err(invalid(
                    "backchannel_logout_session_required needs a backchannel_logout_uri".into(),
                ));
            }
            None => None,
        };
        Ok(ValidClient {
            signing_alg: self.signing_alg.unwrap_or_default(),
            name: name.to_string(),
            public: self.public,
            grant_types,
            redirect_uris,
            scopes,
            audiences: Audiences::from_list(&self.audiences),
            consent,
            post_logout_redirect_uris,
            backchannel_logout,
            require_mfa: self.require_mfa,
        })
    }
}

/// A registration as it stands, to change a part of it and check the whole again.
impl From<&Client> for ClientSpec {
    fn from(c: &Client) -> Self {
        ClientSpec {
            name: c.name.clone(),
            public: c.is_public(),
            grant_types: c.grant_types.names(),
            redirect_uris: c.redirect_uris.to_vec(),
            scopes: c.scopes.to_vec(),
            audiences: c.audiences.to_vec(),
            consent: Some(c.consent.as_str().to_string()),
            post_logout_redirect_uris: c.post_logout_redirect_uris.to_vec(),
            backchannel_logout_uri: c.backchannel_logout.as_ref().map(|b| b.uri.clone()),
            backchannel_logout_session_required: session_required(c.backchannel_logout.as_ref()),
            require_mfa: c.require_mfa,
            signing_alg: Some(c.signing_alg),
        }
    }
}

/// What may change in a registration in place; a field left out stays as it is. Grant types,
/// scopes, audiences, consent and whether the client is public do not change: tokens and
/// refresh families already issued carry them (register a new client instead).
#[derive(Debug, Default, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientPatch {
    #[serde(default, deserialize_with = "given")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "given")]
    pub redirect_uris: Option<Vec<String>>,
    #[serde(default, deserialize_with = "given")]
    pub post_logout_redirect_uris: Option<Vec<String>>,
    /// `null` removes it.
    #[serde(default, deserialize_with = "given")]
    pub backchannel_logout_uri: Option<Option<String>>,
    #[serde(default, deserialize_with = "given")]
    pub backchannel_logout_session_required: Option<bool>,
    #[serde(default, deserialize_with = "given")]
    pub require_mfa: Option<bool>,
    /// Tokens already issued keep verifying: every algorithm's keys stay published.
    #[serde(default, deserialize_with = "given")]
    pub signing_alg: Option<SigningAlg>,
}

/// A field that is there (`Some`) apart from one left out (`None`, by `default`): a `null` is
/// a value of the field's own type or refused, never taken for "left out".
fn given<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

impl ClientPatch {
    /// The registration with this patch applied (still to be checked).
    fn apply(&self, current: &Client) -> ClientSpec {
        let mut spec = ClientSpec::from(current);
        if let Some(name) = &self.name {
            spec.name.clone_from(name);
        }
        if let Some(uris) = &self.redirect_uris {
            spec.redirect_uris.clone_from(uris);
        }
        if let Some(uris) = &self.post_logout_redirect_uris {
            spec.post_logout_redirect_uris.clone_from(uris);
        }
        if let Some(uri) = &self.backchannel_logout_uri {
            spec.backchannel_logout_uri.clone_from(uri);
            if uri.is_none() && self.backchannel_logout_session_required.is_none() {
                spec.backchannel_logout_session_required = false;
            }
        }
        if let Some(required) = self.backchannel_logout_session_required {
            spec.backchannel_logout_session_required = required;
        }
        if let Some(required) = self.require_mfa {
            spec.require_mfa = required;
        }
        if let Some(alg) = self.signing_alg {
            spec.signing_alg = Some(alg);
        }
        spec
    }
}

/// What `update` did: the client as it is now, and the names of the fields that changed.
#[derive(Debug)]
pub struct Updated {
    pub client: Client,
    pub changed: Vec<&'static str>,
}

/// Changes a client's registration in place, checked as a new one would be; `None` if there
/// is no client `id`.
pub fn update(
    conn: &mut DbConnection,
    id: &str,
    patch: &ClientPatch,
    now: i64,
) -> Result<Option<Updated>, ClientError> {
    let Some(current) = clients::find(conn, id)? else {
        return Ok(None);
    };
    let before = ClientSpec::from(&current);
    let valid = patch.apply(&current).validate()?;
    clients::update(
        conn,
        id,
        &ClientChanges {
            name: &valid.name,
            redirect_uris: &valid.redirect_uris.to_string(),
            post_logout_redirect_uris: &valid.post_logout_redirect_uris.to_string(),
            backchannel_logout_uri: valid.backchannel_logout.as_ref().map(|b| b.uri.as_str()),
            backchannel_logout_session_required: i64::from(session_required(
                valid.backchannel_logout.as_ref(),
            )),
            require_mfa: i64::from(valid.require_mfa),
            signing_alg: valid.signing_alg.as_str(),
            updated_at: now,
        },
    )?;
    let client = written(conn, id)?;
    let after = ClientSpec::from(&client);
    let changed = [
        ("name", before.name != after.name),
        ("redirect_uris", before.redirect_uris != after.redirect_uris),
        (
            "post_logout_redirect_uris",
            before.post_logout_redirect_uris != after.post_logout_redirect_uris,
        ),
        (
            "backchannel_logout_uri",
            before.backchannel_logout_uri != after.backchannel_logout_uri,
        ),
        (
            "backchannel_logout_session_required",
            before.backchannel_logout_session_required != after.backchannel_logout_session_required,
        ),
        ("require_mfa", before.require_mfa != after.require_mfa),
        ("signing_alg", before.signing_alg != after.signing_alg),
    ]
    .into_iter()
    .filter_map(|(field, changed)| changed.then_some(field))
    .collect();
    Ok(Some(Updated { client, changed }))
}

/// A back-channel logout URI (Back-Channel Logout 1.0 §2.2): an absolute http(s) URL that Tessera
/// itself will POST to, held to the redirect URIs' rules (https, or http only to a loopback
/// address; no userinfo or fragment).
fn validate_backchannel_uri(uri: &str) -> Result<String, ClientError> {
    let invalid = |why: String| ClientError::Invalid(format!("backchannel_logout_uri: {why}"));
    RedirectUris::parse(std::slice::from_ref(&uri.to_string()))
        .map_err(|e| invalid(e.to_string()))?;
    if !(uri.starts_with("https://") || uri.starts_with("http://")) {
        return Err(invalid(format!("{uri:?} is not an http(s) URL")));
    }
    Ok(uri.to_string())
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

/// Whether the client needs `sid` in its logout tokens (never without a back-channel URI).
fn session_required(backchannel: Option<&BackchannelLogout>) -> bool {
    backchannel.is_some_and(|b| b.session_required)
}

/// The client just written, read back (in the same transaction: it is there).
fn written(conn: &mut DbConnection, id: &str) -> Result<Client, ClientError> {
    clients::find(conn, id)?.ok_or(ClientError::Db(DbError::Query(
        diesel::result::Error::NotFound,
    )))
}

/// Registers a client. Confidential clients get a 256-bit secret, returned here once and
/// stored only as its SHA-256 (a random secret needs no slow hash).
pub fn create(
    conn: &mut DbConnection,
    spec: &ClientSpec,
) -> Result<(Client, Option<String>), ClientError> {
    let valid = spec.validate()?;
    let random = |bytes| {
        crate::crypto::random_token(bytes)
            .map_err(|e| ClientError::Db(DbError::Task(e.to_string())))
    };
    // Hex, not base64url: an id starting with '-' would read as a flag on command lines.
    let id = crate::crypto::hex(
        &crate::crypto::random_bytes::<16>()
            .map_err(|e| ClientError::Db(DbError::Task(e.to_string())))?,
    );
    let secret = if valid.public {
        None
    } else {
        Some(random(32)?)
    };
    let secret_hash = secret
        .as_deref()
        .map(|s| crate::crypto::sha256_hex(s.as_bytes()));
    let now = crate::db::now();
    clients::insert(
        conn,
        &NewClient {
            id: &id,
            name: &valid.name,
            secret_hash: secret_hash.as_deref(),
            grant_types: &valid.grant_types.to_string(),
            scopes: &valid.scopes.to_string(),
            redirect_uris: &valid.redirect_uris.to_string(),
            audiences: &valid.audiences.to_string(),
            created_at: now,
            updated_at: now,
            consent: valid.consent.as_str(),
            post_logout_redirect_uris: &valid.post_logout_redirect_uris.to_string(),
            backchannel_logout_uri: valid.backchannel_logout.as_ref().map(|b| b.uri.as_str()),
            backchannel_logout_session_required: i64::from(session_required(
                valid.backchannel_logout.as_ref(),
            )),
            require_mfa: i64::from(valid.require_mfa),
            signing_alg: valid.signing_alg.as_str(),
        },
    )?;
    let client = written(conn, &id)?;
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
}
