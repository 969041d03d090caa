DROP TABLE mfa_pending;
