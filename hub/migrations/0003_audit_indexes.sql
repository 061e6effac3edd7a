-- Filtering the audit chain by outcome or action (the console's `outcome:`
-- and `action:` filters) uses an index instead of scanning the chain.
-- The same statements are in sonde-auditlog's schema for new databases.
CREATE INDEX IF NOT EXISTS audit_by_outcome ON audit_entries(outcome, seq);
CREATE INDEX IF NOT EXISTS audit_by_action ON audit_entries(action, seq);
