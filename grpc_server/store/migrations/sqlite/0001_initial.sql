-- The schema the SQLite store made for itself before versions were recorded (files made
-- then are adopted at this version). 0002 brings it in line with PostgreSQL's.

CREATE TABLE jobs (
    id            TEXT PRIMARY KEY,
    request_type  TEXT NOT NULL,
    status        TEXT NOT NULL,
    model         TEXT NOT NULL,
    owner_key_id  TEXT,
    params        TEXT NOT NULL,
    inputs        TEXT NOT NULL,
    ttl_seconds   INTEGER NOT NULL,
    created_at    REAL NOT NULL,
    completed_at  REAL,
    expires_at    REAL,
    status_code   INTEGER NOT NULL DEFAULT 0,
    result        TEXT,
    error         TEXT,
    attempts      INTEGER NOT NULL DEFAULT 0,
    lease_owner   TEXT,
    lease_until   REAL
);
CREATE INDEX jobs_queue ON jobs (status, created_at);
CREATE INDEX jobs_leases ON jobs (status, lease_until);
CREATE INDEX jobs_expiry ON jobs (expires_at) WHERE expires_at IS NOT NULL;
CREATE TABLE blob_chunks (
    job_id  TEXT NOT NULL,
    kind    TEXT NOT NULL,      -- image | mask | output
    idx     INTEGER NOT NULL,
    seq     INTEGER NOT NULL,
    data    BLOB NOT NULL,
    PRIMARY KEY (job_id, kind, idx, seq)
);
