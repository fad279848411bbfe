-- Field client store, version 10: the photos HQ is known to hold (it
-- offered them, or confirmed storing them, in a photo exchange with this
-- device). "Safe to leave" needs every photo of this device's own work here.
CREATE TABLE photos_at_hq (
    sha256 TEXT PRIMARY KEY
) WITHOUT ROWID;
