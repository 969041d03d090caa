//! A fake upstream OpenID Connect provider on loopback that speaks the real protocol:
//! discovery, an authorization endpoint that redirects back with a code, a token endpoint that
//! checks the code, client secret, redirect URI and PKCE verifier, a JWKS, and RS256 ID tokens
//! carrying the nonce it was given. Knobs make it misbehave the ways real providers (or an
//! attacker in the middle) could.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

pub const CLIENT_ID: &str = "tessera-at-fake";
pub const CLIENT_SECRET: &str = "fake-upstream-client-secret";

#[derive(Clone, Debug)]
pub struct Identity {
    pub sub: String,
    pub email: String,
    pub email_verified: bool,
    pub name: String,
}

/// How the next answers go wrong, if at all.
#[derive(Clone, Debug, Default)]
pub struct Knobs {
    pub deny: bool,
    pub wrong_aud: bool,
    pub wrong_iss: bool,
    pub bad_signature: bool,
    pub expired: bool,
    pub wrong_nonce: bool,
    /// The token endpoint answers with this status and no tokens.
    pub token_status: Option<u16>,
    /// The token endpoint waits this long before answering.
    pub token_delay: Duration,
    /// ID tokens name a key id the JWKS does not publish.
    pub unknown_kid: bool,
    /// The token answer carries this many bytes of padding, sent chunked (no length given).
    pub token_padding: usize,
}

struct Grant {
    client_id: String,
    redirect_uri: String,
    challenge: String,
    nonce: String,
    identity: Identity,
}

struct State {
    issuer: String,
    identity: Identity,
    knobs: Knobs,
    codes: HashMap<String, Grant>,
    token_requests: usize,
    jwks_requests: usize,
    /// Which of the two keys signs and is published: a rotation swaps them.
    rotated: bool,
}

/// Two key pairs; one signs and is published, the other signs forgeries (or, after a
/// rotation, takes over under its own kid).
struct Keys {
    pairs: [KeyPair; 2],
    kids: [String; 2],
    jwks: [Value; 2],
}

pub struct FakeUpstream {
    pub issuer: String,
    state: Arc<Mutex<State>>,
    handle: actix_web::dev::ServerHandle,
}

impl FakeUpstream {
    pub async fn start() -> FakeUpstream {
        FakeUpstream::start_on("127.0.0.1").await
    }

    /// On another loopback address (any of 127.0.0.0/8 answers on Linux).
    pub async fn start_on(host: &str) -> FakeUpstream {
        let listener = std::net::TcpListener::bind((host, 0)).expect("bind");
        let issuer = format!("http://{}", listener.local_addr().expect("addr"));
        let pairs = [0, 1].map(|_| KeyPair::generate(KeySize::Rsa2048).expect("key"));
        let kids = ["fake-key-1".to_string(), "fake-key-2".to_string()];
        let published = [0, 1].map(|i| {
            let public = pairs[i].public_key();
            let n = URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero());
            let e = URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero());
            json!({"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kids[i], "n": n, "e": e})
        });
        let keys = Arc::new(Keys {
            pairs,
            kids,
            jwks: published,
        });
        let state = Arc::new(Mutex::new(State {
            issuer: issuer.clone(),
            identity: Identity {
                sub: "100200300".into(),
                email: "gina@example.com".into(),
                email_verified: true,
                name: "Gina Upstream".into(),
            },
            knobs: Knobs::default(),
            codes: HashMap::new(),
            token_requests: 0,
            jwks_requests: 0,
            rotated: false,
        }));
        let (app_state, app_keys) = (state.clone(), keys.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(web::Data::from(app_state.clone()))
                .app_data(web::Data::from(app_keys.clone()))
                .route(
                    "/.well-known/openid-configuration",
                    web::get().to(discovery),
                )
                .route("/authorize", web::get().to(authorize))
                .route("/token", web::post().to(token))
                .route("/jwks", web::get().to(jwks))
        })
        .workers(1)
        .listen(listener)
        .expect("listen")
        .shutdown_timeout(0)
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        FakeUpstream {
            issuer,
            state,
            handle,
        }
    }

    /// Who signs in next.
    pub fn set_identity(&self, identity: Identity) {
        self.state.lock().expect("lock").identity = identity;
    }

    pub fn set_knobs(&self, knobs: Knobs) {
        self.state.lock().expect("lock").knobs = knobs;
    }

    pub fn token_requests(&self) -> usize {
        self.state.lock().expect("lock").token_requests
    }

    pub fn jwks_requests(&self) -> usize {
        self.state.lock().expect("lock").jwks_requests
    }

    /// Starts signing with the other key and publishes only that one.
    pub fn rotate_keys(&self) {
        let mut state = self.state.lock().expect("lock");
        state.rotated = !state.rotated;
    }

    pub async fn stop(&self) {
        self.handle.stop(false).await;
    }
}

async fn discovery(state: web::Data<Mutex<State>>) -> HttpResponse {
    let issuer = state.lock().expect("lock").issuer.clone();
    HttpResponse::Ok().json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
    }))
}

fn query(req: &HttpRequest) -> HashMap<String, String> {
    form_urlencoded::parse(req.query_string().as_bytes())
        .into_owned()
        .collect()
}

fn error(status: u16, code: &str) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).expect("status"))
        .json(json!({ "error": code }))
}

/// The person "signs in" at once as the configured identity (or declines, with `deny`).
async fn authorize(req: HttpRequest, state: web::Data<Mutex<State>>) -> HttpResponse {
    let q = query(&req);
    let get = |k: &str| q.get(k).cloned().unwrap_or_default();
    if get("client_id") != CLIENT_ID
        || get("response_type") != "code"
        || get("code_challenge_method") != "S256"
        || get("code_challenge").len() != 43
        || get("nonce").is_empty()
        || get("state").is_empty()
        || !get("scope").split(' ').any(|s| s == "openid")
    {
        return HttpResponse::BadRequest().body(format!("bad authorization request: {q:?}"));
    }
    let redirect_uri = get("redirect_uri");
    let mut state = state.lock().expect("lock");
    let mut back = form_urlencoded::Serializer::new(String::new());
    if state.knobs.deny {
        back.append_pair("error", "access_denied");
    } else {
        let code = tessera::crypto::random_token(24).expect("random");
        let identity = state.identity.clone();
        state.codes.insert(
            code.clone(),
            Grant {
                client_id: get("client_id"),
                redirect_uri: redirect_uri.clone(),
                challenge: get("code_challenge"),
                nonce: get("nonce"),
                identity,
            },
        );
        back.append_pair("code", &code);
    }
    back.append_pair("state", &get("state"));
    HttpResponse::Found()
        .insert_header(("Location", format!("{redirect_uri}?{}", back.finish())))
        .finish()
}

async fn token(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<Mutex<State>>,
    keys: web::Data<Keys>,
) -> HttpResponse {
    let (knobs, current) = {
        let mut state = state.lock().expect("lock");
        state.token_requests += 1;
        (state.knobs.clone(), usize::from(state.rotated))
    };
    if !knobs.token_delay.is_zero() {
        tokio::time::sleep(knobs.token_delay).await;
    }
    if let Some(status) = knobs.token_status {
        return error(status, "temporarily_unavailable");
    }
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    let get = |k: &str| form.get(k).cloned().unwrap_or_default();
    // client_secret_basic (form-urlencoded id and secret, RFC 6749 §2.3.1) or _post.
    let (client_id, secret) = match req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
    {
        Some(encoded) => {
            let decoded =
                String::from_utf8(STANDARD.decode(encoded).unwrap_or_default()).unwrap_or_default();
            let (id, secret) = decoded.split_once(':').unwrap_or_default();
            let unescape = |s: &str| {
                form_urlencoded::parse(format!("x={s}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default()
            };
            (unescape(id), unescape(secret))
        }
        None => (get("client_id"), get("client_secret")),
    };
    if client_id != CLIENT_ID || secret != CLIENT_SECRET {
        return error(401, "invalid_client");
    }
    if get("grant_type") != "authorization_code" {
        return error(400, "unsupported_grant_type");
    }
    let Some(grant) = state.lock().expect("lock").codes.remove(&get("code")) else {
        return error(400, "invalid_grant");
    };
    let challenge = URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        get("code_verifier").as_bytes(),
    ));
    if grant.client_id != client_id
        || grant.redirect_uri != get("redirect_uri")
        || grant.challenge != challenge
    {
        return error(400, "invalid_grant");
    }
    let issuer = state.lock().expect("lock").issuer.clone();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("time")
        .as_secs() as i64;
    let (iat, exp) = if knobs.expired {
        (now - 7200, now - 3600)
    } else {
        (now, now + 3600)
    };
    let claims = json!({
        "iss": if knobs.wrong_iss { "https://evil.example".to_string() } else { issuer },
        "aud": if knobs.wrong_aud { "someone-else" } else { CLIENT_ID },
        "azp": if knobs.wrong_aud { "someone-else" } else { CLIENT_ID },
        "sub": grant.identity.sub,
        "email": grant.identity.email,
        "email_verified": grant.identity.email_verified,
        "name": grant.identity.name,
        "nonce": if knobs.wrong_nonce { "not-the-nonce".to_string() } else { grant.nonce },
        "iat": iat,
        "exp": exp,
    });
    let signer = if knobs.bad_signature {
        &keys.pairs[1 - current]
    } else {
        &keys.pairs[current]
    };
    let kid = if knobs.unknown_kid {
        "never-published"
    } else {
        &keys.kids[current]
    };
    let id_token = sign(signer, kid, &claims);
    let answer = json!({
        "access_token": "upstream-access-token",
        "token_type": "Bearer",
        "expires_in": 3600,
        "scope": "openid email profile",
        "id_token": id_token,
    });
    if knobs.token_padding == 0 {
        return HttpResponse::Ok().json(answer);
    }
    // Valid JSON of any size: the answer, then whitespace, in 64 KiB chunks.
    let mut chunks = vec![bytes::Bytes::from(answer.to_string())];
    let mut left = knobs.token_padding;
    while left > 0 {
        let n = left.min(64 * 1024);
        chunks.push(bytes::Bytes::from(vec![b' '; n]));
        left -= n;
    }
    HttpResponse::Ok()
        .content_type("application/json")
        .streaming(futures::stream::iter(
            chunks.into_iter().map(Ok::<_, actix_web::Error>),
        ))
}

async fn jwks(state: web::Data<Mutex<State>>, keys: web::Data<Keys>) -> HttpResponse {
    let current = {
        let mut state = state.lock().expect("lock");
        state.jwks_requests += 1;
        usize::from(state.rotated)
    };
    HttpResponse::Ok().json(json!({ "keys": [keys.jwks[current]] }))
}

fn sign(key: &KeyPair, kid: &str, claims: &Value) -> String {
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": kid});
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut signature = vec![0; key.public_modulus_len()];
    key.sign(
        &RSA_PKCS1_SHA256,
        &aws_lc_rs::rand::SystemRandom::new(),
        input.as_bytes(),
        &mut signature,
    )
    .expect("sign");
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}
