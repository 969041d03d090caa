//! Load from `oha`, a standard HTTP load generator, pinned to the cores the server does not
//! use; its JSON summary gives throughput and latency percentiles.

use std::path::PathBuf;
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
