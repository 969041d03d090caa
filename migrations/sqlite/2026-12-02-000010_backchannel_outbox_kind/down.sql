CREATE TABLE mail_outbox_new (
    id TEXT PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('verify_email', 'reset_password', 'registration_attempt')),
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
    last_error TEXT,                       -- the SMTP server's answer, never the mail's text
    detail TEXT
);
INSERT INTO mail_outbox_new SELECT id, kind, recipient_lower, user_id, created_at, attempts,
    next_attempt_at, claim_id, claimed_until, sent_at, finished_at, outcome, last_error, detail
    FROM mail_outbox
    WHERE kind <> 'backchannel_logout';
DROP TABLE mail_outbox;
ALTER TABLE mail_outbox_new RENAME TO mail_outbox;
CREATE INDEX mail_outbox_due ON mail_outbox (finished_at, next_attempt_at);
CREATE INDEX mail_outbox_recipient_lower ON mail_outbox (recipient_lower);
CREATE INDEX mail_outbox_user_id ON mail_outbox (user_id);
