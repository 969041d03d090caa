-- Single-use tokens mailed to a user: email verification (24 h) and password reset (30 min).
-- Only the hex SHA-256 of a token is kept; the token itself exists only in the mail.
CREATE TABLE account_tokens (
    token_hash TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose TEXT NOT NULL CHECK (purpose IN ('verify_email', 'reset_password')),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX account_tokens_user_id ON account_tokens (user_id);
CREATE INDEX account_tokens_expires_at ON account_tokens (expires_at);

-- Mail waiting to go out, sent by a background worker with retries. A row says what to send
-- and to whom, not the text: the link's token is made when the mail is sent, so no usable
-- token is ever stored. A worker claims a row (claim_id, claimed_until) before sending, so two
-- replicas never send the same mail.
CREATE TABLE mail_outbox (
    id TEXT PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('verify_email', 'reset_password')),
    recipient_lower TEXT NOT NULL,         -- the address asked for; the account may not exist
    user_id TEXT REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    claim_id TEXT,
    claimed_until BIGINT,
    sent_at BIGINT,                        -- delivered to the SMTP server
    finished_at BIGINT,                    -- sent, skipped (no such account) or given up
    outcome TEXT,                          -- 'sent', 'skipped', 'failed'
    last_error TEXT                        -- the SMTP server's answer, never the mail's text
);
CREATE INDEX mail_outbox_due ON mail_outbox (finished_at, next_attempt_at);
CREATE INDEX mail_outbox_recipient_lower ON mail_outbox (recipient_lower);
CREATE INDEX mail_outbox_user_id ON mail_outbox (user_id);
