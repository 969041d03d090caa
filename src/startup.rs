//! Builds the application the same way for `main` and for tests: bind (port 0 works), read the
//! real address back, connect the database, load keys, and return a server ready to run.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::{ErrorHandlers, from_fn};
use actix_web::{App, HttpServer, web};
use anyhow::Context;

use crate::accounts::hash_pool::HashPool;
use crate::accounts::password::Hasher;
use crate::clock::Clock;
use crate::config::Settings;
use crate::db::Database;
use crate::federation::Federation;
use crate::http::{self, AppState};
use crate::keys::{self, KeyStore};
use crate::services::Services;

pub struct Application {
    address: SocketAddr,
    state: web::Data<AppState>,
    server: Server,
    /// `/metrics` on an address of its own (`metrics.bind`), when configured.
    metrics: Option<(SocketAddr, Server)>,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        Application::build_with_clock(settings, Clock::system()).await
    }

    /// As `build`, with a clock tests can move.
    pub async fn build_with_clock(settings: Settings, clock: Clock) -> anyhow::Result<Application> {
        tessera_core::preflight::check(&settings)?;
        let settings = Arc::new(settings);
        let db = {
            let settings = settings.clone();
            tokio::task::spawn_blocking(move || Database::connect(&settings.database))
                .await
                .context("database start-up task")??
        };
        let key_ring = {
            let key_settings = settings.keys.clone();
            db.run(move |conn| keys::load_or_init(conn, &key_settings))
                .await?
        };
        // The key sealing TOTP secrets: in the database with `keys.store = "database"` (so
        // replicas need no shared directory), else `secrets.key` in the keys directory.
        let from_database = match settings.keys.store {
            tessera_core::config::KeyStoreKind::Files => None,
            tessera_core::config::KeyStoreKind::Database => {
                let key_settings = settings.keys.clone();
                db.run(move |conn| {
                    keys::store::secrets_key(conn, &key_settings, tessera_core::db::now())
                })
                .await?
            }
        };
        let secrets = match from_database {
            Some(bytes) => tessera_core::mfa::SecretBox::from_secret(&bytes)
                .context("the database's secrets key is not an AES-256 key")?,
            None => {
                let dir = settings.keys.dir.clone();
                tokio::task::spawn_blocking(move || {
                    tessera_core::mfa::SecretBox::load_or_create(&dir)
                })
                .await
                .context("secrets key start-up task")??
            }
        };
        let hashes = HashPool::new(
            Hasher::new(&settings.passwords)?,
            settings.passwords.hash_threads,
            settings.passwords.hash_queue,
        )
        .context("cannot start the password hashing threads")?;
        let mailer = crate::mail::SmtpTarget::from_settings(&settings.smtp)
            .map_err(anyhow::Error::msg)?
            .map(crate::mail::Mailer::new)
            .transpose()
            .context("cannot set up the SMTP client")?
            .map(Arc::new);
        let listener = TcpListener::bind(settings.server.bind)
            .with_context(|| format!("cannot listen on {}", settings.server.bind))?;
        let address = listener.local_addr()?;
        let issuer = settings.issuer_for(address);
        let federation = Federation::new(&settings, &issuer)?;
        // The WebAuthn relying party: the issuer's host and origin (none for an IP address).
        let passkeys = crate::mfa::passkey::Passkeys::new(&issuer, "Tessera").map(Arc::new);
        if passkeys.is_none() {
            tracing::info!(%issuer, "passkeys are off: the issuer's host is not a domain name");
        }
        let state = web::Data::new(AppState::new(Services {
            db,
            keys: Arc::new(KeyStore::new(key_ring)),
            secrets: Arc::new(secrets),
            federation: Arc::new(federation),
            passkeys,
            hashes,
            issuer,
            settings: settings.clone(),
            clock,
            mailer,
            outbox_wake: Arc::new(tokio::sync::Notify::new()),
            backchannel_wake: Arc::new(tokio::sync::Notify::new()),
            metrics: Arc::new(crate::metrics::Metrics::new()),
        }));

        crate::purge::spawn_purge(state.services.clone());
        crate::mail::outbox::spawn_sender(state.services.clone());
        // Always, mail or not: sessions end whether or not mail is configured.
        crate::sso::backchannel::spawn_sender(state.services.clone());
        keys::lifecycle::spawn_watch(state.services.clone());
        crate::accounts::password::spawn_idle_memory_release();

        let body_limit = settings.server.body_limit_bytes;
        let cors_origins = settings.server.cors_allowed_origins.clone();
        let app_state = state.clone();
        let metrics_here = settings.metrics.enabled && settings.metrics.bind.is_none();
        let own_handle = Arc::new(std::sync::OnceLock::new());
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(app_state.clone())
                .app_data(web::PayloadConfig::new(body_limit))
                .app_data(
                    web::JsonConfig::default()
                        .limit(body_limit)
                        .error_handler(|e, _| http::json_payload_error(e).into()),
                )
                .app_data(web::PathConfig::default().error_handler(|e, _| {
                    http::error::ApiError::InvalidRequest(e.to_string()).into()
                }))
                .configure(|cfg| {
                    if metrics_here {
                        http::metrics::route(cfg);
                    }
                    http::routes(cfg, &cors_origins);
                })
                .default_service(web::to(http::not_found))
                .wrap(ErrorHandlers::new().default_handler(http::error::json_error_body))
                .wrap(from_fn(http::observe))
        })
        .listen(listener.try_clone()?)?
        .shutdown_signal(drain_on_signal(
            state.clone(),
            listener,
            own_handle.clone(),
            std::time::Duration::from_secs(settings.server.drain_secs),
        ))
        .shutdown_timeout(settings.server.shutdown_timeout_secs);
        if settings.server.workers > 0 {
            server = server.workers(settings.server.workers);
        }
        server = server.max_connections(settings.server.max_connections_per_worker);
        let server = server.run();
        let _ = own_handle.set(server.handle());
        let metrics = match settings.metrics.bind.filter(|_| settings.metrics.enabled) {
            Some(bind) => Some(metrics_server(bind, state.clone())?),
            None => None,
        };
        tracing::info!(
            %address,
            issuer = %state.services.issuer,
            database = state.services.db.backend_name(),
            "listening"
        );
        Ok(Application {
            address,
            state,
            server,
            metrics,
        })
    }

    /// Where `/metrics` is served when it has a listener of its own.
    pub fn metrics_address(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(|(address, _)| *address)
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub fn port(&self) -> u16 {
        self.address.port()
    }

    pub fn state(&self) -> web::Data<AppState> {
        self.state.clone()
    }

    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGINT/SIGTERM and the drain after it (or `handle().stop()`), letting
    /// in-flight requests finish.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let metrics = self.metrics.map(|(_, server)| {
            let handle = server.handle();
            (tokio::spawn(server), handle)
        });
        let result = self.server.await;
        if let Some((task, handle)) = metrics {
            handle.stop(true).await;
            let _ = task.await;
        }
        result
    }
}

/// Resolves when the server should stop: after SIGTERM or SIGINT, and the drain.
///
/// actix's own stop closes the listener and, at once, every idle keep-alive connection. A
/// proxy's pooled connection is idle in Tessera's eyes while the proxy is writing the next
/// request into it, and a POST that was sent is not retried elsewhere: it fails. So first the
/// listener stops listening (new connections are refused, which a proxy retries on another
/// replica, and those already in the listen queue are served first: `crate::listener`), and
/// for `drain` every answer carries `Connection: close`, so each pooled
/// connection is closed by the proxy after its next answer, or by the proxy's own idle timeout
/// when it is not used; only then does actix stop, with nothing left to cut.
async fn drain_on_signal(
    state: web::Data<AppState>,
    listener: TcpListener,
    handle: Arc<std::sync::OnceLock<ServerHandle>>,
    drain: std::time::Duration,
) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot listen for SIGTERM/SIGINT; stopping only when told to");
        return std::future::pending().await;
    };
    let name = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    state
        .draining
        .store(true, std::sync::atomic::Ordering::Relaxed);
    crate::listener::stop_listening(listener, handle.get()).await;
    tracing::info!(
        signal = name,
        drain_secs = drain.as_secs(),
        "draining: not listening, closing each connection after its answer"
    );
    tokio::time::sleep(drain).await;
    tracing::info!("drained; stopping");
}

/// A one-worker listener serving only `/metrics`, so scrapes can stay on a private address.
fn metrics_server(
    bind: SocketAddr,
    state: web::Data<AppState>,
) -> anyhow::Result<(SocketAddr, Server)> {
    let listener = TcpListener::bind(bind)
        .with_context(|| format!("cannot listen on {bind} (metrics.bind)"))?;
    let address = listener.local_addr()?;
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .configure(http::metrics::route)
            .default_service(web::to(http::not_found))
            .wrap(ErrorHandlers::new().default_handler(http::error::json_error_body))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?
    .run();
    tracing::info!(%address, "metrics listening");
    Ok((address, server))
}
