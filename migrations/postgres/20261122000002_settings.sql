-- Registry-wide settings shared by every replica, e.g. the key that signs upload session ids.
CREATE TABLE settings (
    name   TEXT COLLATE "C" PRIMARY KEY,
    value  TEXT NOT NULL
);
