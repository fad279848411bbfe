-- Field client store, version 2: what sync needs.

-- HQ-signed credentials of change authors, sent along with their evidence.
CREATE TABLE author_credentials (
    key        BLOB PRIMARY KEY,
    credential BLOB NOT NULL
);

-- Receipts: on a device, those received from HQ (directly or via a relay);
-- on HQ, its hash-chained log (seq increasing, prev = hash of the previous).
CREATE TABLE receipts (
    seq     INTEGER NOT NULL,
    doc_id  TEXT NOT NULL,
    body    BLOB NOT NULL,
    sig     BLOB NOT NULL,
    hash    BLOB NOT NULL,
    PRIMARY KEY (seq)
);
CREATE INDEX receipts_by_doc ON receipts (doc_id, seq);

-- Heads both this store and a peer held when their last session completed.
CREATE TABLE checkpoints (
    peer    BLOB NOT NULL,
    doc_id  TEXT NOT NULL,
    heads   BLOB NOT NULL,
    PRIMARY KEY (peer, doc_id)
);
