//! Prometheus metrics, rendered by hand in the text exposition format (version 0.0.4): a few
//! atomics per series, no registry crate and no global. One `Metrics` lives in `Services`;
//! the request middleware and the domain modules count into it, `GET /metrics` renders it.
//!
//! The hot path (every request) is a read lock on a small map plus three atomic adds: series
//! are keyed by route *pattern* and status, so their number is bounded by the routes.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, PoisonError};
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds: from a JWKS answer (tens of µs) to an
/// argon2 login queued behind others (seconds).
const LATENCY_BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// The grant types whose issued tokens are counted (the token endpoint refuses any other).
pub const GRANT_TYPES: [&str; 4] = [
    "authorization_code",
    "client_credentials",
    "password",
    "refresh_token",
];

/// Label value for requests no route matched (kept apart so scanners cannot grow the series).
pub const UNMATCHED_ROUTE: &str = "unmatched";

#[derive(Default)]
struct LatencySeries {
    count: AtomicU64,
    sum_micros: AtomicU64,
    /// Per bucket, not cumulative; the last one counts everything above the largest bound.
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
}

impl LatencySeries {
    fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let index = LATENCY_BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(LATENCY_BUCKETS.len());
        if let Some(bucket) = self.buckets.get(index) {
            bucket.fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Relaxed);
    }
}

/// Gauges read from the running parts at scrape time rather than counted.
#[derive(Debug, Clone, Copy, Default)]
pub struct Gauges {
    pub db_connections_in_use: u64,
    pub db_connections_idle: u64,
    pub db_queue_depth: u64,
    pub hash_queue_depth: u64,
    /// Read from the hashing pool, which counts them itself; a counter, not a gauge.
    pub password_hashes: u64,
}

#[derive(Default)]
pub struct Metrics {
    requests: RwLock<HashMap<(String, u16), Arc<LatencySeries>>>,
    tokens_issued: [AtomicU64; GRANT_TYPES.len()],
    login_failures: AtomicU64,
    throttled: AtomicU64,
    refresh_reuse: AtomicU64,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics::default()
    }

    /// One answered request: `route` is the matched pattern (e.g. `/admin/users/{id}`), never
    /// the raw path.
    pub fn observe_request(&self, route: Option<String>, status: u16, elapsed: Duration) {
        let key = (route.unwrap_or_else(|| UNMATCHED_ROUTE.to_string()), status);
        let existing = self
            .requests
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
            .cloned();
        let series = match existing {
            Some(series) => series,
            None => self
                .requests
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(key)
                .or_default()
                .clone(),
        };
        series.observe(elapsed);
    }

    pub fn token_issued(&self, grant_type: &str) {
        if let Some(index) = GRANT_TYPES.iter().position(|g| *g == grant_type)
            && let Some(counter) = self.tokens_issued.get(index)
        {
            counter.fetch_add(1, Relaxed);
        }
    }

    pub fn login_failed(&self) {
        self.login_failures.fetch_add(1, Relaxed);
    }

    pub fn login_throttled(&self) {
        self.throttled.fetch_add(1, Relaxed);
    }

    pub fn refresh_reuse_detected(&self) {
        self.refresh_reuse.fetch_add(1, Relaxed);
    }

    /// The Prometheus text exposition of everything, with `gauges` read by the caller.
    pub fn render(&self, gauges: Gauges) -> String {
        let mut out = String::with_capacity(4096);
        self.render_requests(&mut out);

        header(
            &mut out,
            "tessera_tokens_issued_total",
            "counter",
            "Token responses issued, by grant type.",
        );
        for (grant, counter) in GRANT_TYPES.iter().zip(&self.tokens_issued) {
            let _ = writeln!(
                out,
                "tessera_tokens_issued_total{{grant_type=\"{grant}\"}} {}",
                counter.load(Relaxed)
            );
        }
        let counters = [
            (
                "tessera_login_failures_total",
                "Password checks that failed (unknown user, wrong password, disabled account).",
                &self.login_failures,
            ),
            (
                "tessera_throttled_requests_total",
                "Login attempts refused by the failed-login throttle.",
                &self.throttled,
            ),
            (
                "tessera_refresh_reuse_detected_total",
                "Replayed refresh tokens detected (each revoked its family).",
                &self.refresh_reuse,
            ),
        ];
        for (name, help, counter) in counters {
            header(&mut out, name, "counter", help);
            let _ = writeln!(out, "{name} {}", counter.load(Relaxed));
        }
        header(
            &mut out,
            "tessera_password_hashes_total",
            "counter",
            "Argon2 hashes computed for new passwords (registrations, resets, changes, rehashes).",
        );
        let _ = writeln!(
            out,
            "tessera_password_hashes_total {}",
            gauges.password_hashes
        );
        let gauges = [
            (
                "tessera_db_connections_in_use",
                "Database connections checked out of the pool.",
                gauges.db_connections_in_use,
            ),
            (
                "tessera_db_connections_idle",
                "Database connections idle in the pool.",
                gauges.db_connections_idle,
            ),
            (
                "tessera_db_queue_depth",
                "Database jobs waiting for a database thread.",
                gauges.db_queue_depth,
            ),
            (
                "tessera_password_hash_queue_depth",
                "Password hashes and checks waiting for an argon2 thread.",
                gauges.hash_queue_depth,
            ),
        ];
        for (name, help, value) in gauges {
            header(&mut out, name, "gauge", help);
            let _ = writeln!(out, "{name} {value}");
        }
        out
    }

    fn render_requests(&self, out: &mut String) {
        let mut series: Vec<((String, u16), Arc<LatencySeries>)> = self
            .requests
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(key, series)| (key.clone(), series.clone()))
            .collect();
        series.sort_by(|a, b| a.0.cmp(&b.0));
        header(
            out,
            "tessera_http_requests_total",
            "counter",
            "HTTP requests answered, by route pattern and status.",
        );
        for ((route, status), s) in &series {
            let _ = writeln!(
                out,
                "tessera_http_requests_total{{route=\"{}\",status=\"{status}\"}} {}",
                escape(route),
                s.count.load(Relaxed)
            );
        }
        header(
            out,
            "tessera_http_request_duration_seconds",
            "histogram",
            "Time from a request's arrival to its response, by route pattern and status.",
        );
        for ((route, status), s) in &series {
            let labels = format!("route=\"{}\",status=\"{status}\"", escape(route));
            let mut cumulative = 0u64;
            for (bound, bucket) in LATENCY_BUCKETS.iter().zip(&s.buckets) {
                cumulative += bucket.load(Relaxed);
                let _ = writeln!(
                    out,
                    "tessera_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {cumulative}"
                );
            }
            // The count read once, so +Inf and _count agree even while requests arrive.
            let count = s.count.load(Relaxed).max(cumulative);
            let _ = writeln!(
                out,
                "tessera_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {count}"
            );
            let _ = writeln!(
                out,
                "tessera_http_request_duration_seconds_sum{{{labels}}} {}",
                s.sum_micros.load(Relaxed) as f64 / 1e6
            );
            let _ = writeln!(
                out,
                "tessera_http_request_duration_seconds_count{{{labels}}} {count}"
            );
        }
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A label value as the exposition format wants it.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_lands_in_its_bucket_and_the_histogram_is_cumulative() {
        let metrics = Metrics::new();
        metrics.observe_request(Some("/token".into()), 200, Duration::from_micros(700));
        metrics.observe_request(Some("/token".into()), 200, Duration::from_secs(9));
        metrics.observe_request(None, 404, Duration::from_micros(10));
        let text = metrics.render(Gauges::default());
        assert!(text.contains("tessera_http_requests_total{route=\"/token\",status=\"200\"} 2"));
        assert!(text.contains(
            "tessera_http_request_duration_seconds_bucket{route=\"/token\",status=\"200\",le=\"0.0005\"} 0"
        ));
        assert!(text.contains(
            "tessera_http_request_duration_seconds_bucket{route=\"/token\",status=\"200\",le=\"0.001\"} 1"
        ));
        assert!(text.contains(
            "tessera_http_request_duration_seconds_bucket{route=\"/token\",status=\"200\",le=\"5\"} 1"
        ));
        assert!(text.contains(
            "tessera_http_request_duration_seconds_bucket{route=\"/token\",status=\"200\",le=\"+Inf\"} 2"
        ));
        assert!(text.contains(
            "tessera_http_request_duration_seconds_sum{route=\"/token\",status=\"200\"} 9.0007"
        ));
        assert!(text.contains("tessera_http_requests_total{route=\"unmatched\",status=\"404\"} 1"));
    }

    #[test]
    fn domain_counters_and_gauges_are_exposed() {
        let metrics = Metrics::new();
        metrics.token_issued("refresh_token");
        metrics.token_issued("refresh_token");
        metrics.token_issued("made_up");
        metrics.login_failed();
        let text = metrics.render(Gauges {
            db_connections_in_use: 3,
            db_connections_idle: 5,
            db_queue_depth: 0,
            hash_queue_depth: 7,
            password_hashes: 4,
        });
        assert!(text.contains("tessera_tokens_issued_total{grant_type=\"refresh_token\"} 2"));
        assert!(text.contains("tessera_tokens_issued_total{grant_type=\"password\"} 0"));
        assert!(text.contains("tessera_login_failures_total 1"));
        assert!(text.contains("tessera_throttled_requests_total 0"));
        assert!(text.contains("tessera_db_connections_in_use 3"));
        assert!(text.contains("tessera_password_hash_queue_depth 7"));
        assert!(text.contains("tessera_password_hashes_total 4"));
        assert!(!text.contains("made_up"));
    }
}
