-- At most one key waits as `next`: two replicas rotating at once cannot both add one.
CREATE UNIQUE INDEX signing_keys_one_next ON signing_keys (state) WHERE state = 'next';
