//! Signing keys in the database (`keys.store = "database"`, issue 19): replicas with no shared
//! directory, the key-encryption key (wrong, missing, rotated), nothing in the clear in the
//! rows or the logs, and the move from a keys directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::Value;
use tessera::db::Database;
use tessera::db::repo::{signing_key_material, signing_keys};
use tessera::keys::store::Kek;

use crate::testkit::{
    DEADLINE, PASSWORD, ServerProcess, TestEnv, eventually, run_cli, stdout_json,
};

const ISSUER: &str = "http://id.tessera.test";

/// A fresh key-encryption key, as `openssl rand -base64 32` makes one.
fn new_kek() -> String {
    let bytes: [u8; 32] = std::array::from_fn(|_| rand_byte());
    STANDARD.encode(bytes)
}

fn rand_byte() -> u8 {
    let mut b = [0u8; 1];
    aws_lc_rs::rand::fill(&mut b).expect("random");
    b[0]
}

/// One test's database, and a way to run the CLI and servers on it with any key settings.
struct World {
    env: TestEnv,
    http: reqwest::Client,
    client: (String, String),
}

impl World {
    fn new() -> World {
        let env = TestEnv::new();
        // Users and clients need no key: these run with the files store in the test's dir.
        let client = env.cli_user_and_client("password");
        World {
            env,
            http: reqwest::Client::new(),
            client,
        }
    }

    /// A directory of its own under the test's temporary directory (not created).
    fn dir(&self, name: &str) -> PathBuf {
        self.env.dir.path().join(name)
    }

    fn vars<'a>(
        &'a self,
        keys_dir: &'a str,
        extra: &[(&'a str, &'a str)],
    ) -> Vec<(&'a str, &'a str)> {
        let mut vars = vec![
            ("DATABASE_URL", self.env.db.url.as_str()),
            ("TESSERA_ISSUER", ISSUER),
            ("TESSERA_KEYS_DIR", keys_dir),
            ("TESSERA_KEYS_RELOAD_INTERVAL_SECS", "1"),
        ];
        vars.extend_from_slice(extra);
        vars
    }

    fn cli(&self, keys_dir: &Path, extra: &[(&str, &str)], args: &[&str]) -> std::process::Output {
        let dir = keys_dir.to_string_lossy();
        run_cli(args, &self.vars(&dir, extra), None)
    }

    fn start(&self, keys_dir: &Path, extra: &[(&str, &str)]) -> ServerProcess {
        let dir = keys_dir.to_string_lossy();
        ServerProcess::start_with(&self.env, &self.vars(&dir, extra))
    }

    /// `tessera serve` that must fail to start: its exit status and its error, which must be
    /// one line (`tessera: …`), with no panic anywhere in stderr.
    fn start_fails(&self, keys_dir: &Path, extra: &[(&str, &str)]) -> (i32, String) {
        let dir = keys_dir.to_string_lossy();
        let mut command = Command::new(env!("CARGO_BIN_EXE_tessera"));
        command
            .args(["serve", "--bind", "127.0.0.1:0"])
            .current_dir(self.env.dir.path());
        for (name, _) in std::env::vars() {
            if name.starts_with("TESSERA_") || name == "DATABASE_URL" {
                command.env_remove(name);
            }
        }
        command.env("TESSERA_LOG", "warn");
        for (name, value) in self.vars(&dir, extra) {
            command.env(name, value);
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tessera runs");
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status;
            }
            if started.elapsed() > DEADLINE {
                let _ = child.kill();
                let _ = child.wait();
                panic!("tessera started although it should not have");
            }
            std::thread::sleep(Duration::from_millis(25));
        };
        let mut stderr = String::new();
        use std::io::Read;
        child
            .stderr
            .take()
            .expect("stderr")
            .read_to_string(&mut stderr)
            .expect("stderr");
        assert!(!stderr.contains("panicked"), "{stderr}");
        let errors: Vec<&str> = stderr
            .lines()
            .filter(|line| line.starts_with("tessera: "))
            .collect();
        assert_eq!(errors.len(), 1, "one error line: {stderr}");
        (status.code().unwrap_or(-1), errors[0].to_string())
    }

    async fn login(&self, server: &ServerProcess) -> String {
        let response = self
            .http
            .post(format!("{}/token", server.address))
            .basic_auth(&self.client.0, Some(&self.client.1))
            .form(&[
                ("grant_type", "password"),
                ("username", "ann@example.com"),
                ("password", PASSWORD),
                ("scope", "openid api"),
            ])
            .send()
            .await
            .expect("token request");
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.expect("json");
        body["access_token"].as_str().expect("access").to_string()
    }

    async fn jwks(&self, server: &ServerProcess) -> jsonwebtoken::jwk::JwkSet {
        self.http
            .get(format!("{}/.well-known/jwks.json", server.address))
            .send()
            .await
            .expect("jwks")
            .json()
            .await
            .expect("a JWKS")
    }

    async fn published(&self, server: &ServerProcess) -> Vec<String> {
        let mut kids: Vec<String> = self
            .jwks(server)
            .await
            .keys
            .into_iter()
            .filter_map(|k| k.common.key_id)
            .collect();
        kids.sort();
        kids
    }

    /// Verifies `token` as a resource server would: with the key its header names, from the
    /// JWKS `server` publishes, checking signature, issuer and expiry.
    async fn verifies_on(&self, server: &ServerProcess, token: &str) -> bool {
        let jwks = self.jwks(server).await;
        let header = jsonwebtoken::decode_header(token).expect("header");
        let Some(jwk) = header.kid.as_deref().and_then(|kid| jwks.find(kid)) else {
            return false;
        };
        let key = jsonwebtoken::DecodingKey::from_jwk(jwk).expect("decoding key");
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        validation.set_issuer(&[ISSUER]);
        validation.validate_aud = false;
        jsonwebtoken::decode::<Value>(token, &key, &validation).is_ok()
    }

    fn connect(&self) -> tessera::db::PooledConnection {
        Database::connect(&self.env.settings().database)
            .expect("db")
            .get()
            .expect("conn")
    }

    fn material(&self) -> Vec<signing_key_material::KeyMaterialRow> {
        signing_key_material::list(&mut self.connect()).expect("material")
    }
}

fn database(kek: &str) -> [(&str, &str); 2] {
    [
        ("TESSERA_KEYS_STORE", "database"),
        ("TESSERA_KEY_ENCRYPTION_KEY", kek),
    ]
}

fn kid(token: &str) -> String {
    jsonwebtoken::decode_header(token)
        .expect("header")
        .kid
        .expect("kid")
}

fn pem_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                .filter(|name| name.ends_with(".pem"))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether `text` holds any of `der` in a form that reads it back without a key: the raw bytes,
/// base64 (either alphabet, whole or in PEM lines), hex, or bytes its base64 decodes to.
fn holds_in_clear(text: &str, der: &[u8]) -> bool {
    let windows = |haystack: &[u8]| {
        der.windows(16)
            .any(|needle| haystack.windows(16).any(|w| w == needle))
    };
    let hex: String = der.iter().map(|b| format!("{b:02x}")).collect();
    let pem_lines: Vec<String> = STANDARD
        .encode(der)
        .as_bytes()
        .chunks(64)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    let decoded = [text, text.trim_start_matches("v1.")]
        .into_iter()
        .flat_map(|t| {
            [
                STANDARD.decode(t.trim()).ok(),
                URL_SAFE_NO_PAD.decode(t.trim()).ok(),
            ]
        })
        .flatten();
    windows(text.as_bytes())
        || text.contains("PRIVATE KEY")
        || pem_lines.iter().any(|line| text.contains(line.as_str()))
        || text.to_lowercase().contains(&hex[..64])
        || decoded.into_iter().any(|bytes| windows(&bytes))
}

/// PKCS#8 DER as a PEM `PRIVATE KEY`, as the files store writes it.
fn pkcs8_pem(der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).expect("base64 is ASCII"))
        .collect();
    format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        lines.join("\n")
    )
}

/// Every signing key in the database, opened with `kek` as the test's own check.
fn private_keys(world: &World, kek: &str) -> Vec<(String, Vec<u8>)> {
    let kek = Kek::parse(kek, "test").expect("kek");
    let mut conn = world.connect();
    let keys = signing_keys::list_all(&mut conn).expect("keys");
    world
        .material()
        .into_iter()
        .map(|m| {
            // The key that seals TOTP secrets is sealed beside the signing keys.
            let algorithm = match keys.iter().find(|k| k.kid == m.kid) {
                Some(key) => key.algorithm.as_str(),
                None if m.kid == tessera::keys::store::SECRETS_KEY_ROW => {
                    tessera::keys::store::SECRETS_KEY_ALGORITHM
                }
                None => panic!("material {} has no key", m.kid),
            };
            let der = kek.open(&m.kid, algorithm, &m.sealed).expect("opens");
            (m.kid, der)
        })
        .collect()
}

/// Two replicas, each with a keys directory of its own (and the CLI with a third), share only
/// the database and the key-encryption key: both rotations (publish, then promote) reach both,
/// and every token either signs verifies on the other through its JWKS.
#[tokio::test]
async fn replicas_with_no_shared_directory_rotate_and_verify_each_others_tokens() {
    let world = World::new();
    let kek = new_kek();
    let db = database(&kek);
    // At trace level, to show the key-encryption key and the private keys are never logged.
    let traced = [db[0], db[1], ("TESSERA_LOG", "trace")];
    let (dir_a, dir_b, dir_cli) = (world.dir("a"), world.dir("b"), world.dir("cli"));
    let a = world.start(&dir_a, &traced);
    let b = world.start(&dir_b, &traced);
    let mut logs = Vec::new();
    let from_a = world.login(&a).await;
    let from_b = world.login(&b).await;
    let first = kid(&from_a);
    assert_eq!(kid(&from_b), first, "one active key, from the database");
    for token in [&from_a, &from_b] {
        assert!(world.verifies_on(&a, token).await && world.verifies_on(&b, token).await);
    }

    let output = world.cli(&dir_cli, &traced, &["keys", "rotate", "--alg", "RS256"]);
    logs.push(String::from_utf8_lossy(&output.stderr).into_owned());
    let rotated = stdout_json(&output);
    let next = rotated[0]["next"].as_str().expect("next").to_string();
    for server in [&a, &b] {
        eventually(DEADLINE, "both replicas publish the next key", || async {
            world.published(server).await.contains(&next)
        })
        .await;
    }
    let output = world.cli(
        &dir_cli,
        &traced,
        &["keys", "rotate", "--alg", "RS256", "--force"],
    );
    logs.push(String::from_utf8_lossy(&output.stderr).into_owned());
    let promoted = stdout_json(&output);
    assert_eq!(promoted[0]["activated"], next.as_str());
    let mut signed = Vec::new();
    for server in [&a, &b] {
        let token = eventually(
            DEADLINE,
            "the replica signs with the promoted key",
            || async {
                let token = world.login(server).await;
                (kid(&token) == next).then_some(token)
            },
        )
        .await;
        signed.push(token);
    }
    for token in signed.iter().chain([&from_a, &from_b]) {
        assert!(world.verifies_on(&a, token).await, "verifies on A");
        assert!(world.verifies_on(&b, token).await, "verifies on B");
    }
    // A replica started now, with yet another empty directory, loads every key.
    let c = world.start(&world.dir("c"), &db);
    assert_eq!(world.published(&c).await, world.published(&a).await);
    for token in &signed {
        assert!(world.verifies_on(&c, token).await);
    }
    for server in [a, b, c] {
        let (status, lines) = server.stop_keeping_logs();
        assert!(status.success());
        logs.extend(lines);
    }
    for dir in [&dir_a, &dir_b, &dir_cli] {
        assert_eq!(
            pem_files(dir),
            Vec::<String>::new(),
            "no private key on disk"
        );
    }
    let keys = signing_keys::list_all(&mut world.connect()).expect("keys");
    assert_eq!(
        world.material().len(),
        keys.len() + 1,
        "every key, and the key that seals TOTP secrets, sealed in the database"
    );
    let logs = logs.join("\n");
    assert!(logs.len() > 10_000, "trace logs were written");
    let kek_bytes = STANDARD.decode(&kek).expect("base64");
    let kek_hex: String = kek_bytes.iter().map(|b| format!("{b:02x}")).collect();
    for form in [kek.clone(), URL_SAFE_NO_PAD.encode(&kek_bytes), kek_hex] {
        assert!(
            !logs.contains(&form),
            "the key-encryption key is not logged"
        );
    }
    for (kid, der) in private_keys(&world, &kek) {
        assert!(
            !holds_in_clear(&logs, &der),
            "{kid}'s private key is not logged"
        );
    }
}

/// With the database store and no key-encryption key, or one that is not 32 bytes of base64,
/// nothing starts; with another key than the one the rows are sealed under, the start fails
/// naming the key that does not open, and says nothing of either key-encryption key.
#[tokio::test]
async fn a_wrong_or_missing_key_encryption_key_stops_the_start_in_one_line() {
    let world = World::new();
    let dir = world.dir("keys");
    let (status, stderr) = world.start_fails(&dir, &[("TESSERA_KEYS_STORE", "database")]);
    assert_eq!(status, 2, "{stderr}");
    assert!(
        stderr.contains("needs a key-encryption key")
            && stderr.contains("TESSERA_KEY_ENCRYPTION_KEY"),
        "{stderr}"
    );
    let short = STANDARD.encode([1u8; 16]);
    let (status, stderr) = world.start_fails(&dir, &database(&short));
    assert_eq!(status, 2, "{stderr}");
    assert!(
        stderr.contains("keys.encryption_key is not a key-encryption key"),
        "{stderr}"
    );
    assert!(!stderr.contains(&short), "{stderr}");

    let right = new_kek();
    let made = stdout_json(&world.cli(
        &dir,
        &database(&right),
        &["keys", "rotate", "--alg", "RS256"],
    ));
    let wrong = new_kek();
    let (status, stderr) = world.start_fails(&dir, &database(&wrong));
    assert_ne!(status, 0);
    assert!(
        stderr.contains("is sealed under key-encryption key"),
        "{stderr}"
    );
    let kids: Vec<String> = signing_keys::list_all(&mut world.connect())
        .expect("keys")
        .into_iter()
        .map(|k| k.kid)
        .collect();
    assert!(kids.contains(&made[0]["next"].as_str().expect("next").to_string()));
    assert!(
        kids.iter().any(|kid| stderr.contains(kid.as_str())),
        "names the kid: {stderr}"
    );
    assert!(
        !stderr.contains(&right) && !stderr.contains(&wrong),
        "{stderr}"
    );
    // The right key still starts it: the failures changed nothing.
    let server = world.start(&dir, &database(&right));
    world.login(&server).await;
    assert!(server.stop().success());
    assert_eq!(pem_files(&dir), Vec::<String>::new());
}

/// The rows hold the private keys sealed: no form of the PKCS#8 DER (raw, base64, PEM lines,
/// hex) is in any column. The check itself finds the key in the decrypted value, and the
/// decrypted value is the key the server signs with (a token it signs verifies with the
/// server's JWKS). A sealed key copied onto another key's row does not open there.
#[tokio::test]
async fn the_rows_hold_no_private_key_in_the_clear_and_a_moved_row_does_not_open() {
    let world = World::new();
    let kek = new_kek();
    let db = database(&kek);
    let dir = world.dir("keys");
    stdout_json(&world.cli(&dir, &db, &["keys", "rotate"]));
    let keys = private_keys(&world, &kek);
    assert_eq!(keys.len(), 6);
    let mut conn = world.connect();
    let mut columns: Vec<String> = Vec::new();
    for m in signing_key_material::list(&mut conn).expect("material") {
        columns.extend([m.kid, m.kek_id, m.sealed, m.created_at.to_string()]);
    }
    for k in signing_keys::list_all(&mut conn).expect("keys") {
        columns.extend([k.kid, k.algorithm, k.state]);
    }
    for (kid, der) in &keys {
        // The smallest, Ed25519's PKCS#8, is 48 bytes.
        assert!(der.len() >= 48, "a PKCS#8 key");
        for column in &columns {
            assert!(!holds_in_clear(column, der), "{kid} in clear in {column}");
        }
        // The check finds the key in every form it looks for.
        let pem_body = STANDARD.encode(der);
        let hex: String = der.iter().map(|b| format!("{b:02x}")).collect();
        for clear in [
            // What the column would hold were the value stored unsealed.
            format!("v1.{}", URL_SAFE_NO_PAD.encode(der)),
            pem_body.clone(),
            pem_body[pem_body.len() / 4..pem_body.len() * 3 / 4].to_string(),
            URL_SAFE_NO_PAD.encode(der),
            hex,
        ] {
            assert!(holds_in_clear(&clear, der));
        }
    }
    // The decrypted value is the signing key: a token signed with it verifies on the server.
    let server = world.start(&dir, &db);
    let active = signing_keys::list_all(&mut conn)
        .expect("keys")
        .into_iter()
        .find(|k| k.state == "active" && k.algorithm == "RS256")
        .expect("active");
    let der = &keys
        .iter()
        .find(|(kid, _)| *kid == active.kid)
        .expect("its key")
        .1;
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(active.kid.clone());
    let claims = serde_json::json!({ "iss": ISSUER, "sub": "x", "exp": 4_000_000_000u64 });
    let forged = jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_rsa_pem(pkcs8_pem(der).as_bytes()).expect("PKCS#8"),
    )
    .expect("signs");
    assert!(world.verifies_on(&server, &forged).await);
    assert!(server.stop().success());

    // Copy the active key's sealed form onto the next key's row (same KEK, right format).
    let rows = signing_key_material::list(&mut conn).expect("material");
    let from = rows.iter().find(|m| m.kid == active.kid).expect("active's");
    let onto = rows.iter().find(|m| m.kid != active.kid).expect("next's");
    assert_eq!(
        signing_key_material::reseal(
            &mut conn,
            &onto.kid,
            &onto.kek_id,
            &from.kek_id,
            &from.sealed
        )
        .expect("update"),
        1
    );
    let (status, stderr) = world.start_fails(&dir, &db);
    assert_ne!(status, 0);
    assert!(
        stderr.contains(&format!("signing key {} does not open", onto.kid))
            && stderr.contains("altered or copied"),
        "{stderr}"
    );
}

/// A new key-encryption key: with only the new one the start fails (the rows are sealed under
/// the old); with both it starts and new keys are sealed under the new one; `keys rewrap`
/// reseals every row in one go (and again changes nothing); then the new one alone starts, and
/// the old one alone no longer does. Tokens signed before still verify.
#[tokio::test]
async fn the_key_encryption_key_rotates_with_the_old_one_accepted_until_rewrap() {
    let world = World::new();
    let (old, new) = (new_kek(), new_kek());
    let dir = world.dir("keys");
    stdout_json(&world.cli(&dir, &database(&old), &["keys", "rotate"]));
    let before = world.start(&dir, &database(&old));
    let token = world.login(&before).await;
    let published = world.published(&before).await;
    assert!(before.stop().success());
    let old_id = Kek::parse(&old, "t").expect("kek").id().to_string();
    let new_id = Kek::parse(&new, "t").expect("kek").id().to_string();

    let (status, stderr) = world.start_fails(&dir, &database(&new));
    assert_ne!(status, 0);
    assert!(
        stderr.contains(&format!("is sealed under key-encryption key {old_id}"))
            && stderr.contains(&new_id)
            && stderr.contains("TESSERA_KEY_ENCRYPTION_KEY_PREVIOUS"),
        "{stderr}"
    );
    // Rewrap needs the old key too, and fails whole without it.
    let refused = world.cli(&dir, &database(&new), &["keys", "rewrap"]);
    assert!(!refused.status.success());
    assert!(world.material().iter().all(|m| m.kek_id == old_id));

    let both = [
        ("TESSERA_KEYS_STORE", "database"),
        ("TESSERA_KEY_ENCRYPTION_KEY", new.as_str()),
        ("TESSERA_KEY_ENCRYPTION_KEY_PREVIOUS", old.as_str()),
    ];
    let during = world.start(&dir, &both);
    assert_eq!(world.published(&during).await, published);
    assert!(world.verifies_on(&during, &token).await);
    // A key made meanwhile is sealed under the new key.
    let rotated = stdout_json(&world.cli(
        &dir,
        &both,
        &["keys", "rotate", "--alg", "RS256", "--force"],
    ));
    let made = rotated[0]["next"].as_str().expect("next").to_string();
    let sealed_under = |kid: &str| {
        world
            .material()
            .into_iter()
            .find(|m| m.kid == kid)
            .map(|m| m.kek_id)
    };
    assert_eq!(sealed_under(&made), Some(new_id.clone()));
    let (status, logs) = during.stop_keeping_logs();
    assert!(status.success());

    // Every row under the old KEK is resealed: each algorithm's keys, and the key that seals
    // TOTP secrets.
    let under_old: std::collections::BTreeSet<String> = world
        .material()
        .into_iter()
        .filter(|m| m.kek_id == old_id)
        .map(|m| m.kid)
        .collect();
    assert!(under_old.contains(tessera::keys::store::SECRETS_KEY_ROW));
    assert!(under_old.len() >= 5, "{under_old:?}");
    let rewrapped = stdout_json(&world.cli(&dir, &both, &["keys", "rewrap"]));
    assert_eq!(rewrapped["kek_id"], new_id.as_str());
    let kids = |list: &Value| -> std::collections::BTreeSet<String> {
        list.as_array()
            .expect("list")
            .iter()
            .map(|kid| kid.as_str().expect("kid").to_string())
            .collect()
    };
    assert_eq!(kids(&rewrapped["rewrapped"]), under_old);
    assert_eq!(rewrapped["unchanged"], serde_json::json!([made]));
    assert!(world.material().iter().all(|m| m.kek_id == new_id));
    let again = stdout_json(&world.cli(&dir, &both, &["keys", "rewrap"]));
    assert_eq!(again["rewrapped"], serde_json::json!([]));

    let after = world.start(&dir, &database(&new));
    assert!(
        world.verifies_on(&after, &token).await,
        "a token from before verifies"
    );
    world.login(&after).await;
    assert!(after.stop().success());
    let (status, stderr) = world.start_fails(&dir, &database(&old));
    assert_ne!(status, 0);
    assert!(
        stderr.contains(&format!("is sealed under key-encryption key {new_id}")),
        "{stderr}"
    );
    let logs = logs.join("\n");
    assert!(
        !logs.contains(&old) && !logs.contains(&new),
        "no key-encryption key logged"
    );
}

/// A files-store deployment moves to the database: `keys import-files` copies its keys (twice
/// changes nothing, the files stay), and a database-store server with an empty directory
/// publishes the same kids and accepts the tokens signed before. A file that holds another key
/// than its name is refused and nothing is imported.
#[tokio::test]
async fn keys_imported_from_files_keep_the_jwks_and_the_old_tokens() {
    let world = World::new();
    let files_dir = world.dir("files");
    stdout_json(&world.cli(&files_dir, &[], &["keys", "rotate"]));
    let files_server = world.start(&files_dir, &[]);
    let token = world.login(&files_server).await;
    let published = world.published(&files_server).await;
    // An active and a next key of each of the three algorithms.
    assert_eq!(published.len(), 6);
    let rsa: Vec<String> = world
        .jwks(&files_server)
        .await
        .keys
        .into_iter()
        .filter(|k| matches!(k.algorithm, jsonwebtoken::jwk::AlgorithmParameters::RSA(_)))
        .filter_map(|k| k.common.key_id)
        .collect();
    assert_eq!(rsa.len(), 2, "the active and the next RSA key");
    assert!(files_server.stop().success());
    let kek = new_kek();
    let db = database(&kek);

    // A file that holds another key than its name (a mix-up, or a planted key).
    // Two keys of one algorithm, so the file parses and only its thumbprint gives it away.
    let swapped = files_dir.join(format!("{}.pem", rsa[0]));
    let genuine = std::fs::read(&swapped).expect("key file");
    std::fs::copy(files_dir.join(format!("{}.pem", rsa[1])), &swapped).expect("swap");
    let refused = world.cli(&files_dir, &db, &["keys", "import-files"]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("holds a different key than its name"),
        "{stderr}"
    );
    assert!(world.material().is_empty(), "nothing imported");
    std::fs::write(&swapped, genuine).expect("restore");

    let imported = stdout_json(&world.cli(&files_dir, &db, &["keys", "import-files"]));
    let mut kids: Vec<String> = imported["imported"]
        .as_array()
        .expect("list")
        .iter()
        .map(|k| k.as_str().expect("kid").to_string())
        .collect();
    kids.sort();
    assert_eq!(kids, published);
    let again = stdout_json(&world.cli(&files_dir, &db, &["keys", "import-files"]));
    assert_eq!(again["imported"], serde_json::json!([]));
    assert_eq!(again["already_stored"].as_array().expect("list").len(), 6);
    assert_eq!(
        pem_files(&files_dir).len(),
        6,
        "the files are left in place"
    );

    let empty = world.dir("empty");
    let server = world.start(&empty, &db);
    assert_eq!(world.published(&server).await, published);
    assert!(world.verifies_on(&server, &token).await);
    assert_eq!(kid(&world.login(&server).await), kid(&token));
    assert!(server.stop().success());
    assert_eq!(pem_files(&empty), Vec::<String>::new());
}

/// A key-encryption key file readable by others is named in a warning (and still used).
#[tokio::test]
async fn a_key_encryption_key_file_readable_by_others_is_warned_about() {
    use std::os::unix::fs::PermissionsExt;
    let world = World::new();
    let kek = new_kek();
    let file = world.dir("kek");
    std::fs::write(&file, format!("{kek}\n")).expect("write");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let path = file.to_string_lossy().into_owned();
    let vars = [
        ("TESSERA_KEYS_STORE", "database"),
        ("TESSERA_KEY_ENCRYPTION_KEY_FILE", path.as_str()),
    ];
    let dir = world.dir("keys");
    let output = world.cli(&dir, &vars, &["keys", "rotate"]);
    stdout_json(&output);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("readable by others"), "{stderr}");
    assert!(!stderr.contains(&kek));
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let output = world.cli(&dir, &vars, &["keys", "list"]);
    assert_eq!(stdout_json(&output).as_array().expect("list").len(), 6);
    assert!(!String::from_utf8_lossy(&output.stderr).contains("readable by others"));
    // The key given both ways is refused rather than one silently winning.
    let both = [
        vars[0],
        vars[1],
        ("TESSERA_KEY_ENCRYPTION_KEY", kek.as_str()),
    ];
    let output = world.cli(&dir, &both, &["keys", "list"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("both set"));
}

/// Settings of an in-process replica with its own keys directory `dir`, and the database store
/// under `kek` when given (the files store otherwise).
fn replica_settings(env: &TestEnv, dir: &str, kek: Option<&str>) -> tessera::config::Settings {
    let mut settings = env.settings();
    settings.keys.dir = env.dir.path().join(dir);
    if let Some(kek) = kek {
        settings.keys.store = tessera::config::KeyStoreKind::Database;
        settings.keys.encryption_key = Some(tessera::config::Secret::new(kek));
    }
    settings
}

/// `keys import-files` through its use case, with `settings`.
async fn import_files(
    settings: tessera::config::Settings,
) -> Result<tessera::keys::store::Imported, String> {
    tokio::task::spawn_blocking(move || {
        let db = Database::connect(&settings.database).expect("connect");
        let mut conn = db.get().expect("connection");
        tessera::usecases::keys::import_files(&mut conn, &settings.keys, tessera::db::now())
            .map_err(|e| e.to_string())
    })
    .await
    .expect("task")
}

#[tokio::test]
async fn with_the_database_store_a_totp_secret_sealed_on_one_replica_opens_on_another() {
    let env = TestEnv::new();
    let kek = new_kek();
    let secret = b"a TOTP secret of twenty";
    let a = env
        .spawn_with(replica_settings(&env, "a", Some(&kek)))
        .await;
    let b = env
        .spawn_with(replica_settings(&env, "b", Some(&kek)))
        .await;
    let sealed = a
        .state
        .services
        .secrets
        .seal("user-1", secret)
        .expect("seal");
    let opened = b
        .state
        .services
        .secrets
        .open("user-1", &sealed)
        .expect("opens");
    assert_eq!(opened, secret);
    // The control: a secrets key of a directory of its own (what each replica had made before)
    // does not open it.
    let stranger = tessera::mfa::SecretBox::load_or_create(&env.dir.path().join("stranger"))
        .expect("a key of its own");
    assert!(stranger.open("user-1", &sealed).is_err());
    for dir in ["a", "b"] {
        assert!(
            !env.dir.path().join(dir).join("secrets.key").exists(),
            "no secrets key file in {dir}"
        );
    }
    // One row holds it, sealed under the KEK.
    let row = {
        let url = env.db.url.clone();
        tokio::task::spawn_blocking(move || {
            let mut settings = tessera::config::Settings::defaults().expect("defaults");
            settings.database.url = url;
            let db = Database::connect(&settings.database).expect("connect");
            let mut conn = db.get().expect("connection");
            signing_key_material::find(&mut conn, tessera::keys::store::SECRETS_KEY_ROW)
                .expect("query")
                .expect("the secrets key's row")
        })
        .await
        .expect("task")
    };
    assert_eq!(row.kek_id, Kek::parse(&kek, "test").expect("kek").id());
    assert!(row.sealed.starts_with("v1."), "{}", row.sealed);
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn keys_import_files_takes_over_the_secrets_key_file() {
    let env = TestEnv::new();
    let kek = new_kek();
    let secret = b"sealed before the move";
    let files = env.spawn_with(replica_settings(&env, "shared", None)).await;
    let sealed = files
        .state
        .services
        .secrets
        .seal("user-2", secret)
        .expect("seal");
    files.stop().await;

    let imported = import_files(replica_settings(&env, "shared", Some(&kek)))
        .await
        .expect("imported");
    assert!(imported.secrets_key_imported);
    assert_eq!(imported.imported.len(), 3, "each algorithm's active key");
    let again = import_files(replica_settings(&env, "shared", Some(&kek)))
        .await
        .expect("imported");
    assert!(!again.secrets_key_imported && again.imported.is_empty());
    // The same directory still works (its file is the database's key), and so does a replica
    // that never saw it.
    for dir in ["shared", "elsewhere"] {
        let app = env
            .spawn_with(replica_settings(&env, dir, Some(&kek)))
            .await;
        let opened = app
            .state
            .services
            .secrets
            .open("user-2", &sealed)
            .expect("opens");
        assert_eq!(opened, secret, "{dir}");
        app.stop().await;
    }

    // A leftover secrets.key that is not the database's stops the start, in words.
    let other = env.dir.path().join("other");
    std::fs::create_dir_all(&other).expect("dir");
    std::fs::write(other.join("secrets.key"), format!("{}\n", new_kek())).expect("write");
    let refused = tessera::startup::Application::build(replica_settings(&env, "other", Some(&kek)))
        .await
        .err()
        .expect("refused");
    assert!(
        refused
            .to_string()
            .contains("is not the key the database holds for TOTP secrets"),
        "{refused}"
    );
}

#[tokio::test]
async fn no_new_secrets_key_is_made_while_totp_secrets_exist() {
    let env = TestEnv::new();
    let kek = new_kek();
    // An authenticator set up under the files store, whose secrets.key is then lost.
    let files = env.spawn_with(replica_settings(&env, "lost", None)).await;
    let user = files
        .create_user("tina@example.com", crate::testkit::PASSWORD, &[])
        .await;
    crate::testkit::mfa::enrol_totp(&files, &user, "tina@example.com").await;
    files.stop().await;
    std::fs::remove_file(env.dir.path().join("lost").join("secrets.key")).expect("lose it");
    let refused = import_files(replica_settings(&env, "lost", Some(&kek)))
        .await
        .expect_err("refused");
    assert!(
        refused.contains("TOTP secrets exist but the database holds no key"),
        "{refused}"
    );
}
