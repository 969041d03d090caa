-- Times are epoch seconds (BIGINT) and ids are TEXT (UUID v7 made in Rust), the subset both
-- backends share. Flags are nullable timestamps: when the thing happened, NULL if it has not.

CREATE TABLE users (
    id TEXT PRIMARY KEY NOT NULL,
    email TEXT NOT NULL,                   -- as given, domain lower-cased
    email_lower TEXT NOT NULL UNIQUE,      -- for case-insensitive lookups and uniqueness
    name TEXT,
    password_hash TEXT,                    -- argon2id PHC string; NULL for federated-only users
    roles TEXT NOT NULL DEFAULT '',        -- space-separated
    security_stamp TEXT NOT NULL,          -- changes on password change or disable
    email_verified_at BIGINT,
    disabled_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE clients (
    id TEXT PRIMARY KEY NOT NULL,          -- the client_id
    name TEXT NOT NULL,
    secret_hash TEXT,                      -- hex SHA-256 of the secret; NULL for public clients
    grant_types TEXT NOT NULL DEFAULT '',  -- space-separated, as are the next three
    scopes TEXT NOT NULL DEFAULT '',
    redirect_uris TEXT NOT NULL DEFAULT '',
    audiences TEXT NOT NULL DEFAULT '',
    access_token_ttl_secs BIGINT,          -- NULL: the server's default
    refresh_idle_ttl_secs BIGINT,
    refresh_absolute_ttl_secs BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- One family per login session; every refresh token descends from its login.
CREATE TABLE refresh_token_families (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    scope TEXT NOT NULL,
    security_stamp TEXT NOT NULL,          -- the user's stamp at login; a change ends the family
    auth_time BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    absolute_expires_at BIGINT NOT NULL,
    revoked_at BIGINT,
    revoked_reason TEXT
);
CREATE INDEX refresh_token_families_user_id ON refresh_token_families (user_id);
CREATE INDEX refresh_token_families_client_id ON refresh_token_families (client_id);

CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY NOT NULL,  -- hex SHA-256 of the opaque token
    family_id TEXT NOT NULL REFERENCES refresh_token_families (id) ON DELETE CASCADE,
    parent_hash TEXT,                      -- the token this one replaced
    replaced_by TEXT,                      -- the token that replaced this one
    scope TEXT NOT NULL,
    issued_at BIGINT NOT NULL,
    idle_expires_at BIGINT NOT NULL,
    used_at BIGINT
) WITHOUT ROWID;                            -- the hash is the key: no second index to write
CREATE INDEX refresh_tokens_family_id ON refresh_tokens (family_id);

CREATE TABLE authorization_codes (
    code_hash TEXT PRIMARY KEY NOT NULL,   -- hex SHA-256 of the code
    client_id TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    redirect_uri TEXT NOT NULL,
    scope TEXT NOT NULL,
    nonce TEXT,
    code_challenge TEXT,
    code_challenge_method TEXT,
    auth_time BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT,
    -- What was issued from the code, revoked if it is presented again (RFC 6749 §4.1.2).
    family_id TEXT,
    access_token_jti TEXT,
    access_token_expires_at BIGINT
);
CREATE INDEX authorization_codes_expires_at ON authorization_codes (expires_at);

CREATE TABLE federated_identities (
    id TEXT PRIMARY KEY NOT NULL,
    provider TEXT NOT NULL,
    subject TEXT NOT NULL,                 -- the upstream `sub`
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    email TEXT,
    created_at BIGINT NOT NULL,
    last_login_at BIGINT NOT NULL,
    UNIQUE (provider, subject)
);
CREATE INDEX federated_identities_user_id ON federated_identities (user_id);

-- No foreign keys: the record outlives the user or client it names.
CREATE TABLE audit_events (
    id TEXT PRIMARY KEY NOT NULL,          -- UUID v7, so ids sort by time
    occurred_at BIGINT NOT NULL,
    event TEXT NOT NULL,
    user_id TEXT,
    client_id TEXT,
    ip TEXT,
    detail TEXT                            -- JSON; never a secret
);
CREATE INDEX audit_events_occurred_at ON audit_events (occurred_at);
CREATE INDEX audit_events_user_id ON audit_events (user_id);

-- Key material stays in the keys directory; its lifecycle lives here so replicas agree.
CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY NOT NULL,         -- RFC 7638 thumbprint
    algorithm TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('next', 'active', 'retiring', 'retired')),
    created_at BIGINT NOT NULL,
    activated_at BIGINT,
    retiring_at BIGINT,
    retired_at BIGINT
);
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys (state) WHERE state = 'active';
