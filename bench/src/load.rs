//! Load from `oha`, a standard HTTP load generator, pinned to the cores the server does not
//! use; its JSON summary gives throughput and latency percentiles. And load from wrk, for the
//! benches that use it (`signing`, `peers`), pinned the same way.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};

pub struct Oha {
    path: PathBuf,
    cpus: String,
}

pub struct Request {
    url: String,
    form: Option<(String, Body)>,
}

enum Body {
    Fixed(String),
    /// A file of bodies, one per line; oha picks a line at random for each request.
    Lines(std::path::PathBuf),
}

impl Request {
    pub fn get(url: &str) -> Request {
        Request {
            url: url.to_string(),
            form: None,
        }
    }

    /// A form POST with client_secret_basic authentication.
    pub fn form(url: &str, client_id: &str, secret: &str, body: &str) -> Request {
        Request {
            url: url.to_string(),
            form: Some((
                format!("{client_id}:{secret}"),
                Body::Fixed(body.to_string()),
            )),
        }
    }

    /// As `form`, each request's body a random line of `lines`.
    pub fn form_lines(
        url: &str,
        client_id: &str,
        secret: &str,
        lines: &std::path::Path,
    ) -> Request {
        Request {
            url: url.to_string(),
            form: Some((
                format!("{client_id}:{secret}"),
                Body::Lines(lines.to_path_buf()),
            )),
        }
    }
}

pub struct Outcome {
    /// Successful (2xx) answers per second.
    pub ok_per_sec: f64,
    pub failed: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

impl Oha {
    pub fn find(cpus: &str) -> Result<Oha> {
        let candidates = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .chain(std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo/bin")));
        for dir in candidates {
            let path = dir.join("oha");
            if path.is_file() {
                return Ok(Oha {
                    path,
                    cpus: cpus.to_string(),
                });
            }
        }
        bail!("oha not found: install it with `cargo install oha`")
    }

    fn spawn(
        &self,
        request: &Request,
        clients: usize,
        time: Duration,
        qps: Option<u32>,
    ) -> Result<Child> {
        let mut command = Command::new("taskset");
        command
            .args(["-c", &self.cpus])
            .arg(&self.path)
            .args([
                "--no-tui",
                "--output-format",
                "json",
                "--worker-threads",
                "1",
            ])
            .args(["-z", &format!("{}s", time.as_secs())])
            .args(["-c", &clients.to_string()]);
        if let Some(qps) = qps {
            command.args(["-q", &qps.to_string(), "--latency-correction"]);
        }
        if let Some((basic, body)) = &request.form {
            command
                .args(["-m", "POST", "-T", "application/x-www-form-urlencoded"])
                .args(["-a", basic]);
            match body {
                Body::Fixed(text) => command.args(["-d", text]),
                Body::Lines(path) => command.arg("-Z").arg(path),
            };
        }
        command
            .arg(&request.url)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("run oha")
    }

    pub fn run(
        &self,
        request: &Request,
        clients: usize,
        time: Duration,
        qps: Option<u32>,
    ) -> Result<Outcome> {
        parse(self.spawn(request, clients, time, qps)?)
    }

    /// Two loads at once (e.g. a login storm and a JWKS probe beside it).
    pub fn run_beside(
        &self,
        a: (&Request, usize, Duration),
        b: (&Request, usize, Duration, Option<u32>),
    ) -> Result<(Outcome, Outcome)> {
        let first = self.spawn(a.0, a.1, a.2, None)?;
        let second = self.spawn(b.0, b.1, b.2, b.3)?;
        Ok((parse(first)?, parse(second)?))
    }
}

fn parse(child: Child) -> Result<Outcome> {
    let output = child.wait_with_output()?;
    if !output.status.success() {
        bail!("oha failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).context("oha JSON")?;
    let per_sec = json["summary"]["requestsPerSec"].as_f64().unwrap_or(0.0);
    let codes = json["statusCodeDistribution"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let total: u64 = codes.values().filter_map(|v| v.as_u64()).sum();
    let ok: u64 = codes
        .iter()
        .filter(|(code, _)| code.starts_with('2'))
        .filter_map(|(_, v)| v.as_u64())
        .sum();
    let share = if total == 0 {
        0.0
    } else {
        ok as f64 / total as f64
    };
    let latency = &json["metrics"]["latency_ms"];
    Ok(Outcome {
        ok_per_sec: per_sec * share,
        failed: total - ok,
        p50_ms: latency["p50"].as_f64().unwrap_or(f64::NAN),
        p99_ms: latency["p99"].as_f64().unwrap_or(f64::NAN),
    })
}

/// One wrk load's result, as wrk reports it.
#[derive(Clone, Copy, Debug)]
pub struct Rate {
    /// Answers per second, whatever their status.
    pub per_sec: f64,
    /// Answers with a status other than the expected one's class (wrk's non-2xx count until
    /// `post` turns it round for a load whose answers should be 4xx).
    pub unexpected: u64,
    pub total: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// Load from wrk (Debian's package), one thread, pinned to the cores the server does not use.
pub struct Wrk {
    cpus: String,
    dir: PathBuf,
}

impl Wrk {
    /// `dir` holds the Lua scripts that POST loads need.
    pub fn find(cpus: &str, dir: &Path) -> Result<Wrk> {
        let found = Command::new("wrk").arg("--version").output();
        if found.is_err() {
            bail!("wrk not found: apt-get install wrk");
        }
        Ok(Wrk {
            cpus: cpus.to_string(),
            dir: dir.to_path_buf(),
        })
    }

    /// GETs `url` from `connections` connections for `time`; the answers should be 2xx.
    pub fn get(&self, url: &str, connections: usize, time: Duration) -> Result<Rate> {
        self.run(None, url, connections, time)
    }

    /// POSTs `body` with HTTP Basic `basic` to `url` from `connections` connections for
    /// `time`; `ok` says whether the answers should be 2xx (else 4xx).
    pub fn post(
        &self,
        url: &str,
        basic: &str,
        body: &str,
        connections: usize,
        time: Duration,
        ok: bool,
    ) -> Result<Rate> {
        use base64::Engine;
        let script = self.dir.join(format!("post-{}.lua", std::process::id()));
        let auth = base64::engine::general_purpose::STANDARD.encode(basic);
        std::fs::write(
            &script,
            format!(
                "wrk.method = \"POST\"\n\
                 wrk.body = \"{body}\"\n\
                 wrk.headers[\"Content-Type\"] = \"application/x-www-form-urlencoded\"\n\
                 wrk.headers[\"Authorization\"] = \"Basic {auth}\"\n"
            ),
        )?;
        let mut rate = self.run(Some(&script), url, connections, time)?;
        if !ok {
            // Expected: every answer a 4xx, which wrk counts as non-2xx.
            rate.unexpected = rate.total - rate.unexpected;
        }
        Ok(rate)
    }

    fn run(
        &self,
        script: Option<&Path>,
        url: &str,
        connections: usize,
        time: Duration,
    ) -> Result<Rate> {
        let mut command = Command::new("taskset");
        command
            .args(["-c", &self.cpus, "wrk", "-t1"])
            .args(["-c", &connections.to_string()])
            .args(["-d", &format!("{}s", time.as_secs())])
            .arg("--latency");
        if let Some(script) = script {
            command.arg("-s").arg(script);
        }
        let output = command.arg(url).output().context("run wrk")?;
        if !output.status.success() {
            bail!("wrk failed: {}", String::from_utf8_lossy(&output.stderr));
        }
        parse_wrk(&String::from_utf8_lossy(&output.stdout))
    }
}

/// Requests/sec, the 50% and 99% latencies, the requests made and the non-2xx answers.
fn parse_wrk(text: &str) -> Result<Rate> {
    let mut rate = Rate {
        per_sec: 0.0,
        unexpected: 0,
        total: 0,
        p50_ms: f64::NAN,
        p99_ms: f64::NAN,
    };
    let duration_ms = |value: &str| -> f64 {
        let split = value
            .find(|c: char| c.is_ascii_alphabetic())
            .unwrap_or(value.len());
        let (number, unit) = value.split_at(split);
        let number: f64 = number.parse().unwrap_or(f64::NAN);
        match unit {
            "us" => number / 1000.0,
            "ms" => number,
            "s" => number * 1000.0,
            "m" => number * 60_000.0,
            _ => f64::NAN,
        }
    };
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", value] => rate.per_sec = value.parse().unwrap_or(0.0),
            ["50%", value] => rate.p50_ms = duration_ms(value),
            ["99%", value] => rate.p99_ms = duration_ms(value),
            ["Non-2xx", "or", "3xx", "responses:", value] => {
                rate.unexpected = value.parse().unwrap_or(0)
            }
            [count, "requests", "in", ..] => rate.total = count.parse().unwrap_or(0),
            _ => {}
        }
    }
    if rate.per_sec == 0.0 {
        bail!("no Requests/sec in wrk's output:\n{text}");
    }
    Ok(rate)
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_output_is_read() {
        let text = "Running 1s test @ http://127.0.0.1:1/token\n  1 threads and 32 connections\n  Latency Distribution\n     50%  812.00us\n     75%    1.10ms\n     90%    1.50ms\n     99%    2.31ms\n  1234 requests in 1.00s, 1.00MB read\n  Non-2xx or 3xx responses: 3\nRequests/sec:   1234.50\nTransfer/sec:      1.00MB\n";
        let rate = parse_wrk(text).expect("parses");
        assert_eq!(rate.per_sec, 1234.5);
        assert_eq!(rate.unexpected, 3);
        assert_eq!(rate.total, 1234);
        assert!((rate.p50_ms - 0.812).abs() < 1e-9);
        assert!((rate.p99_ms - 2.31).abs() < 1e-9);
    }
}
