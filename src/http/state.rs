//! What every handler reaches: the state the app is built with, and who is asking.

use actix_web::http::header::HeaderValue;

use super::discovery::Metadata;
use crate::services::Services;

/// What every handler may reach: the domain's services plus what only HTTP needs.
pub struct AppState {
    pub services: Services,
    pub metadata: Metadata,
    pub jwks_cache_control: HeaderValue,
    /// Set on SIGTERM/SIGINT (`server.drain_secs`): every answer closes its connection and
    /// `/readyz` says 503.
    pub draining: std::sync::atomic::AtomicBool,
}

impl AppState {
    pub fn is_draining(&self) -> bool {
        self.draining.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl AppState {
    pub fn new(services: Services) -> Self {
        let max_age = services.settings.keys.jwks_max_age_secs;
        AppState {
            metadata: Metadata::new(&services.issuer),
            jwks_cache_control: HeaderValue::from_str(&format!("public, max-age={max_age}"))
                .unwrap_or(HeaderValue::from_static("public, max-age=300")),
            services,
            draining: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

/// The client's address: the socket's peer, unless that peer is a trusted proxy, in which
/// case the last X-Forwarded-For address that is not itself a trusted proxy. Forwarded headers
/// from anyone else are ignored: a client must not choose the IP it is throttled by.
pub fn client_ip(
    req: &actix_web::HttpRequest,
    trusted: &tessera_core::domain::TrustedProxies,
) -> Option<String> {
    let peer = req.peer_addr()?.ip().to_canonical();
    if !trusted.contains(peer) {
        return Some(peer.to_string());
    }
    let forwarded = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|v| v.trim().parse::<std::net::IpAddr>().ok())
        .map(|ip| ip.to_canonical())
        .collect::<Vec<_>>();
    let client = forwarded
        .into_iter()
        .rev()
        .find(|ip| !trusted.contains(*ip))
        .unwrap_or(peer);
    Some(client.to_string())
}
