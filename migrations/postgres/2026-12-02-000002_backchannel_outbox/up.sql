-- The outbox carries back-channel logout messages too (kind 'backchannel_logout': the recipient
-- is the client id, `detail` what the logout token will say).
ALTER TABLE mail_outbox ADD COLUMN detail TEXT;
ALTER TABLE mail_outbox DROP CONSTRAINT mail_outbox_kind_check;
ALTER TABLE mail_outbox ADD CONSTRAINT mail_outbox_kind_check
    CHECK (kind IN ('verify_email', 'reset_password', 'registration_attempt', 'backchannel_logout'));
