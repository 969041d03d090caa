//! Access-token verification against a real key ring: no input panics, and nothing but a
//! token this ring signed verifies (the fuzzer cannot forge RS256, so any success is a bug).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tessera::keys::KeyRing;

const ISSUER: &str = "https://id.example.com";

fn ring() -> &'static KeyRing {
    static RING: OnceLock<KeyRing> = OnceLock::new();
    RING.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir").keep();
        let mut settings = tessera::config::Settings::defaults().expect("defaults");
        settings.database.url = format!("sqlite://{}", dir.join("fuzz.db").display());
        settings.keys.dir = dir.join("keys");
        let db = tessera::db::Database::connect(&settings.database).expect("database");
        let mut conn = db.get().expect("connection");
        tessera::keys::load_or_init(&mut conn, &settings.keys).expect("keys")
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(token) = std::str::from_utf8(data) {
        let verdict = tessera::tokens::decode_access_token(token, ring(), ISSUER, 1_800_000_000);
        assert!(verdict.is_err(), "a token nobody signed verified");
    }
});
