-- HQ server store, version 3: the admin API's bearer token.
-- Only its SHA-256 is stored; the token itself is in <data>/admin.token
-- (owner-only). Rotating replaces the one row.
CREATE TABLE admin_tokens (
    sha256     BLOB PRIMARY KEY,
    created_at INTEGER NOT NULL
);
