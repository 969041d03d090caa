ALTER TABLE clients DROP COLUMN signing_alg;
-- Only RS256 keys can stay: the single-key indexes would not hold with the others.
DELETE FROM signing_keys WHERE algorithm <> 'RS256';
DROP INDEX signing_keys_one_next;
DROP INDEX signing_keys_one_active;
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys (state) WHERE state = 'active';
CREATE UNIQUE INDEX signing_keys_one_next ON signing_keys (state) WHERE state = 'next';
