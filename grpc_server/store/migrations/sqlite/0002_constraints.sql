-- The constraints and indexes of PostgreSQL's schema: a CHECK on the status and on blob kinds,
-- blob chunks that belong to their job (deleted with it), and the same partial indexes.
-- SQLite cannot add constraints to a table, so both tables are rebuilt and their rows copied;
-- the runner turns foreign keys off around this and checks them all before committing.
-- Times stay REAL (seconds since the epoch, UTC).

ALTER TABLE jobs RENAME TO jobs_0001;
ALTER TABLE blob_chunks RENAME TO blob_chunks_0001;

CREATE TABLE jobs (
    id            TEXT PRIMARY KEY,
    request_type  TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('pending', 'processing', 'completed', 'failed')),
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
INSERT INTO jobs (
    id, request_type, status, model, owner_key_id, params, inputs, ttl_seconds, created_at,
    completed_at, expires_at, status_code, result, error, attempts, lease_owner, lease_until
)
SELECT
    id, request_type, status, model, owner_key_id, params, inputs, ttl_seconds, created_at,
    completed_at, expires_at, status_code, result, error, attempts, lease_owner, lease_until
FROM jobs_0001;

-- kind: image | mask (inputs, idx = the input's index) or output (idx = the stored output index);
-- seq numbers the chunks of one blob from 0.
CREATE TABLE blob_chunks (
    job_id  TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    kind    TEXT NOT NULL CHECK (kind IN ('image', 'mask', 'output')),
    idx     INTEGER NOT NULL,
    seq     INTEGER NOT NULL,
    data    BLOB NOT NULL,
    PRIMARY KEY (job_id, kind, idx, seq)
);
-- Chunks whose job is gone were garbage already: they are not carried over.
INSERT INTO blob_chunks (job_id, kind, idx, seq, data)
SELECT job_id, kind, idx, seq, data FROM blob_chunks_0001 WHERE job_id IN (SELECT id FROM jobs);

DROP TABLE blob_chunks_0001;
DROP TABLE jobs_0001;  -- and its indexes, whose names the new ones take

-- Partial indexes: the claim scans only pending jobs oldest first, the reaper only running ones.
CREATE INDEX jobs_queue ON jobs (created_at) WHERE status = 'pending';
CREATE INDEX jobs_leases ON jobs (lease_until) WHERE status = 'processing';
CREATE INDEX jobs_expiry ON jobs (expires_at) WHERE expires_at IS NOT NULL;
