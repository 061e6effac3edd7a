-- Hub-side integrations (remote read-only APIs): one row per configured
-- integration, its approval, and its credential sealed with the key in
-- <data dir>/integrations.key (never stored here).
CREATE TABLE integrations (
    name TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    base_url TEXT NOT NULL,
    trust TEXT NOT NULL,            -- JSON: system | pinned CA | pinned fingerprint
    settings TEXT NOT NULL,         -- JSON object (e.g. approved Prometheus queries, UniFi site)
    manifest TEXT NOT NULL,         -- the manifest text approved
    manifest_sha256 TEXT NOT NULL,
    signature TEXT,                 -- third-party manifests: the publisher's signature (TOML)
    state TEXT NOT NULL CHECK (state IN ('pending', 'approved')),
    created_at_ms INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    approved_at_ms INTEGER,
    approved_by TEXT
);

CREATE TABLE integration_credentials (
    integration TEXT PRIMARY KEY REFERENCES integrations(name) ON DELETE CASCADE,
    key_id TEXT NOT NULL,
    nonce BLOB NOT NULL,
    ciphertext BLOB NOT NULL,
    fingerprint TEXT NOT NULL,
    set_at_ms INTEGER NOT NULL,
    set_by TEXT NOT NULL
);
