//! The two discovery documents (OpenID Connect Discovery, RFC 8414), built once at start-up.

use tessera_proto::ProviderMetadata;

use super::paths;

/// Both documents, serialised once at start-up.
#[derive(Debug, Clone)]
pub struct Metadata {
    pub openid: bytes::Bytes,
    pub oauth: bytes::Bytes,
}

impl Metadata {
    pub fn new(issuer: &str) -> Metadata {
        let url = |path: &str| Some(format!("{issuer}{path}"));
        let list = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // RFC 8414 §2: what an OAuth client needs; only what this build serves is listed.
        let oauth = ProviderMetadata {
            issuer: issuer.to_string(),
            jwks_uri: url("/.well-known/jwks.json"),
            token_endpoint: url(paths::TOKEN),
            token_endpoint_auth_methods_supported: list(&[
                "client_secret_basic",
                "client_secret_post",
                "none",
            ]),
            authorization_endpoint: url(paths::AUTHORIZE),
            response_types_supported: list(&["code"]),
            response_modes_supported: list(&["query"]),
            code_challenge_methods_supported: list(&["S256"]),
            grant_types_supported: list(&[
                "authorization_code",
                "password",
                "client_credentials",
                "refresh_token",
            ]),
            revocation_endpoint: url(paths::REVOKE),
            revocation_endpoint_auth_methods_supported: list(&[
                "client_secret_basic",
                "client_secret_post",
                "none",
            ]),
            introspection_endpoint: url(paths::INTROSPECT),
            introspection_endpoint_auth_methods_supported: list(&[
                "client_secret_basic",
                "client_secret_post",
            ]),
            scopes_supported: list(&["openid", "email", "profile"]),
            // RP-Initiated Logout 1.0 and Back-Channel Logout 1.0 (which register these in
            // the RFC 8414 registry too).
            end_session_endpoint: url(paths::LOGOUT),
            backchannel_logout_supported: Some(true),
            backchannel_logout_session_supported: Some(true),
            // The multi-factor classes `acr_values` may ask for (registered for RFC 8414
            // metadata too).
            acr_values_supported: crate::domain::Acr::ALL
                .iter()
                .map(|acr| acr.as_str().to_string())
                .collect(),
            ..ProviderMetadata::default()
        };
        // OpenID Connect Discovery §3 adds userinfo, subjects, ID-token signing and claims.
        let openid = ProviderMetadata {
            userinfo_endpoint: url(paths::USERINFO),
            subject_types_supported: list(&["public"]),
            // Every algorithm a client may be registered with; RS256 first, as OpenID Connect
            // Discovery §3 requires it be listed. Userinfo and introspection answer JSON, not
            // JWTs, so their `*_signing_alg_values_supported` are not published.
            id_token_signing_alg_values_supported: crate::domain::SigningAlg::ALL
                .iter()
                .map(|alg| alg.as_str().to_string())
                .collect(),
            claims_supported: list(&[
                "iss",
                "sub",
                "aud",
                "exp",
                "iat",
                "auth_time",
                "amr",
                "acr",
                "sid",
                "email",
                "email_verified",
                "name",
            ]),
            ..oauth.clone()
        };
        Metadata {
            openid: serde_json::to_vec(&openid).unwrap_or_default().into(),
            oauth: serde_json::to_vec(&oauth).unwrap_or_default().into(),
        }
    }
}
