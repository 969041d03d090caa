-- A client may require a multi-factor sign-in (issue 17): its users are asked for a second
-- factor, or to set one up, before it gets a code. 0 or 1, like the other flags.
ALTER TABLE clients ADD COLUMN require_mfa BIGINT NOT NULL DEFAULT 0;
