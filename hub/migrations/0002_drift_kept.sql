-- An operator who looked at attestation drift may decide to keep the agent
-- quarantined: the drift event is then closed as 'kept' (the agent stays
-- quarantined until its baseline is accepted or it is revoked). SQLite
-- cannot change a CHECK constraint in place, so the table is rebuilt with
-- all its rows; nothing references drift_events.
CREATE TABLE drift_events_new (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    agent_id        TEXT NOT NULL REFERENCES agents(id),
    detected_at_ms  INTEGER NOT NULL,
    baseline        TEXT NOT NULL,
    current         TEXT NOT NULL,
    baseline_sha256 TEXT NOT NULL,
    current_sha256  TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('open', 'accepted', 'revoked', 'kept')),
    resolved_at_ms  INTEGER,
    resolved_by     TEXT
);
INSERT INTO drift_events_new
    (id, agent_id, detected_at_ms, baseline, current, baseline_sha256, current_sha256, status, resolved_at_ms, resolved_by)
SELECT id, agent_id, detected_at_ms, baseline, current, baseline_sha256, current_sha256, status, resolved_at_ms, resolved_by
FROM drift_events;
DROP TABLE drift_events;
ALTER TABLE drift_events_new RENAME TO drift_events;
CREATE INDEX drift_status ON drift_events(status, detected_at_ms);
