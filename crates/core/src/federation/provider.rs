//! One upstream provider: its discovery document and keys (fetched, cached, refetched when a
//! token names a key not seen yet), the authorization URL, and the code exchange (oauth2 crate).

use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm, PublicKeyUse};
use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
    BasicTokenType,
};
use oauth2::{
    AuthType, AuthUrl, ClientId, ClientSecret, CsrfToken, ExtraTokenFields, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, RequestTokenError, Scope, StandardRevocableToken,
    StandardTokenResponse, TokenUrl,
};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use super::id_token::{self, UpstreamIdentity};
use super::upstream_error::UpstreamError;
use crate::config::{Secret, Settings, Upstream};

/// Every upstream that is switched on, by name.
pub struct Federation {
    providers: Vec<Arc<Provider>>,
}

impl Federation {
    pub fn new(settings: &Settings, issuer: &str) -> Result<Federation, UpstreamError> {
        let upstreams = settings.enabled_upstreams();
        // No upstream, no HTTP client: building one (rustls, the web PKI roots, hyper) at
        // start-up is code an idle server would keep resident for nothing (issue 18).
        if upstreams.is_empty() {
            return Ok(Federation {
                providers: Vec::new(),
            });
        }
        let timeout = Duration::from_secs(settings.federation.http_timeout_secs);
        // No redirects: a token endpoint that redirects is misconfigured or hostile, and the
        // code and client secret must not follow it anywhere.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("tessera/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| UpstreamError(format!("HTTP client: {e}")))?;
        let providers = upstreams
            .into_iter()
            .map(|upstream| {
                let redirect_uri = format!("{issuer}/auth/{}/callback", upstream.name);
                Arc::new(Provider::new(upstream, redirect_uri, http.clone()))
            })
            .collect();
        Ok(Federation { providers })
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Provider>> {
        self.providers.iter().find(|p| p.name == name)
    }

    pub fn providers(&self) -> &[Arc<Provider>] {
        &self.providers
    }
}

/// How long a discovery document is trusted before it is read again.
const METADATA_TTL: Duration = Duration::from_secs(3600);
/// How long the keys are trusted; a token with an unknown `kid` refetches sooner.
const JWKS_TTL: Duration = Duration::from_secs(3600);
/// At most one refetch for unknown keys this often, so forged `kid`s cannot make Tessera
/// hammer the upstream.
const JWKS_REFETCH_INTERVAL: Duration = Duration::from_secs(10);
/// Larger answers from an upstream are refused rather than buffered.
const MAX_RESPONSE_BYTES: usize = 1024 * 1024;
const SCOPES: [&str; 3] = ["openid", "email", "profile"];

/// The parts of an OpenID Provider's metadata Tessera uses (OIDC Discovery §3).
#[derive(Debug, Clone, Deserialize)]
pub struct Metadata {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    #[serde(default)]
    pub token_endpoint_auth_methods_supported: Option<Vec<String>>,
}

struct Cached<T> {
    value: T,
    fetched_at: Instant,
}

pub struct Provider {
    pub name: String,
    pub display_name: String,
    /// Whether its verified addresses are believed (`trust_email`).
    pub trust_email: bool,
    issuer: String,
    client_id: String,
    client_secret: Secret,
    redirect_uri: String,
    http: reqwest::Client,
    metadata: Mutex<Option<Cached<Metadata>>>,
    jwks: Mutex<JwksCache>,
}

#[derive(Default)]
struct JwksCache {
    keys: Option<Cached<JwkSet>>,
    /// When a token with an unknown `kid` last made us refetch.
    last_miss_fetch: Option<Instant>,
}

/// The token response with the OIDC `id_token` beside OAuth's fields.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct IdTokenField {
    #[serde(default)]
    id_token: Option<String>,
}
impl ExtraTokenFields for IdTokenField {}

type TokenResponse = StandardTokenResponse<IdTokenField, BasicTokenType>;
type OidcClient = oauth2::Client<
    BasicErrorResponse,
    TokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
>;

impl Provider {
    pub fn new(upstream: Upstream, redirect_uri: String, http: reqwest::Client) -> Provider {
        Provider {
            name: upstream.name,
            display_name: upstream.display_name,
            trust_email: upstream.trust_email,
            issuer: upstream.issuer,
            client_id: upstream.client_id,
            client_secret: upstream.client_secret,
            redirect_uri,
            http,
            metadata: Mutex::new(None),
            jwks: Mutex::new(JwksCache::default()),
        }
    }

    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }

    /// The issuers an ID token may name. Google's tokens carry either form (its documentation
    /// says so); everyone else's exactly the configured one.
    fn accepted_issuers(&self) -> Vec<&str> {
        if self.issuer == "https://accounts.google.com" {
            vec!["https://accounts.google.com", "accounts.google.com"]
        } else {
            vec![self.issuer.as_str()]
        }
    }

    /// The discovery document, fetched once an hour; concurrent sign-ins share one fetch.
    pub async fn metadata(&self) -> Result<Metadata, UpstreamError> {
        let mut cached = self.metadata.lock().await;
        if let Some(c) = cached.as_ref()
            && c.fetched_at.elapsed() < METADATA_TTL
        {
            return Ok(c.value.clone());
        }
        let url = format!("{}/.well-known/openid-configuration", self.issuer);
        let metadata: Metadata = self.fetch_json(&url).await?;
        // OIDC Discovery §4.3: the document must name the issuer it was fetched for.
        if metadata.issuer.trim_end_matches('/') != self.issuer {
            return Err(UpstreamError(format!(
                "discovery at {url} names issuer {:?}",
                metadata.issuer
            )));
        }
        for endpoint in [
            &metadata.authorization_endpoint,
            &metadata.token_endpoint,
            &metadata.jwks_uri,
        ] {
            if !endpoint_allowed(&self.issuer, endpoint) {
                return Err(UpstreamError(format!(
                    "discovery names an endpoint that is not https: {endpoint}"
                )));
            }
        }
        *cached = Some(Cached {
            value: metadata.clone(),
            fetched_at: Instant::now(),
        });
        Ok(metadata)
    }

    /// Where to send the browser: the upstream's authorization endpoint with our client id,
    /// redirect URI, scopes, `state`, `nonce` and PKCE S256 challenge.
    pub fn authorization_url(
        &self,
        metadata: &Metadata,
        state: &str,
        nonce: &str,
        verifier: &str,
    ) -> Result<String, UpstreamError> {
        let client = self
            .client()?
            .set_auth_uri(AuthUrl::new(metadata.authorization_endpoint.clone()).map_err(bad_url)?);
        let challenge = PkceCodeChallenge::from_code_verifier_sha256(&PkceCodeVerifier::new(
            verifier.to_string(),
        ));
        let (url, _) = client
            .authorize_url(|| CsrfToken::new(state.to_string()))
            .add_scopes(SCOPES.map(|s| Scope::new(s.to_string())))
            .set_pkce_challenge(challenge)
            .add_extra_param("nonce", nonce)
            .url();
        Ok(url.to_string())
    }

    /// Exchanges the code at the token endpoint (client secret + PKCE verifier) and verifies
    /// the ID token that comes back.
    pub async fn exchange(
        &self,
        code: &str,
        verifier: &str,
        nonce: &str,
    ) -> Result<UpstreamIdentity, UpstreamError> {
        let metadata = self.metadata().await?;
        // RFC 6749 §2.3.1: HTTP Basic unless the provider says it only takes the secret in
        // the body.
        let auth_type = match &metadata.token_endpoint_auth_methods_supported {
            Some(methods)
                if !methods.iter().any(|m| m == "client_secret_basic")
                    && methods.iter().any(|m| m == "client_secret_post") =>
            {
                AuthType::RequestBody
            }
            _ => AuthType::BasicAuth,
        };
        let client = self
            .client()?
            .set_client_secret(ClientSecret::new(self.client_secret.expose().to_string()))
            .set_token_uri(TokenUrl::new(metadata.token_endpoint.clone()).map_err(bad_url)?)
            .set_auth_type(auth_type);
        let response = client
            .exchange_code(oauth2::AuthorizationCode::new(code.to_string()))
            .set_pkce_verifier(PkceCodeVerifier::new(verifier.to_string()))
            .request_async(&CappedHttp(&self.http))
            .await
            .map_err(|e| {
                UpstreamError(match e {
                    RequestTokenError::ServerResponse(r) => {
                        format!("token endpoint refused the code: {}", r.error())
                    }
                    RequestTokenError::Request(oauth2::HttpClientError::Other(e)) => {
                        format!("token endpoint: {e}")
                    }
                    RequestTokenError::Request(e) => format!("token endpoint unreachable: {e}"),
                    RequestTokenError::Parse(e, _) => {
                        format!("token endpoint answered something unreadable: {e}")
                    }
                    RequestTokenError::Other(e) => format!("token endpoint: {e}"),
                })
            })?;
        let id_token = response
            .extra_fields()
            .id_token
            .as_deref()
            .ok_or_else(|| UpstreamError("no id_token in the token response".into()))?;
        let kid = id_token::key_id(id_token)?;
        let key = self.decoding_key(&metadata, &kid).await?;
        id_token::verify(
            id_token,
            &key,
            &self.accepted_issuers(),
            &self.client_id,
            nonce,
        )
    }

    fn client(&self) -> Result<OidcClient, UpstreamError> {
        Ok(OidcClient::new(ClientId::new(self.client_id.clone()))
            .set_redirect_uri(RedirectUrl::new(self.redirect_uri.clone()).map_err(bad_url)?))
    }

    /// The key an ID token names, from the cached JWKS. The keys are read again when they are
    /// stale, or when a token names a key they lack (the provider rotated) — but a miss
    /// refetches at most once per interval, so forged `kid`s cannot make Tessera hammer the
    /// provider.
    async fn decoding_key(
        &self,
        metadata: &Metadata,
        kid: &str,
    ) -> Result<DecodingKey, UpstreamError> {
        let mut cache = self.jwks.lock().await;
        let usable = |set: &JwkSet| set.find(kid).filter(|jwk| fits_rs256(jwk)).cloned();
        let unknown = || UpstreamError(format!("the ID token names an unknown key {kid:?}"));
        if let Some(keys) = cache.keys.as_ref()
            && keys.fetched_at.elapsed() < JWKS_TTL
        {
            if let Some(jwk) = usable(&keys.value) {
                return to_decoding_key(&jwk);
            }
            if cache
                .last_miss_fetch
                .is_some_and(|at| at.elapsed() < JWKS_REFETCH_INTERVAL)
            {
                return Err(unknown());
            }
            cache.last_miss_fetch = Some(Instant::now());
        }
        let set: JwkSet = self.fetch_json(&metadata.jwks_uri).await?;
        let found = usable(&set);
        cache.keys = Some(Cached {
            value: set,
            fetched_at: Instant::now(),
        });
        found.map_or_else(|| Err(unknown()), |jwk| to_decoding_key(&jwk))
    }

    async fn fetch_json<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
    ) -> Result<T, UpstreamError> {
        let failed = |e: String| UpstreamError(format!("GET {url}: {e}"));
        let mut response = self
            .http
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| failed(e.to_string()))?;
        if !response.status().is_success() {
            return Err(failed(format!("status {}", response.status())));
        }
        let body = read_capped(&mut response)
            .await
            .map_err(|e| failed(e.to_string()))?;
        serde_json::from_slice(&body).map_err(|e| failed(e.to_string()))
    }
}

#[derive(Debug, thiserror::Error)]
enum BodyError {
    #[error("answer larger than {MAX_RESPONSE_BYTES} bytes")]
    TooLarge,
    #[error(transparent)]
    Read(#[from] reqwest::Error),
}

/// The body, read chunk by chunk and refused as soon as it passes `MAX_RESPONSE_BYTES`, so a
/// hostile upstream cannot make Tessera buffer without bound.
async fn read_capped(response: &mut reqwest::Response) -> Result<Vec<u8>, BodyError> {
    if response
        .content_length()
        .is_some_and(|n| n > MAX_RESPONSE_BYTES as u64)
    {
        return Err(BodyError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The oauth2 crate's HTTP client for the code exchange, with the same cap on the answer as
/// discovery and the JWKS (the crate's own reqwest client reads any size).
struct CappedHttp<'a>(&'a reqwest::Client);

impl<'c> oauth2::AsyncHttpClient<'c> for CappedHttp<'_> {
    type Error = oauth2::HttpClientError<reqwest::Error>;
    type Future = std::pin::Pin<
        Box<dyn Future<Output = Result<oauth2::HttpResponse, Self::Error>> + Send + Sync + 'c>,
    >;

    fn call(&'c self, request: oauth2::HttpRequest) -> Self::Future {
        Box::pin(async move {
            let request = reqwest::Request::try_from(request).map_err(Box::new)?;
            let mut response = self.0.execute(request).await.map_err(Box::new)?;
            let mut builder = oauth2::http::Response::builder()
                .status(response.status())
                .version(response.version());
            for (name, value) in response.headers() {
                builder = builder.header(name, value);
            }
            let body = read_capped(&mut response).await.map_err(|e| match e {
                BodyError::Read(e) => oauth2::HttpClientError::Reqwest(Box::new(e)),
                too_large => oauth2::HttpClientError::Other(too_large.to_string()),
            })?;
            builder.body(body).map_err(oauth2::HttpClientError::Http)
        })
    }
}

/// RS256 keys only: a key that says it is for something else is not used.
fn fits_rs256(jwk: &Jwk) -> bool {
    let use_ok = jwk
        .common
        .public_key_use
        .as_ref()
        .is_none_or(|u| *u == PublicKeyUse::Signature);
    let alg_ok = jwk
        .common
        .key_algorithm
        .is_none_or(|a| a == KeyAlgorithm::RS256);
    use_ok
        && alg_ok
        && matches!(
            jwk.algorithm,
            jsonwebtoken::jwk::AlgorithmParameters::RSA(_)
        )
}

fn to_decoding_key(jwk: &Jwk) -> Result<DecodingKey, UpstreamError> {
    DecodingKey::from_jwk(jwk).map_err(|e| UpstreamError(format!("unusable key in the JWKS: {e}")))
}

fn bad_url(e: oauth2::url::ParseError) -> UpstreamError {
    UpstreamError(format!("invalid endpoint URL: {e}"))
}

/// Endpoints must be https, unless the issuer itself is a plain-http loopback provider (the
/// configuration allows that only for local testing) and the endpoint is on the same origin.
fn endpoint_allowed(issuer: &str, endpoint: &str) -> bool {
    if endpoint.starts_with("https://") {
        return true;
    }
    let origin = |url: &str| {
        url.strip_prefix("http://")
            .map(|rest| rest.split('/').next().unwrap_or_default().to_string())
    };
    matches!((origin(issuer), origin(endpoint)), (Some(a), Some(b)) if a == b)
}
