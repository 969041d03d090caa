use serde_json::Value;

use crate::testkit::TestEnv;

#[tokio::test]
async fn healthz_answers_while_the_process_is_up() {
    let env = TestEnv::new();
    let app = env.spawn().await;
    let response = app.get("/healthz").await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["status"], "ok");
    app.stop().await;
}

#[tokio::test]
async fn readyz_reports_database_and_keys() {
    let env = TestEnv::new();
    let app = env.spawn().await;
    let response = app.get("/readyz").await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["status"], "ready");
    assert_eq!(body["database"], "ok");
    assert_eq!(body["keys"], "ok");
    app.stop().await;
}
