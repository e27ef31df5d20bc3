-- Registry-wide settings shared by every replica, e.g. the key that signs upload session ids.
CREATE TABLE settings (
    name   TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);
