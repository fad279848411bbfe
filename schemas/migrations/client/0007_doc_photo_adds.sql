-- Field client store, version 7: photos a local edit adds to a dossier are
-- appended here (sorted 32-byte digests, concatenated) instead of rewriting
-- the dossier's whole list in `docs.photos`, which at 2,000 hazards is
-- 192 KB per added hazard. A dossier's photos are `docs.photos` plus its
-- rows here; writing the whole list again (a sync, an import, filling it
-- in on open) replaces `docs.photos` and deletes its rows here.
CREATE TABLE doc_photo_adds (
    doc_id  TEXT NOT NULL REFERENCES docs(id),
    digests BLOB NOT NULL
);
CREATE INDEX doc_photo_adds_doc ON doc_photo_adds (doc_id);
