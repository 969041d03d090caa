-- The outbox carries back-channel logout messages too (`sso::backchannel`): the kind check of
-- 2026-11-22-140700 did not allow them, so ending a session for an app that listens failed.
ALTER TABLE mail_outbox DROP CONSTRAINT mail_outbox_kind_check;
ALTER TABLE mail_outbox ADD CONSTRAINT mail_outbox_kind_check
    CHECK (kind IN ('verify_email', 'reset_password', 'registration_attempt', 'backchannel_logout'));
