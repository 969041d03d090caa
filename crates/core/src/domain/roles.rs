use std::fmt;

use super::invalid::{Invalid, distinct_words};

/// The role that may use the admin API and ask for the `admin` scope.
const ADMIN: &str = "admin";

/// A user's roles: distinct names of letters, digits and `-_.:`, at most 64 characters each.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Roles(Vec<String>);

impl Roles {
    pub fn parse(list: &[String]) -> Result<Roles, Invalid> {
        let mut roles: Vec<String> = Vec::new();
        for role in list {
            if !is_role_name(role) {
                return Err(Invalid(format!("role {role:?} is not a valid role name")));
            }
            if !roles.contains(role) {
                roles.push(role.clone());
            }
        }
        Ok(Roles(roles))
    }

    pub fn from_stored(text: &str) -> Roles {
        Roles(distinct_words(text))
    }

    pub fn contains(&self, role: &str) -> bool {
        self.0.iter().any(|r| r == role)
    }

    pub fn is_admin(&self) -> bool {
        self.contains(ADMIN)
    }

    pub fn to_vec(&self) -> Vec<String> {
        self.0.clone()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Roles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(" "))
    }
}

fn is_role_name(role: &str) -> bool {
    !role.is_empty()
        && role.len() <= 64
        && role
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_names_and_admin_is_one_of_them() {
        let roles =
            Roles::parse(&["admin".into(), "ops:read".into(), "admin".into()]).expect("valid");
        assert!(roles.is_admin());
        assert_eq!(roles.to_string(), "admin ops:read");
        assert!(!Roles::from_stored("administrator").is_admin());
        for bad in ["", "a b", "a/b", &"x".repeat(65)] {
            assert!(Roles::parse(&[bad.to_string()]).is_err(), "{bad:?}");
        }
    }
}
