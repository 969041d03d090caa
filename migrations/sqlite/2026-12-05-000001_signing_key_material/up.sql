-- Signing keys in the database (issue 19), for keys.store = "database": the private half of
-- each signing key, sealed with AES-256-GCM under the key-encryption key, which never enters
-- the database. `sealed` is "v1." + base64url(nonce || ciphertext || tag), its associated
-- data the kid and algorithm, so it opens for its own key only. `kek_id` names the
-- key-encryption key it is sealed under (a truncated SHA-256, not the key). No foreign key:
-- the material is written before its signing_keys row, as a key file is, and a retired key's
-- material is deleted when the key retires.
CREATE TABLE signing_key_material (
    kid TEXT PRIMARY KEY NOT NULL,
    kek_id TEXT NOT NULL,
    sealed TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
