-- HQ server store, version 1: credentials issued by HQ.
-- The sync store (change log, receipts, checkpoints) arrives with the QUIC endpoint.

CREATE TABLE credentials (
    serial     INTEGER PRIMARY KEY,
    device     BLOB NOT NULL,
    name       TEXT NOT NULL,
    role       TEXT NOT NULL,
    signed     BLOB NOT NULL,      -- SignedCredential bytes, as issued
    not_after  INTEGER NOT NULL,
    issued_at  INTEGER NOT NULL
);
CREATE INDEX credentials_by_device ON credentials (device);
