//! Hostile input: hundreds of malformed requests never get a 5xx or kill the server, and the
//! logs of real server processes, run at debug level through flows full of secrets, hold none
//! of them.

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::testkit::PASSWORD;
use crate::testkit::{ServerProcess, TestEnv};

/// Sends raw bytes on a fresh connection; the status of the answer, or None if the server
/// closed the connection without one (what HTTP/1.1 servers do with bytes that are not HTTP).
async fn raw(address: &str, request: &[u8]) -> Option<u16> {
    let host = address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(host).await.expect("connect");
    // The server may answer and close before reading everything: a failed write is fine.
    let _ = stream.write_all(request).await;
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    answer.extend_from_slice(&buffer[..n]);
                    if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "no answer within 10 s to {:?}",
        String::from_utf8_lossy(&request[..request.len().min(80)])
    );
    let head = String::from_utf8_lossy(&answer);
    head.strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
}

fn bodies() -> Vec<Vec<u8>> {
    let long_username = "a".repeat(10 * 1024);
    let mut bodies: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"garbage".to_vec(),
        b"%%%%".to_vec(),
        b"grant_type=%ZZ%".to_vec(),
        b"=&=&==&&".to_vec(),
        b"grant_type=password&grant_type=password&username=ann@example.com&password=x".to_vec(),
        b"grant_type=password&username=ann@example.com&username=bob@example.com&password=x"
            .to_vec(),
        b"grant_type=password&username=' OR '1'='1&password=' OR '1'='1' --".to_vec(),
        b"grant_type=password&username=ann@example.com'; DROP TABLE users; --&password=x".to_vec(),
        b"grant_type=refresh_token&refresh_token=' UNION SELECT * FROM refresh_tokens --".to_vec(),
        b"grant_type=password&username=ann%00@example.com&password=x%00y".to_vec(),
        b"grant_type=\xff\xfe\xfd&username=\xc3\x28&password=\xa0\xa1".to_vec(),
        b"grant_type=authorization_code&code=\xed\xa0\x80&redirect_uri=javascript:alert(1)"
            .to_vec(),
        b"{\"grant_type\":\"password\",\"username\":\"ann@example.com\"}".to_vec(),
        b"{\"email\":\"x@example.com\",\"password\":12}".to_vec(),
        b"{\"email\":[],\"password\":{},\"name\":null,\"extra\":1}".to_vec(),
        b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[".to_vec(),
        b"<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY a \"b\">]><x>&a;</x>".to_vec(),
        b"grant_type=client_credentials&scope=%20%20%20&scope=admin".to_vec(),
        b"token=&token_type_hint=refresh_token&token=x".to_vec(),
        format!("grant_type=password&username={long_username}&password=x").into_bytes(),
        format!("{{\"email\":\"{long_username}@example.com\",\"password\":\"{long_username}\"}}")
            .into_bytes(),
        format!("grant_type=password&{}=1", "p".repeat(20_000)).into_bytes(),
        format!("scope={}", "openid ".repeat(5000)).into_bytes(),
        (0..=255u8).collect(),
    ];
    // Just over the body limit: refused for its size, whatever its content.
    bodies.push(vec![b'a'; 64 * 1024 + 1]);
    bodies
}

const CONTENT_TYPES: [Option<&str>; 6] = [
    Some("application/x-www-form-urlencoded"),
    Some("application/json"),
    Some("text/plain"),
    None,
    Some("multipart/form-data; boundary=----x"),
    Some("application/x-www-form-urlencoded; charset=utf-16"),
];

const ENDPOINTS: [&str; 6] = [
    "/token",
    "/revoke",
    "/introspect",
    "/users",
    "/authorize",
    "/admin/clients",
];

fn assert_not_5xx(status: u16, what: &str) {
    assert!(status < 500, "{what}: got {status}");
}

#[tokio::test]
async fn hundreds_of_malformed_requests_get_4xx_and_the_server_keeps_answering() {
    let env = TestEnv::new();
    let app = env.spawn().await;
    app.create_user("ann@example.com", PASSWORD, &[]).await;
    let client = app.first_party_client().await;
    let mut sent = 0usize;

    // Every endpoint that takes a body × garbage bodies × content types, half with a real
    // client's credentials so parsing goes past client authentication.
    for (e, endpoint) in ENDPOINTS.iter().enumerate() {
        for (b, body) in bodies().into_iter().enumerate() {
            for (c, content_type) in CONTENT_TYPES.iter().enumerate() {
                if (e + b + c) % 2 == 1 {
                    continue;
                }
                let mut request = app.client.post(app.url(endpoint)).body(body.clone());
                if let Some(content_type) = content_type {
                    request = request.header("content-type", *content_type);
                }
                if (b + c) % 3 == 0 {
                    request = request.basic_auth(&client.0, Some(&client.1));
                }
                let response = request.send().await.expect("an answer");
                let status = response.status().as_u16();
                assert_not_5xx(
                    status,
                    &format!("POST {endpoint} body #{b} type {content_type:?}"),
                );
                if status != 413 {
                    let text = response.text().await.expect("body");
                    if !text.is_empty() && endpoint != &"/authorize" {
                        let json: Value = serde_json::from_str(&text)
                            .unwrap_or_else(|_| panic!("JSON error body from {endpoint}: {text}"));
                        assert!(json["error"].is_string(), "{endpoint}: {text}");
                    }
                }
                sent += 1;
            }
        }
    }

    // Broken credentials and headers.
    let huge = "x".repeat(64 * 1024);
    let authorizations = [
        "Basic".to_string(),
        "Basic !!!!".to_string(),
        "Basic Og==".to_string(),
        "Basic /w==".to_string(),
        format!("Basic {}", "QUFB".repeat(3000)),
        "Bearer".to_string(),
        "Bearer a.b.c".to_string(),
        "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.".to_string(),
        "Bearer ' OR 1=1 --".to_string(),
        "Digest username=\"x\"".to_string(),
        format!("Bearer {}", "e".repeat(8000)),
    ];
    for authorization in &authorizations {
        for path in ["/token", "/userinfo", "/admin/users", "/introspect"] {
            let response = app
                .client
                .post(app.url(path))
                .header("authorization", authorization)
                .form(&[("grant_type", "client_credentials"), ("token", "x")])
                .send()
                .await
                .expect("an answer");
            assert_not_5xx(
                response.status().as_u16(),
                &format!("{path} with {authorization:.20}"),
            );
            sent += 1;
        }
    }
    for (name, value) in [
        ("x-forwarded-for", huge.as_str()),
        ("cookie", huge.as_str()),
        ("x-large", &huge[..16 * 1024]),
        ("accept", "*/*; q=garbage"),
        ("content-length", "-1"),
        ("origin", "null"),
    ] {
        for path in ["/token", "/.well-known/jwks.json", "/authorize"] {
            let response = app
                .client
                .get(app.url(path))
                .header(name, value)
                .send()
                .await;
            // A head too large for the server may be cut off before an answer: then the
            // connection closes, which is a refusal too. Any answer must not be a 5xx.
            if let Ok(response) = response {
                assert_not_5xx(response.status().as_u16(), &format!("{path} with {name}"));
            }
            sent += 1;
        }
    }
    // Query strings the authorization endpoint must survive.
    for query in [
        "response_type=code&response_type=code",
        "client_id=%FF%FE&redirect_uri=%00",
        "client_id=' OR 1=1 --&response_type=code&redirect_uri=https://evil.example",
        "scope=openid&scope=admin&code_challenge=&code_challenge_method=plain",
        "state=%E0%80%80&nonce=\u{202e}",
    ] {
        let response = app.get(&format!("/authorize?{query}")).await;
        assert_not_5xx(response.status().as_u16(), query);
        sent += 1;
    }

    // Raw bytes that no HTTP client would send.
    let raw_requests: Vec<Vec<u8>> = vec![
        b"GET /\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        b"GET /authorize?client_id=\xc3\x28 HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        b"POST /token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 10\r\n\r\ngrant\xff\xfe\xfd\xfc\xfb".to_vec(),
        b"POST /token HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nabcdefg".to_vec(),
        b"POST /token HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n".to_vec(),
        b"POST /token HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n".to_vec(),
        b"POST /token HTTP/1.1\r\nHost: x\r\nAuthorization: Basic \xff\xfe\r\nContent-Length: 0\r\n\r\n".to_vec(),
        b"GET / HTTP/9.9\r\n\r\n".to_vec(),
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".to_vec(),
        b"GARBAGE\r\n\r\n".to_vec(),
        b"GET /.well-known/jwks.json HTTP/1.1\r\nHost: x\r\nX: \x01\x02\x7f\r\n\r\n".to_vec(),
        format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(100_000)).into_bytes(),
        format!("GET / HTTP/1.1\r\nHost: x\r\n{}\r\n", "H: v\r\n".repeat(500)).into_bytes(),
    ];
    for request in &raw_requests {
        if let Some(status) = raw(&app.address, request).await {
            assert_not_5xx(
                status,
                &String::from_utf8_lossy(&request[..request.len().min(60)]),
            );
        }
        sent += 1;
    }

    assert!(sent >= 200, "only {sent} malformed requests");
    // Still answering, and a real login still works.
    assert_eq!(app.get("/healthz").await.status(), 200);
    assert_eq!(app.get("/.well-known/jwks.json").await.status(), 200);
    let login = app
        .password_login((&client.0, &client.1), "ann@example.com", PASSWORD, "api")
        .await;
    assert_eq!(login.status(), 200, "{:?}", login.text().await);
    app.stop().await;
}

/// Every secret of a flow, as it would appear if something logged it.
#[derive(Default)]
struct Secrets(Vec<(String, String)>);

impl Secrets {
    fn add(&mut self, what: &str, value: &str) {
        assert!(value.len() >= 8, "{what} is too short to grep for");
        self.0.push((what.to_string(), value.to_string()));
    }

    /// A bearer token, its SHA-256 hex (what the database stores) and, for a JWT, its
    /// signature alone (the part a log line might carry after cutting).
    fn add_token(&mut self, what: &str, token: &str) {
        self.add(what, token);
        self.add(
            &format!("hash of {what}"),
            &tessera::crypto::sha256_hex(token.as_bytes()),
        );
        if let Some(signature) = token.rsplit('.').next().filter(|_| token.contains('.')) {
            self.add(&format!("signature of {what}"), signature);
        }
    }
}

async fn token_pair(response: reqwest::Response, secrets: &mut Secrets, what: &str) -> Value {
    assert_eq!(response.status(), 200, "{what}");
    let body: Value = response.json().await.expect("json");
    for field in ["access_token", "refresh_token", "id_token"] {
        if let Some(token) = body[field].as_str() {
            secrets.add_token(&format!("{what} {field}"), token);
        }
    }
    body
}

#[tokio::test]
async fn logs_at_trace_level_hold_no_password_token_secret_or_private_key() {
    let env = TestEnv::new();
    let mut secrets = Secrets::default();
    let mut logs: Vec<String> = Vec::new();
    // One issuer for both processes, as behind a load balancer.
    let trace = [
        ("TESSERA_LOG", "trace"),
        ("TESSERA_LOG_FORMAT", "json"),
        ("TESSERA_ISSUER", "http://id.tessera.test"),
    ];
    let mut cli = |args: &[&str], stdin: Option<&str>| {
        let mut vars = vec![
            ("DATABASE_URL", env.db.url.clone()),
            (
                "TESSERA_KEYS_DIR",
                env.keys_dir().to_string_lossy().into_owned(),
            ),
        ];
        vars.extend(trace.iter().map(|(k, v)| (*k, v.to_string())));
        let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let output = crate::testkit::run_cli(args, &vars, stdin);
        logs.push(String::from_utf8_lossy(&output.stderr).into_owned());
        crate::testkit::stdout_json(&output)
    };
    secrets.add("admin password", PASSWORD);
    cli(
        &[
            "user",
            "add",
            "--email",
            "ann@example.com",
            "--password-stdin",
            "--role",
            "admin",
        ],
        Some(PASSWORD),
    );
    let created = cli(
        &[
            "client",
            "add",
            "--name",
            "app",
            "--grant-types",
            "password,refresh_token,client_credentials",
            "--scopes",
            "openid email api admin",
            "--audience",
            "api",
        ],
        None,
    );
    let client_id = created["client_id"].as_str().expect("id").to_string();
    let client_secret = created["client_secret"]
        .as_str()
        .expect("secret")
        .to_string();
    secrets.add_token("client secret", &client_secret);

    let one = ServerProcess::start_with(&env, &trace);
    let two = ServerProcess::start_with(&env, &trace);
    let http = reqwest::Client::new();
    let token = |server: &ServerProcess, form: Vec<(&'static str, String)>| {
        http.post(format!("{}/token", server.address))
            .basic_auth(&client_id, Some(&client_secret))
            .form(&form)
            .send()
    };

    // Self-registration with a password of its own, then a login with it.
    let bob_password = "bob's very own secret phrase";
    secrets.add("registered password", bob_password);
    let registered = http
        .post(format!("{}/users", one.address))
        .json(&serde_json::json!({ "email": "bob@example.com", "password": bob_password }))
        .send()
        .await
        .expect("register");
    assert_eq!(registered.status(), 201);
    let login = |server: &ServerProcess, user: &str, password: &str| {
        token(
            server,
            vec![
                ("grant_type", "password".into()),
                ("username", user.into()),
                ("password", password.into()),
                ("scope", "openid email api".into()),
            ],
        )
    };
    let bob = token_pair(
        login(&two, "bob@example.com", bob_password)
            .await
            .expect("login"),
        &mut secrets,
        "bob",
    )
    .await;

    // Wrong passwords (one that looks like a username typed in the wrong field).
    for wrong in ["a wrong password guess", "ann@example.com.typo-pass"] {
        secrets.add("wrong password", wrong);
        let refused = login(&one, "ann@example.com", wrong).await.expect("login");
        assert_eq!(refused.status(), 400);
    }
    let ann = token_pair(
        login(&one, "ann@example.com", PASSWORD)
            .await
            .expect("login"),
        &mut secrets,
        "ann",
    )
    .await;
    let first_refresh = ann["refresh_token"].as_str().expect("refresh").to_string();
    // Refresh on the other process, then replay the used token (reuse detection logs).
    let rotated = token_pair(
        token(
            &two,
            vec![
                ("grant_type", "refresh_token".into()),
                ("refresh_token", first_refresh.clone()),
            ],
        )
        .await
        .expect("refresh"),
        &mut secrets,
        "rotated",
    )
    .await;
    let replay = token(
        &one,
        vec![
            ("grant_type", "refresh_token".into()),
            ("refresh_token", first_refresh.clone()),
        ],
    )
    .await
    .expect("replay");
    assert_eq!(replay.status(), 400);
    token_pair(
        token(
            &one,
            vec![
                ("grant_type", "client_credentials".into()),
                ("scope", "api".into()),
            ],
        )
        .await
        .expect("client credentials"),
        &mut secrets,
        "service",
    )
    .await;
    // A wrong client secret, in the body this time.
    let wrong_secret = "not-the-client-secret-at-all";
    secrets.add("wrong client secret", wrong_secret);
    let refused = http
        .post(format!("{}/token", two.address))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &client_id),
            ("client_secret", wrong_secret),
        ])
        .send()
        .await
        .expect("token");
    assert_eq!(refused.status(), 401);
    // The tokens used as bearer credentials and in introspection and revocation.
    let access = bob["access_token"].as_str().expect("access");
    let userinfo = http
        .get(format!("{}/userinfo", one.address))
        .bearer_auth(access)
        .send()
        .await
        .expect("userinfo");
    assert_eq!(userinfo.status(), 200);
    let admin_access = ann["access_token"].as_str().expect("access");
    let forged = format!("{admin_access}x");
    let listed = http
        .get(format!("{}/admin/users", two.address))
        .bearer_auth(&forged)
        .send()
        .await
        .expect("admin");
    assert_eq!(listed.status(), 401);
    for (server, value) in [
        (&one, rotated["refresh_token"].as_str().expect("refresh")),
        (&two, access),
    ] {
        for path in ["/introspect", "/revoke"] {
            let response = http
                .post(format!("{}{path}", server.address))
                .basic_auth(&client_id, Some(&client_secret))
                .form(&[("token", value)])
                .send()
                .await
                .expect("introspect/revoke");
            assert_eq!(response.status(), 200, "{path}");
        }
    }

    logs.extend(one.logs());
    logs.extend(two.logs());
    assert!(one.stop().success() && two.stop().success());
    let log = logs.join("\n");
    // The grep covers real, detailed logs: every request was logged, at trace level.
    let requests = log.matches("\"message\":\"request\"").count();
    assert!(requests >= 12, "only {requests} request lines in the logs");
    assert!(log.contains("\"level\":\"DEBUG\"") || log.contains("\"level\":\"TRACE\""));
    assert!(log.contains("refresh token reuse"));

    for entry in std::fs::read_dir(env.keys_dir()).expect("keys dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "pem") {
            let pem = std::fs::read_to_string(&path).expect("pem");
            for line in pem
                .lines()
                .filter(|l| !l.starts_with("-----") && l.len() >= 16)
            {
                secrets.add("private key PEM line", line);
            }
        }
    }
    assert!(
        secrets
            .0
            .iter()
            .any(|(what, _)| what == "private key PEM line")
    );
    for (what, value) in &secrets.0 {
        assert!(!log.contains(value.as_str()), "the logs contain the {what}");
    }
}
