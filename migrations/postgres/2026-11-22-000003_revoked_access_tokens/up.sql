-- Access tokens revoked before their expiry (RFC 7009), by `jti`, kept until they would have
-- expired anyway. Introspection and Tessera's own endpoints consult it; resource servers that
-- verify tokens locally cannot see it.
CREATE TABLE revoked_access_tokens (
    jti TEXT PRIMARY KEY NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX revoked_access_tokens_expires_at ON revoked_access_tokens (expires_at);
CREATE INDEX refresh_token_families_absolute_expires_at ON refresh_token_families (absolute_expires_at);
