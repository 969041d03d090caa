use std::borrow::Cow;

use serde::{Deserialize, Serialize};

/// RFC 6749 §5.1 successful token response (with OIDC Core §3.1.3.3's `id_token`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    /// `Bearer`; borrowed when the server builds it, so no allocation per response.
    pub token_type: Cow<'static, str>,
    pub expires_in: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    pub scope: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}
