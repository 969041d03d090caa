use super::audience::Audiences;
use super::grant::GrantTypes;
use super::ids::ClientId;
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
}

impl Client {
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
