//! `tessera-bench sso`: single sign-on's hot path. One person signs in once at the login page
//! (a real form post, for the session cookie); then the load is what every app's visit costs
//! once they are signed in: `GET /authorize` with the session cookie, answered `303` with a
//! code and no page, and in a second load that code's exchange at `/token` right after it.
//!
//! The `/authorize` step does no signing: it looks up the client, the session and its user,
//! and inserts the code (one transaction; the session is touched at most once a minute). Its
//! limit is therefore the database's: single-row writes per second from one connection, each
//! its own transaction, measured on the server's core before the server starts and after it
//! stops (an UPDATE of one row, as for refresh, and an INSERT of one row, which is what a code
//! is). The exchange signs an access token and an ID token, so the pair is also compared with
//! half the RS256 signing rate.
//!
//! Load: plain HTTP/1.1 keep-alive over `clients` connections on one thread pinned to the
//! load cores (as `walk`), each connection sending its next request when the last is answered.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use base64::Engine;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::limits::{self, pinned};
use crate::load::Outcome;
use crate::server::{self, SSO_REDIRECT, Server, SsoSeed};
use crate::walk::{Tally, read_answer};

/// A PKCE verifier (RFC 7636: 43–128 characters); every request uses the same one.
const VERIFIER: &str = "tessera-bench-sso-pkce-verifier-0123456789-abcdefghijklmnop";

pub fn run(binary: &Path, server_cores: usize, seconds: Duration, clients: usize) -> Result<()> {
    let (server_cpus, load_cpus) = crate::split_cores(server_cores)?;
    let dir = tempfile::tempdir()?;
    let setup = server::Setup::new(binary, dir.path(), None, Some(server_cpus.clone()));
    let seed = setup.seed_sso()?;
    let writes = || -> Result<(f64, f64)> {
        let url = setup.database_url();
        let updates = pinned(&server_cpus, || limits::single_row_updates_per_sec(url))??;
        let inserts = pinned(&server_cpus, || limits::single_row_inserts_per_sec(url))??;
        Ok((updates, inserts))
    };
    let (updates_before, inserts_before) = writes()?;

    let started = Instant::now();
    let mut server = Server::start(&setup)?;
    server.wait_for_jwks(started)?;
    let session = sign_in(server.port, &seed)?;
    let signs_before = limits::rs256_signs_per_sec_for(&server_cpus, Duration::from_secs(1))?;
    let host = format!("127.0.0.1:{}", server.port);
    let authorize_only = load(
        &load_cpus,
        &host,
        &seed,
        &session,
        Mode::Authorize,
        clients,
        seconds,
    )?;
    let pairs = load(
        &load_cpus,
        &host,
        &seed,
        &session,
        Mode::Pair,
        clients,
        seconds,
    )?;
    let signs_after = limits::rs256_signs_per_sec_for(&server_cpus, Duration::from_secs(1))?;
    server.stop()?;
    let codes = codes_issued(setup.database_url())?;
    let (updates_after, inserts_after) = writes()?;

    let updates = (updates_before + updates_after) / 2.0;
    let inserts = (inserts_before + inserts_after) / 2.0;
    let sign_limit = server_cores as f64 * (signs_before + signs_after) / 2.0;
    let pair_sign_limit = sign_limit / 2.0;
    let a = &authorize_only;
    let p = &pairs;
    println!(
        "SQLite; server pinned to {server_cores} core(s) ({server_cpus}), the load on {load_cpus}; {clients} clients; {} s per load; one person signed in once, every request carries their session cookie.",
        seconds.as_secs()
    );
    println!();
    println!("| path | req/s | p50 | p99 | limit | ratio | target |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    println!(
        "| `GET /authorize` with a session → 303 with a code | {:.0} | {:.2} ms | {:.2} ms | {:.0}/s single-row updates (SQLite, 1 connection) | {:.2} | |",
        a.ok_per_sec,
        a.p50_ms,
        a.p99_ms,
        updates,
        a.ok_per_sec / updates
    );
    println!(
        "| | | | | {:.0}/s single-row inserts (SQLite, 1 connection): the write a code is | {:.2} | ≥ 0.5 |",
        inserts,
        a.ok_per_sec / inserts
    );
    println!(
        "| `/authorize` then `/token` (the pair) | {:.0} pairs/s | {:.2} ms | {:.2} ms | {:.0}/s single-row updates | {:.2} | |",
        p.ok_per_sec,
        p.p50_ms,
        p.p99_ms,
        updates,
        p.ok_per_sec / updates
    );
    println!(
        "| | | | | {:.0}/s = {server_cores} × {:.0} RS256 signs/s ÷ 2 (access and ID token) | {:.2} | |",
        pair_sign_limit,
        sign_limit / server_cores as f64,
        p.ok_per_sec / pair_sign_limit
    );
    println!();
    println!(
        "Limits: single-row updates {updates_before:.0}/s before the server ran and {updates_after:.0}/s after, inserts {inserts_before:.0}/s and {inserts_after:.0}/s; RS256 signs {signs_before:.0}/s and {signs_after:.0}/s around the loads. Failed answers: /authorize {}, pairs {}. Codes in the database after the run: {codes} (one per answered `/authorize`, and the sign-in's).",
        a.failed, p.failed
    );
    Ok(())
}

/// Signs the person in at the login page as a browser would: the page (its CSRF cookie and
/// field), then the form. Returns the session cookie's value.
fn sign_in(port: u16, seed: &SsoSeed) -> Result<String> {
    let query = authorize_query(&seed.client_id);
    let page = once(
        port,
        &format!(
            "GET /authorize?{query} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/html\r\nConnection: close\r\n\r\n"
        ),
    )?;
    if !page.starts_with("HTTP/1.1 200") {
        bail!("the login page: {}", first_line(&page));
    }
    let csrf_cookie = set_cookie(&page, "tessera_csrf").context("no CSRF cookie")?;
    let csrf_field = page
        .split("name=\"csrf_token\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .context("no CSRF field on the login page")?;
    let body = format!(
        "{query}&csrf_token={csrf_field}&email={}&password={}",
        seed.email.replace('@', "%40"),
        seed.password
    );
    let answer = once(
        port,
        &format!(
            "POST /authorize HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nCookie: tessera_csrf={csrf_cookie}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )?;
    if !answer.starts_with("HTTP/1.1 303") {
        bail!("the sign-in: {}", first_line(&answer));
    }
    set_cookie(&answer, "tessera_session").context("no session cookie after the sign-in")
}

/// The authorization request of every load request: openid and email, PKCE, state, nonce.
fn authorize_query(client_id: &str) -> String {
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        VERIFIER.as_bytes(),
    ));
    format!(
        "response_type=code&client_id={client_id}&redirect_uri={}&scope=openid%20email&state=bench-state&nonce=bench-nonce&code_challenge={challenge}&code_challenge_method=S256",
        encode(SSO_REDIRECT)
    )
}

/// Percent-encodes the characters a URL in a query needs encoded.
fn encode(value: &str) -> String {
    value
        .replace('%', "%25")
        .replace(':', "%3A")
        .replace('/', "%2F")
        .replace('?', "%3F")
        .replace('&', "%26")
        .replace('=', "%3D")
}

/// One request on a fresh connection (setting up, not load); the whole answer as text.
fn once(port: u16, request: &str) -> Result<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    stream.write_all(request.as_bytes())?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    Ok(answer)
}

fn first_line(answer: &str) -> &str {
    answer.lines().next().unwrap_or_default()
}

/// The value of the cookie `name` an answer sets.
fn set_cookie(answer: &str, name: &str) -> Option<String> {
    let head = answer.split("\r\n\r\n").next()?;
    head.lines().find_map(|line| {
        let (header, value) = line.split_once(':')?;
        if !header.eq_ignore_ascii_case("set-cookie") {
            return None;
        }
        let pair = value.trim().split(';').next()?;
        let (cookie, content) = pair.split_once('=')?;
        (cookie == name && !content.is_empty()).then(|| content.to_string())
    })
}

/// The code in a 303's `Location`, if it carries one.
fn code_in(head: &str) -> Option<&str> {
    let location = head.lines().find_map(|line| {
        let (header, value) = line.split_once(':')?;
        header
            .eq_ignore_ascii_case("location")
            .then_some(value.trim())
    })?;
    let query = location.split_once('?')?.1;
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("code="))
        .filter(|code| !code.is_empty())
}

#[derive(Clone, Copy)]
enum Mode {
    /// `GET /authorize` only; a 303 with a code counts.
    Authorize,
    /// `GET /authorize`, then the code's exchange; a 200 from `/token` counts the pair.
    Pair,
}

/// The requests of one load, prepared once.
struct Requests {
    host: String,
    authorize: Vec<u8>,
    client_id: String,
}

impl Requests {
    fn token(&self, code: &str) -> Vec<u8> {
        let body = format!(
            "grant_type=authorization_code&code={code}&redirect_uri={}&client_id={}&code_verifier={VERIFIER}",
            encode(SSO_REDIRECT),
            self.client_id
        );
        format!(
            "POST /token HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            self.host,
            body.len()
        )
        .into_bytes()
    }
}

fn load(
    cpus: &str,
    host: &str,
    seed: &SsoSeed,
    session: &str,
    mode: Mode,
    clients: usize,
    time: Duration,
) -> Result<Outcome> {
    let requests = Requests {
        host: host.to_string(),
        authorize: format!(
            "GET /authorize?{} HTTP/1.1\r\nHost: {host}\r\nCookie: tessera_session={session}\r\n\r\n",
            authorize_query(&seed.client_id)
        )
        .into_bytes(),
        client_id: seed.client_id.clone(),
    };
    pinned(cpus, move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async move {
            let local = tokio::task::LocalSet::new();
            local.run_until(drive(requests, mode, clients, time)).await
        })
    })?
}

async fn drive(requests: Requests, mode: Mode, clients: usize, time: Duration) -> Result<Outcome> {
    let requests = std::rc::Rc::new(requests);
    let mut connections = Vec::new();
    for _ in 0..clients {
        let stream = TcpStream::connect(&requests.host)
            .await
            .context("connect")?;
        stream.set_nodelay(true)?;
        connections.push(stream);
    }
    let deadline = Instant::now() + time;
    let tasks: Vec<_> = connections
        .into_iter()
        .map(|stream| {
            tokio::task::spawn_local(connection(stream, requests.clone(), mode, deadline))
        })
        .collect();
    let mut tally = Tally::default();
    for task in tasks {
        tally.add(task.await??);
    }
    Ok(tally.into_outcome(time))
}

/// One keep-alive connection, one round (an `/authorize`, or the pair) after another until the
/// deadline; a round not finished by the deadline does not count.
async fn connection(
    mut stream: TcpStream,
    requests: std::rc::Rc<Requests>,
    mode: Mode,
    deadline: Instant,
) -> Result<Tally> {
    let mut tally = Tally::default();
    let mut buffer = Vec::with_capacity(4096);
    while Instant::now() < deadline {
        let sent = Instant::now();
        let round = async {
            stream.write_all(&requests.authorize).await?;
            let (status, head) = read_answer(&mut stream, &mut buffer).await?;
            let head = std::str::from_utf8(&buffer[..head]).context("response head")?;
            let code = match (status, code_in(head)) {
                (303, Some(code)) => code.to_string(),
                _ => return Ok::<bool, anyhow::Error>(false),
            };
            if let Mode::Authorize = mode {
                return Ok(true);
            }
            stream.write_all(&requests.token(&code)).await?;
            let (status, _) = read_answer(&mut stream, &mut buffer).await?;
            Ok(status == 200)
        };
        let ok = match tokio::time::timeout_at(deadline.into(), round).await {
            Ok(ok) => ok?,
            Err(_) => return Ok(tally),
        };
        tally
            .latencies_us
            .push(sent.elapsed().as_micros().min(u32::MAX as u128) as u32);
        if ok {
            tally.ok += 1;
        } else {
            tally.failed += 1;
        }
    }
    Ok(tally)
}

/// How many codes the database holds (a check that the load did what it says), read after
/// the server stopped.
fn codes_issued(database_url: &str) -> Result<i64> {
    use diesel::prelude::*;
    use tessera::db::schema::authorization_codes::dsl::authorization_codes;
    let mut settings = tessera::config::Settings::defaults()?;
    settings.database.url = database_url.to_string();
    let db = tessera::db::Database::connect(&settings.database)?;
    let mut conn = db.get()?;
    Ok(authorization_codes.count().get_result::<i64>(&mut *conn)?)
}
