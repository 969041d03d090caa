//! Load that presents each body of a file once, in order: for refresh tokens, which work once.
//! oha picks its body lines at random, so it presents some tokens twice, and the server rightly
//! refuses the second as reuse (and revokes the family); with tens of thousands of tokens per
//! round that was 10–16 % of oha's requests, none of which a real client sends.
//!
//! Plain HTTP/1.1 with keep-alive over `clients` connections on one thread pinned to the load
//! cores; latency is measured per request from the first byte written to the last byte read.

use std::cell::Cell;
use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use base64::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::limits::pinned;
use crate::load::Outcome;

/// Form POSTs with client_secret_basic to `url` (`http://127.0.0.1:PORT/path`), one per line
/// of `lines`, each line at most once, for `time` or until the lines run out (an error: the
/// round would be shorter than asked).
pub fn form_lines(
    cpus: &str,
    url: &str,
    client: (&str, &str),
    lines: &Path,
    clients: usize,
    time: Duration,
) -> Result<Outcome> {
    let (host, path) = url
        .strip_prefix("http://")
        .and_then(|rest| rest.split_once('/'))
        .context("an http:// URL with a path")?;
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", client.0, client.1));
    let text = std::fs::read_to_string(lines)?;
    let requests: Vec<Vec<u8>> = text
        .lines()
        .filter(|line| !line.is_empty())
        .map(|body| {
            format!(
                "POST /{path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Basic {basic}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .into_bytes()
        })
        .collect();
    let host = host.to_string();
    pinned(cpus, move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async move {
            let local = tokio::task::LocalSet::new();
            local.run_until(drive(&host, requests, clients, time)).await
        })
    })?
}

/// What connections of a load counted: answers, failures and each answer's latency.
#[derive(Default)]
pub struct Tally {
    pub ok: u64,
    pub failed: u64,
    pub latencies_us: Vec<u32>,
}

impl Tally {
    pub fn add(&mut self, part: Tally) {
        self.ok += part.ok;
        self.failed += part.failed;
        self.latencies_us.extend(part.latencies_us);
    }

    /// The rate over `time` and the latency percentiles.
    pub fn into_outcome(mut self, time: Duration) -> Outcome {
        self.latencies_us.sort_unstable();
        let all = &self.latencies_us;
        let percentile = |p: f64| {
            if all.is_empty() {
                return f64::NAN;
            }
            let index = ((all.len() as f64 * p).ceil() as usize).clamp(1, all.len()) - 1;
            all[index] as f64 / 1000.0
        };
        Outcome {
            ok_per_sec: self.ok as f64 / time.as_secs_f64(),
            failed: self.failed,
            p50_ms: percentile(0.50),
            p99_ms: percentile(0.99),
        }
    }
}

async fn drive(
    host: &str,
    requests: Vec<Vec<u8>>,
    clients: usize,
    time: Duration,
) -> Result<Outcome> {
    let requests = Rc::new(requests);
    let next = Rc::new(Cell::new(0usize));
    let mut connections = Vec::new();
    for _ in 0..clients {
        let stream = TcpStream::connect(host).await.context("connect")?;
        stream.set_nodelay(true)?;
        connections.push(stream);
    }
    let started = Instant::now();
    let deadline = started + time;
    let tasks: Vec<_> = connections
        .into_iter()
        .map(|stream| {
            let (requests, next) = (requests.clone(), next.clone());
            tokio::task::spawn_local(connection(stream, requests, next, deadline))
        })
        .collect();
    let mut tally = Tally::default();
    for task in tasks {
        tally.add(task.await??);
    }
    if next.get() >= requests.len() {
        bail!(
            "the {} request bodies ran out before {} s: seed more",
            requests.len(),
            time.as_secs()
        );
    }
    Ok(tally.into_outcome(time))
}

/// One keep-alive connection: the next unsent request, its answer, again, until the deadline.
/// Only answers completed by the deadline count, as with oha.
async fn connection(
    mut stream: TcpStream,
    requests: Rc<Vec<Vec<u8>>>,
    next: Rc<Cell<usize>>,
    deadline: Instant,
) -> Result<Tally> {
    let mut tally = Tally::default();
    let mut buffer = Vec::with_capacity(4096);
    loop {
        let index = next.get();
        if index >= requests.len() || Instant::now() >= deadline {
            return Ok(tally);
        }
        next.set(index + 1);
        let sent = Instant::now();
        let exchange = async {
            stream.write_all(&requests[index]).await?;
            read_response(&mut stream, &mut buffer).await
        };
        let status = match tokio::time::timeout_at(deadline.into(), exchange).await {
            Ok(status) => status?,
            Err(_) => return Ok(tally),
        };
        tally
            .latencies_us
            .push(sent.elapsed().as_micros().min(u32::MAX as u128) as u32);
        if (200..300).contains(&status) {
            tally.ok += 1;
        } else {
            tally.failed += 1;
        }
    }
}

/// Reads one response with a Content-Length body; returns its status code. Each connection
/// has one request outstanding, so nothing after the body belongs to a later answer.
async fn read_response(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Result<u16> {
    read_answer(stream, buffer).await.map(|(status, _)| status)
}

/// As `read_response`, also returning the length of the head: `buffer[..head]` is the status
/// line and headers, `buffer[head..]` the body.
pub async fn read_answer(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Result<(u16, usize)> {
    buffer.clear();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = find(buffer, b"\r\n\r\n") {
            break at + 4;
        }
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            bail!("the server closed the connection");
        }
        buffer.extend_from_slice(&chunk[..read]);
    };
    let head = std::str::from_utf8(&buffer[..head_end]).context("response head")?;
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .context("status line")?;
    let length: usize = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .context("a Content-Length header")?;
    while buffer.len() < head_end + length {
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            bail!("the server closed the connection mid-body");
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
    Ok((status, head_end))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
