-- An audit chain (see sonde_protocol::audit). Rows are never updated or deleted.
CREATE TABLE IF NOT EXISTS audit_entries (
    seq           INTEGER PRIMARY KEY,
    timestamp_ms  INTEGER NOT NULL,
    actor         TEXT NOT NULL,
    agent         TEXT,
    action        TEXT NOT NULL,
    probe         TEXT,
    params_digest TEXT,
    outcome       TEXT NOT NULL,
    result_digest TEXT,
    detail        TEXT NOT NULL,
    prev_hash     TEXT NOT NULL,
    hash          TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_by_agent ON audit_entries(agent, seq);
CREATE INDEX IF NOT EXISTS audit_by_actor ON audit_entries(actor, seq);
CREATE INDEX IF NOT EXISTS audit_by_probe ON audit_entries(probe, seq);
CREATE INDEX IF NOT EXISTS audit_by_time ON audit_entries(timestamp_ms);
-- Rare outcomes (denied, refused) and actions (enrollments, revocations)
-- are what operators filter for; without these a page scans the chain.
CREATE INDEX IF NOT EXISTS audit_by_outcome ON audit_entries(outcome, seq);
CREATE INDEX IF NOT EXISTS audit_by_action ON audit_entries(action, seq);

CREATE TABLE IF NOT EXISTS audit_checkpoints (
    seq          INTEGER PRIMARY KEY,
    hash         TEXT NOT NULL,
    timestamp_ms INTEGER NOT NULL,
    signature    TEXT NOT NULL
);
