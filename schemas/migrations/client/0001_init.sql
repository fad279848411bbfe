-- Field client store, version 1.
-- The change log is append-only: rows are inserted, never updated or deleted.
-- Snapshots only speed up loading; a document is always the snapshot plus
-- every change logged after it.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
);

CREATE TABLE docs (
    id         TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE changes (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    doc_id      TEXT NOT NULL REFERENCES docs(id),
    hash        BLOB NOT NULL,
    actor       BLOB NOT NULL,
    bytes       BLOB NOT NULL,
    -- 'local', 'genesis', or the hex key of the device whose bundle delivered it
    source      TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    UNIQUE (doc_id, hash)
);
CREATE INDEX changes_by_doc ON changes (doc_id, seq);

-- Signature evidence: a device's signature over (document, change hash).
CREATE TABLE evidence (
    doc_id TEXT NOT NULL REFERENCES docs(id),
    head   BLOB NOT NULL,
    key    BLOB NOT NULL,
    nonce  BLOB NOT NULL,
    sig    BLOB NOT NULL,
    PRIMARY KEY (doc_id, head)
);

CREATE TABLE snapshots (
    doc_id  TEXT PRIMARY KEY REFERENCES docs(id),
    bytes   BLOB NOT NULL,
    upto    INTEGER NOT NULL
);

CREATE TABLE trusted_keys (
    key      TEXT PRIMARY KEY,
    name     TEXT NOT NULL,
    added_at INTEGER NOT NULL
);

CREATE TABLE blobs (
    sha256   TEXT PRIMARY KEY,
    size     INTEGER NOT NULL,
    added_at INTEGER NOT NULL
);
