-- Failed-login counters, one row per throttled key ("account:<email>" or "ip:<address>"), kept
-- in the database so the limit holds across replicas.
CREATE TABLE login_throttles (
    throttle_key TEXT PRIMARY KEY NOT NULL,
    failures BIGINT NOT NULL,              -- attempts counted in the current window
    window_started_at BIGINT NOT NULL,
    blocked_until BIGINT                   -- no attempt is verified before this time
);
