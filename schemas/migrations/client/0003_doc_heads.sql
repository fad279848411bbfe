-- Field client store, version 3: each document's current heads and where it
-- belongs, kept with every write, so a sync catalog needs no document in
-- memory (HQ holds thousands). NULL until first written by this version;
-- filled in when the store is opened.
ALTER TABLE docs ADD COLUMN heads BLOB;
ALTER TABLE docs ADD COLUMN campaign TEXT;
ALTER TABLE docs ADD COLUMN enterprise TEXT;
