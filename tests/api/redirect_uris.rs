//! Redirect URIs are parsed, not matched as strings (issue 14, item 13): the host checked is
//! the host a browser goes to, and a native app's loopback listener may use any port.

use tessera::clients::ClientSpec;

use crate::testkit::{TestApp, TestEnv};
use crate::testkit::{VERIFIER, pkce_challenge};

fn challenge() -> String {
    pkce_challenge(VERIFIER)
}

async fn native_app(app: &TestApp, redirect: &str) -> String {
    app.create_client(ClientSpec {
        name: "native".into(),
        public: true,
        grant_types: vec!["authorization_code".into()],
        redirect_uris: vec![redirect.into()],
        scopes: vec!["openid".into()],
        ..ClientSpec::default()
    })
    .await
    .0
}

async fn authorize(app: &TestApp, client_id: &str, redirect: &str) -> reqwest::Response {
    app.client
        .get(app.url("/authorize"))
        .query(&[
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", redirect),
            ("scope", "openid"),
            ("code_challenge", &challenge()),
            ("code_challenge_method", "S256"),
        ])
        .send()
        .await
        .expect("request")
}

#[test]
fn the_cli_refuses_redirect_uris_that_hide_their_host_or_run_script() {
    let env = TestEnv::new();
    for uri in [
        r"http://evil.example\@localhost/cb",
        "javascript:x//.a://b",
        "https://app.example@evil.example/cb",
        "http://localhost/cb",
        "com.example.app:/cb#frag",
    ] {
        let out = env.cli(
            &[
                "client",
                "add",
                "--name",
                "x",
                "--public",
                "--grant-types",
                "authorization_code",
                "--redirect-uri",
                uri,
            ],
            None,
        );
        assert!(!out.status.success(), "{uri:?} was registered");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("redirect URIs"), "{uri:?}: {stderr}");
    }
    let out = env.cli(
        &[
            "client",
            "add",
            "--name",
            "native",
            "--public",
            "--grant-types",
            "authorization_code",
            "--redirect-uri",
            "com.example.app:/oauth2redirect",
        ],
        None,
    );
    assert!(
        out.status.success(),
        "a reverse-DNS private-use scheme (RFC 8252 §7.1) is accepted: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn a_loopback_redirect_uri_matches_on_any_port_and_nothing_else() {
    let env = TestEnv::new();
    let app = env.spawn().await;
    let client = native_app(&app, "http://127.0.0.1/callback").await;

    let page = authorize(&app, &client, "http://127.0.0.1:51234/callback").await;
    assert_eq!(page.status(), 200, "RFC 8252 §7.3: any port");

    for other in [
        "http://127.0.0.1:51234/elsewhere",
        "http://127.0.0.1:51234/callback?x=1",
        "http://[::1]:51234/callback",
        "http://localhost:51234/callback",
        r"http://evil.example\@127.0.0.1:51234/callback",
        "http://me@127.0.0.1:51234/callback",
    ] {
        let page = authorize(&app, &client, other).await;
        assert_eq!(page.status(), 400, "{other:?} is not the registered URI");
        assert!(
            page.headers().get("location").is_none(),
            "never a redirect to an unregistered URI"
        );
    }

    let https = native_app(&app, "https://app.example.com/cb").await;
    let page = authorize(&app, &https, "https://app.example.com:8443/cb").await;
    assert_eq!(page.status(), 400, "only loopback ports are free");
    app.stop().await;
}
