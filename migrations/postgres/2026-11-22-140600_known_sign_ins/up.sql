-- Devices and IPs an account has signed in from. From these the account-wide failed-login
-- counter does not apply, so guessers on many addresses cannot lock the owner out. Only
-- hashes: a device is a random token in an HttpOnly cookie, an IP is hashed as the throttle
-- counts it (IPv6: its /64). A few per account, each forgotten after a while unused.
CREATE TABLE known_sign_ins (
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('device', 'ip')),
    value_hash TEXT NOT NULL,              -- hex SHA-256 of the device token or the IP key
    first_seen_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, kind, value_hash)
);
CREATE INDEX known_sign_ins_value_hash ON known_sign_ins (value_hash);
CREATE INDEX known_sign_ins_last_seen_at ON known_sign_ins (last_seen_at);
