//! Domain values, parsed once at the edge and carried typed through the use cases: a scope is
//! a `ScopeSet`, never a space-joined `String` split again wherever it is read. The database
//! keeps its column types; `db::repo` converts rows into these on the way out.
//!
//! Nothing here touches the database, HTTP or configuration, so every other part may depend
//! on this one.

mod audience;
mod client;
mod grant;
mod ids;
mod redirect;
mod roles;
mod scope;
mod user;

pub use audience::Audiences;
pub use client::Client;
pub use grant::{GrantType, GrantTypes};
pub use ids::{ClientId, UserId};
pub use redirect::RedirectUris;
pub use roles::Roles;
pub use scope::ScopeSet;
pub use user::User;

/// A value that does not parse, with what is wrong with it in words a client or an operator
/// can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

/// Space-separated words, each once, in the order first given.
fn distinct_words(text: &str) -> Vec<String> {
    let mut words: Vec<String> = Vec::new();
    for word in text.split_whitespace() {
        if !words.iter().any(|w| w == word) {
            words.push(word.to_string());
        }
    }
    words
}
