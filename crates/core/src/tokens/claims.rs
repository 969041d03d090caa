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
        match self {
            Audience::One(one) => one == audience,
            Audience::Many(many) => many.iter().any(|a| a == audience),
        }
    }

    pub fn from_list(mut list: Vec<String>) -> Audience {
        if list.len() == 1 {
            Audience::One(list.remove(0))
        } else {
            Audience::Many(list)
        }
    }
}

/// RFC 9068 §2.2 access token claims, plus `roles` and, for a user, `stamp`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    pub aud: Audience,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    pub client_id: String,
    pub scope: String,
    /// When the user signed in (RFC 9068 §2.2.1); a token for a client alone has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    /// A digest of the user's security stamp when the token was issued (`stamp_of`): a
    /// password change or reset, or disabling the account, changes the stamp and so ends the
    /// token at this provider's own endpoints and introspection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stamp: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
}

/// What an access token carries of a user's security stamp: a digest, not the stamp itself.
pub fn stamp_of(user: &crate::domain::User) -> String {
    let digest =
        crate::crypto::sha256_hex(format!("access-token:{}", user.security_stamp).as_bytes());
    digest[..16].to_string()
}

impl AccessClaims {
    /// Whether the token speaks for a user (a sign-in), not for a client acting for itself.
    pub fn is_for_user(&self) -> bool {
        self.auth_time.is_some()
    }

    /// Whether `user` still has the security stamp this token was issued under.
    pub fn stamp_matches(&self, user: &crate::domain::User) -> bool {
        self.stamp.as_deref().is_some_and(|stamp| {
            crate::crypto::constant_time_eq(stamp.as_bytes(), stamp_of(user).as_bytes())
        })
    }

    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope.split_whitespace()
    }

    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes().any(|s| s == scope)
    }
}

/// Claims about the user released by scope (OIDC Core §5.4): `email` and `email_verified`
/// with `email`, `name` with `profile`. Shared by ID tokens and userinfo.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UserClaims {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl UserClaims {
    pub fn for_scope(user: &crate::domain::User, scope: &crate::domain::ScopeSet) -> UserClaims {
        let has = |wanted: &str| scope.contains(wanted);
        // Only the account that owns an address releases it (one address, one account): not
        // one whose upstream vouched for none, nor one that lost it to a verified owner.
        let email = has("email") && crate::accounts::owns_address(user);
        UserClaims {
            email: email.then(|| user.email.clone()),
            email_verified: email.then_some(user.email_verified_at.is_some()),
            name: if has("profile") {
                user.name.clone()
            } else {
                None
            },
        }
    }
}

/// OIDC Core §2 ID token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub auth_time: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    #[serde(flatten)]
    pub user: UserClaims,
}
