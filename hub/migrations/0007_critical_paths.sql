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

-- Trending (hub/src/trending.rs): every probe call is one `probe` entry;
-- its latency is the `duration_ms` the call's entry records. This partial
-- index holds exactly what a trend needs, ordered by time, so a window is
-- one range walk of the index (covering: the table rows and their JSON
-- are never read) and grouping runs in SQLite.
CREATE INDEX IF NOT EXISTS audit_probe_calls ON audit_entries(
    timestamp_ms, agent, probe, outcome, json_extract(detail, '$.duration_ms')
) WHERE action = 'probe';
