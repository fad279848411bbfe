-- Field client store, version 11: decisions on quarantined work. A row now
-- names the changes kept aside (`changes`: their 32-byte hashes, sorted and
-- concatenated; the rest of its batch may have been stored) and keeps its
-- evidence whole (CBOR array of sync-protocol evidence entries, signatures
-- included), so HQ can check it again when a person decides:
--   accepted  applied, with HQ's receipt (work from before a revocation);
--   rejected  never applied; a carrier sending it again is told so;
--   stored    the same changes later arrived in a way HQ could take.
ALTER TABLE quarantine ADD COLUMN changes BLOB;
ALTER TABLE quarantine ADD COLUMN decision TEXT CHECK (decision IN ('accepted', 'rejected', 'stored'));
ALTER TABLE quarantine ADD COLUMN decided_by TEXT;
ALTER TABLE quarantine ADD COLUMN decided_at INTEGER;
ALTER TABLE quarantine ADD COLUMN note TEXT;
CREATE INDEX quarantine_doc ON quarantine (doc_id);
