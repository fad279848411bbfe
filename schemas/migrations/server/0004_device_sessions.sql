-- HQ server store, version 4: how each device's sync sessions went, for the
-- devices HQ staff look after (last sync, failures). One row per device key.
CREATE TABLE device_sessions (
    device     BLOB PRIMARY KEY,
    last_at    INTEGER NOT NULL,   -- when its last session ended (ms)
    last_error TEXT,               -- NULL: it ended well
    sessions   INTEGER NOT NULL,
    failures   INTEGER NOT NULL
);
