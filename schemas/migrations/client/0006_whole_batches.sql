-- Field client store, version 6: a document that arrived whole (this side
-- held none of it) keeps the batch as it arrived, with the evidence that
-- came with it. While the document's heads are still `heads`, a peer that
-- holds none of it is sent this batch as is, without loading and bundling
-- the document again: HQ serving a fresh HQ-role client, a station relay
-- forwarding to HQ. Deleted when the document moves on.
CREATE TABLE whole_batches (
    doc_id   TEXT PRIMARY KEY REFERENCES docs(id),
    heads    BLOB NOT NULL,
    batch    BLOB NOT NULL,
    evidence BLOB NOT NULL,   -- CBOR array of sync `Evidence`
    changes  INTEGER NOT NULL
);
