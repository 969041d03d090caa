//! The authorization endpoint's logic (RFC 6749 §4.1, PKCE per RFC 7636): checking an
//! authorization request, and issuing a code once the user has signed in. Free of HTTP; the
//! login page itself lives in `http::authorize`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::db::DbConnection;
use crate::db::models::AuthorizationCode;
use crate::db::{DbError, repo};
use crate::domain::{Authentication, Client, GrantType, ScopeSet, User};
use crate::grants::Params;
use crate::services::Services;

/// Seconds an authorization code lives.
pub const CODE_TTL_SECS: i64 = 60;

/// An authorization request that passed every check.
#[derive(Debug, Clone)]
pub struct AuthorizationRequest {
    pub client: Client,
    pub redirect_uri: String,
    pub scope: ScopeSet,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub prompt: Prompt,
    /// `max_age` (seconds): the sign-in must be at most this old.
    pub max_age: Option<i64>,
    /// `login_hint`: the address to pre-fill (never trusted for anything else).
    pub login_hint: Option<String>,
    /// The `sub` of a valid `id_token_hint`: who the app believes is signed in.
    pub hinted_subject: Option<String>,
    /// A multi-factor class asked for in `acr_values` (values not known here are ignored).
    pub acr: Option<crate::domain::Acr>,
}

/// `prompt` (OpenID Connect Core §3.1.2.1): a set of `none`, `login`, `consent`,
/// `select_account`. Tessera keeps one account per browser session, so `select_account` is read
/// as `login`: the person signs in as whoever they choose.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Prompt {
    pub none: bool,
    pub login: bool,
    pub consent: bool,
}

impl Prompt {
    pub fn parse(value: &str) -> Result<Prompt, &'static str> {
        let mut prompt = Prompt::default();
        let mut count = 0;
        for token in value.split(' ').filter(|t| !t.is_empty()) {
            count += 1;
            match token {
                "none" => prompt.none = true,
                "login" | "select_account" => prompt.login = true,
                "consent" => prompt.consent = true,
                _ => {
                    return Err(
                        "prompt has a value that is not none, login, consent or select_account",
                    );
                }
            }
        }
        if prompt.none && count > 1 {
            return Err("prompt=none cannot be combined with another value");
        }
        Ok(prompt)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthorizeError {
    /// The client or its redirect URI cannot be trusted: say so on a page, never redirect
    /// (RFC 6749 §4.1.2.1, an open redirector otherwise).
    #[error("{0}")]
    Page(String),
    /// Everything else goes back to the client's redirect URI with an error code.
    #[error("{description}")]
    Redirect {
        redirect_uri: String,
        error: &'static str,
        description: String,
        state: Option<String>,
    },
    #[error(transparent)]
    Db(#[from] DbError),
}

impl AuthorizeError {
    /// The URL to send the browser to, for `Redirect` errors.
    pub fn redirect_location(&self) -> Option<String> {
        match self {
            AuthorizeError::Redirect {
                redirect_uri,
                error,
                description,
                state,
            } => {
                let mut query = form_urlencoded::Serializer::new(String::new());
                query.append_pair("error", error);
                query.append_pair("error_description", description);
                if let Some(state) = state {
                    query.append_pair("state", state);
                }
                Some(with_query(redirect_uri, &query.finish()))
            }
            _ => None,
        }
    }
}

/// `uri` with `query` appended (after `?`, or `&` if it already has a query).
pub fn with_query(uri: &str, query: &str) -> String {
    let separator = if uri.contains('?') { '&' } else { '?' };
    format!("{uri}{separator}{query}")
}

/// Checks an authorization request in RFC 6749 §4.1.2.1's order: the client and redirect URI
/// first (errors shown on a page), then the rest (errors sent back to the client).
pub async fn validate(
    svc: &Services,
    params: &Params,
) -> Result<AuthorizationRequest, AuthorizeError> {
    let client_id = client_id(params)?;
    let hint = decode_hint(svc, params);
    let client = svc
        .db
        .run(move |conn| repo::clients::find(conn, &client_id).map_err(DbError::from))
        .await?;
    check(params, client, hint)
}

/// The request's `client_id`, or the page saying it has none.
pub(crate) fn client_id(params: &Params) -> Result<String, AuthorizeError> {
    params
        .get("client_id")
        .map(String::from)
        .ok_or_else(|| AuthorizeError::Page("The request names no client (client_id).".into()))
}

/// The `sub` of the request's `id_token_hint`, if it has one: `Err` if the hint is not an ID
/// token issued here. Decoded apart from the checks (it needs no database), so that `check`
/// can run inside a database job; its error still comes in `check`'s order.
pub(crate) fn decode_hint(svc: &Services, params: &Params) -> Option<Result<String, ()>> {
    params.get("id_token_hint").map(|hint| {
        crate::tokens::decode_id_token_hint(hint, &svc.keys.current(), &svc.issuer)
            .map(|claims| claims.sub)
            .map_err(drop)
    })
}

/// Every check of `validate` once the client is looked up (`None`: not registered) and the
/// `id_token_hint` decoded (`decode_hint`); needs no database.
pub(crate) fn check(
    params: &Params,
    client: Option<Client>,
    hint: Option<Result<String, ()>>,
) -> Result<AuthorizationRequest, AuthorizeError> {
    let client = client
        .ok_or_else(|| AuthorizeError::Page("The application is not registered here.".into()))?;
    let registered = &client.redirect_uris;
    let redirect_uri = match (params.get("redirect_uri"), registered.sole()) {
        (Some(uri), _) if registered.allows(uri) => uri.to_string(),
        (None, Some(only)) => only.to_string(),
        (Some(_), _) => {
            return Err(AuthorizeError::Page(
                "The redirect URI is not one registered for this application.".into(),
            ));
        }
        (None, _) => {
            return Err(AuthorizeError::Page(
                "The request names no redirect URI (redirect_uri).".into(),
            ));
        }
    };
    let state = params.get("state").map(String::from);
    let fail = |error: &'static str, description: &str| AuthorizeError::Redirect {
        redirect_uri: redirect_uri.clone(),
        error,
        description: description.to_string(),
        state: state.clone(),
    };
    match params.get("response_type") {
        Some("code") => {}
        Some(_) => {
            return Err(fail(
                "unsupported_response_type",
                "only response_type=code is supported",
            ));
        }
        None => return Err(fail("invalid_request", "response_type is missing")),
    }
    if !client.grant_types.allows(GrantType::AuthorizationCode) {
        return Err(fail(
            "unauthorized_client",
            "this client may not use the authorization code flow",
        ));
    }
    let code_challenge = match (
        params.get("code_challenge"),
        params.get("code_challenge_method"),
    ) {
        (Some(challenge), Some("S256")) if is_pkce_value(challenge) => Some(challenge.to_string()),
        (Some(_), Some("S256")) => {
            return Err(fail("invalid_request", "code_challenge is malformed"));
        }
        (Some(_), None | Some("plain")) => {
            return Err(fail(
                "invalid_request",
                "code_challenge_method must be S256; plain is refused",
            ));
        }
        (Some(_), Some(_)) => {
            return Err(fail(
                "invalid_request",
                "code_challenge_method must be S256",
            ));
        }
        (None, Some(_)) => return Err(fail("invalid_request", "code_challenge is missing")),
        (None, None) if client.secret_hash.is_none() => {
            return Err(fail(
                "invalid_request",
                "PKCE (code_challenge, S256) is required for public clients",
            ));
        }
        (None, None) => None,
    };
    let scope = crate::grants::resolve_scope(&client, params.get("scope"))
        .map_err(|e| fail("invalid_scope", &e.to_string()))?;
    let prompt = match params.get("prompt") {
        Some(value) => Prompt::parse(value).map_err(|why| fail("invalid_request", why))?,
        None => Prompt::default(),
    };
    let max_age = match params.get("max_age") {
        Some(value) => Some(
            value
                .parse::<i64>()
                .ok()
                .filter(|age| *age >= 0 && value.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| {
                    fail(
                        "invalid_request",
                        "max_age must be a non-negative number of seconds",
                    )
                })?,
        ),
        None => None,
    };
    let hinted_subject = match hint {
        Some(sub) => Some(sub.map_err(|()| {
            fail(
                "invalid_request",
                "id_token_hint is not an ID token issued here",
            )
        })?),
        None => None,
    };
    Ok(AuthorizationRequest {
        client,
        redirect_uri,
        scope,
        state,
        nonce: params.get("nonce").map(String::from),
        code_challenge,
        prompt,
        max_age,
        login_hint: params
            .get("login_hint")
            .map(|hint| hint.chars().take(320).collect()),
        hinted_subject,
        acr: params
            .get("acr_values")
            .and_then(crate::domain::Acr::first_of),
    })
}

/// RFC 7636 §4.1/§4.2: 43 to 128 characters of [A-Za-z0-9-._~].
fn is_pkce_value(value: &str) -> bool {
    (43..=128).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// BASE64URL(SHA256(verifier)) == challenge, in constant time.
pub fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    if !is_pkce_value(verifier) {
        return false;
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes());
    let computed = URL_SAFE_NO_PAD.encode(digest.as_ref());
    crate::crypto::constant_time_eq(computed.as_bytes(), challenge.as_bytes())
}

/// Issues a single-use code (256 bits, stored hashed) for a signed-in user, inside the
/// caller's transaction, and returns the URL to send the browser back to. The code carries the
/// sign-in (`auth`): its time, methods and browser session.
pub fn issue_code_with(
    conn: &mut DbConnection,
    request: &AuthorizationRequest,
    user: &User,
    auth: &Authentication,
    now: i64,
) -> Result<String, DbError> {
    let code = crate::crypto::random_token(32).map_err(|e| DbError::Task(e.to_string()))?;
    let row = AuthorizationCode {
        code_hash: crate::crypto::sha256_hex(code.as_bytes()),
        client_id: request.client.id.to_string(),
        user_id: user.id.to_string(),
        redirect_uri: request.redirect_uri.clone(),
        // Scopes that need a role the user lacks are left out (the token response says what
        // was granted).
        scope: crate::grants::scope_for_user(user, &request.scope).to_string(),
        nonce: request.nonce.clone(),
        code_challenge: request.code_challenge.clone(),
        code_challenge_method: request.code_challenge.as_ref().map(|_| "S256".to_string()),
        auth_time: auth.time,
        created_at: now,
        expires_at: now + CODE_TTL_SECS,
        used_at: None,
        family_id: None,
        access_token_jti: None,
        access_token_expires_at: None,
        session_id: auth.session_id.clone(),
    };
    crate::authorize::store::insert(conn, &row)?;
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.append_pair("code", &code);
    if let Some(state) = &request.state {
        query.append_pair("state", state);
    }
    Ok(with_query(&request.redirect_uri, &query.finish()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_s256_matches_rfc7636_appendix_b() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(pkce_matches(verifier, challenge));
        assert!(!pkce_matches(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXx",
            challenge
        ));
        assert!(!pkce_matches("short", challenge));
    }

    #[test]
    fn redirects_keep_an_existing_query() {
        assert_eq!(
            with_query("https://a.example/cb", "code=x"),
            "https://a.example/cb?code=x"
        );
        assert_eq!(
            with_query("https://a.example/cb?v=1", "code=x"),
            "https://a.example/cb?v=1&code=x"
        );
    }
}
