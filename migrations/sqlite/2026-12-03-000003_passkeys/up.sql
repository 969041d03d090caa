-- Passkeys (issue 17): WebAuthn credentials, and the ceremonies under way.
-- `credential` is webauthn-rs's Passkey as JSON: the public key, the signature counter and the
-- backup flags. It is rewritten after each use, as the crate asks. `credential_id` is the
-- credential's id (base64url), unique across all users: one credential is never two people's.
CREATE TABLE passkeys (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    credential_id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    credential TEXT NOT NULL,
    backup_eligible BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT
);
CREATE INDEX passkeys_by_user ON passkeys (user_id);

-- A registration or authentication ceremony between its options and the browser's answer,
-- kept in the database so any replica can finish it. `id` is the SHA-256 of a secret the
-- browser holds; the row is deleted when the ceremony finishes (in the same transaction as
-- what it leads to), so it serves once; expired rows are purged.
CREATE TABLE webauthn_ceremonies (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT REFERENCES users (id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX webauthn_ceremonies_by_expiry ON webauthn_ceremonies (expires_at);
