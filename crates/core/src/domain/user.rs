use super::ids::UserId;
use super::roles::Roles;

/// A user account, as the use cases see it. The password hash never leaves the accounts
/// module's checks: no view or log shows it.
#[derive(Clone)]
pub struct User {
    pub id: UserId,
    /// The address as given, for display and mail.
    pub email: String,
    /// The sign-in key: the address normalised, or a placeholder for an account that does not
    /// own the address it shows.
    pub email_lower: String,
    pub name: Option<String>,
    pub password_hash: Option<String>,
    pub roles: Roles,
    pub security_stamp: String,
    pub email_verified_at: Option<i64>,
    pub disabled_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl User {
    /// How a page names the account: the address, else the name.
    pub fn label(&self) -> &str {
        if self.email.is_empty() {
            self.name.as_deref().unwrap_or("your account")
        } else {
            &self.email
        }
    }

    /// How an authenticator lists the account: the address, else the name, else the id.
    pub fn account_name(&self) -> String {
        if self.email.is_empty() {
            self.name.clone().unwrap_or_else(|| self.id.to_string())
        } else {
            self.email.clone()
        }
    }
}

/// Never the password hash or the security stamp.
impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("email", &self.email)
            .field("roles", &self.roles)
            .field("disabled_at", &self.disabled_at)
            .finish_non_exhaustive()
    }
}
