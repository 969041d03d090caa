//! GET /metrics: scraped as Prometheus would, with values that move as requests are served.

use std::collections::HashMap;

use serde_json::Value;

use crate::testkit::PASSWORD;
use crate::testkit::{TestApp, TestEnv};

/// Every sample of a scrape, by its name with labels as written (`name{a="b"}`).
pub(crate) async fn scrape(app: &TestApp, base: &str) -> HashMap<String, f64> {
    let response = app
        .client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("scrape");
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().expect("ascii");
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let text = response.text().await.expect("text");
    let mut samples = HashMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (name, value) = line.rsplit_once(' ').expect("name value");
        let value: f64 = value.parse().expect("a number");
        assert!(
            samples.insert(name.to_string(), value).is_none(),
            "{name} twice"
        );
    }
    samples
}

pub(crate) fn value(samples: &HashMap<String, f64>, name: &str) -> f64 {
    *samples
        .get(name)
        .unwrap_or_else(|| panic!("{name} missing from {samples:#?}"))
}

#[tokio::test]
async fn metrics_count_requests_tokens_failures_throttling_and_reuse() {
    let env = TestEnv::new();
    let mut settings = env.settings();
    settings.throttle.account_free_attempts = 1;
    let app = env.spawn_with(settings).await;
    app.create_user("ann@example.com", PASSWORD, &[]).await;
    let client = app.first_party_client().await;
    let client = (client.0.as_str(), client.1.as_str());
    let base = app.address.clone();
    let before = scrape(&app, &base).await;
    assert_eq!(value(&before, "tessera_login_failures_total"), 0.0);
    assert_eq!(value(&before, "tessera_password_hash_queue_depth"), 0.0);
    assert!(value(&before, "tessera_db_connections_idle") >= 1.0);
    assert_eq!(value(&before, "tessera_db_connections_in_use"), 0.0);

    for _ in 0..3 {
        assert_eq!(app.get("/.well-known/jwks.json").await.status(), 200);
    }
    // The raw path of an unknown route is never a label.
    assert_eq!(app.get("/no/such/path?x=1").await.status(), 404);

    let login = app
        .password_login(client, "ann@example.com", PASSWORD, "api")
        .await;
    assert_eq!(login.status(), 200);
    let body: Value = login.json().await.expect("json");
    let first = body["refresh_token"].as_str().expect("refresh").to_string();
    let refreshed = app
        .token(
            client,
            &[("grant_type", "refresh_token"), ("refresh_token", &first)],
        )
        .await;
    assert_eq!(refreshed.status(), 200);
    let replay = app
        .token(
            client,
            &[("grant_type", "refresh_token"), ("refresh_token", &first)],
        )
        .await;
    assert_eq!(replay.status(), 400);

    let wrong = app
        .password_login(client, "ann@example.com", "wrong password", "api")
        .await;
    assert_eq!(wrong.status(), 400);
    let throttled = app
        .password_login(client, "ann@example.com", "wrong again", "api")
        .await;
    assert_eq!(throttled.status(), 429);

    let after = scrape(&app, &base).await;
    let jwks = "{route=\"/.well-known/jwks.json\",status=\"200\"}";
    assert_eq!(
        value(&after, &format!("tessera_http_requests_total{jwks}")),
        3.0
    );
    assert_eq!(
        value(
            &after,
            &format!("tessera_http_request_duration_seconds_count{jwks}")
        ),
        3.0
    );
    assert_eq!(
        value(
            &after,
            "tessera_http_request_duration_seconds_bucket{route=\"/.well-known/jwks.json\",status=\"200\",le=\"+Inf\"}"
        ),
        3.0
    );
    assert!(
        value(
            &after,
            &format!("tessera_http_request_duration_seconds_sum{jwks}")
        ) > 0.0
    );
    assert_eq!(
        value(
            &after,
            "tessera_http_requests_total{route=\"unmatched\",status=\"404\"}"
        ),
        1.0
    );
    assert!(after.keys().all(|k| !k.contains("/no/such/path")));
    assert_eq!(
        value(
            &after,
            "tessera_http_requests_total{route=\"/token\",status=\"200\"}"
        ),
        2.0
    );
    assert_eq!(
        value(
            &after,
            "tessera_http_requests_total{route=\"/token\",status=\"400\"}"
        ),
        2.0
    );
    assert_eq!(
        value(
            &after,
            "tessera_http_requests_total{route=\"/token\",status=\"429\"}"
        ),
        1.0
    );
    assert_eq!(
        value(
            &after,
            "tessera_tokens_issued_total{grant_type=\"password\"}"
        ),
        1.0
    );
    assert_eq!(
        value(
            &after,
            "tessera_tokens_issued_total{grant_type=\"refresh_token\"}"
        ),
        1.0
    );
    assert_eq!(
        value(
            &after,
            "tessera_tokens_issued_total{grant_type=\"client_credentials\"}"
        ),
        0.0
    );
    assert_eq!(value(&after, "tessera_login_failures_total"), 1.0);
    assert_eq!(value(&after, "tessera_throttled_requests_total"), 1.0);
    assert_eq!(value(&after, "tessera_refresh_reuse_detected_total"), 1.0);
    // The first scrape itself was counted too.
    assert_eq!(
        value(
            &after,
            "tessera_http_requests_total{route=\"/metrics\",status=\"200\"}"
        ),
        1.0
    );
    app.stop().await;
}

#[tokio::test]
async fn metrics_can_have_a_listener_of_their_own() {
    let env = TestEnv::new();
    let mut settings = env.settings();
    settings.metrics.bind = Some("127.0.0.1:0".parse().expect("addr"));
    let app = env.spawn_with(settings).await;
    let metrics = app.metrics_address.clone().expect("a metrics listener");
    assert_ne!(metrics, app.address);
    // Not on the public listener ...
    assert_eq!(app.get("/metrics").await.status(), 404);
    assert_eq!(app.get("/.well-known/jwks.json").await.status(), 200);
    // ... but on its own, counting the public listener's requests.
    let samples = scrape(&app, &metrics).await;
    assert_eq!(
        value(
            &samples,
            "tessera_http_requests_total{route=\"/.well-known/jwks.json\",status=\"200\"}"
        ),
        1.0
    );
    assert_eq!(
        value(
            &samples,
            "tessera_http_requests_total{route=\"unmatched\",status=\"404\"}"
        ),
        1.0
    );
    let other = app
        .client
        .get(format!("{metrics}/.well-known/jwks.json"))
        .send()
        .await
        .expect("request");
    assert_eq!(other.status(), 404);
    app.stop().await;
}

#[tokio::test]
async fn metrics_can_be_turned_off() {
    let env = TestEnv::new();
    let mut settings = env.settings();
    settings.metrics.enabled = false;
    let app = env.spawn_with(settings).await;
    assert_eq!(app.get("/metrics").await.status(), 404);
    assert!(app.metrics_address.is_none());
    app.stop().await;
}

/// The access log is opt-in (`log.access`, issue 18: writing every request's line on the HTTP
/// worker halved the JWKS rate). Off, at the default level `info`, a request writes no line
/// and the metrics still count it; on, each request's line is written (method, path, status).
#[tokio::test]
async fn the_access_log_is_opt_in_and_the_metrics_count_every_request_either_way() {
    use crate::testkit::ServerProcess;
    use crate::testkit::eventually::eventually;
    use std::time::Duration;

    let env = TestEnv::new();
    let http = reqwest::Client::new();
    let jwks_lines = |logs: Vec<String>| -> Vec<Value> {
        logs.iter()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|event| event["message"] == "request")
            .filter(|event| event["span"]["path"] == "/.well-known/jwks.json")
            .collect()
    };
    let jwks_count = "tessera_http_requests_total{route=\"/.well-known/jwks.json\",status=\"200\"}";
    let counted = |address: String| {
        let http = http.clone();
        async move {
            let text = http
                .get(format!("{address}/metrics"))
                .send()
                .await
                .expect("scrape")
                .text()
                .await
                .expect("text");
            text.lines()
                .find_map(|line| line.strip_prefix(jwks_count))
                .map_or(0.0, |v| v.trim().parse::<f64>().expect("a number"))
        }
    };

    for access in [false, true] {
        let server = ServerProcess::start_with(
            &env,
            &[
                ("TESSERA_LOG", "info"),
                ("TESSERA_LOG_ACCESS", if access { "true" } else { "false" }),
            ],
        );
        for _ in 0..3 {
            let response = http
                .get(format!("{}/.well-known/jwks.json", server.address))
                .send()
                .await
                .expect("jwks");
            assert_eq!(response.status(), 200);
        }
        assert_eq!(
            counted(server.address.clone()).await,
            3.0,
            "access {access}"
        );
        if access {
            let lines = eventually(Duration::from_secs(5), "three access log lines", || {
                let lines = jwks_lines(server.logs());
                async move { (lines.len() == 3).then_some(lines) }
            })
            .await;
            for line in lines {
                assert_eq!(line["level"], "INFO");
                assert_eq!(line["status"], 200);
                assert_eq!(line["span"]["method"], "GET");
            }
        } else {
            // The process ends and its stderr is read to the end: whatever it logged is in.
            let logs = {
                let status = server.stop_keeping_logs();
                assert!(status.0.success());
                status.1
            };
            assert!(
                logs.iter().any(|line| line.contains("\"listening\"")),
                "the process logs at info: {logs:#?}"
            );
            assert_eq!(jwks_lines(logs.clone()), Vec::<Value>::new(), "{logs:#?}");
        }
    }
}
