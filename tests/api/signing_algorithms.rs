//! Issue 18 item 6: EdDSA and ES256 signing keys beside RS256, chosen per client. Each client's
//! tokens carry its algorithm and the kid of that algorithm's active key, verify against the
//! published JWKS (independently with ring, and with tessera-verify), pass Tessera's own
//! checks (introspection, userinfo), survive a rotation, and no header can borrow a key of
//! another type.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use tessera::domain::SigningAlg;

use crate::testkit::{TestApp, TestEnv, eventually, stdout_json};

const ALGS: [&str; 3] = ["RS256", "EdDSA", "ES256"];

fn decode(part: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("json")
}

/// A confidential client_credentials client registered with the CLI, signing with `alg`.
fn add_client(env: &TestEnv, alg: &str) -> (String, String) {
    let out = stdout_json(&env.cli(
        &[
            "client",
            "add",
            "--name",
            &format!("{alg} service"),
            "--grant-types",
            "client_credentials",
            "--scopes",
            "notes",
            "--audience",
            "notes",
            "--signing-alg",
            alg,
        ],
        None,
    ));
    assert_eq!(out["signing_alg"], alg);
    (
        out["client_id"].as_str().expect("id").to_string(),
        out["client_secret"].as_str().expect("secret").to_string(),
    )
}

async fn client_credentials(app: &TestApp, client: &(String, String)) -> String {
    let response = app
        .token(
            (&client.0, &client.1),
            &[("grant_type", "client_credentials"), ("scope", "notes")],
        )
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    body["access_token"].as_str().expect("token").to_string()
}

async fn jwks(app: &TestApp) -> Vec<Value> {
    let body: Value = app
        .get("/.well-known/jwks.json")
        .await
        .json()
        .await
        .expect("jwks");
    body["keys"].as_array().expect("keys").clone()
}

/// Checks `token`'s signature with ring (not the server's aws-lc-rs, not jsonwebtoken) against
/// the published key its kid names; returns the header.
async fn verify_with_ring(app: &TestApp, token: &str) -> Value {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3);
    let header = decode(parts[0]);
    let keys = jwks(app).await;
    let jwk = keys
        .iter()
        .find(|k| k["kid"] == header["kid"])
        .expect("the kid is published");
    assert_eq!(jwk["alg"], header["alg"], "the header's alg is its key's");
    let b64 = |member: &str| {
        URL_SAFE_NO_PAD
            .decode(jwk[member].as_str().expect(member))
            .expect("base64url")
    };
    let message = format!("{}.{}", parts[0], parts[1]);
    let signature = URL_SAFE_NO_PAD.decode(parts[2]).expect("signature");
    match header["alg"].as_str().expect("alg") {
        "RS256" => ring::signature::RsaPublicKeyComponents {
            n: &b64("n"),
            e: &b64("e"),
        }
        .verify(
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            message.as_bytes(),
            &signature,
        )
        .expect("RS256 verifies"),
        "EdDSA" => {
            assert_eq!(
                (&jwk["kty"], &jwk["crv"]),
                (&json!("OKP"), &json!("Ed25519"))
            );
            ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, b64("x"))
                .verify(message.as_bytes(), &signature)
                .expect("EdDSA verifies")
        }
        "ES256" => {
            assert_eq!((&jwk["kty"], &jwk["crv"]), (&json!("EC"), &json!("P-256")));
            assert_eq!(signature.len(), 64, "r || s, not DER");
            let mut point = vec![4u8];
            point.extend(b64("x"));
            point.extend(b64("y"));
            ring::signature::UnparsedPublicKey::new(
                &ring::signature::ECDSA_P256_SHA256_FIXED,
                point,
            )
            .verify(message.as_bytes(), &signature)
            .expect("ES256 verifies")
        }
        other => panic!("unexpected alg {other}"),
    }
    header
}

fn verifier(app: &TestApp) -> tessera_verify::Verifier {
    tessera_verify::Verifier::builder(&app.state.services.issuer)
        .audience("notes")
        .jwks_url(app.url("/.well-known/jwks.json"))
        .build()
        .expect("verifier")
}

async fn introspect(app: &TestApp, client: &(String, String), token: &str) -> Value {
    let response = app
        .client
        .post(app.url("/introspect"))
        .basic_auth(&client.0, Some(&client.1))
        .form(&[("token", token)])
        .send()
        .await
        .expect("introspect");
    assert_eq!(response.status(), 200);
    response.json().await.expect("json")
}

/// The kid of the published key of `alg`'s type that the ring in memory signs with.
fn active_kid(app: &TestApp, alg: SigningAlg) -> String {
    app.state
        .services
        .keys
        .current()
        .active_for(alg)
        .kid()
        .to_string()
}

#[tokio::test]
async fn a_client_of_each_algorithm_gets_tokens_that_verify_against_the_jwks() {
    let env = TestEnv::new();
    let app = env.spawn().await;
    let verifier = verifier(&app);
    let mut kids = Vec::new();
    for alg in ALGS {
        let client = add_client(&env, alg);
        let token = client_credentials(&app, &client).await;
        let header = verify_with_ring(&app, &token).await;
        assert_eq!(header["alg"], alg);
        assert_eq!(header["typ"], "at+jwt");
        let kid = header["kid"].as_str().expect("kid").to_string();
        assert_eq!(kid, active_kid(&app, SigningAlg::parse(alg).expect("alg")));
        let claims = verifier
            .verify(&token)
            .await
            .expect("tessera-verify accepts it");
        assert_eq!(claims.client_id, client.0);
        let introspected = introspect(&app, &client, &token).await;
        assert_eq!(introspected["active"], true, "{alg}: {introspected}");
        kids.push(kid);
    }
    kids.sort();
    kids.dedup();
    assert_eq!(kids.len(), 3, "a key per algorithm");
    app.stop().await;
}

#[tokio::test]
async fn an_eddsa_clients_id_token_and_access_token_are_eddsa_and_pass_userinfo() {
    let env = TestEnv::new();
    let app = env.spawn().await;
    app.create_user("ed@example.com", "correct horse battery", &[])
        .await;
    let (id, secret) = app
        .create_client(tessera::clients::ClientSpec {
            name: "ed app".into(),
            grant_types: vec!["password".into()],
            scopes: vec!["openid".into(), "email".into()],
            signing_alg: Some(SigningAlg::EdDsa),
            ..Default::default()
        })
        .await;
    let secret = secret.expect("secret");
    let response = app
        .password_login(
            (&id, &secret),
            "ed@example.com",
            "correct horse battery",
            "openid email",
        )
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    for token in ["access_token", "id_token"] {
        let token = body[token].as_str().expect(token);
        let header = verify_with_ring(&app, token).await;
        assert_eq!(header["alg"], "EdDSA");
        assert_eq!(header["kid"], active_kid(&app, SigningAlg::EdDsa));
    }
    assert_eq!(
        app.userinfo_status(body["access_token"].as_str().expect("access"))
            .await,
        200
    );
    app.stop().await;
}

async fn admin_token(app: &TestApp) -> String {
    app.create_user("root@example.com", "correct horse battery", &["admin"])
        .await;
    let client = app.first_party_client().await;
    let response = app
        .password_login(
            (&client.0, &client.1),
            "root@example.com",
            "correct horse battery",
            "admin",
        )
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    body["access_token"].as_str().expect("token").to_string()
}

#[tokio::test]
async fn the_admin_api_sets_a_signing_alg_and_refuses_an_unknown_one_with_400() {
    let env = TestEnv::new();
    let app = env.spawn().await;
    let token = admin_token(&app).await;
    let post = |body: Value| {
        let (app, token) = (&app, &token);
        async move {
            app.client
                .post(app.url("/admin/clients"))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .expect("request")
        }
    };
    let list = || async {
        let response = app
            .client
            .get(app.url("/admin/clients"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("list");
        response.json::<Vec<Value>>().await.expect("json").len()
    };
    let before = list().await;
    for bad in ["HS256", "none", "es256", "PS256", ""] {
        let response = post(json!({
            "name": "bad", "grant_types": ["client_credentials"], "signing_alg": bad
        }))
        .await;
        assert_eq!(response.status(), 400, "{bad:?}");
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["error"], "invalid_request");
        assert!(
            body["error_description"]
                .as_str()
                .is_some_and(|d| d.contains("signing_alg") && d.contains("RS256, EdDSA, ES256")),
            "{body}"
        );
    }
    let wrong_type = post(json!({
        "name": "bad", "grant_types": ["client_credentials"], "signing_alg": 256
    }))
    .await;
    assert_eq!(wrong_type.status(), 400);
    assert_eq!(list().await, before, "no client was created");

    let created = post(json!({
        "name": "ec", "grant_types": ["client_credentials"], "scopes": ["notes"],
        "audiences": ["notes"], "signing_alg": "ES256"
    }))
    .await;
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.expect("json");
    assert_eq!(created["signing_alg"], "ES256");
    let client = (
        created["client_id"].as_str().expect("id").to_string(),
        created["client_secret"]
            .as_str()
            .expect("secret")
            .to_string(),
    );
    let header = decode(
        client_credentials(&app, &client)
            .await
            .split('.')
            .next()
            .expect("header"),
    );
    assert_eq!(header["alg"], "ES256");

    let default = post(json!({ "name": "rs", "grant_types": ["client_credentials"] })).await;
    let default: Value = default.json().await.expect("json");
    assert_eq!(default["signing_alg"], "RS256", "the default");

    // A PATCH switches it; the next token is EdDSA.
    let patched = app
        .client
        .patch(app.url(&format!("/admin/clients/{}", client.0)))
        .bearer_auth(&token)
        .json(&json!({ "signing_alg": "EdDSA" }))
        .send()
        .await
        .expect("patch");
    assert_eq!(patched.status(), 200);
    let header = decode(
        client_credentials(&app, &client)
            .await
            .split('.')
            .next()
            .expect("header"),
    );
    assert_eq!(header["alg"], "EdDSA");
    let refused = app
        .client
        .patch(app.url(&format!("/admin/clients/{}", client.0)))
        .bearer_auth(&token)
        .json(&json!({ "signing_alg": "HS256" }))
        .send()
        .await
        .expect("patch");
    assert_eq!(refused.status(), 400);
    app.stop().await;
}

#[test]
fn the_cli_refuses_an_unknown_signing_alg_clearly() {
    let env = TestEnv::new();
    for bad in ["HS256", "none", "eddsa"] {
        let out = env.cli(
            &[
                "client",
                "add",
                "--name",
                "x",
                "--grant-types",
                "client_credentials",
                "--signing-alg",
                bad,
            ],
            None,
        );
        assert!(!out.status.success(), "{bad}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("--signing-alg") && stderr.contains("RS256, EdDSA, ES256"),
            "{stderr}"
        );
    }
    let rotate = env.cli(&["keys", "rotate", "--alg", "HS256"], None);
    assert!(!rotate.status.success());
    let listed = stdout_json(&env.cli(&["client", "list"], None));
    assert_eq!(
        listed.as_array().map(Vec::len),
        Some(0),
        "nothing was added"
    );
}

#[tokio::test]
async fn rotating_the_eddsa_keys_keeps_old_tokens_verifying_and_leaves_the_others_alone() {
    let env = TestEnv::new();
    let mut settings = env.settings();
    settings.keys.reload_interval_secs = 1;
    let app = env.spawn_with(settings).await;
    let ed = add_client(&env, "EdDSA");
    let rs = add_client(&env, "RS256");
    let old_token = client_credentials(&app, &ed).await;
    let old_kid = decode(old_token.split('.').next().expect("header"))["kid"].clone();
    let rsa_kid = active_kid(&app, SigningAlg::Rs256);
    let ec_kid = active_kid(&app, SigningAlg::Es256);

    let first = stdout_json(&env.cli(&["keys", "rotate", "--alg", "EdDSA"], None));
    assert_eq!(
        first.as_array().map(Vec::len),
        Some(1),
        "only EdDSA: {first}"
    );
    assert_eq!(first[0]["alg"], "EdDSA");
    let next = first[0]["next"].as_str().expect("next").to_string();
    let second = stdout_json(&env.cli(&["keys", "rotate", "--alg", "EdDSA", "--force"], None));
    assert_eq!(second[0]["activated"], next.as_str());
    assert_eq!(second[0]["retiring"], old_kid);
    eventually(
        Duration::from_secs(5),
        "the promoted EdDSA key signs without a restart",
        || async { active_kid(&app, SigningAlg::EdDsa) == next },
    )
    .await;
    let new_token = client_credentials(&app, &ed).await;
    let header = verify_with_ring(&app, &new_token).await;
    assert_eq!(header["kid"], next.as_str());
    assert_eq!(header["alg"], "EdDSA");

    // The old token still verifies: its key is retiring, still published.
    verify_with_ring(&app, &old_token).await;
    let verifier = verifier(&app);
    assert!(verifier.verify(&old_token).await.is_ok());
    assert!(verifier.verify(&new_token).await.is_ok());
    assert_eq!(introspect(&app, &ed, &old_token).await["active"], true);

    // The other algorithms did not move.
    assert_eq!(active_kid(&app, SigningAlg::Rs256), rsa_kid);
    assert_eq!(active_kid(&app, SigningAlg::Es256), ec_kid);
    let rs_token = client_credentials(&app, &rs).await;
    assert_eq!(
        decode(rs_token.split('.').next().expect("header"))["kid"],
        rsa_kid.as_str()
    );
    let okp: Vec<Value> = jwks(&app)
        .await
        .into_iter()
        .filter(|k| k["kty"] == "OKP")
        .collect();
    assert_eq!(okp.len(), 3, "active, next and retiring EdDSA keys");
    assert_eq!(
        okp[0]["kid"],
        next.as_str(),
        "the active key first among them"
    );
    app.stop().await;
}

/// A JWS with `header` over `claims`, signed by the ring's active key of `by` whatever the
/// header claims.
fn forge(app: &TestApp, by: SigningAlg, header: &Value, claims: &Value) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(header).expect("json")),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("json"))
    );
    let signature = app
        .state
        .services
        .keys
        .current()
        .active_for(by)
        .sign(input.as_bytes())
        .expect("sign");
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// A password-grant client signing with `alg`, and the claims of a user's access token from
/// it, made valid for this provider's own endpoints too (so userinfo would accept them if
/// they were signed): what the forgeries below are made of.
async fn claims_to_forge(app: &TestApp, alg: SigningAlg) -> ((String, String), Value) {
    let email = format!("{}@example.com", alg.as_str().to_lowercase());
    app.create_user(&email, "correct horse battery", &[]).await;
    let (id, secret) = app
        .create_client(tessera::clients::ClientSpec {
            name: format!("{alg} app"),
            grant_types: vec!["password".into()],
            scopes: vec!["openid".into(), "notes".into()],
            audiences: vec!["notes".into()],
            signing_alg: Some(alg),
            ..Default::default()
        })
        .await;
    let client = (id, secret.expect("secret"));
    let response = app
        .password_login(
            (&client.0, &client.1),
            &email,
            "correct horse battery",
            "openid notes",
        )
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    let genuine = body["access_token"].as_str().expect("access");
    let mut claims = decode(genuine.split('.').nth(1).expect("claims"));
    claims["aud"] = json!(["notes", app.state.services.issuer.clone()]);
    (client, claims)
}

/// `alg: none`, HS256 keyed with a public key, and every pairing of an algorithm with a key of
/// another type: refused by introspection, userinfo and tessera-verify alike.
#[tokio::test]
async fn algorithm_confusion_tokens_are_refused_everywhere() {
    let env = TestEnv::new();
    let app = env.spawn().await;
    let (client, claims) = claims_to_forge(&app, SigningAlg::EdDsa).await;
    let verifier = verifier(&app);
    let keys = jwks(&app).await;
    let mut forged = Vec::new();
    let kid_of = |alg: SigningAlg| active_kid(&app, alg);
    // alg none, no signature, each of our kids.
    for alg in SigningAlg::ALL {
        let header = json!({ "alg": "none", "typ": "at+jwt", "kid": kid_of(alg) });
        let input = forge(&app, alg, &header, &claims);
        let unsigned = format!("{}.", input.rsplit_once('.').expect("parts").0);
        forged.push(("none".to_string(), unsigned));
    }
    // HS256 with each published key's JSON, and its x or n, as the HMAC secret.
    for jwk in &keys {
        let header = json!({ "alg": "HS256", "typ": "at+jwt", "kid": jwk["kid"] });
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).expect("json")),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).expect("json"))
        );
        for secret in [jwk.to_string(), jwk["x"].to_string(), jwk["n"].to_string()] {
            let tag = ring::hmac::sign(
                &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes()),
                input.as_bytes(),
            );
            forged.push((
                "HS256".to_string(),
                format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref())),
            ));
        }
    }
    // A real signature by one key, under a header naming another algorithm with that key's
    // kid (RS256 with the EC kid, …).
    for key_alg in SigningAlg::ALL {
        for claimed in SigningAlg::ALL.into_iter().filter(|a| *a != key_alg) {
            let header =
                json!({ "alg": claimed.as_str(), "typ": "at+jwt", "kid": kid_of(key_alg) });
            forged.push((
                format!("{claimed} with the {key_alg} kid"),
                forge(&app, key_alg, &header, &claims),
            ));
        }
    }
    // The control: the same claims under an honest header pass, so the refusals are the
    // header's doing.
    let honest = forge(
        &app,
        SigningAlg::EdDsa,
        &json!({ "alg": "EdDSA", "typ": "at+jwt", "kid": kid_of(SigningAlg::EdDsa) }),
        &claims,
    );
    assert!(verifier.verify(&honest).await.is_ok());
    assert_eq!(introspect(&app, &client, &honest).await["active"], true);
    assert_eq!(app.userinfo_status(&honest).await, 200);
    for (what, token) in &forged {
        assert!(
            verifier.verify(token).await.is_err(),
            "tessera-verify: {what}"
        );
        assert_eq!(
            introspect(&app, &client, token).await["active"],
            false,
            "introspection: {what}"
        );
        assert_eq!(app.userinfo_status(token).await, 401, "userinfo: {what}");
    }
    app.stop().await;
}

/// An honest header (our kid, that key's own algorithm, at+jwt) over a signature that key did
/// not make: by the active key of each other algorithm, and by a key of the same algorithm
/// that is not ours. Introspection and userinfo refuse each, so the key a header names is the
/// one whose signature counts, whatever verifies the signature.
#[tokio::test]
async fn a_signature_by_another_key_under_our_kid_is_refused() {
    let env = TestEnv::new();
    let app = env.spawn().await;
    let (client, claims) = claims_to_forge(&app, SigningAlg::Rs256).await;
    let header_of = |alg: SigningAlg| json!({ "alg": alg.as_str(), "typ": "at+jwt", "kid": active_kid(&app, alg) });
    let mut forged = Vec::new();
    for named in SigningAlg::ALL {
        // The control: signed by the key the header names, the token is live.
        let honest = forge(&app, named, &header_of(named), &claims);
        assert_eq!(
            introspect(&app, &client, &honest).await["active"],
            true,
            "{named}"
        );
        assert_eq!(app.userinfo_status(&honest).await, 200, "{named}");
        for signer in SigningAlg::ALL.into_iter().filter(|a| *a != named) {
            forged.push((
                format!("{named} kid, signed by the {signer} key"),
                forge(&app, signer, &header_of(named), &claims),
            ));
        }
        let (stranger, _) = tessera::keys::KeyPair::generate(named, 2048).expect("key");
        let input = forge(&app, named, &header_of(named), &claims)
            .rsplit_once('.')
            .expect("parts")
            .0
            .to_string();
        let signature = stranger.sign(input.as_bytes()).expect("sign");
        forged.push((
            format!("{named} kid, signed by a {named} key not ours"),
            format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature)),
        ));
    }
    for (what, token) in &forged {
        assert_eq!(
            introspect(&app, &client, token).await,
            json!({"active": false}),
            "introspection: {what}"
        );
        assert_eq!(app.userinfo_status(token).await, 401, "userinfo: {what}");
    }
    app.stop().await;
}
