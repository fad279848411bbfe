-- Field client store, version 9: a document that arrived whole is logged
-- as it arrived (version 8), so its kept batch need not be stored twice.
-- An empty `batch` in `whole_batches` now means: the change-log row of
-- this document whose `hash` is `heads` holds the batch. Existing copies
-- of a logged batch are emptied.
UPDATE whole_batches SET batch = x''
WHERE EXISTS (
    SELECT 1 FROM changes c
    WHERE c.doc_id = whole_batches.doc_id AND c.hash = whole_batches.heads AND c.bytes = whole_batches.batch
);
