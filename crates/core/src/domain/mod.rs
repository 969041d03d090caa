//! Domain values, parsed once at the edge and carried typed through the use cases: a scope is
//! a `ScopeSet`, never a space-joined `String` split again wherever it is read. The database
//! keeps its column types; `db::repo` converts rows into these on the way out.
//!
//! Nothing here touches the database, HTTP or configuration, so every other part may depend
//! on this one.

mod audience;
mod authentication;
mod client;
mod grant;
mod ids;
mod invalid;
mod proxies;
mod redirect;
mod roles;
mod scope;
mod signing_alg;
mod user;

pub use audience::Audiences;
pub use authentication::{Acr, Amr, AuthMethod, Authentication};
pub use client::{BackchannelLogout, Client, Consent};
pub use grant::{GrantType, GrantTypes};
pub use ids::{ClientId, UserId};
pub use invalid::Invalid;
pub use proxies::TrustedProxies;
pub use redirect::RedirectUris;
pub use roles::Roles;
pub use scope::ScopeSet;
pub use signing_alg::SigningAlg;
pub use user::User;
