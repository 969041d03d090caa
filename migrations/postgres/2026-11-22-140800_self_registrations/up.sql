-- Accounts a person made themselves (POST /users, the "Create account" page), as opposed to an
-- operator (`tessera user add`, the admin API) or an upstream sign-in. Only these, while their
-- address stays unverified and they hold no role, are purged after accounts.unverified_ttl_secs:
-- an unverified self-registration is a claim on an address nobody proved, while an account an
-- operator made is the operator's to remove. Accounts made before this table existed are not in
-- it, so an upgrade deletes nothing.
CREATE TABLE self_registrations (
    user_id TEXT PRIMARY KEY NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL
);
