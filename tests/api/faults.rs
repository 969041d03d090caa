//! Faults: the server killed with SIGKILL in the middle of a refresh storm, PostgreSQL going
//! away under a running server, and an SQLite file that cannot be written.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use serde_json::Value;
use tessera::db::schema::{refresh_token_families, refresh_tokens};
use tessera::db::{DbConnection, DbError};

use crate::testkit::{DEADLINE, PASSWORD, eventually};
use crate::testkit::{ServerProcess, TestApp, TestEnv};

async fn db<T: Send + 'static>(
    app: &TestApp,
    work: impl FnOnce(&mut DbConnection) -> QueryResult<T> + Send + 'static,
) -> T {
    app.state
        .services
        .db
        .run(crate::testkit::once(work))
        .await
        .expect("database query")
}

async fn post_token(
    http: &reqwest::Client,
    base: &str,
    client: &(String, String),
    form: &[(&str, &str)],
) -> reqwest::Result<reqwest::Response> {
    http.post(format!("{base}/token"))
        .basic_auth(&client.0, Some(&client.1))
        .form(form)
        .send()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_in_a_refresh_storm_loses_no_issued_token_and_leaves_no_family_half_rotated() {
    const FAMILIES: usize = 12;
    let env = TestEnv::new();
    // The in-process server only prepares the database and reads it back afterwards.
    let app = env.spawn().await;
    app.create_user("ann@example.com", PASSWORD, &[]).await;
    let client = app.first_party_client().await;
    let server = ServerProcess::start(&env);
    let http = reqwest::Client::new();

    let mut first = Vec::new();
    for _ in 0..FAMILIES {
        let response = post_token(
            &http,
            &server.address,
            &client,
            &[
                ("grant_type", "password"),
                ("username", "ann@example.com"),
                ("password", PASSWORD),
                ("scope", "api"),
            ],
        )
        .await
        .expect("login");
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.expect("json");
        first.push(body["refresh_token"].as_str().expect("refresh").to_string());
    }

    // Each family is refreshed in a loop, as fast as the server answers; every token a client
    // received is remembered. The process dies with requests in flight.
    let received: Arc<Vec<Mutex<Vec<String>>>> =
        Arc::new(first.into_iter().map(|t| Mutex::new(vec![t])).collect());
    let stop = Arc::new(AtomicBool::new(false));
    let mut storm = Vec::new();
    for family in 0..FAMILIES {
        let (received, stop, http, client) =
            (received.clone(), stop.clone(), http.clone(), client.clone());
        let base = server.address.clone();
        storm.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let current = received[family].lock().expect("lock").last().cloned();
                let current = current.expect("a token");
                let form = [("grant_type", "refresh_token"), ("refresh_token", &current)];
                let Ok(response) = post_token(&http, &base, &client, &form).await else {
                    return;
                };
                assert_eq!(response.status(), 200, "refresh before the kill");
                let Ok(body) = response.json::<Value>().await else {
                    return;
                };
                let next = body["refresh_token"].as_str().expect("refresh").to_string();
                received[family].lock().expect("lock").push(next);
            }
        }));
    }
    // The storm runs until 20 rotations per family or for 20 s, whichever comes first; the
    // kill lands mid-storm either way, and the count is asserted below.
    let started = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let done: usize = received.iter().map(|f| f.lock().expect("lock").len()).sum();
        if done >= FAMILIES * 20 || started.elapsed() > Duration::from_secs(20) {
            break;
        }
    }
    server.kill();
    stop.store(true, Ordering::Relaxed);
    for task in storm {
        task.await.expect("storm task");
    }
    let rotations: usize = received
        .iter()
        .map(|f| f.lock().expect("lock").len() - 1)
        .sum();
    assert!(
        rotations >= FAMILIES * 10,
        "only {rotations} rotations before the kill"
    );

    // The server starts cleanly on what the dead one left.
    let restarted = ServerProcess::start(&env);
    let mut in_flight = 0;
    for family in received.iter() {
        let tokens = family.lock().expect("lock").clone();
        let hashes: Vec<String> = tokens
            .iter()
            .map(|t| tessera::crypto::sha256_hex(t.as_bytes()))
            .collect();
        let last = hashes.last().expect("a token").clone();
        let (stored, live, revoked, successor) = db(&app, move |conn| {
            let stored: i64 = refresh_tokens::table
                .filter(refresh_tokens::token_hash.eq_any(&hashes))
                .count()
                .get_result(conn)?;
            let (family_id, used_at, replaced_by): (String, Option<i64>, Option<String>) =
                refresh_tokens::table
                    .find(&last)
                    .select((
                        refresh_tokens::family_id,
                        refresh_tokens::used_at,
                        refresh_tokens::replaced_by,
                    ))
                    .first(conn)?;
            let live: Vec<String> = refresh_tokens::table
                .filter(refresh_tokens::family_id.eq(&family_id))
                .filter(refresh_tokens::used_at.is_null())
                .select(refresh_tokens::token_hash)
                .load(conn)?;
            let revoked: Option<i64> = refresh_token_families::table
                .find(&family_id)
                .select(refresh_token_families::revoked_at)
                .first(conn)?;
            Ok((stored, live, revoked, used_at.and(replaced_by)))
        })
        .await;
        // Every token a client was handed was committed before the answer left.
        assert_eq!(
            stored as usize,
            tokens.len(),
            "a token a client received is gone"
        );
        assert!(revoked.is_none(), "a family was revoked by the crash");
        // Never two live tokens: a rotation is all or nothing.
        assert_eq!(live.len(), 1, "live tokens in one family: {live:?}");
        match successor {
            // The client's last token is still the live one: it works on the new process.
            None => {
                let last = tokens.last().expect("token");
                let form = [
                    ("grant_type", "refresh_token"),
                    ("refresh_token", last.as_str()),
                ];
                let response = post_token(&http, &restarted.address, &client, &form)
                    .await
                    .expect("refresh after restart");
                assert_eq!(response.status(), 200, "{:?}", response.text().await);
            }
            // Its refresh committed but the answer died with the process: the one live token
            // is that successor, which no client holds (the family ends by idle expiry).
            Some(successor) => {
                assert_eq!(live, vec![successor]);
                in_flight += 1;
            }
        }
    }
    assert!(
        in_flight < FAMILIES,
        "every family was mid-refresh: nothing was checked"
    );
    assert!(restarted.stop().success());
    app.stop().await;
}

/// A TCP proxy between Tessera and PostgreSQL that can be cut (every open connection reset,
/// new ones closed at once) and restored: what a PostgreSQL restart or a network partition
/// looks like from Tessera's side, without touching the PostgreSQL server other tests use.
struct Proxy {
    address: SocketAddr,
    up: Arc<AtomicBool>,
    cut: tokio::sync::watch::Sender<u64>,
}

impl Proxy {
    async fn start(upstream: String) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let up = Arc::new(AtomicBool::new(true));
        let (cut, generation) = tokio::sync::watch::channel(0u64);
        let accepting = up.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !accepting.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let upstream = upstream.clone();
                let mut generation = generation.clone();
                generation.mark_unchanged();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = generation.changed() => {}
                    }
                });
            }
        });
        Proxy { address, up, cut }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.cut.send_modify(|g| *g += 1);
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

/// `postgres://user@host:port/db?q` → ("host:port", the URL with `proxy` as host and port).
fn through(url: &str, proxy: SocketAddr) -> (String, String) {
    let (scheme, rest) = url.split_once("://").expect("scheme");
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let (user, host) = match authority.rsplit_once('@') {
        Some((user, host)) => (format!("{user}@"), host),
        None => (String::new(), authority),
    };
    let host = if host.contains(':') {
        host.to_string()
    } else {
        format!("{host}:5432")
    };
    (host, format!("{scheme}://{user}{proxy}{path}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "PostgreSQL only: scripts/test runs it on PostgreSQL"]
async fn postgres_only_going_away_gives_fast_503s_and_the_pool_recovers_by_itself() {
    let env = TestEnv::new();
    env.db.require_postgres();
    let placeholder: SocketAddr = "127.0.0.1:9".parse().expect("addr");
    let (upstream, _) = through(&env.db.url, placeholder);
    let proxy = Proxy::start(upstream).await;
    let (_, proxied) = through(&env.db.url, proxy.address);
    let mut settings = env.settings();
    settings.database.url = proxied;
    settings.database.connect_timeout_secs = 1;
    let app = env.spawn_with(settings).await;
    app.create_user("ann@example.com", PASSWORD, &[]).await;
    let client = app.first_party_client().await;
    let login = app
        .password_login((&client.0, &client.1), "ann@example.com", PASSWORD, "api")
        .await;
    assert_eq!(login.status(), 200);
    let body: Value = login.json().await.expect("json");
    let refresh = body["refresh_token"].as_str().expect("refresh").to_string();
    let refresh_form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh.as_str()),
    ];

    proxy.cut();
    // The first request finds the outage: its pooled connection is dead, so it opens a fresh
    // one to tell a dead database from one dead connection, bounded by connect_timeout_secs
    // (here the proxy refuses at once; behind a black hole it would take the whole timeout).
    // That request pays for finding out; it is exempt. From then on the breaker is open and
    // every request that needs the database is refused without touching it.
    for attempt in 0..20 {
        let started = Instant::now();
        let response = app.token((&client.0, &client.1), &refresh_form).await;
        let took = started.elapsed();
        assert_eq!(response.status(), 503, "attempt {attempt}");
        let retry: u64 = response.headers()["retry-after"]
            .to_str()
            .expect("ascii")
            .parse()
            .expect("seconds");
        assert!(retry >= 1);
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["error"], "temporarily_unavailable");
        let limit = if attempt == 0 {
            Duration::from_millis(2500)
        } else {
            Duration::from_millis(50)
        };
        assert!(took < limit, "attempt {attempt} took {took:?}");
    }
    assert_eq!(app.get("/readyz").await.status(), 503);
    // What needs no database keeps answering.
    assert_eq!(app.get("/.well-known/jwks.json").await.status(), 200);
    assert_eq!(
        app.get("/.well-known/openid-configuration").await.status(),
        200
    );
    assert_eq!(app.get("/healthz").await.status(), 200);
    let samples = crate::metrics::scrape(&app, &app.address).await;
    assert_eq!(
        crate::metrics::value(&samples, "tessera_db_breaker_open"),
        1.0
    );
    assert_eq!(
        crate::metrics::value(&samples, "tessera_db_breaker_trips_total"),
        1.0
    );

    proxy.restore();
    eventually(
        DEADLINE,
        "/readyz to answer 200 after the outage",
        || async { app.get("/readyz").await.status() == 200 },
    )
    .await;
    // Every pooled connection works again (none of the dead ones was kept), and the failed
    // attempts consumed nothing: the token from before the outage still rotates.
    let rotated = app.token((&client.0, &client.1), &refresh_form).await;
    assert_eq!(rotated.status(), 200, "{:?}", rotated.text().await);
    let samples = crate::metrics::scrape(&app, &app.address).await;
    assert_eq!(
        crate::metrics::value(&samples, "tessera_db_breaker_open"),
        0.0
    );
    for _ in 0..20 {
        let response = app
            .client
            .post(app.url("/introspect"))
            .basic_auth(&client.0, Some(&client.1))
            .form(&[("token", refresh.as_str())])
            .send()
            .await
            .expect("introspect");
        assert_eq!(response.status(), 200);
    }
    app.stop().await;
}

/// Runs SQL on the in-process server's own (single) SQLite connection.
async fn on_server_connection(app: &TestApp, sql: &'static str) {
    use diesel::connection::SimpleConnection;
    app.state
        .services
        .db
        .run(move |conn| conn.batch_execute(sql).map_err(DbError::from))
        .await
        .expect(sql);
}

async fn integrity(app: &TestApp) -> String {
    #[derive(QueryableByName)]
    struct Check {
        #[diesel(sql_type = diesel::sql_types::Text)]
        integrity_check: String,
    }
    let rows: Vec<Check> = db(app, |conn| {
        diesel::sql_query("PRAGMA integrity_check").load(conn)
    })
    .await;
    rows.into_iter().map(|r| r.integrity_check).collect()
}

fn assert_unavailable(response: &reqwest::Response, what: &str) {
    assert_eq!(response.status(), 503, "{what}");
    assert!(response.headers().contains_key("retry-after"), "{what}");
}

/// SQLite that cannot write: locked by another process past busy_timeout, full, read-only.
/// Each is a 503 with Retry-After (not a 500, not a hang), reads keep working where they can,
/// nothing half-written is left, and writing works again once the cause is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "SQLite only: scripts/test runs it on SQLite"]
async fn sqlite_only_locked_full_or_read_only_gives_503_and_loses_nothing() {
    let env = TestEnv::new();
    env.db.require_sqlite();
    let mut settings = env.settings();
    settings.database.sqlite_busy_timeout_ms = 200;
    let app = env.spawn_with(settings).await;
    app.create_user("ann@example.com", PASSWORD, &[]).await;
    let client = app.first_party_client().await;
    let client = (client.0.as_str(), client.1.as_str());
    let login = || app.password_login(client, "ann@example.com", PASSWORD, "openid api");
    let body: Value = login().await.json().await.expect("json");
    let mut refresh = body["refresh_token"].as_str().expect("refresh").to_string();
    let access = body["access_token"].as_str().expect("access").to_string();

    // Locked: another process holds the write lock.
    let path = env.db.url.trim_start_matches("sqlite://").to_string();
    let mut other = diesel::SqliteConnection::establish(&path).expect("second connection");
    {
        use diesel::connection::SimpleConnection;
        other
            .batch_execute("BEGIN IMMEDIATE")
            .expect("take the write lock");
        let started = Instant::now();
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh.as_str()),
        ];
        let response = app.token(client, &form).await;
        assert_unavailable(&response, "refresh while locked");
        assert!(started.elapsed() < Duration::from_secs(3));
        // Reads need no write lock (WAL).
        let userinfo = app
            .client
            .get(app.url("/userinfo"))
            .bearer_auth(&access)
            .send()
            .await
            .expect("userinfo");
        assert_eq!(userinfo.status(), 200);
        other.batch_execute("COMMIT").expect("release");
    }
    // The refused refresh consumed nothing.
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh.as_str()),
    ];
    let rotated: Value = app.token(client, &form).await.json().await.expect("json");
    refresh = rotated["refresh_token"]
        .as_str()
        .expect("rotated")
        .to_string();

    // Full: the database may not grow by a page (SQLITE_FULL, as on a full disk).
    on_server_connection(&app, "PRAGMA max_page_count = 1").await;
    let mut refused = 0;
    for _ in 0..30 {
        let response = login().await;
        if response.status() == 503 {
            assert_unavailable(&response, "login on a full disk");
            refused += 1;
        } else {
            assert_eq!(response.status(), 200);
        }
    }
    assert!(refused > 0, "the page limit never bit");
    on_server_connection(&app, "PRAGMA max_page_count = 1073741823").await;
    assert_eq!(login().await.status(), 200);

    // Read-only.
    on_server_connection(&app, "PRAGMA query_only = ON").await;
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh.as_str()),
    ];
    let response = app.token(client, &form).await;
    assert_unavailable(&response, "refresh on a read-only database");
    assert_eq!(app.get("/readyz").await.status(), 200, "reads still work");
    on_server_connection(&app, "PRAGMA query_only = OFF").await;
    let response = app.token(client, &form).await;
    assert_eq!(response.status(), 200, "{:?}", response.text().await);

    // A locked, full or read-only file is not a database that went away: no breaker opened.
    let samples = crate::metrics::scrape(&app, &app.address).await;
    assert_eq!(
        crate::metrics::value(&samples, "tessera_db_breaker_trips_total"),
        0.0
    );
    assert_eq!(integrity(&app).await, "ok");
    app.stop().await;
}
