-- Sonde hub schema, version 1.
-- Times are Unix milliseconds. JSON columns hold serde_json text.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Enrollment tokens: only a SHA-256 of the secret is stored.
CREATE TABLE tokens (
    id            TEXT PRIMARY KEY,
    secret_sha256 TEXT NOT NULL UNIQUE,
    label         TEXT NOT NULL DEFAULT '',
    auto_approve  INTEGER NOT NULL DEFAULT 0,
    created_at_ms INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL,
    used_at_ms    INTEGER,
    revoked_at_ms INTEGER
);

CREATE TABLE enrollments (
    id                 TEXT PRIMARY KEY,
    name               TEXT NOT NULL,
    hostname           TEXT NOT NULL,
    remote_addr        TEXT NOT NULL,
    token_id           TEXT NOT NULL REFERENCES tokens(id),
    csr_pem            TEXT NOT NULL,
    tls_key_sha256     TEXT NOT NULL,
    signing_key        TEXT NOT NULL,
    attestation        TEXT NOT NULL,
    attestation_sha256 TEXT NOT NULL,
    auto_approved      INTEGER NOT NULL DEFAULT 0,
    requested_at_ms    INTEGER NOT NULL,
    status             TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'denied')),
    decided_at_ms      INTEGER,
    decided_by         TEXT,
    agent_id           TEXT
);
CREATE INDEX enrollments_status ON enrollments(status, requested_at_ms);

CREATE TABLE agents (
    id               TEXT PRIMARY KEY,
    name             TEXT NOT NULL,
    hostname         TEXT NOT NULL,
    signing_key      TEXT NOT NULL,
    cert_pem         TEXT NOT NULL,
    cert_sha256      TEXT NOT NULL,
    cert_expires_ms  INTEGER NOT NULL,
    enrolled_at_ms   INTEGER NOT NULL,
    enrollment_id    TEXT NOT NULL REFERENCES enrollments(id),
    baseline         TEXT NOT NULL,
    baseline_sha256  TEXT NOT NULL,
    current          TEXT,
    quarantined      INTEGER NOT NULL DEFAULT 0,
    quarantine_reason TEXT,
    revoked_at_ms    INTEGER,
    last_seen_ms     INTEGER,
    remote_addr      TEXT,
    agent_version    TEXT NOT NULL DEFAULT '',
    os               TEXT NOT NULL DEFAULT '',
    max_capability   TEXT NOT NULL DEFAULT 'observe',
    packs            TEXT NOT NULL DEFAULT '[]',
    agent_audit_head TEXT,
    tags             TEXT NOT NULL DEFAULT '[]'
);
-- A name belongs to at most one agent that is not revoked.
CREATE UNIQUE INDEX agents_live_name ON agents(name) WHERE revoked_at_ms IS NULL;

-- The operator's decision per pack per agent, signed by the hub.
CREATE TABLE pack_grants (
    agent_id        TEXT NOT NULL REFERENCES agents(id),
    pack            TEXT NOT NULL,
    manifest_sha256 TEXT NOT NULL,
    decision        TEXT NOT NULL CHECK (decision IN ('approved', 'revoked')),
    action          TEXT NOT NULL CHECK (action IN ('approve', 'deny', 'revoke')),
    issued_at_ms    INTEGER NOT NULL,
    decided_by      TEXT NOT NULL,
    signature       TEXT NOT NULL,
    PRIMARY KEY (agent_id, pack)
);

CREATE TABLE drift_events (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    agent_id        TEXT NOT NULL REFERENCES agents(id),
    detected_at_ms  INTEGER NOT NULL,
    baseline        TEXT NOT NULL,
    current         TEXT NOT NULL,
    baseline_sha256 TEXT NOT NULL,
    current_sha256  TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('open', 'accepted', 'revoked')),
    resolved_at_ms  INTEGER,
    resolved_by     TEXT
);
CREATE INDEX drift_status ON drift_events(status, detected_at_ms);

CREATE TABLE api_keys (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    prefix          TEXT NOT NULL UNIQUE,
    secret_sha256   TEXT NOT NULL,
    agents          TEXT NOT NULL,
    probes          TEXT NOT NULL,
    tools           TEXT NOT NULL,
    max_capability  TEXT NOT NULL,
    created_at_ms   INTEGER NOT NULL,
    expires_at_ms   INTEGER,
    last_used_at_ms INTEGER,
    revoked_at_ms   INTEGER
);

-- The hub's audit chain: tables from sonde_auditlog::SCHEMA, applied
-- together with this migration (see store/mod.rs).
