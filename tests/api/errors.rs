use serde_json::Value;

use crate::helpers::TestEnv;

async fn assert_json_error(response: reqwest::Response, status: u16, error: &str) {
    assert_eq!(response.status(), status);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: Value = response.json().await.expect("json body");
    assert_eq!(body["error"], error);
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| !d.is_empty())
    );
}

#[tokio::test]
async fn unknown_routes_get_a_json_404() {
    let env = TestEnv::new();
    let app = env.spawn().await;
    assert_json_error(app.get("/no/such/route").await, 404, "not_found").await;
    assert_json_error(app.get("/.well-known/nothing").await, 404, "not_found").await;
    app.stop().await;
}

#[tokio::test]
async fn a_wrong_method_gets_a_json_405() {
    let env = TestEnv::new();
    let app = env.spawn().await;
    let response = app
        .client
        .delete(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .expect("request");
    assert_json_error(response, 405, "method_not_allowed").await;
    app.stop().await;
}

#[tokio::test]
async fn an_oversized_body_gets_a_json_413() {
    let env = TestEnv::new();
    let app = env.spawn().await;
    let limit = app.settings.server.body_limit_bytes;
    let response = app
        .client
        .post(app.url("/healthz"))
        .header("Content-Type", "application/json")
        .body(vec![b'a'; limit + 1])
        .send()
        .await
        .expect("request");
    assert_json_error(response, 413, "request_too_large").await;
    // The server is still there afterwards.
    assert_eq!(app.get("/healthz").await.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn responses_carry_a_request_id() {
    let env = TestEnv::new();
    let app = env.spawn().await;
    let a = app.get("/healthz").await;
    let b = app.get("/healthz").await;
    let id = |r: &reqwest::Response| {
        r.headers()["x-request-id"]
            .to_str()
            .expect("ascii")
            .to_string()
    };
    assert_ne!(id(&a), id(&b));
    app.stop().await;
}
