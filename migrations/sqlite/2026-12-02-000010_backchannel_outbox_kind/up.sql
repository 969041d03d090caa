-- The outbox carries back-channel logout messages too (`sso::backchannel`): the kind check of
-- 2026-11-22-140700 did not allow them, so ending a session for an app that listens failed.
-- SQLite cannot change a CHECK constraint: the table is rebuilt (nothing references it).
CREATE TABLE mail_outbox_new (
    id TEXT PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('verify_email', 'reset_password', 'registration_attempt', 'backchannel_logout')),
    recipient_lower TEXT NOT NULL,         -- the address asked for, or a logout's client id
    user_id TEXT REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    claim_id TEXT,
    claimed_until BIGINT,
    sent_at BIGINT,                        -- delivered to the SMTP server or the app
    finished_at BIGINT,                    -- sent, skipped or given up
    outcome TEXT,                          -- 'sent', 'skipped', 'failed'
    last_error TEXT,                       -- the server's answer, never the message's text
    detail TEXT
);
INSERT INTO mail_outbox_new SELECT id, kind, recipient_lower, user_id, created_at, attempts,
    next_attempt_at, claim_id, claimed_until, sent_at, finished_at, outcome, last_error, detail
    FROM mail_outbox;
DROP TABLE mail_outbox;
ALTER TABLE mail_outbox_new RENAME TO mail_outbox;
CREATE INDEX mail_outbox_due ON mail_outbox (finished_at, next_attempt_at);
CREATE INDEX mail_outbox_recipient_lower ON mail_outbox (recipient_lower);
CREATE INDEX mail_outbox_user_id ON mail_outbox (user_id);
