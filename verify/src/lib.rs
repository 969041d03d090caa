//! Verify access tokens issued by Tessera (or any RFC 9068 issuer) at a resource server,
//! without calling the issuer per request.
//!
//! The [`Verifier`] finds the issuer's JWKS through OpenID Connect Discovery (or is given its
//! URL), caches it as long as `Cache-Control: max-age` allows (clamped to a floor and a
//! ceiling), refreshes it in the background before it expires, refetches at most once per
//! interval when a token names an unknown `kid` (concurrent misses share one fetch), and keeps
//! serving the cached keys while the issuer is unreachable.
//!
//! A token is accepted only if it is a JWS signed RS256, ES256 or EdDSA by a key from that set,
//! with the algorithm of that key's type (`none`, every HS* and every other algorithm are
//! refused, and so is an `alg` that does not match the key its `kid` names, or a key whose
//! `alg`/`use` do not fit), its
//! header `typ` is `at+jwt`, its `iss` is the issuer, its `aud` contains the configured
//! audience, and `exp`/`nbf` hold within a small leeway.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use tessera_verify::Verifier;
//!
//! let verifier = Verifier::builder("https://id.example.com")
//!     .audience("notes")
//!     .build()?;
//! verifier.refresh().await?; // optional: fail fast at start-up if the issuer is unreachable
//! let claims = verifier.verify("eyJhbGciOi…").await?;
//! if claims.has_scope("notes") {
//!     println!("{} may read notes", claims.sub);
//! }
//! # Ok(())
//! # }
//! ```
//!
//! An app that signs people in with Tessera can also hear when their session there ends
//! (OpenID Connect Back-Channel Logout 1.0): build a verifier whose audience is the app's
//! client id and check each POSTed `logout_token` with [`Verifier::verify_logout_token`].
//!
//! ```no_run
//! # async fn example(logout_token: &str) -> Result<(), Box<dyn std::error::Error>> {
//! use tessera_verify::Verifier;
//!
//! let logouts = Verifier::builder("https://id.example.com")
//!     .audience("my-client-id")
//!     .build()?;
//! let claims = logouts.verify_logout_token(logout_token).await?;
//! // End the app's sessions of claims.sid (or of every session of claims.sub).
//! # Ok(())
//! # }
//! ```
//!
//! With the `actix` feature, [`actix::Authenticated`] extracts verified claims from
//! `Authorization: Bearer …` and [`actix::RequireScope`] guards whole scopes of routes, both
//! answering as RFC 6750 §3 prescribes.

#[cfg(feature = "actix")]
pub mod actix;
mod cache;
mod claims;
mod error;
mod jwks;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;

pub use cache::CacheStats;
pub use claims::Claims;
pub use error::{SetupError, VerifyError};
pub use tessera_proto::{Audience, LogoutClaims};

use cache::{CacheConfig, KeyCache};

/// Checks access tokens against the issuer's published keys. Cheap to clone (one shared
/// cache); build one per issuer and audience and share it.
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

struct Inner {
    cache: Arc<KeyCache>,
    validation: PerAlgorithm,
    /// For logout tokens: `sub` is optional (`sid` may stand instead), and `iat` is checked
    /// by hand.
    logout_validation: PerAlgorithm,
    refresher: std::sync::OnceLock<()>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// Settings for a [`Verifier`]; every one but the audience has a sensible default.
#[derive(Debug, Clone)]
pub struct VerifierBuilder {
    issuer: String,
    audience: Option<String>,
    jwks_url: Option<String>,
    leeway: Duration,
    cache_floor: Duration,
    cache_ceiling: Duration,
    unknown_kid_interval: Duration,
    http_timeout: Duration,
}

impl VerifierBuilder {
    /// The audience this resource server answers to (required): tokens must list it in `aud`.
    /// For [`Verifier::verify_logout_token`], the app's client id.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// Fetch keys from this URL instead of discovering it from the issuer.
    pub fn jwks_url(mut self, url: impl Into<String>) -> Self {
        self.jwks_url = Some(url.into());
        self
    }

    /// Clock skew tolerated on `exp` and `nbf` (default 5 s, at most 5 minutes).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Shortest time a fetched JWKS is kept, whatever `max-age` says (default 30 s).
    pub fn cache_floor(mut self, floor: Duration) -> Self {
        self.cache_floor = floor;
        self
    }

    /// Longest time a fetched JWKS is trusted before a refresh (default 1 h).
    pub fn cache_ceiling(mut self, ceiling: Duration) -> Self {
        self.cache_ceiling = ceiling;
        self
    }

    /// Least time between two refetches caused by unknown `kid`s (default 10 s).
    pub fn unknown_kid_refetch_interval(mut self, interval: Duration) -> Self {
        self.unknown_kid_interval = interval;
        self
    }

    /// Timeout of each discovery or JWKS request (default 5 s).
    pub fn http_timeout(mut self, timeout: Duration) -> Self {
        self.http_timeout = timeout;
        self
    }

    /// Checks the settings and builds the verifier. No request is made yet: the keys are
    /// fetched in the background (when called inside a tokio runtime) or by the first
    /// [`Verifier::verify`]; call [`Verifier::refresh`] to fetch them now.
    pub fn build(self) -> Result<Verifier, SetupError> {
        let config = |reason: &str| SetupError::Config(reason.to_string());
        let audience = self
            .audience
            .filter(|a| !a.is_empty())
            .ok_or_else(|| config("an audience is required"))?;
        let issuer = self.issuer;
        for url in std::iter::once(&issuer).chain(self.jwks_url.as_ref()) {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(SetupError::Config(format!("{url:?} is not an http(s) URL")));
            }
        }
        if self.cache_floor > self.cache_ceiling {
            return Err(config("the cache floor is above its ceiling"));
        }
        if self.leeway > Duration::from_secs(300) {
            return Err(config("a leeway above 5 minutes is not small"));
        }
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(self.http_timeout)
            .user_agent(concat!("tessera-verify/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SetupError::Config(format!("HTTP client: {e}")))?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[&issuer]);
        validation.set_audience(&[&audience]);
        // The other claims RFC 9068 §2.2 requires are required by `Claims` itself.
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = self.leeway.as_secs();
        let mut logout_validation = validation.clone();
        logout_validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        let (validation, logout_validation) = (
            PerAlgorithm::new(&validation),
            PerAlgorithm::new(&logout_validation),
        );
        let cache = Arc::new(KeyCache::new(
            CacheConfig {
                issuer,
                jwks_url: self.jwks_url,
                floor: self.cache_floor,
                ceiling: self.cache_ceiling,
                unknown_kid_interval: self.unknown_kid_interval,
            },
            http,
        ));
        let verifier = Verifier {
            inner: Arc::new(Inner {
                cache,
                validation,
                logout_validation,
                refresher: std::sync::OnceLock::new(),
            }),
        };
        verifier.ensure_refresher();
        Ok(verifier)
    }
}

/// The algorithms a token may be signed with, each one's validation accepting it alone
/// (jsonwebtoken refuses a validation listing algorithms of several key families).
struct PerAlgorithm {
    rs256: Validation,
    es256: Validation,
    eddsa: Validation,
}

impl PerAlgorithm {
    fn new(base: &Validation) -> PerAlgorithm {
        let with = |alg| {
            let mut validation = base.clone();
            validation.algorithms = vec![alg];
            validation
        };
        PerAlgorithm {
            rs256: with(Algorithm::RS256),
            es256: with(Algorithm::ES256),
            eddsa: with(Algorithm::EdDSA),
        }
    }

    /// The algorithm a header names, if it is one we accept (names are case-sensitive).
    fn parse(alg: &str) -> Option<Algorithm> {
        match alg {
            "RS256" => Some(Algorithm::RS256),
            "ES256" => Some(Algorithm::ES256),
            "EdDSA" => Some(Algorithm::EdDSA),
            _ => None,
        }
    }

    fn get(&self, alg: Algorithm) -> &Validation {
        match alg {
            Algorithm::ES256 => &self.es256,
            Algorithm::EdDSA => &self.eddsa,
            _ => &self.rs256,
        }
    }
}

/// The JOSE header members we look at. `jku`, `x5u` and `jwk` are ignored on purpose: keys
/// come only from the configured issuer, never from the token.
#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    crit: Option<serde_json::Value>,
}

impl Verifier {
    /// Starts the settings for tokens from `issuer` (its exact `iss` value, e.g.
    /// `https://id.example.com`).
    pub fn builder(issuer: impl Into<String>) -> VerifierBuilder {
        VerifierBuilder {
            issuer: issuer.into(),
            audience: None,
            jwks_url: None,
            leeway: Duration::from_secs(5),
            cache_floor: Duration::from_secs(30),
            cache_ceiling: Duration::from_secs(3600),
            unknown_kid_interval: Duration::from_secs(10),
            http_timeout: Duration::from_secs(5),
        }
    }

    /// Fetches the JWKS now (discovering its URL first if needed). Useful at start-up to fail
    /// fast; a failure leaves the cached keys in place.
    pub async fn refresh(&self) -> Result<(), SetupError> {
        self.ensure_refresher();
        self.inner.cache.refresh().await
    }

    /// What the key cache has done so far.
    pub fn stats(&self) -> CacheStats {
        self.inner.cache.stats()
    }

    /// Verifies `token` (the compact JWS, without "Bearer ") and returns its claims.
    pub async fn verify(&self, token: &str) -> Result<Claims, VerifyError> {
        let (alg, kid) = checked_header(token, Typ::Access)?;
        let key = self.key(alg, &kid).await?;
        jsonwebtoken::decode::<Claims>(token, &key.decoding, self.inner.validation.get(alg))
            .map(|data| data.claims)
            .map_err(refusal)
    }

    /// Validates a logout token (OpenID Connect Back-Channel Logout 1.0 §2.6), the
    /// `logout_token` an issuer POSTs to an app's `backchannel_logout_uri`, for the app whose
    /// client id is this verifier's audience:
    ///
    /// - a JWS signed by a key of the issuer's JWKS with that key's algorithm (steps 2, 3), typed `logout+jwt`
    ///   (§2.4; `application/logout+jwt` too), so no access or ID token passes for one;
    /// - `iss` the issuer, `aud` the client id, `exp` not past and `iat` present and not in
    ///   the future, both within the leeway (step 4);
    /// - `sub`, `sid` or both (step 5); `events` with the back-channel logout event (step 6);
    ///   no `nonce` (step 7).
    ///
    /// The optional steps are the app's: remember the `jti`s of recent tokens to refuse a
    /// replay (step 8; a retried delivery carries the same `jti`), and match `sub`/`sid` to
    /// its own sessions (steps 9 to 11).
    pub async fn verify_logout_token(&self, token: &str) -> Result<LogoutClaims, VerifyError> {
        let (alg, kid) = checked_header(token, Typ::Logout)?;
        let key = self.key(alg, &kid).await?;
        let validation = self.inner.logout_validation.get(alg);
        let claims = jsonwebtoken::decode::<LogoutClaims>(token, &key.decoding, validation)
            .map(|data| data.claims)
            .map_err(refusal)?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs() as i64);
        if claims.iat > now + validation.leeway as i64 {
            return Err(VerifyError::NotYetValid);
        }
        if claims.sub.is_none() && claims.sid.is_none() {
            return Err(VerifyError::Logout("it names neither sub nor sid"));
        }
        if claims.nonce.is_some() {
            return Err(VerifyError::Logout("it carries a nonce"));
        }
        Ok(claims)
    }

    /// The key `kid` names (cached, or fetched once if it is new), if it is a key of `alg`: a
    /// token cannot borrow a key of another type by naming its kid.
    async fn key(&self, alg: Algorithm, kid: &str) -> Result<Arc<jwks::Key>, VerifyError> {
        let key = match self.inner.cache.cached(kid) {
            Some(key) => key,
            None => {
                self.ensure_refresher();
                self.inner
                    .cache
                    .key_for_unknown(kid)
                    .await
                    .ok_or(VerifyError::UnknownKey)?
            }
        };
        if key.alg != alg {
            return Err(VerifyError::Algorithm(format!("{alg:?}")));
        }
        Ok(key)
    }

    /// Started lazily too, for a verifier built outside a runtime.
    fn ensure_refresher(&self) {
        if self.inner.refresher.get().is_none() && cache::spawn_refresher(&self.inner.cache) {
            let _ = self.inner.refresher.set(());
        }
    }
}

/// Why a token was refused by `jsonwebtoken`, in our words.
fn refusal(e: jsonwebtoken::errors::Error) -> VerifyError {
    match e.kind() {
        ErrorKind::ExpiredSignature => VerifyError::Expired,
        ErrorKind::ImmatureSignature => VerifyError::NotYetValid,
        ErrorKind::InvalidIssuer => VerifyError::WrongIssuer,
        ErrorKind::InvalidAudience => VerifyError::WrongAudience,
        ErrorKind::MissingRequiredClaim(_)
        | ErrorKind::InvalidClaimFormat(_)
        | ErrorKind::Json(_) => VerifyError::Claims,
        ErrorKind::InvalidToken | ErrorKind::Base64(_) | ErrorKind::Utf8(_) => {
            VerifyError::Malformed
        }
        _ => VerifyError::Signature,
    }
}

/// The kind of token a header must announce.
#[derive(Clone, Copy)]
enum Typ {
    /// RFC 9068 §4: `at+jwt`.
    Access,
    /// Back-Channel Logout 1.0 §2.4: `logout+jwt`.
    Logout,
}

impl Typ {
    fn accepts(self, typ: &str) -> bool {
        let short = match self {
            Typ::Access => "at+jwt",
            Typ::Logout => "logout+jwt",
        };
        // RFC 7515 §4.1.9: the media type, with its "application/" prefix left out or not.
        let typ = match typ.get(..12) {
            Some(prefix) if prefix.eq_ignore_ascii_case("application/") => &typ[12..],
            _ => typ,
        };
        typ.eq_ignore_ascii_case(short)
    }

    fn refused(self) -> VerifyError {
        match self {
            Typ::Access => VerifyError::WrongType,
            Typ::Logout => VerifyError::NotALogoutToken,
        }
    }
}

/// Checks the header before any key is looked up, and returns its `alg` and `kid`.
fn checked_header(token: &str, expected: Typ) -> Result<(Algorithm, String), VerifyError> {
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(VerifyError::Malformed);
    };
    let header = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| VerifyError::Malformed)?;
    let header: Header = serde_json::from_slice(&header).map_err(|_| VerifyError::Malformed)?;
    let Some(alg) = PerAlgorithm::parse(&header.alg) else {
        return Err(VerifyError::Algorithm(header.alg));
    };
    // RFC 9068 §4: the resource server MUST check typ is at+jwt (or application/at+jwt);
    // logout tokens are typed logout+jwt, so no other kind of token passes for one.
    if !header.typ.as_deref().is_some_and(|t| expected.accepts(t)) {
        return Err(expected.refused());
    }
    // RFC 7515 §4.1.11: extensions we do not understand make the token unacceptable.
    if header.crit.is_some() {
        return Err(VerifyError::UnsupportedHeader);
    }
    header
        .kid
        .map(|kid| (alg, kid))
        .ok_or(VerifyError::UnknownKey)
}
