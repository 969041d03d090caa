//! What of a user the token claims carry: the wire types live in `tessera_proto`, the
//! decisions that need the user's row live here.

pub use tessera_proto::{AccessClaims, Audience, IdClaims, UserClaims};

use crate::domain::{ScopeSet, User};

/// What an access token carries of a user's security stamp: a digest, not the stamp itself.
pub fn stamp_of(user: &User) -> String {
    let digest =
        crate::crypto::sha256_hex(format!("access-token:{}", user.security_stamp).as_bytes());
    digest[..16].to_string()
}

/// Whether `user` still has the security stamp `claims` were issued under.
pub fn stamp_matches(claims: &AccessClaims, user: &User) -> bool {
    claims.stamp.as_deref().is_some_and(|stamp| {
        crate::crypto::constant_time_eq(stamp.as_bytes(), stamp_of(user).as_bytes())
    })
}

/// The claims about `user` that `scope` releases (OIDC Core §5.4).
pub fn user_claims(user: &User, scope: &ScopeSet) -> UserClaims {
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
