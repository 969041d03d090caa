//! The write paths of the admin surface, one function each, called alike by the command line
//! (`cli.rs`, as `Actor::Operator`) and by HTTP (`http/admin.rs` as `Actor::Admin`, the
//! self-service endpoints as `Actor::User`). Each takes the actor and its input, opens the
//! transaction, and records the audit event, so the two callers cannot drift apart: whatever
//! one of them writes, the other writes too. Handlers and the CLI reach the database only
//! through here and the domain modules, never through `db::repo`.
//!
//! They are blocking (diesel): HTTP calls them inside `Database::run`, the CLI directly.

pub mod clients;
pub mod keys;
pub mod sessions;
pub mod users;

pub use crate::audit::Actor;
