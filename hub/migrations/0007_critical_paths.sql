-- Critical paths (issue 18): named, ordered steps of checks, as the
-- operator defined them (validated JSON, see hub/src/critical_path), and
-- what the last run found.
CREATE TABLE critical_paths (
    name          TEXT PRIMARY KEY,
    definition    TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    defined_by    TEXT NOT NULL,
    last_run      TEXT
);

-- Trending (hub/src/trending.rs): every probe call is one `probe` entry of
-- the audit chain, its latency the `duration_ms` of its detail. This table
-- holds exactly those fields, clustered by time, so a window is one range
-- of one B-tree (no row lookups, no JSON parsing) and grouping runs in
-- SQLite. It is derived: the trigger fills it in the transaction that
-- appends the entry, whoever appends it, and it is rebuilt from the chain
-- here (the chain stays the record; these rows are never the evidence).
-- (An index on json_extract(detail, …) was measured first: SQLite does not
-- use it as a covering index, so every entry's row was read.)
CREATE TABLE probe_calls (
    timestamp_ms INTEGER NOT NULL,
    seq          INTEGER NOT NULL,
    agent        TEXT,
    probe        TEXT,
    outcome      TEXT NOT NULL,
    duration_ms  INTEGER,
    PRIMARY KEY (timestamp_ms, seq)
) WITHOUT ROWID;

INSERT INTO probe_calls (timestamp_ms, seq, agent, probe, outcome, duration_ms)
    SELECT timestamp_ms, seq, agent, probe, outcome, json_extract(detail, '$.duration_ms')
    FROM audit_entries WHERE action = 'probe';

CREATE TRIGGER probe_calls_from_audit AFTER INSERT ON audit_entries
WHEN NEW.action = 'probe'
BEGIN
    INSERT INTO probe_calls (timestamp_ms, seq, agent, probe, outcome, duration_ms)
    VALUES (NEW.timestamp_ms, NEW.seq, NEW.agent, NEW.probe, NEW.outcome,
            json_extract(NEW.detail, '$.duration_ms'));
END;
