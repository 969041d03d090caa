use std::borrow::Cow;

use serde::{Deserialize, Serialize};

/// The JSON error body of every Tessera error: RFC 6749 §5.2 (`error`, `error_description`)
/// at the token endpoint, the same shape for RFC 6750 §3 errors at protected resources and
/// everywhere else, plus `field` naming the input a validation error is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody<'a> {
    pub error: Cow<'a, str>,
    pub error_description: Cow<'a, str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<Cow<'a, str>>,
}
