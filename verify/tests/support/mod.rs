//! The verifier's peers for tests: RSA, Ed25519 and P-256 keys that sign tokens the way Tessera does, and a small
#![allow(dead_code)]
//! loopback HTTP server publishing a JWKS (and discovery) with the Cache-Control it is told.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RSA_PKCS1_SHA256,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

enum Pair {
    Rsa(KeyPair),
    Ed25519(Ed25519KeyPair),
    P256(EcdsaKeyPair),
}

/// A key of one of the three algorithms Tessera signs with.
pub struct TestKey {
    pub kid: String,
    pair: Pair,
}

impl TestKey {
    /// An RSA key (RS256).
    pub fn generate(kid: &str) -> TestKey {
        TestKey {
            kid: kid.to_string(),
            pair: Pair::Rsa(KeyPair::generate(KeySize::Rsa2048).expect("keygen")),
        }
    }

    /// An Ed25519 key (EdDSA).
    pub fn ed25519(kid: &str) -> TestKey {
        TestKey {
            kid: kid.to_string(),
            pair: Pair::Ed25519(Ed25519KeyPair::generate().expect("keygen")),
        }
    }

    /// A P-256 key (ES256).
    pub fn p256(kid: &str) -> TestKey {
        TestKey {
            kid: kid.to_string(),
            pair: Pair::P256(
                EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("keygen"),
            ),
        }
    }

    pub fn alg(&self) -> &'static str {
        match self.pair {
            Pair::Rsa(_) => "RS256",
            Pair::Ed25519(_) => "EdDSA",
            Pair::P256(_) => "ES256",
        }
    }

    fn rsa(&self) -> &KeyPair {
        match &self.pair {
            Pair::Rsa(pair) => pair,
            _ => panic!("not an RSA key"),
        }
    }

    pub fn n(&self) -> String {
        URL_SAFE_NO_PAD.encode(
            self.rsa()
                .public_key()
                .modulus()
                .big_endian_without_leading_zero(),
        )
    }

    pub fn e(&self) -> String {
        URL_SAFE_NO_PAD.encode(
            self.rsa()
                .public_key()
                .exponent()
                .big_endian_without_leading_zero(),
        )
    }

    pub fn jwk(&self) -> Value {
        match &self.pair {
            Pair::Rsa(_) => {
                json!({ "kty": "RSA", "use": "sig", "alg": "RS256", "kid": self.kid, "n": self.n(), "e": self.e() })
            }
            Pair::Ed25519(pair) => json!({
                "kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA", "kid": self.kid,
                "x": URL_SAFE_NO_PAD.encode(pair.public_key().as_ref())
            }),
            Pair::P256(pair) => {
                let point = pair.public_key().as_ref();
                json!({
                    "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": self.kid,
                    "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
                    "y": URL_SAFE_NO_PAD.encode(&point[33..65])
                })
            }
        }
    }

    /// A compact JWS with `header` and `claims`, signed with this key's algorithm (whatever
    /// the header says).
    pub fn sign(&self, header: &Value, claims: &Value) -> String {
        let input = signing_input(header, claims);
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let signature = match &self.pair {
            Pair::Rsa(pair) => {
                let mut signature = vec![0; pair.public_modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, &rng, input.as_bytes(), &mut signature)
                    .expect("sign");
                signature
            }
            Pair::Ed25519(pair) => pair.sign(input.as_bytes()).as_ref().to_vec(),
            Pair::P256(pair) => pair
                .sign(&rng, input.as_bytes())
                .expect("sign")
                .as_ref()
                .to_vec(),
        };
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    /// An access token as Tessera issues it.
    pub fn token(&self, claims: &Value) -> String {
        self.sign(
            &json!({ "alg": self.alg(), "typ": "at+jwt", "kid": self.kid }),
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
