//! Key rotation under load: the example resource server (notes-api, through tessera-verify)
//! verifies a continuous stream of freshly issued tokens from two Tessera replicas while the
//! keys are rotated twice with the real CLI. Not one verification may fail, the verifier must
//! never meet an unknown kid (the next key was in its cache before it signed), and a retired
//! key must leave the JWKS only after every token it signed has expired.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use tessera::clients::ClientSpec;
use tessera::clock::Clock;

use crate::testkit::{TestApp, TestEnv};

const ISSUER: &str = "https://id.tessera.test";

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("time")
        .as_secs_f64()
}

/// `kid` from the header and `exp` from the payload (already verified by the API).
fn kid_and_exp(token: &str) -> (String, i64) {
    let mut parts = token.split('.');
    let mut segment = || -> Value {
        serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(parts.next().expect("segment"))
                .expect("base64"),
        )
        .expect("json")
    };
    let header = segment();
    let payload = segment();
    (
        header["kid"].as_str().expect("kid").to_string(),
        payload["exp"].as_i64().expect("exp"),
    )
}

#[derive(Default)]
struct Observed {
    verified: AtomicU64,
    failures: Mutex<Vec<String>>,
    /// The latest `exp` of any token seen signed by each kid.
    latest_exp: Mutex<HashMap<String, i64>>,
}

async fn issue(client: &reqwest::Client, replica: &TestApp, id: &str, secret: &str) -> String {
    let response = client
        .post(replica.url("/token"))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials"), ("scope", "notes")])
        .send()
        .await
        .expect("token request");
    assert_eq!(response.status(), 200, "token endpoint");
    let body: Value = response.json().await.expect("json");
    body["access_token"].as_str().expect("token").to_string()
}

async fn check(client: &reqwest::Client, api: &str, token: &str, observed: &Observed) {
    let response = client
        .get(format!("{api}/notes"))
        .bearer_auth(token)
        .send()
        .await
        .expect("notes request");
    let status = response.status();
    if status == 200 {
        observed.verified.fetch_add(1, Ordering::Relaxed);
    } else {
        let challenge = response
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap_or("").to_string());
        observed.failures.lock().expect("lock").push(format!(
            "{status} {challenge:?} for a token of kid {}",
            kid_and_exp(token).0
        ));
    }
}

async fn rotate(env: &Arc<TestEnv>) -> (bool, Value, String) {
    let env = env.clone();
    tokio::task::spawn_blocking(move || {
        // The CLI judges "published long enough" by its own configuration, so it gets the
        // servers' (as an operator's would, from the same config file).
        let output = crate::testkit::run_cli(
            &["keys", "rotate"],
            &[
                ("DATABASE_URL", env.db.url.as_str()),
                ("TESSERA_KEYS_DIR", &env.keys_dir().to_string_lossy()),
                ("TESSERA_KEYS_JWKS_MAX_AGE_SECS", "2"),
                ("TESSERA_KEYS_RELOAD_INTERVAL_SECS", "1"),
            ],
            None,
        );
        // Every algorithm rotates; the RS256 step is the one this test follows.
        let stdout: Value = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
        let stdout = stdout
            .as_array()
            .and_then(|steps| steps.iter().find(|step| step["alg"] == "RS256"))
            .cloned()
            .unwrap_or(Value::Null);
        (
            output.status.success(),
            stdout,
            String::from_utf8_lossy(&output.stderr).to_string(),
        )
    })
    .await
    .expect("cli task")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn resource_server_verifies_every_token_while_keys_rotate_twice() {
    let env = Arc::new(TestEnv::new());
    let mut settings = env.settings();
    settings.server.issuer = Some(ISSUER.to_string());
    settings.keys.jwks_max_age_secs = 2;
    settings.keys.reload_interval_secs = 1;
    settings.keys.retire_leeway_secs = 1;
    settings.tokens.access_token_ttl_secs = 4;
    settings.tokens.id_token_ttl_secs = 4;
    // Two replicas on one database and keys directory.
    let a = env
        .spawn_with_clock(settings.clone(), Clock::system())
        .await;
    let b = env.spawn_with_clock(settings, Clock::system()).await;
    let (client_id, secret) = a
        .create_client(ClientSpec {
            name: "load".into(),
            grant_types: vec!["client_credentials".into()],
            scopes: vec!["notes".into()],
            audiences: vec!["notes".into()],
            ..ClientSpec::default()
        })
        .await;
    let secret = secret.expect("confidential");
    let jwks_url = a.url("/.well-known/jwks.json");

    let api = notes_api::build(notes_api::NotesConfig {
        bind: "127.0.0.1:0".parse().expect("addr"),
        issuer: ISSUER.to_string(),
        jwks_url: Some(jwks_url.clone()),
        audience: "notes".into(),
        cache_floor: Duration::from_secs(1),
        workers: 2,
    })
    .await
    .expect("notes-api starts");
    let api_url = format!("http://{}", api.address);
    let verifier = api.verifier.clone();
    let api_handle = api.server.handle();
    tokio::spawn(api.server);
    assert_eq!(
        verifier.stats().keys,
        3,
        "warm cache (a key per algorithm) before the load starts"
    );

    let stop = Arc::new(AtomicBool::new(false));
    let observed = Arc::new(Observed::default());
    let replicas = Arc::new([a, b]);
    let http = reqwest::Client::new();

    // The load: each worker takes a fresh token from alternating replicas, verifies it at the
    // API, and re-verifies the oldest token it still holds that has more than a second left.
    let mut workers = Vec::new();
    for worker in 0..4 {
        let (stop, observed, replicas, http, api_url) = (
            stop.clone(),
            observed.clone(),
            replicas.clone(),
            http.clone(),
            api_url.clone(),
        );
        let (client_id, secret) = (client_id.clone(), secret.clone());
        workers.push(tokio::spawn(async move {
            let mut held: VecDeque<(String, i64)> = VecDeque::new();
            let mut turn = worker;
            while !stop.load(Ordering::Relaxed) {
                turn += 1;
                let replica = &replicas[turn % 2];
                let token = issue(&http, replica, &client_id, &secret).await;
                let (kid, exp) = kid_and_exp(&token);
                {
                    let mut latest = observed.latest_exp.lock().expect("lock");
                    let entry = latest.entry(kid).or_insert(exp);
                    *entry = (*entry).max(exp);
                }
                check(&http, &api_url, &token, &observed).await;
                held.push_back((token, exp));
                while held
                    .front()
                    .is_some_and(|(_, exp)| (*exp as f64) - unix_now() < 1.0)
                {
                    held.pop_front();
                }
                if let Some((old, _)) = held.front() {
                    check(&http, &api_url, old, &observed).await;
                }
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
        }));
    }

    // Watch the JWKS: when did each kid first appear, and first disappear after that?
    let gone: Arc<Mutex<HashMap<String, f64>>> = Arc::default();
    let seen: Arc<Mutex<HashSet<String>>> = Arc::default();
    let watcher = {
        let (stop, gone, seen, http) = (stop.clone(), gone.clone(), seen.clone(), http.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let jwks: Value = http
                    .get(&jwks_url)
                    .send()
                    .await
                    .expect("jwks")
                    .json()
                    .await
                    .expect("json");
                let at = unix_now();
                let now: HashSet<String> = jwks["keys"]
                    .as_array()
                    .expect("keys")
                    .iter()
                    .map(|k| k["kid"].as_str().expect("kid").to_string())
                    .collect();
                {
                    let mut seen = seen.lock().expect("lock");
                    let mut gone = gone.lock().expect("lock");
                    for kid in seen.iter() {
                        if !now.contains(kid) {
                            gone.entry(kid.clone()).or_insert(at);
                        }
                    }
                    seen.extend(now);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };

    tokio::time::sleep(Duration::from_secs(1)).await;
    let original = replicas[0]
        .state
        .services
        .keys
        .current()
        .active()
        .kid()
        .to_string();
    let (ok, first, stderr) = rotate(&env).await;
    assert!(ok, "{stderr}");
    assert!(
        first["activated"].is_null(),
        "the first rotation only publishes a next key"
    );

    // Rotate twice; until a next key has been published long enough the CLI refuses.
    let mut retired_by_rotation = Vec::new();
    let mut refusals = 0;
    let started = Instant::now();
    while retired_by_rotation.len() < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "rotations stall"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (ok, rotation, stderr) = rotate(&env).await;
        if ok {
            retired_by_rotation.push(rotation["retiring"].as_str().expect("retiring").to_string());
        } else {
            assert!(stderr.contains("--force"), "{stderr}");
            refusals += 1;
        }
    }
    assert!(refusals > 0, "an early rotation was refused at least once");
    assert_eq!(retired_by_rotation[0], original);

    // Keep the load on until both demoted keys have left the JWKS.
    let started = Instant::now();
    loop {
        let all_gone = {
            let gone = gone.lock().expect("lock");
            retired_by_rotation.iter().all(|kid| gone.contains_key(kid))
        };
        if all_gone {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "retiring keys never left the JWKS"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.expect("worker");
    }
    watcher.await.expect("watcher");

    let failures = observed.failures.lock().expect("lock").clone();
    let verified = observed.verified.load(Ordering::Relaxed);
    eprintln!(
        "rotation under load: {verified} verified, {} failed, {refusals} early rotations refused, \
         kids {:?}, verifier {:?}",
        failures.len(),
        observed.latest_exp.lock().expect("lock").len(),
        verifier.stats()
    );
    assert!(
        failures.is_empty(),
        "{} failed of {}: {failures:?}",
        failures.len(),
        verified + failures.len() as u64
    );
    assert!(
        verified >= 200,
        "a continuous stream: only {verified} verifications"
    );
    let latest = observed.latest_exp.lock().expect("lock").clone();
    assert!(
        latest.len() >= 3,
        "tokens signed by three keys in turn: {latest:?}"
    );
    let gone = gone.lock().expect("lock").clone();
    for kid in &retired_by_rotation {
        let last_exp = latest[kid] as f64;
        assert!(
            gone[kid] > last_exp,
            "{kid} left the JWKS at {} before its last token expired at {last_exp}",
            gone[kid]
        );
    }
    assert_eq!(
        verifier.stats().unknown_kid_fetches,
        0,
        "every key was in the resource server's cache before it signed: {:?}",
        verifier.stats()
    );
    api_handle.stop(true).await;
    let [a, b] = Arc::try_unwrap(replicas).ok().expect("replicas");
    a.stop().await;
    b.stop().await;
}
