//! Two `tessera serve` processes on one database, as two replicas behind a load balancer:
//! tokens, reuse detection, throttling and key rotation hold across both. (That a refresh
//! token raced on both gives exactly one success is in `refresh.rs`.)

use serde_json::Value;

use crate::testkit::PASSWORD;
use crate::testkit::{ServerProcess, TestEnv, stdout_json};

const ISSUER: &str = "http://id.tessera.test";

struct Replicas {
    env: TestEnv,
    http: reqwest::Client,
    client: (String, String),
}

impl Replicas {
    fn new() -> Replicas {
        let env = TestEnv::new();
        let client = env.cli_user_and_client("password,refresh_token");
        Replicas {
            env,
            http: reqwest::Client::new(),
            client,
        }
    }

    fn start(&self, vars: &[(&str, &str)]) -> ServerProcess {
        let mut all = vec![("TESSERA_ISSUER", ISSUER)];
        all.extend_from_slice(vars);
        ServerProcess::start_with(&self.env, &all)
    }

    async fn token(&self, server: &ServerProcess, form: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .post(format!("{}/token", server.address))
            .basic_auth(&self.client.0, Some(&self.client.1))
            .form(form)
            .send()
            .await
            .expect("token request")
    }

    async fn login(&self, server: &ServerProcess, password: &str) -> reqwest::Response {
        let form = [
            ("grant_type", "password"),
            ("username", "ann@example.com"),
            ("password", password),
            ("scope", "openid api"),
        ];
        self.token(server, &form).await
    }

    async fn refresh(&self, server: &ServerProcess, token: &str) -> reqwest::Response {
        let form = [("grant_type", "refresh_token"), ("refresh_token", token)];
        self.token(server, &form).await
    }

    async fn userinfo(&self, server: &ServerProcess, access: &str) -> u16 {
        self.http
            .get(format!("{}/userinfo", server.address))
            .bearer_auth(access)
            .send()
            .await
            .expect("userinfo")
            .status()
            .as_u16()
    }
}

async fn json(response: reqwest::Response) -> Value {
    assert_eq!(response.status(), 200);
    response.json().await.expect("json")
}

fn kid(token: &str) -> String {
    jsonwebtoken::decode_header(token)
        .expect("header")
        .kid
        .expect("kid")
}

#[tokio::test]
async fn refresh_and_reuse_detection_work_across_replicas() {
    let replicas = Replicas::new();
    let (a, b) = (replicas.start(&[]), replicas.start(&[]));
    let login = json(replicas.login(&a, PASSWORD).await).await;
    let first = login["refresh_token"].as_str().expect("refresh");
    // Issued by A, rotated by B; B's access token works on A.
    let rotated = json(replicas.refresh(&b, first).await).await;
    let second = rotated["refresh_token"].as_str().expect("refresh");
    let access = rotated["access_token"].as_str().expect("access");
    assert_eq!(replicas.userinfo(&a, access).await, 200);
    // The used token replayed on A is reuse: the family dies on both.
    let replay = replicas.refresh(&a, first).await;
    assert_eq!(replay.status(), 400);
    assert_eq!(replicas.refresh(&b, second).await.status(), 400);
    assert_eq!(replicas.refresh(&a, second).await.status(), 400);
    assert!(a.stop().success() && b.stop().success());
}

#[tokio::test]
async fn the_login_throttle_counts_failures_on_both_replicas_together() {
    let replicas = Replicas::new();
    let limit = [("TESSERA_THROTTLE_ACCOUNT_FREE_ATTEMPTS", "3")];
    let (a, b) = (replicas.start(&limit), replicas.start(&limit));
    // The replicas count in whole seconds: start the burst just after a second begins, so
    // the 1 s back-off it opens cannot run out before its last attempt is counted.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock");
    let to_next_second =
        std::time::Duration::from_nanos(1_000_000_000 - u64::from(now.subsec_nanos()));
    tokio::time::sleep(to_next_second + std::time::Duration::from_millis(20)).await;
    let attempts = (0..10).map(|attempt| {
        let server = if attempt % 2 == 0 { &a } else { &b };
        let replicas = &replicas;
        async move {
            let wrong = format!("wrong password {attempt}");
            replicas.login(server, &wrong).await.status().as_u16()
        }
    });
    let mut statuses = futures::future::join_all(attempts).await;
    statuses.sort_unstable();
    // Three free failures in all, not three per replica.
    assert_eq!(statuses, [400, 400, 400, 429, 429, 429, 429, 429, 429, 429]);
    assert!(a.stop().success() && b.stop().success());
}

/// A rolling key rotation: rotate, restart one replica at a time, rotate again, restart the
/// other. Every token either replica signs verifies on both at every step, because a key is
/// published (first rotation) before any replica signs with it (second).
#[tokio::test]
async fn key_rotation_rolls_through_replicas_without_refusing_a_token() {
    let replicas = Replicas::new();
    let a = replicas.start(&[]);
    let b = replicas.start(&[]);
    let access = |body: &Value| body["access_token"].as_str().expect("access").to_string();
    let old = access(&json(replicas.login(&a, PASSWORD).await).await);
    let old_kid = kid(&old);

    let first = stdout_json(
        &replicas
            .env
            .cli(&["keys", "rotate", "--alg", "RS256"], None),
    )[0]
    .clone();
    let next_kid = first["next"].as_str().expect("next").to_string();
    assert!(b.stop().success());
    let b = replicas.start(&[]);
    // B publishes the next key but still signs with the old one; both verify everywhere.
    let from_b = access(&json(replicas.login(&b, PASSWORD).await).await);
    assert_eq!(kid(&from_b), old_kid);
    for token in [&old, &from_b] {
        assert_eq!(replicas.userinfo(&a, token).await, 200);
        assert_eq!(replicas.userinfo(&b, token).await, 200);
    }

    // --force: the wait for cached JWKS copies to expire is for outside verifiers (the
    // rotation test covers it); the replicas here read keys from the database.
    let second = stdout_json(
        &replicas
            .env
            .cli(&["keys", "rotate", "--alg", "RS256", "--force"], None),
    )[0]
    .clone();
    assert_eq!(second["activated"], next_kid.as_str());
    assert!(a.stop().success());
    let a = replicas.start(&[]);
    // A signs with the new key; B, not yet restarted, already trusts it.
    let from_a = access(&json(replicas.login(&a, PASSWORD).await).await);
    assert_eq!(kid(&from_a), next_kid);
    for token in [&old, &from_b, &from_a] {
        assert_eq!(replicas.userinfo(&a, token).await, 200);
        assert_eq!(replicas.userinfo(&b, token).await, 200);
    }
    assert!(a.stop().success() && b.stop().success());
}
