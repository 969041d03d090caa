-- Sign-ins in flight at an upstream provider: one row per redirect to it, consumed by its
-- callback. Only hashes: the state travels in URLs, the browser secret in a cookie.
CREATE TABLE federation_states (
    state_hash TEXT PRIMARY KEY NOT NULL,  -- hex SHA-256 of the `state` sent upstream
    provider TEXT NOT NULL,
    browser_hash TEXT NOT NULL,            -- hex SHA-256 of the browser-binding cookie
    request TEXT,                          -- the app's authorization request (query string); NULL when signing in directly
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX federation_states_expires_at ON federation_states (expires_at);
