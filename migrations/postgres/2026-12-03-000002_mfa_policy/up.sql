-- Multi-factor sign-in (issue 17): the second step of a sign-in in flight. After a password
-- or an upstream sign-in, a person with a second factor (or who must have one) gets no session
-- yet but this row, found by the SHA-256 of the secret in the `tessera_mfa` cookie. It holds
-- who signed in, the methods used so far (`amr`), "keep me signed in", and the browser session
-- being stepped up (`acr_values` inside an existing session), if any. Used once, at the
-- second step's success (`used_at`); worthless after `expires_at` (five minutes).
CREATE TABLE mfa_pending (
    secret_hash TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    amr TEXT NOT NULL,
    persistent BIGINT NOT NULL,
    session_id TEXT REFERENCES browser_sessions (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX mfa_pending_by_expiry ON mfa_pending (expires_at);
