//! Multi-factor sign-in (issue 17).

pub mod pending;
