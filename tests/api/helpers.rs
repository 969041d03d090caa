//! Transitional: the names test files used before the testkit, for files written against
//! them in parallel. Remove once they use `crate::testkit`.
#![allow(unused_imports)]

pub use crate::testkit::app::*;
pub use crate::testkit::database::TestDatabase;
