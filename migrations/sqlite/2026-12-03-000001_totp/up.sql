-- Multi-factor sign-in (issue 17): TOTP authenticators and recovery codes.
-- A person's TOTP secret, sealed (AES-256-GCM under the key file in the keys directory, the
-- user id as associated data): a dump of the database alone gives no usable secret.
-- `confirmed_at` is NULL until the person has typed a current code; until then it is not a
-- factor. `last_used_step` is the highest time step accepted, so a code is good only once.
CREATE TABLE totp_credentials (
    user_id TEXT PRIMARY KEY NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    sealed_secret TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    confirmed_at BIGINT,
    last_used_step BIGINT NOT NULL
);

-- One-time recovery codes, for a person who has lost their authenticator. Only the SHA-256 of
-- each is kept (they carry 80 bits of randomness, so a fast hash is enough).
CREATE TABLE recovery_codes (
    code_hash TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX recovery_codes_by_user ON recovery_codes (user_id);
