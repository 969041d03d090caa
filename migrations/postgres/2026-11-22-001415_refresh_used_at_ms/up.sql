-- When a refresh token was used, in epoch milliseconds: the reuse grace window is measured in
-- milliseconds, not in whole seconds (`used_at` stays, in seconds, for everything else).
ALTER TABLE refresh_tokens ADD COLUMN used_at_ms BIGINT;
