DROP INDEX signing_keys_one_next;
