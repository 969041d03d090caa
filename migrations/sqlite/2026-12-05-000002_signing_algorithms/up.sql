-- Signing keys of several algorithms (RS256, EdDSA, ES256; issue 18): each algorithm has its
-- own lifecycle, so one active and at most one waiting `next` key per algorithm.
DROP INDEX signing_keys_one_active;
DROP INDEX signing_keys_one_next;
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys (algorithm, state) WHERE state = 'active';
CREATE UNIQUE INDEX signing_keys_one_next ON signing_keys (algorithm, state) WHERE state = 'next';
-- What signs a client's access and ID tokens; RS256 as before there was a choice.
ALTER TABLE clients ADD COLUMN signing_alg TEXT NOT NULL DEFAULT 'RS256';
