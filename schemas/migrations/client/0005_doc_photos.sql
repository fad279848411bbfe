-- Field client store, version 5: the photos each dossier references
-- (sorted 32-byte SHA-256 digests, concatenated), kept with every write
-- like the heads, so the photo exchange needs no dossier in memory. NULL
-- for other kinds, and for dossiers until first written by this version
-- (filled in when the store is opened).
ALTER TABLE docs ADD COLUMN photos BLOB;
