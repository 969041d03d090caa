-- A third kind of mail: the notice to an address's owner that someone tried to register it.
ALTER TABLE mail_outbox DROP CONSTRAINT mail_outbox_kind_check;
ALTER TABLE mail_outbox ADD CONSTRAINT mail_outbox_kind_check
    CHECK (kind IN ('verify_email', 'reset_password', 'registration_attempt'));
