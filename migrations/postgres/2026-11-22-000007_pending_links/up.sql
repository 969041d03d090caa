-- An upstream identity waiting to be linked to an existing account with a password, until the
-- person proves that account (its password) or declines. Bound to one browser: only the hash
-- of its cookie's random secret is stored. Single use (used_at), ten minutes.
CREATE TABLE pending_links (
    secret_hash TEXT PRIMARY KEY NOT NULL, -- hex SHA-256 of the browser's cookie value
    provider TEXT NOT NULL,
    subject TEXT NOT NULL,                 -- the upstream's `sub`
    email TEXT,                            -- the upstream's address, as it gave it
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE, -- the account to link to
    request TEXT,                          -- the app's authorization request; NULL when signing in directly
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX pending_links_expires_at ON pending_links (expires_at);
CREATE INDEX pending_links_user_id ON pending_links (user_id);
