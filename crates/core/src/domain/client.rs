use super::audience::Audiences;
use super::grant::GrantTypes;
use super::ids::ClientId;
use super::invalid::Invalid;
use super::redirect::RedirectUris;
use super::scope::ScopeSet;

/// A registered OAuth client, as the use cases see it.
#[derive(Clone)]
pub struct Client {
    pub id: ClientId,
    pub name: String,
    /// SHA-256 (hex) of a confidential client's secret; `None` for a public client.
    pub secret_hash: Option<String>,
    pub grant_types: GrantTypes,
    pub scopes: ScopeSet,
    pub redirect_uris: RedirectUris,
    pub audiences: Audiences,
    pub access_token_ttl_secs: Option<i64>,
    pub refresh_idle_ttl_secs: Option<i64>,
    pub refresh_absolute_ttl_secs: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub consent: Consent,
    /// Where RP-initiated logout may send the browser afterwards: matched exactly.
    pub post_logout_redirect_uris: RedirectUris,
    pub backchannel_logout: Option<BackchannelLogout>,
    /// Its users sign in with a second factor (or set one up first) before it gets a code.
    pub require_mfa: bool,
    /// What signs its access and ID tokens.
    pub signing_alg: super::signing_alg::SigningAlg,
}

/// Whether the person is asked before a client gets what it requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Consent {
    /// The operator's own app: no consent page (and the password grant is allowed).
    #[default]
    FirstParty,
    /// A third-party app: the person allows each scope once (`consents`).
    Required,
}

impl Consent {
    pub fn parse(value: &str) -> Result<Consent, Invalid> {
        match value {
            "first_party" | "first-party" | "skip" => Ok(Consent::FirstParty),
            "required" => Ok(Consent::Required),
            other => Err(Invalid(format!(
                "consent: {other:?} is neither \"required\" nor \"first_party\""
            ))),
        }
    }

    /// The stored form; rows with anything else are first-party, as before the column existed.
    pub fn from_stored(value: &str) -> Consent {
        Consent::parse(value).unwrap_or_default()
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Consent::FirstParty => "first_party",
            Consent::Required => "required",
        }
    }
}

/// OpenID Connect Back-Channel Logout 1.0 §2.2: where the client hears that a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackchannelLogout {
    pub uri: String,
    /// The client needs `sid` in the logout token (Tessera always sends it).
    pub session_required: bool,
}

impl Client {
    pub fn needs_consent(&self) -> bool {
        self.consent == Consent::Required
    }

    pub fn is_public(&self) -> bool {
        self.secret_hash.is_none()
    }
}

/// Never the secret's hash: a stray `{:?}` in a log line must not print it.
impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("public", &self.is_public())
            .finish_non_exhaustive()
    }
}
