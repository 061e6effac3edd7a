-- Pack catalogs are stored once per distinct content, not once per agent:
-- agents that run the same packs (most of a fleet) share one row, so the
-- database and the hub's start-up stay small with thousands of agents.
-- `sha256` is the SHA-256 of `packs` (canonical JSON of the pack list).
CREATE TABLE pack_catalogs (
    sha256 TEXT PRIMARY KEY,
    packs  TEXT NOT NULL
);

-- The catalog an agent reported last. NULL for rows written before this
-- migration: their packs are still in `agents.packs` until the agent's
-- next hello moves them here.
ALTER TABLE agents ADD COLUMN catalog_sha256 TEXT REFERENCES pack_catalogs(sha256);
