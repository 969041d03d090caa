//! The actix-web extractor and scope guard answer as RFC 6750 §3 says.

#![cfg(feature = "actix")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use actix_web::http::StatusCode;
use actix_web::{App, HttpResponse, test, web};
use serde_json::json;
use support::{JwksServer, TestKey, claims};
use tessera_verify::Verifier;
use tessera_verify::actix::{Authenticated, RequireScope};

async fn me(user: Authenticated) -> HttpResponse {
    HttpResponse::Ok().body(user.sub.clone())
}

async fn admin(user: Authenticated) -> Result<HttpResponse, tessera_verify::actix::BearerError> {
    user.require_role("admin")?;
    Ok(HttpResponse::Ok().finish())
}

#[actix_web::test]
async fn missing_bad_and_underscoped_tokens_get_rfc6750_answers() {
    let key = TestKey::generate("k1");
    let server = JwksServer::start(&[&key], "max-age=300").await;
    let verifier = Verifier::builder(&server.issuer)
        .audience("notes")
        .jwks_url(server.jwks_url())
        .build()
        .expect("builds");
    let app = test::init_service(
        App::new()
            .app_data(verifier)
            .route("/me", web::get().to(me))
            .route("/admin", web::get().to(admin))
            .service(
                web::scope("/notes")
                    .wrap(RequireScope::new("notes:write"))
                    .route("", web::get().to(me)),
            ),
    )
    .await;
    let call = |path: &'static str, auth: Option<String>| {
        let mut req = test::TestRequest::get().uri(path);
        if let Some(auth) = auth {
            req = req.insert_header(("authorization", auth));
        }
        req.to_request()
    };
    let challenge = |res: &actix_web::dev::ServiceResponse| {
        res.headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_string())
    };

    let res = test::call_service(&app, call("/me", None)).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        challenge(&res).as_deref(),
        Some(r#"Bearer error="invalid_token", error_description="no bearer token""#)
    );

    let res = test::call_service(&app, call("/me", Some("Bearer not.a.token".into()))).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let header = challenge(&res).unwrap();
    assert!(
        header.starts_with(r#"Bearer error="invalid_token""#),
        "{header}"
    );
    let body: serde_json::Value = test::read_body_json(res).await;
    assert_eq!(body["error"], "invalid_token");

    let mut expired = claims(&server.issuer);
    expired["exp"] = json!(support::now() - 600);
    let res = test::call_service(
        &app,
        call("/me", Some(format!("Bearer {}", key.token(&expired)))),
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(challenge(&res).unwrap().contains("invalid_token"));

    let good = key.token(&claims(&server.issuer));
    let res = test::call_service(&app, call("/me", Some(format!("bearer {good}")))).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(test::read_body(res).await, "user-1");

    let res = test::call_service(&app, call("/notes", Some(format!("Bearer {good}")))).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        challenge(&res).as_deref(),
        Some(r#"Bearer error="insufficient_scope", scope="notes:write""#)
    );
    let mut writer = claims(&server.issuer);
    writer["scope"] = json!("notes notes:write");
    writer["roles"] = json!([]);
    let writer = key.token(&writer);
    let res = test::call_service(&app, call("/notes", Some(format!("Bearer {writer}")))).await;
    assert_eq!(res.status(), StatusCode::OK);
    let res = test::call_service(&app, call("/notes", None)).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

    let res = test::call_service(&app, call("/admin", Some(format!("Bearer {good}")))).await;
    assert_eq!(res.status(), StatusCode::OK);
    let res = test::call_service(&app, call("/admin", Some(format!("Bearer {writer}")))).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
}
