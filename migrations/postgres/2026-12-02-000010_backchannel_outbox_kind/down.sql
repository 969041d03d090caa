DELETE FROM mail_outbox WHERE kind = 'backchannel_logout';
ALTER TABLE mail_outbox DROP CONSTRAINT mail_outbox_kind_check;
ALTER TABLE mail_outbox ADD CONSTRAINT mail_outbox_kind_check
    CHECK (kind IN ('verify_email', 'reset_password', 'registration_attempt'));
