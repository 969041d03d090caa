use std::fmt;

use super::invalid::Invalid;

/// A grant type a client may be registered for (RFC 6749 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantType {
    AuthorizationCode,
    RefreshToken,
    Password,
    ClientCredentials,
}

impl GrantType {
    pub const ALL: [GrantType; 4] = [
        GrantType::AuthorizationCode,
        GrantType::RefreshToken,
        GrantType::Password,
        GrantType::ClientCredentials,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            GrantType::AuthorizationCode => "authorization_code",
            GrantType::RefreshToken => "refresh_token",
            GrantType::Password => "password",
            GrantType::ClientCredentials => "client_credentials",
        }
    }

    pub fn parse(name: &str) -> Option<GrantType> {
        GrantType::ALL.into_iter().find(|g| g.as_str() == name)
    }
}

impl fmt::Display for GrantType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The grant types a client is registered for, each once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GrantTypes(Vec<GrantType>);

impl GrantTypes {
    pub fn parse(list: &[String]) -> Result<GrantTypes, Invalid> {
        let mut grants = Vec::new();
        for name in list {
            let grant = GrantType::parse(name).ok_or_else(|| {
                let known: Vec<&str> = GrantType::ALL.iter().map(|g| g.as_str()).collect();
                Invalid(format!(
                    "grant types: {name:?} is not one of {}",
                    known.join(", ")
                ))
            })?;
            if !grants.contains(&grant) {
                grants.push(grant);
            }
        }
        Ok(GrantTypes(grants))
    }

    /// Names this provider wrote itself; an unknown one (none today) is left out.
    pub fn from_stored(text: &str) -> GrantTypes {
        GrantTypes(
            text.split_whitespace()
                .filter_map(GrantType::parse)
                .collect(),
        )
    }

    pub fn allows(&self, grant: GrantType) -> bool {
        self.0.contains(&grant)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn names(&self) -> Vec<String> {
        self.0.iter().map(|g| g.as_str().to_string()).collect()
    }
}

impl fmt::Display for GrantTypes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.names().join(" "))
    }
}
