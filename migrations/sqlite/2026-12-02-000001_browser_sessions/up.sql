-- Single sign-on (issue 16).
-- A person's sign-in at Tessera itself, shared by every app they use in that browser. The
-- cookie holds a random secret of which only the hash is kept (`secret_hash`, replaced at every
-- sign-in against fixation); `id` is the public session id, the `sid` of ID tokens and logout
-- tokens, and never authenticates anything by itself.
CREATE TABLE browser_sessions (
    id TEXT PRIMARY KEY NOT NULL,
    secret_hash TEXT NOT NULL UNIQUE,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    auth_time BIGINT NOT NULL,
    amr TEXT NOT NULL,
    persistent BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    idle_expires_at BIGINT NOT NULL,
    absolute_expires_at BIGINT NOT NULL,
    user_agent TEXT,
    ip TEXT,
    ended_at BIGINT,
    ended_reason TEXT
);
CREATE INDEX browser_sessions_by_user ON browser_sessions (user_id);
CREATE INDEX browser_sessions_by_expiry ON browser_sessions (absolute_expires_at);

-- The apps that received tokens in a session: they are told when it ends (back-channel logout).
CREATE TABLE session_clients (
    session_id TEXT NOT NULL REFERENCES browser_sessions (id) ON DELETE CASCADE,
    client_id TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    first_at BIGINT NOT NULL,
    PRIMARY KEY (session_id, client_id)
);

-- What a person allowed a third-party app: the union of the scopes granted so far.
CREATE TABLE consents (
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    scope TEXT NOT NULL,
    granted_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, client_id)
);

-- `first_party` skips consent (the behaviour before this migration); `required` asks.
ALTER TABLE clients ADD COLUMN consent TEXT NOT NULL DEFAULT 'first_party';
ALTER TABLE clients ADD COLUMN post_logout_redirect_uris TEXT NOT NULL DEFAULT '';
ALTER TABLE clients ADD COLUMN backchannel_logout_uri TEXT;
ALTER TABLE clients ADD COLUMN backchannel_logout_session_required BIGINT NOT NULL DEFAULT 0;

-- The browser session a code was issued in (the sign-in's methods are the session's). A
-- refresh family started from such a code ends with the session unless `offline_access` was
-- granted, and remembers the methods for the ID tokens its refreshes mint.
ALTER TABLE authorization_codes ADD COLUMN session_id TEXT;
ALTER TABLE refresh_token_families ADD COLUMN session_id TEXT;
ALTER TABLE refresh_token_families ADD COLUMN amr TEXT;
CREATE INDEX refresh_token_families_by_session ON refresh_token_families (session_id);
