//! Single sign-on driven by a relying-party library that is not ours (`openidconnect`), so that
//! the wire format (discovery, the authorization URL, the token response, the ID token and its
//! `sid`, `amr` and `auth_time`, RP-initiated logout through `end_session_endpoint`) is judged
//! by someone else's parser and verifier.

use openidconnect::core::{
    CoreAuthPrompt, CoreAuthenticationFlow, CoreClient, CoreGenderClaim, CoreIdTokenVerifier,
    CoreJsonWebKeyType, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm,
    CoreProviderMetadata,
};
use openidconnect::{
    AdditionalClaims, AuthorizationCode, ClientId, CsrfToken, EndpointMaybeSet, EndpointNotSet,
    EndpointSet, IdToken, IssuerUrl, LogoutRequest, Nonce, OAuth2TokenResponse, PkceCodeChallenge,
    PkceCodeVerifier, PostLogoutRedirectUrl, ProviderMetadataWithLogout, RedirectUrl, RefreshToken,
    Scope, TokenResponse,
};
use serde::{Deserialize, Serialize};
use tessera::clients::ClientSpec;

use super::World;
use crate::testkit::fixtures::{REDIRECT, location, query_of};
use crate::testkit::http::HttpBrowser;

/// The claim of the logout specifications that OpenID Connect Core's claims do not name.
#[derive(Debug, Clone, Deserialize, Serialize)]
struct SessionClaims {
    sid: String,
}

impl AdditionalClaims for SessionClaims {}

type SessionIdToken = IdToken<
    SessionClaims,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;

/// What the library made of one sign-in: its verified claims, in the parts a test compares.
#[derive(Debug, PartialEq)]
struct Verified {
    subject: String,
    sid: String,
    amr: Vec<String>,
    auth_time: i64,
}

/// An HTTP client for the library: it must not follow redirects (the library's advice).
fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// A client as the library builds it from discovery: authorization endpoint set, token
/// endpoint and userinfo as discovery says.
type RelyingParty = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// Discovery by the library (the document and the JWKS it names).
async fn discover(world: &World) -> CoreProviderMetadata {
    let issuer = IssuerUrl::new(world.app.issuer.clone()).expect("issuer URL");
    CoreProviderMetadata::discover_async(issuer, &http_client())
        .await
        .expect("the library discovers Tessera")
}

/// A public client for `client_id`, as the library sets one up from discovery.
fn relying_party(metadata: &CoreProviderMetadata, client_id: &str) -> RelyingParty {
    CoreClient::from_provider_metadata(metadata.clone(), ClientId::new(client_id.into()), None)
        .set_redirect_uri(RedirectUrl::new(REDIRECT.into()).expect("redirect URL"))
}

/// Exchanges `code` through the library and verifies the ID token with its verifier: the
/// standard claims as Core's types, and `sid` through the library's extension point.
async fn exchange_and_verify(
    client: &RelyingParty,
    code: String,
    verifier: PkceCodeVerifier,
    nonce: &Nonce,
) -> Verified {
    let tokens = client
        .exchange_code(AuthorizationCode::new(code))
        .expect("discovery named a token endpoint")
        .set_pkce_verifier(verifier)
        .request_async(&http_client())
        .await
        .expect("the library accepts the token response");
    let id_token = tokens.id_token().expect("an ID token");
    let id_verifier: CoreIdTokenVerifier = client.id_token_verifier();
    let claims = id_token
        .claims(&id_verifier, nonce)
        .expect("the library verifies the ID token: signature, iss, aud, exp, nonce");
    assert_eq!(
        id_token.signing_alg().expect("alg"),
        &CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256
    );
    // The access token's hash, if the ID token carries one, matches (Core §3.1.3.8).
    if let Some(expected) = claims.access_token_hash() {
        let actual = openidconnect::AccessTokenHash::from_token(
            tokens.access_token(),
            id_token.signing_alg().expect("alg"),
            id_token.signing_key(&id_verifier).expect("key"),
        )
        .expect("at_hash");
        assert_eq!(&actual, expected, "at_hash");
    }
    let amr: Vec<String> = claims
        .auth_method_refs()
        .expect("amr parses as a list of method references")
        .iter()
        .map(|m| m.to_string())
        .collect();
    let auth_time = claims
        .auth_time()
        .expect("auth_time parses as a time")
        .timestamp();
    let with_sid: SessionIdToken = id_token.to_string().parse().expect("the same JWT");
    let sid = with_sid
        .claims(&id_verifier, nonce)
        .expect("verified with sid")
        .additional_claims()
        .sid
        .clone();
    Verified {
        subject: claims.subject().to_string(),
        sid,
        amr,
        auth_time,
    }
}

/// The code flow through `openidconnect`: discovery, an authorization URL with PKCE and a nonce,
/// the sign-in on the login page, the code exchange, and the library's own verification of the
/// ID token (`sid`, `amr`, `auth_time` parse). A second app then gets a code with no page, once
/// plainly and once with `prompt=none` and the first app's ID token as `id_token_hint`; every
/// ID token names the same session and sign-in time.
#[tokio::test]
async fn openidconnect_drives_the_code_flow_and_a_second_app_signs_in_silently() {
    let world = World::new().await;
    let app_a = world.client("App A", ClientSpec::default()).await;
    let app_b = world.client("App B", ClientSpec::default()).await;
    let metadata = discover(&world).await;
    assert!(
        metadata
            .jwks()
            .keys()
            .iter()
            .any(|k| *openidconnect::JsonWebKey::key_type(k) == CoreJsonWebKeyType::RSA),
        "discovery brought the JWKS"
    );
    let client_a = relying_party(&metadata, &app_a);
    let client_b = relying_party(&metadata, &app_b);
    let mut browser = HttpBrowser::for_pages();

    // App A: the login page, then the code.
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state, nonce) = client_a
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("email".into()))
        .set_pkce_challenge(challenge)
        .url();
    let page = browser.get(url.as_str()).await;
    assert_eq!(page.status(), 200, "the login page");
    let html = page.text().await.expect("html");
    let back = world
        .submit_login(&mut browser, &html, crate::testkit::PASSWORD)
        .await;
    let code = code_for(&back, &state);
    let first = exchange_and_verify(&client_a, code, verifier, &nonce).await;
    assert_eq!(first.subject, world.user_id);
    assert_eq!(first.amr, vec!["pwd".to_string()]);
    assert!(!first.sid.is_empty());

    // App B: the session answers, no page.
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state, nonce) = client_b
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .set_pkce_challenge(challenge)
        .url();
    let silent = browser.get(url.as_str()).await;
    let code = code_for(&silent, &state);
    let second = exchange_and_verify(&client_b, code, verifier, &nonce).await;
    assert_eq!(second, first, "the same person, session and sign-in");

    // App B again, as a single-page app renews silently: prompt=none, with a hint of who it
    // expects (app A's ID token, built by the library into the request).
    let hint = client_a_id_token(&mut browser, &client_a).await;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state, nonce) = client_b
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_prompt(CoreAuthPrompt::None)
        .set_id_token_hint(&hint)
        .set_pkce_challenge(challenge)
        .url();
    let silent = browser.get(url.as_str()).await;
    let code = code_for(&silent, &state);
    let third = exchange_and_verify(&client_b, code, verifier, &nonce).await;
    assert_eq!(third, first);

    // Another browser has no session: prompt=none is refused in a way the library's client
    // sees at its redirect URI, with its state.
    let mut stranger = HttpBrowser::for_pages();
    let (url, state, _) = client_b
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_prompt(CoreAuthPrompt::None)
        .set_pkce_challenge(PkceCodeChallenge::new_random_sha256().0)
        .url();
    let refused = stranger.get(url.as_str()).await;
    assert_eq!(refused.status(), 303, "never a page");
    let query = query_of(&location(&refused));
    assert_eq!(query["error"], "login_required");
    assert_eq!(
        query.get("state").map(String::as_str),
        Some(state.secret().as_str())
    );
    world.app.stop().await;
}

/// App A's ID token from another silent round in `browser`, as the library holds it.
async fn client_a_id_token(
    browser: &mut HttpBrowser,
    client_a: &RelyingParty,
) -> openidconnect::core::CoreIdToken {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state, _) = client_a
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .set_pkce_challenge(challenge)
        .url();
    let back = browser.get(url.as_str()).await;
    let code = code_for(&back, &state);
    let tokens = client_a
        .exchange_code(AuthorizationCode::new(code))
        .expect("token endpoint")
        .set_pkce_verifier(verifier)
        .request_async(&http_client())
        .await
        .expect("tokens");
    tokens.id_token().expect("an ID token").clone()
}

/// The code in a redirect to the app, which must carry the library's state.
fn code_for(response: &reqwest::Response, state: &CsrfToken) -> String {
    assert_eq!(response.status(), 303, "a redirect to the app");
    let target = location(response);
    assert!(target.starts_with(REDIRECT), "{target}");
    let query = query_of(&target);
    assert_eq!(
        query.get("state").map(String::as_str),
        Some(state.secret().as_str()),
        "{target}"
    );
    query
        .get("code")
        .cloned()
        .unwrap_or_else(|| panic!("no code in {target}"))
}

/// RP-initiated logout through the library: its logout-aware discovery
/// (`ProviderMetadataWithLogout`) parses `end_session_endpoint`, and its `LogoutRequest` builds
/// the URL with the ID token it verified as `id_token_hint`, the client id, a registered
/// `post_logout_redirect_uri` and a state. Followed in the browser, it ends the session at
/// once: a `303` to exactly that address with the state, the session cookie deleted, the old
/// cookie worth `login_required`, and the session's refresh token refused to the library.
#[tokio::test]
async fn openidconnect_builds_the_logout_url_from_discovery_and_following_it_ends_the_session() {
    const SIGNED_OUT: &str = "http://127.0.0.1:9/signed-out";
    let world = World::new().await;
    let app = world
        .client(
            "App",
            ClientSpec {
                post_logout_redirect_uris: vec![SIGNED_OUT.into()],
                ..ClientSpec::default()
            },
        )
        .await;
    let issuer = IssuerUrl::new(world.app.issuer.clone()).expect("issuer URL");
    let metadata = ProviderMetadataWithLogout::discover_async(issuer, &http_client())
        .await
        .expect("the library discovers Tessera with its logout metadata");
    let end_session = metadata
        .additional_metadata()
        .end_session_endpoint
        .clone()
        .expect("discovery names an end_session_endpoint");
    assert_eq!(end_session.as_str(), world.app.url("/logout"));
    let client =
        CoreClient::from_provider_metadata(metadata.clone(), ClientId::new(app.clone()), None)
            .set_redirect_uri(RedirectUrl::new(REDIRECT.into()).expect("redirect URL"));

    let mut browser = HttpBrowser::for_pages();
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .set_pkce_challenge(challenge)
        .url();
    let page = browser.get(url.as_str()).await;
    assert_eq!(page.status(), 200, "the login page");
    let html = page.text().await.expect("html");
    let back = world
        .submit_login(&mut browser, &html, crate::testkit::PASSWORD)
        .await;
    let tokens = client
        .exchange_code(AuthorizationCode::new(code_for(&back, &state)))
        .expect("token endpoint")
        .set_pkce_verifier(verifier)
        .request_async(&http_client())
        .await
        .expect("the library accepts the token response");
    let id_token = tokens.id_token().expect("an ID token");
    id_token
        .claims(&client.id_token_verifier(), &nonce)
        .expect("the library verifies the ID token");
    let refresh = tokens
        .refresh_token()
        .expect("a refresh token, bound to the session")
        .clone();
    let old_cookie = browser.cookies["tessera_session"].clone();

    let logout_state = CsrfToken::new_random();
    let url = LogoutRequest::from(end_session)
        .set_id_token_hint(id_token)
        .set_client_id(ClientId::new(app.clone()))
        .set_post_logout_redirect_uri(PostLogoutRedirectUrl::new(SIGNED_OUT.into()).expect("a URL"))
        .set_state(logout_state.clone())
        .http_get_url();
    let query = query_of(url.as_str());
    assert_eq!(query["id_token_hint"], id_token.to_string(), "{url}");
    let response = browser.get(url.as_str()).await;
    assert_eq!(
        response.status(),
        303,
        "no page: the hint is this session's"
    );
    let target = location(&response);
    let expected = url::Url::parse_with_params(SIGNED_OUT, &[("state", logout_state.secret())])
        .expect("a URL");
    assert_eq!(target, expected.as_str());
    assert!(
        !browser.cookies.contains_key("tessera_session"),
        "the session cookie was deleted: {:?}",
        browser.cookies
    );

    // The old cookie, replayed, stands for nothing: prompt=none answers login_required.
    let mut replay = HttpBrowser::for_pages();
    replay.cookies.insert("tessera_session".into(), old_cookie);
    let (url, state, _) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_prompt(CoreAuthPrompt::None)
        .set_pkce_challenge(PkceCodeChallenge::new_random_sha256().0)
        .url();
    let refused = replay.get(url.as_str()).await;
    assert_eq!(refused.status(), 303, "never a page");
    let query = query_of(&location(&refused));
    assert_eq!(query["error"], "login_required", "{query:?}");
    assert_eq!(
        query.get("state").map(String::as_str),
        Some(state.secret().as_str())
    );

    // The session's refresh family ended with it.
    let refreshed = client
        .exchange_refresh_token(&RefreshToken::new(refresh.secret().clone()))
        .expect("token endpoint")
        .request_async(&http_client())
        .await;
    match refreshed {
        Err(openidconnect::RequestTokenError::ServerResponse(e)) => assert_eq!(
            *e.error(),
            openidconnect::core::CoreErrorResponseType::InvalidGrant,
            "{e:?}"
        ),
        Err(other) => panic!("the library could not read the refusal: {other:?}"),
        Ok(_) => panic!("the session's refresh token still works after the logout"),
    }
    world.app.stop().await;
}
