use serde::{Deserialize, Serialize};

/// `aud`: one string when there is one audience, an array otherwise (RFC 7519 §4.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    pub fn contains(&self, audience: &str) -> bool {
        self.as_slice().iter().any(|a| a == audience)
    }

    /// Every audience, whichever form the token used.
    pub fn as_slice(&self) -> &[String] {
        match self {
            Audience::One(one) => std::slice::from_ref(one),
            Audience::Many(many) => many,
        }
    }

    /// The form RFC 7519 prefers: a lone audience as a string.
    pub fn from_list(mut list: Vec<String>) -> Audience {
        if list.len() == 1 {
            Audience::One(list.remove(0))
        } else {
            Audience::Many(list)
        }
    }
}

/// RFC 9068 §2.2 access token claims, plus Tessera's `roles` and, for a user, `stamp`.
///
/// The claims §2.2 requires (`iss`, `exp`, `aud`, `sub`, `client_id`, `iat`, `jti`) are
/// required here too, so a token without one does not parse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    /// The user (or, for client_credentials, the client) the token speaks for.
    pub sub: String,
    pub aud: Audience,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    /// The OAuth client the token was issued to.
    pub client_id: String,
    /// Space-separated scopes (RFC 9068 §2.2.3); see [`AccessClaims::scopes`].
    #[serde(default)]
    pub scope: String,
    /// When the user signed in (RFC 9068 §2.2.1); a token for a client alone has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    /// A digest of the user's security stamp when the token was issued: a password change or
    /// reset, or disabling the account, changes the stamp and so ends the token at the
    /// provider's own endpoints and introspection. Opaque to resource servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stamp: Option<String>,
    /// Roles of the user in Tessera (empty for client tokens).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// Tessera issues none, but another RFC 9068 issuer may (RFC 7519 §4.1.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// The browser session at Tessera the token was issued in (the ID token's `sid`), so the
    /// person's session list can mark the one they are using.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// The authentication context class of the sign-in (as in the ID token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acr: Option<String>,
}

impl AccessClaims {
    /// Whether the token speaks for a user (a sign-in), not for a client acting for itself.
    pub fn is_for_user(&self) -> bool {
        self.auth_time.is_some()
    }

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

/// Claims about the user released by scope (OIDC Core §5.4): `email` and `email_verified`
/// with `email`, `name` with `profile`. Shared by ID tokens and userinfo.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserClaims {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// OIDC Core §2 ID token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub auth_time: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// How the person signed in (RFC 8176 values).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub amr: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acr: Option<String>,
    /// The session at the provider (OpenID Connect Front- and Back-Channel Logout: `sid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    #[serde(flatten)]
    pub user: UserClaims,
}

/// The event a logout token carries (Back-Channel Logout 1.0 §2.4).
pub const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// The JOSE `typ` of logout tokens (Back-Channel Logout 1.0 §2.4).
pub const LOGOUT_TOKEN_TYPE: &str = "logout+jwt";

/// A logout token's claims (Back-Channel Logout 1.0 §2.4): no `nonce`, `sub` and/or `sid`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogoutClaims {
    pub iss: String,
    pub aud: Audience,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    pub events: LogoutEvents,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// Never sent; read so that a token carrying one can be refused (§2.6 step 7).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
}

/// `events`: a JSON object whose one required member is the back-channel logout event, with an
/// empty object as its value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogoutEvents {
    #[serde(rename = "http://schemas.openid.net/event/backchannel-logout")]
    pub backchannel_logout: EmptyObject,
}

/// `{}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmptyObject {}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn claims() -> AccessClaims {
        AccessClaims {
            iss: "https://id.example.com".into(),
            sub: "u1".into(),
            aud: Audience::from_list(vec!["notes".into()]),
            exp: 20,
            iat: 10,
            jti: "j1".into(),
            client_id: "c1".into(),
            scope: "openid notes".into(),
            auth_time: None,
            stamp: None,
            roles: Vec::new(),
            nbf: None,
            sid: None,
            acr: None,
        }
    }

    #[test]
    fn absent_optional_claims_are_left_out_and_a_lone_audience_is_a_string() {
        let json = serde_json::to_string(&claims()).unwrap();
        assert_eq!(
            json,
            r#"{"iss":"https://id.example.com","sub":"u1","aud":"notes","exp":20,"iat":10,"jti":"j1","client_id":"c1","scope":"openid notes"}"#
        );
        let back: AccessClaims = serde_json::from_str(&json).unwrap();
        assert_eq!(back, claims());
        assert_eq!(back.aud.as_slice(), ["notes".to_string()]);
    }

    #[test]
    fn a_token_without_a_required_claim_does_not_parse() {
        let mut json = serde_json::to_value(claims()).unwrap();
        json.as_object_mut().unwrap().remove("jti");
        assert!(serde_json::from_value::<AccessClaims>(json).is_err());
    }
}
