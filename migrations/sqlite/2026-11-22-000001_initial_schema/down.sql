DROP TABLE signing_keys;
DROP TABLE audit_events;
DROP TABLE federated_identities;
DROP TABLE authorization_codes;
DROP TABLE refresh_tokens;
DROP TABLE refresh_token_families;
DROP TABLE clients;
DROP TABLE users;
