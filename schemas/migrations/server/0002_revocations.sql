-- HQ server store, version 2: signed revocation lists, newest wins.
CREATE TABLE revocation_lists (
    version INTEGER PRIMARY KEY,
    signed  BLOB NOT NULL,
    issued_at INTEGER NOT NULL
);
