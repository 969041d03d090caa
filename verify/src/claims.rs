use serde::{Deserialize, Deserializer};

/// The claims of a verified access token (RFC 9068 §2.2, plus Tessera's `roles`).
///
/// Only a token that passed every check becomes a `Claims`: holding one means the signature,
/// issuer, audience, type and validity window were all checked.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Claims {
    pub iss: String,
    /// The user (or, for client_credentials, the client) the token speaks for.
    pub sub: String,
    /// Every audience of the token; the configured one is among them.
    #[serde(deserialize_with = "one_or_many")]
    pub aud: Vec<String>,
    pub exp: i64,
    #[serde(default)]
    pub nbf: Option<i64>,
    #[serde(default)]
    pub iat: Option<i64>,
    #[serde(default)]
    pub jti: Option<String>,
    /// The OAuth client the token was issued to.
    #[serde(default)]
    pub client_id: Option<String>,
    /// Space-separated scopes (RFC 9068 §2.2.3); see [`Claims::scopes`].
    #[serde(default)]
    pub scope: String,
    /// Roles of the user in Tessera (empty for client tokens).
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub auth_time: Option<i64>,
}

impl Claims {
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope.split_whitespace()
    }

    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes().any(|s| s == scope)
    }

    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}

fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Audience {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Audience::deserialize(d)? {
        Audience::One(one) => vec![one],
        Audience::Many(many) => many,
    })
}
