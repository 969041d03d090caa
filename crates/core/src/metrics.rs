//! Prometheus metrics through `prometheus-client`, exposed in the Prometheus text format
//! (version 0.0.4, what scrapers and our tests have always read). One `Metrics` lives in
//! `Services`; the request middleware and the domain modules count into it, `GET /metrics`
//! encodes it.
//!
//! The hot path (every request) is a read lock on a small map plus three atomic adds: series
//! are keyed by route *pattern* and status, so their number is bounded by the routes. The
//! domain counters are handles resolved once at start, so counting is one atomic add.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet,
};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;

/// What `GET /metrics` answers with: the format every Prometheus version reads.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

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

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    status: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct GrantLabels {
    grant_type: &'static str,
}

/// One route and status: a count and a latency histogram kept in atomics, so observing
/// takes no lock (`prometheus-client`'s own histogram locks per observation).
#[derive(Debug, Default)]
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

    fn encode_histogram(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let mut buckets = [(0.0, 0); LATENCY_BUCKETS.len()];
        let mut cumulative = 0u64;
        for ((slot, bound), bucket) in buckets.iter_mut().zip(LATENCY_BUCKETS).zip(&self.buckets) {
            let count = bucket.load(Relaxed);
            cumulative += count;
            *slot = (bound, count);
        }
        // The count read once, so +Inf and _count agree even while requests arrive.
        let count = self.count.load(Relaxed).max(cumulative);
        let sum = self.sum_micros.load(Relaxed) as f64 / 1e6;
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }
}

/// Both request families from the one set of series, sorted by route and status.
#[derive(Debug, Default)]
struct RequestSeries {
    series: RwLock<HashMap<RequestLabels, LatencySeries>>,
}

impl RequestSeries {
    fn observe(&self, route: Option<String>, status: u16, elapsed: Duration) {
        let labels = RequestLabels {
            route: route.unwrap_or_else(|| UNMATCHED_ROUTE.to_string()),
            status,
        };
        {
            let series = self.series.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(series) = series.get(&labels) {
                series.observe(elapsed);
                return;
            }
        }
        self.series
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(labels)
            .or_default()
            .observe(elapsed);
    }
}

impl Collector for RequestSeries {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let series = self.series.read().unwrap_or_else(PoisonError::into_inner);
        let mut sorted: Vec<_> = series.iter().collect();
        sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut requests = encoder.encode_descriptor(
            "tessera_http_requests",
            "HTTP requests answered, by route pattern and status.",
            None,
            MetricType::Counter,
        )?;
        for (labels, series) in &sorted {
            ConstCounter::new(series.count.load(Relaxed))
                .encode(requests.encode_family(*labels)?)?;
        }
        let mut durations = encoder.encode_descriptor(
            "tessera_http_request_duration_seconds",
            "Time from a request's arrival to its response, by route pattern and status.",
            None,
            MetricType::Histogram,
        )?;
        for (labels, series) in &sorted {
            series.encode_histogram(durations.encode_family(*labels)?)?;
        }
        Ok(())
    }
}

/// A counter kept elsewhere (the hashing pool counts its own hashes), copied in before each
/// scrape.
#[derive(Debug, Clone, Default)]
struct ReadCounter(Arc<AtomicU64>);

impl TypedMetric for ReadCounter {
    const TYPE: MetricType = MetricType::Counter;
}

impl EncodeMetric for ReadCounter {
    fn encode(&self, encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        ConstCounter::new(self.0.load(Relaxed)).encode(encoder)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
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
    /// 1 while the database breaker is open (PostgreSQL unreachable, work refused), else 0.
    pub db_breaker_open: u64,
    /// Counters kept by the database layer.
    pub db_breaker_trips: u64,
    pub db_serialization_retries: u64,
    /// SQLite's group commits (`db::group`): commits that answered several jobs, and those jobs.
    pub db_group_commits: u64,
    pub db_grouped_jobs: u64,
}

type U64Gauge = Gauge<u64, AtomicU64>;

/// The handles of what is set from `Gauges` before each scrape.
#[derive(Debug, Default)]
struct ScrapeTime {
    password_hashes: ReadCounter,
    db_breaker_trips: ReadCounter,
    db_serialization_retries: ReadCounter,
    db_group_commits: ReadCounter,
    db_grouped_jobs: ReadCounter,
    db_breaker_open: U64Gauge,
    db_connections_in_use: U64Gauge,
    db_connections_idle: U64Gauge,
    db_queue_depth: U64Gauge,
    hash_queue_depth: U64Gauge,
}

pub struct Metrics {
    registry: Registry,
    requests: Arc<RequestSeries>,
    /// One handle per `GRANT_TYPES` entry, resolved in the family once.
    tokens_issued: [Counter; GRANT_TYPES.len()],
    login_failures: Counter,
    throttled: Counter,
    refresh_reuse: Counter,
    scrape_time: ScrapeTime,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let requests = Arc::new(RequestSeries::default());
        registry.register_collector(Box::new(requests.clone()));

        // The registry adds the final full stop to each help text.
        let tokens = Family::<GrantLabels, Counter>::default();
        let tokens_issued =
            GRANT_TYPES.map(|grant_type| tokens.get_or_create(&GrantLabels { grant_type }).clone());
        registry.register(
            "tessera_tokens_issued",
            "Token responses issued, by grant type",
            tokens,
        );
        let (login_failures, throttled, refresh_reuse) = Default::default();
        for (name, help, counter) in [
            (
                "tessera_login_failures",
                "Password checks that failed (unknown user, wrong password, disabled account)",
                &login_failures,
            ),
            (
                "tessera_throttled_requests",
                "Login attempts refused by the failed-login throttle",
                &throttled,
            ),
            (
                "tessera_refresh_reuse_detected",
                "Replayed refresh tokens detected (each revoked its family)",
                &refresh_reuse,
            ),
        ] {
            registry.register(name, help, Counter::clone(counter));
        }

        let scrape_time = ScrapeTime::default();
        for (name, help, counter) in [
            (
                "tessera_password_hashes",
                "Argon2 hashes computed for new passwords (registrations, resets, changes, rehashes)",
                &scrape_time.password_hashes,
            ),
            (
                "tessera_db_breaker_trips",
                "Times the database breaker opened (PostgreSQL found unreachable)",
                &scrape_time.db_breaker_trips,
            ),
            (
                "tessera_db_serialization_retries",
                "Database jobs run again after a serialization failure (SQLSTATE 40001)",
                &scrape_time.db_serialization_retries,
            ),
            (
                "tessera_db_group_commits",
                "SQLite commits that answered several waiting jobs at once (group commit)",
                &scrape_time.db_group_commits,
            ),
            (
                "tessera_db_grouped_jobs",
                "Database jobs answered by a group commit",
                &scrape_time.db_grouped_jobs,
            ),
        ] {
            registry.register(name, help, counter.clone());
        }
        for (name, help, gauge) in [
            (
                "tessera_db_breaker_open",
                "1 while the database breaker is open: database work is refused at once (503)",
                &scrape_time.db_breaker_open,
            ),
            (
                "tessera_db_connections_in_use",
                "Database connections checked out of the pool",
                &scrape_time.db_connections_in_use,
            ),
            (
                "tessera_db_connections_idle",
                "Database connections idle in the pool",
                &scrape_time.db_connections_idle,
            ),
            (
                "tessera_db_queue_depth",
                "Database jobs waiting for a database thread",
                &scrape_time.db_queue_depth,
            ),
            (
                "tessera_password_hash_queue_depth",
                "Password hashes and checks waiting for an argon2 thread",
                &scrape_time.hash_queue_depth,
            ),
        ] {
            registry.register(name, help, gauge.clone());
        }
        Metrics {
            registry,
            requests,
            tokens_issued,
            login_failures,
            throttled,
            refresh_reuse,
            scrape_time,
        }
    }

    /// One answered request: `route` is the matched pattern (e.g. `/admin/users/{id}`), never
    /// the raw path.
    pub fn observe_request(&self, route: Option<String>, status: u16, elapsed: Duration) {
        self.requests.observe(route, status, elapsed);
    }

    pub fn token_issued(&self, grant_type: &str) {
        if let Some(index) = GRANT_TYPES.iter().position(|g| *g == grant_type)
            && let Some(counter) = self.tokens_issued.get(index)
        {
            counter.inc();
        }
    }

    pub fn login_failed(&self) {
        self.login_failures.inc();
    }

    pub fn login_throttled(&self) {
        self.throttled.inc();
    }

    pub fn refresh_reuse_detected(&self) {
        self.refresh_reuse.inc();
    }

    /// The Prometheus text exposition of everything, with `gauges` read by the caller.
    pub fn render(&self, gauges: Gauges) -> String {
        let scrape = &self.scrape_time;
        for (counter, value) in [
            (&scrape.password_hashes, gauges.password_hashes),
            (&scrape.db_breaker_trips, gauges.db_breaker_trips),
            (
                &scrape.db_serialization_retries,
                gauges.db_serialization_retries,
            ),
            (&scrape.db_group_commits, gauges.db_group_commits),
            (&scrape.db_grouped_jobs, gauges.db_grouped_jobs),
        ] {
            counter.0.store(value, Relaxed);
        }
        scrape.db_breaker_open.set(gauges.db_breaker_open);
        scrape
            .db_connections_in_use
            .set(gauges.db_connections_in_use);
        scrape.db_connections_idle.set(gauges.db_connections_idle);
        scrape.db_queue_depth.set(gauges.db_queue_depth);
        scrape.hash_queue_depth.set(gauges.hash_queue_depth);
        let mut out = String::with_capacity(4096);
        // Writing into a String cannot fail, and the encoder has no other error of its own.
        if let Err(e) =
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
        {
            tracing::error!(error = %e, "metrics could not be encoded");
        }
        out
    }
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
        assert!(text.contains("# TYPE tessera_http_requests_total counter\n"));
        assert!(text.contains("# TYPE tessera_http_request_duration_seconds histogram\n"));
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
        assert!(text.contains(
            "tessera_http_request_duration_seconds_count{route=\"/token\",status=\"200\"} 2"
        ));
        assert!(text.contains("tessera_http_requests_total{route=\"unmatched\",status=\"404\"} 1"));
        // Sorted by route, then status.
        let token = text.find("{route=\"/token\"").unwrap_or(usize::MAX);
        let unmatched = text.find("{route=\"unmatched\"").unwrap_or(0);
        assert!(token < unmatched);
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
            db_breaker_open: 1,
            db_breaker_trips: 2,
            db_serialization_retries: 9,
            db_group_commits: 3,
            db_grouped_jobs: 11,
        });
        assert!(text.contains("tessera_db_breaker_open 1\n"));
        assert!(text.contains("tessera_db_breaker_trips_total 2\n"));
        assert!(text.contains("tessera_db_serialization_retries_total 9\n"));
        assert!(text.contains("tessera_db_group_commits_total 3\n"));
        assert!(text.contains("tessera_db_grouped_jobs_total 11\n"));
        assert!(text.contains("tessera_tokens_issued_total{grant_type=\"refresh_token\"} 2"));
        assert!(text.contains("tessera_tokens_issued_total{grant_type=\"password\"} 0"));
        assert!(text.contains(
            "# HELP tessera_login_failures_total Password checks that failed (unknown user, \
             wrong password, disabled account).\n# TYPE tessera_login_failures_total counter\n\
             tessera_login_failures_total 1\n"
        ));
        assert!(text.contains("tessera_throttled_requests_total 0"));
        assert!(text.contains("# TYPE tessera_db_connections_in_use gauge\n"));
        assert!(text.contains("tessera_db_connections_in_use 3"));
        assert!(text.contains("tessera_password_hash_queue_depth 7"));
        assert!(text.contains("# TYPE tessera_password_hashes_total counter\n"));
        assert!(text.contains("tessera_password_hashes_total 4"));
        assert!(!text.contains("made_up"));
        // The 0.0.4 text format, which has no end marker (OpenMetrics' `# EOF`).
        assert!(!text.contains("# EOF"));
        // Values read at scrape time are the latest ones.
        let later = metrics.render(Gauges {
            password_hashes: 6,
            ..Gauges::default()
        });
        assert!(later.contains("tessera_password_hashes_total 6"));
        assert!(later.contains("tessera_db_connections_in_use 0"));
    }
}
