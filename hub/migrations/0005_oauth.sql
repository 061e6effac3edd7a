-- OAuth 2.1 for MCP clients (hub/src/oauth/): clients registered
-- dynamically (RFC 7591), authorization requests the operator approves
-- (each becomes a grant with the policy the operator chose), and the
-- tokens issued under a grant. Every secret (browser handle, code, access
-- and refresh token) is stored only as its SHA-256.
CREATE TABLE oauth_clients (
    client_id      TEXT PRIMARY KEY,
    name           TEXT NOT NULL,
    redirect_uris  TEXT NOT NULL,          -- JSON array, matched exactly
    registered_at_ms INTEGER NOT NULL,
    remote_addr    TEXT NOT NULL,
    revoked_at_ms  INTEGER
);

-- One authorization request and, once approved, the grant it became.
CREATE TABLE oauth_grants (
    id              TEXT PRIMARY KEY,
    client_id       TEXT NOT NULL REFERENCES oauth_clients(client_id),
    status          TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'expired', 'revoked')),
    user_code       TEXT NOT NULL,
    redirect_uri    TEXT NOT NULL,
    state           TEXT NOT NULL,
    code_challenge  TEXT NOT NULL,
    resource        TEXT NOT NULL,
    scope           TEXT NOT NULL,
    handle_sha256   TEXT NOT NULL UNIQUE,
    remote_addr     TEXT NOT NULL,
    requested_at_ms INTEGER NOT NULL,
    decided_at_ms   INTEGER,
    decided_by      TEXT,
    deny_reason     TEXT,
    -- The policy the operator chose (as an API key's).
    agents          TEXT NOT NULL DEFAULT '[]',
    probes          TEXT NOT NULL DEFAULT '[]',
    tools           TEXT NOT NULL DEFAULT '[]',
    max_capability  TEXT NOT NULL DEFAULT 'observe',
    expires_at_ms   INTEGER,
    -- The authorization code: issued once to the waiting browser, single use.
    code_sha256     TEXT UNIQUE,
    code_expires_at_ms INTEGER,
    code_used_at_ms INTEGER,
    last_used_at_ms INTEGER,
    revoked_at_ms   INTEGER
);
CREATE INDEX oauth_grants_by_status ON oauth_grants(status);
CREATE INDEX oauth_grants_by_client ON oauth_grants(client_id);

CREATE TABLE oauth_tokens (
    token_sha256   TEXT PRIMARY KEY,
    grant_id       TEXT NOT NULL REFERENCES oauth_grants(id),
    kind           TEXT NOT NULL CHECK (kind IN ('access', 'refresh')),
    issued_at_ms   INTEGER NOT NULL,
    expires_at_ms  INTEGER NOT NULL,
    -- A refresh token is used once (rotation); a second use is reuse.
    used_at_ms     INTEGER,
    revoked_at_ms  INTEGER
);
CREATE INDEX oauth_tokens_by_grant ON oauth_tokens(grant_id);
