//! The JWKS cache: one shared key set, swapped whole after each fetch; fetches are
//! single-flight (a tokio mutex), so a burst of tokens with a new `kid` costs one request.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header::{CACHE_CONTROL, ETAG, IF_NONE_MATCH};

use crate::error::SetupError;
use crate::jwks::{self, Key};

/// Largest discovery or JWKS document read; anything bigger is not what we asked for.
const MAX_DOCUMENT_BYTES: usize = 1 << 20;
/// Lifetime assumed when the JWKS response names none (clamped to the floor and ceiling).
const DEFAULT_LIFETIME: Duration = Duration::from_secs(300);
/// Longest wait between retries while the issuer is unreachable.
const MAX_RETRY: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub(crate) struct CacheConfig {
    pub issuer: String,
    pub jwks_url: Option<String>,
    pub floor: Duration,
    pub ceiling: Duration,
    pub unknown_kid_interval: Duration,
}

/// What the cache has done so far; for monitoring and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// JWKS requests that got an answer (200 or 304).
    pub fetches: u64,
    /// Requests that failed (network error, non-2xx, unreadable document).
    pub failed_fetches: u64,
    /// Fetches made because a token named a `kid` the cache did not know.
    pub unknown_kid_fetches: u64,
    /// Usable keys in the cache now.
    pub keys: usize,
}

struct KeySet {
    keys: HashMap<String, Arc<Key>>,
    /// Bumped by every completed fetch: a waiter that sees it change knows a fetch happened
    /// while it waited and need not make its own.
    generation: u64,
    etag: Option<String>,
}

struct FetchState {
    jwks_url: Option<String>,
    last_unknown_kid_fetch: Option<Instant>,
    consecutive_failures: u32,
}

pub(crate) struct KeyCache {
    config: CacheConfig,
    http: reqwest::Client,
    current: RwLock<Arc<KeySet>>,
    fetch: tokio::sync::Mutex<FetchState>,
    /// When the background task should fetch next.
    next_refresh: Mutex<Instant>,
    fetches: AtomicU64,
    failed_fetches: AtomicU64,
    unknown_kid_fetches: AtomicU64,
}

impl KeyCache {
    pub fn new(config: CacheConfig, http: reqwest::Client) -> KeyCache {
        KeyCache {
            fetch: tokio::sync::Mutex::new(FetchState {
                jwks_url: config.jwks_url.clone(),
                last_unknown_kid_fetch: None,
                consecutive_failures: 0,
            }),
            config,
            http,
            current: RwLock::new(Arc::new(KeySet {
                keys: HashMap::new(),
                generation: 0,
                etag: None,
            })),
            next_refresh: Mutex::new(Instant::now()),
            fetches: AtomicU64::new(0),
            failed_fetches: AtomicU64::new(0),
            unknown_kid_fetches: AtomicU64::new(0),
        }
    }

    fn current(&self) -> Arc<KeySet> {
        match self.current.read() {
            Ok(set) => set.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The cached key for `kid`, without any I/O.
    pub fn cached(&self, kid: &str) -> Option<Arc<Key>> {
        let set = match self.current.read() {
            Ok(set) => set,
            Err(poisoned) => poisoned.into_inner(),
        };
        set.keys.get(kid).cloned()
    }

    pub fn stats(&self) -> CacheStats {
        CacheStats {
            fetches: self.fetches.load(Ordering::Relaxed),
            failed_fetches: self.failed_fetches.load(Ordering::Relaxed),
            unknown_kid_fetches: self.unknown_kid_fetches.load(Ordering::Relaxed),
            keys: self.current().keys.len(),
        }
    }

    /// The key for a `kid` the cache did not know: refetches the JWKS unless another task just
    /// did (then its result is used) or an unknown-kid fetch happened less than the configured
    /// interval ago (so a flood of forged kids cannot make us hammer the issuer).
    pub async fn key_for_unknown(&self, kid: &str) -> Option<Arc<Key>> {
        let seen = self.current().generation;
        let mut state = self.fetch.lock().await;
        let now = self.current();
        if now.generation != seen {
            return now.keys.get(kid).cloned();
        }
        let recently = state
            .last_unknown_kid_fetch
            .is_some_and(|at| at.elapsed() < self.config.unknown_kid_interval);
        if recently {
            return None;
        }
        state.last_unknown_kid_fetch = Some(Instant::now());
        self.unknown_kid_fetches.fetch_add(1, Ordering::Relaxed);
        if let Err(error) = self.fetch_locked(&mut state).await {
            tracing::warn!(%error, "JWKS refetch for an unknown kid failed; keeping cached keys");
        }
        self.cached(kid)
    }

    /// Fetches now (waiting for a fetch already under way, then fetching again).
    pub async fn refresh(&self) -> Result<(), SetupError> {
        let mut state = self.fetch.lock().await;
        self.fetch_locked(&mut state).await
    }

    /// The background refresher's step: fetch if it is time and nobody did meanwhile.
    async fn scheduled_refresh(&self) {
        let mut state = self.fetch.lock().await;
        if self.next_refresh_at() > Instant::now() {
            return;
        }
        if let Err(error) = self.fetch_locked(&mut state).await {
            tracing::warn!(%error, "JWKS refresh failed; serving cached keys");
        }
    }

    fn next_refresh_at(&self) -> Instant {
        match self.next_refresh.lock() {
            Ok(at) => *at,
            Err(poisoned) => *poisoned.into_inner(),
        }
    }

    fn set_next_refresh(&self, at: Instant) {
        match self.next_refresh.lock() {
            Ok(mut slot) => *slot = at,
            Err(poisoned) => *poisoned.into_inner() = at,
        }
    }

    async fn fetch_locked(&self, state: &mut FetchState) -> Result<(), SetupError> {
        let result = self.fetch_jwks(state).await;
        match &result {
            Ok(lifetime) => {
                state.consecutive_failures = 0;
                self.fetches.fetch_add(1, Ordering::Relaxed);
                // Refresh at three quarters of the lifetime, so new keys arrive before the
                // cached set is due to expire.
                self.set_next_refresh(Instant::now() + lifetime.mul_f64(0.75));
            }
            Err(_) => {
                state.consecutive_failures = state.consecutive_failures.saturating_add(1);
                self.failed_fetches.fetch_add(1, Ordering::Relaxed);
                let backoff = Duration::from_secs(1u64 << state.consecutive_failures.min(6))
                    .min(MAX_RETRY)
                    .min(self.config.floor.max(Duration::from_secs(1)));
                self.set_next_refresh(Instant::now() + backoff);
            }
        }
        result.map(drop)
    }

    /// One JWKS request; on success the new key set is in place and its lifetime returned.
    async fn fetch_jwks(&self, state: &mut FetchState) -> Result<Duration, SetupError> {
        let url = match &state.jwks_url {
            Some(url) => url.clone(),
            None => {
                let url = self.discover().await?;
                state.jwks_url = Some(url.clone());
                url
            }
        };
        let previous = self.current();
        let mut request = self.http.get(&url);
        if let Some(etag) = &previous.etag {
            request = request.header(IF_NONE_MATCH, etag);
        }
        let fetch_error = |reason: String| SetupError::Fetch {
            url: url.clone(),
            reason,
        };
        let response = request
            .send()
            .await
            .map_err(|e| fetch_error(e.to_string()))?;
        let status = response.status();
        let header = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
                .map(String::from)
        };
        let lifetime = jwks::max_age(header(CACHE_CONTROL).as_deref())
            .unwrap_or(DEFAULT_LIFETIME)
            .clamp(self.config.floor, self.config.ceiling);
        let etag = header(ETAG);
        let next = if status == StatusCode::NOT_MODIFIED && previous.generation > 0 {
            KeySet {
                keys: previous.keys.clone(),
                generation: previous.generation + 1,
                etag: etag.or_else(|| previous.etag.clone()),
            }
        } else if status.is_success() {
            let body = read_limited(response).await.map_err(&fetch_error)?;
            let keys = jwks::parse(&body).map_err(|reason| SetupError::Document {
                url: url.clone(),
                reason,
            })?;
            KeySet {
                keys,
                generation: previous.generation + 1,
                etag,
            }
        } else {
            return Err(fetch_error(format!("status {status}")));
        };
        let next = Arc::new(next);
        match self.current.write() {
            Ok(mut slot) => *slot = next,
            Err(poisoned) => *poisoned.into_inner() = next,
        }
        Ok(lifetime)
    }

    /// OpenID Connect Discovery: the issuer's `jwks_uri`, after checking the document speaks
    /// for the issuer we were configured with (Discovery §4.3).
    async fn discover(&self) -> Result<String, SetupError> {
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.config.issuer.trim_end_matches('/')
        );
        let fetch_error = |reason: String| SetupError::Fetch {
            url: url.clone(),
            reason,
        };
        let response = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| fetch_error(e.to_string()))?;
        if !response.status().is_success() {
            return Err(fetch_error(format!("status {}", response.status())));
        }
        let body = read_limited(response).await.map_err(fetch_error)?;
        let document_error = |reason: &str| SetupError::Document {
            url: url.clone(),
            reason: reason.to_string(),
        };
        // Only the two members this verifier needs are read, so an issuer whose document says
        // more (or says it in a shape this crate does not model) still works.
        #[derive(serde::Deserialize)]
        struct Discovery {
            issuer: String,
            jwks_uri: Option<String>,
        }
        let document: Discovery = serde_json::from_slice(&body)
            .map_err(|_| document_error("not a JSON discovery document"))?;
        if document.issuer != self.config.issuer {
            return Err(document_error("its issuer is not the configured one"));
        }
        document
            .jwks_uri
            .ok_or_else(|| document_error("it names no jwks_uri"))
    }
}

async fn read_limited(mut response: reqwest::Response) -> Result<Vec<u8>, String> {
    if response
        .content_length()
        .is_some_and(|len| len > MAX_DOCUMENT_BYTES as u64)
    {
        return Err("document too large".into());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
            return Err("document too large".into());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Keeps the cache fresh until the verifier is dropped: fetches when the cached set reaches
/// three quarters of its lifetime, and retries with back-off while the issuer is unreachable.
pub(crate) fn spawn_refresher(cache: &Arc<KeyCache>) -> bool {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return false;
    };
    let weak: Weak<KeyCache> = Arc::downgrade(cache);
    runtime.spawn(async move {
        loop {
            let wait = match weak.upgrade() {
                // Capped, so a retry brought forward by a failed on-demand fetch is not missed.
                Some(cache) => cache
                    .next_refresh_at()
                    .saturating_duration_since(Instant::now())
                    .min(Duration::from_secs(1)),
                None => return,
            };
            tokio::time::sleep(wait).await;
            match weak.upgrade() {
                Some(cache) => cache.scheduled_refresh().await,
                None => return,
            }
        }
    });
    true
}
