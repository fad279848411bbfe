-- Field client store, version 8: a row of the change log may hold a whole
-- document as it arrived over sync: Automerge's document chunk in a zstd
-- frame (schemas/sync-protocol.md, "Batches"). Its `hash` is the
-- document's heads (32 bytes each), `actor` is empty, and `count` says how
-- many changes it holds; an ordinary row is one change chunk, count 1.
ALTER TABLE changes ADD COLUMN count INTEGER NOT NULL DEFAULT 1;
