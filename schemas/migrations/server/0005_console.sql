-- HQ server, version 5: the web console's accounts, their sessions and the
-- audit log of what they changed.

-- HQ staff. `role` is 'admin' (also manages users, devices, credentials)
-- or 'analyst'; `password` is an Argon2id PHC string.
CREATE TABLE users (
    name       TEXT PRIMARY KEY,
    role       TEXT NOT NULL CHECK (role IN ('admin', 'analyst')),
    password   TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    disabled   INTEGER NOT NULL DEFAULT 0
);

-- A signed-in browser: the SHA-256 of its cookie's random token (the token
-- itself is never stored), the form token its pages carry (CSRF), when it
-- began and when it was last used (ms).
CREATE TABLE console_sessions (
    token_hash BLOB PRIMARY KEY,
    user_name  TEXT NOT NULL REFERENCES users(name),
    csrf       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    seen_at    INTEGER NOT NULL
);

-- Who did what, when: every console action that changes something.
CREATE TABLE audit_log (
    id        INTEGER PRIMARY KEY,
    at        INTEGER NOT NULL,
    user_name TEXT NOT NULL,
    action    TEXT NOT NULL,
    detail    TEXT NOT NULL
);
