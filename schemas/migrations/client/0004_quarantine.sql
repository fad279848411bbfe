-- Field client store, version 4: quarantine. Changes that arrived signed by
-- enrolled authors but would make a document invalid are kept here for
-- review and never applied (the session that brought them is refused).
CREATE TABLE quarantine (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    doc_id      TEXT NOT NULL,
    -- hex key of the device that delivered them
    source      TEXT NOT NULL,
    reason      TEXT NOT NULL,
    -- the `changes` batch as received (an Automerge bundle chunk)
    batch       BLOB NOT NULL,
    -- CBOR array of [author key, signed head, author credential]
    evidence    BLOB NOT NULL,
    received_at INTEGER NOT NULL
);
