//! The verifier's peers for tests: RSA keys that sign tokens the way Tessera does, and a small
#![allow(dead_code)]
//! loopback HTTP server publishing a JWKS (and discovery) with the Cache-Control it is told.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

pub struct TestKey {
    pub kid: String,
    pair: KeyPair,
}

impl TestKey {
    pub fn generate(kid: &str) -> TestKey {
        TestKey {
            kid: kid.to_string(),
            pair: KeyPair::generate(KeySize::Rsa2048).expect("keygen"),
        }
    }

    pub fn n(&self) -> String {
        URL_SAFE_NO_PAD.encode(
            self.pair
                .public_key()
                .modulus()
                .big_endian_without_leading_zero(),
        )
    }

    pub fn e(&self) -> String {
        URL_SAFE_NO_PAD.encode(
            self.pair
                .public_key()
                .exponent()
                .big_endian_without_leading_zero(),
        )
    }

    pub fn jwk(&self) -> Value {
        json!({ "kty": "RSA", "use": "sig", "alg": "RS256", "kid": self.kid, "n": self.n(), "e": self.e() })
    }

    /// A compact JWS with `header` and `claims`, signed RS256.
    pub fn sign(&self, header: &Value, claims: &Value) -> String {
        let input = signing_input(header, claims);
        let mut signature = vec![0; self.pair.public_modulus_len()];
        self.pair
            .sign(
                &RSA_PKCS1_SHA256,
                &aws_lc_rs::rand::SystemRandom::new(),
                input.as_bytes(),
                &mut signature,
            )
            .expect("sign");
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    /// An access token as Tessera issues it.
    pub fn token(&self, claims: &Value) -> String {
        self.sign(
            &json!({ "alg": "RS256", "typ": "at+jwt", "kid": self.kid }),
            claims,
        )
    }
}

pub fn signing_input(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(header).expect("json")),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("json"))
    )
}

pub const ISSUER_AUDIENCE: &str = "notes";

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs() as i64
}

/// Claims of a valid token from `issuer` for the test audience, valid for 5 minutes.
pub fn claims(issuer: &str) -> Value {
    let now = now();
    json!({
        "iss": issuer, "sub": "user-1", "aud": [ISSUER_AUDIENCE, issuer], "exp": now + 300,
        "iat": now, "jti": "j1", "client_id": "c1", "scope": "openid notes", "roles": ["admin"]
    })
}

#[derive(Clone)]
struct Published {
    jwks: Value,
    cache_control: String,
    delay: Duration,
}

/// A JWKS publisher on 127.0.0.1; `stop` closes its port (an issuer that is down).
pub struct JwksServer {
    pub issuer: String,
    published: Arc<Mutex<Published>>,
    jwks_hits: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl JwksServer {
    pub async fn start(keys: &[&TestKey], cache_control: &str) -> JwksServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let issuer = format!("http://{}", listener.local_addr().expect("addr"));
        let published = Arc::new(Mutex::new(Published {
            jwks: json!({ "keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>() }),
            cache_control: cache_control.to_string(),
            delay: Duration::ZERO,
        }));
        let jwks_hits = Arc::new(AtomicUsize::new(0));
        let task = {
            let (published, hits, issuer) = (published.clone(), jwks_hits.clone(), issuer.clone());
            tokio::spawn(async move {
                loop {
                    let Ok((mut stream, _)) = listener.accept().await else {
                        return;
                    };
                    let (published, hits, issuer) =
                        (published.clone(), hits.clone(), issuer.clone());
                    tokio::spawn(async move {
                        let mut request = Vec::new();
                        let mut buf = [0u8; 1024];
                        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                            match stream.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => request.extend_from_slice(&buf[..n]),
                            }
                        }
                        let text = String::from_utf8_lossy(&request);
                        let path = text.split_whitespace().nth(1).unwrap_or("").to_string();
                        let snapshot = published.lock().expect("lock").clone();
                        let (status, body, cache_control) = match path.as_str() {
                            "/jwks.json" => {
                                hits.fetch_add(1, Ordering::SeqCst);
                                tokio::time::sleep(snapshot.delay).await;
                                ("200 OK", snapshot.jwks.to_string(), snapshot.cache_control)
                            }
                            "/.well-known/openid-configuration" => (
                                "200 OK",
                                json!({ "issuer": issuer, "jwks_uri": format!("{issuer}/jwks.json") })
                                    .to_string(),
                                "max-age=3600".to_string(),
                            ),
                            _ => ("404 Not Found", "{}".to_string(), "no-store".to_string()),
                        };
                        let response = format!(
                            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncache-control: {cache_control}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = stream.write_all(response.as_bytes()).await;
                        let _ = stream.shutdown().await;
                    });
                }
            })
        };
        JwksServer {
            issuer,
            published,
            jwks_hits,
            task,
        }
    }

    pub fn jwks_url(&self) -> String {
        format!("{}/jwks.json", self.issuer)
    }

    pub fn publish(&self, keys: &[&TestKey]) {
        self.publish_raw(json!({ "keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>() }));
    }

    pub fn publish_raw(&self, jwks: Value) {
        self.published.lock().expect("lock").jwks = jwks;
    }

    /// Each JWKS answer waits this long first (so concurrent requests overlap).
    pub fn set_delay(&self, delay: Duration) {
        self.published.lock().expect("lock").delay = delay;
    }

    pub fn jwks_hits(&self) -> usize {
        self.jwks_hits.load(Ordering::SeqCst)
    }

    /// Stops accepting: the port is closed, connections are refused.
    pub async fn stop(&self) {
        self.task.abort();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
