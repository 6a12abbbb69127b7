-- The job API beyond polling: the cancelled status, labels, a change number per job, request
-- ids (idempotency), and the index that lists a caller's jobs newest first.
-- The status CHECK cannot be altered in SQLite: jobs is rebuilt (SQLite's documented way: a new
-- table, the rows copied, the old one dropped, the new one renamed), with foreign keys off (the
-- runner) so blob_chunks, which references jobs by name, is left as it is.

CREATE TABLE jobs_0003 (
    id               TEXT PRIMARY KEY,
    request_type     TEXT NOT NULL,
    status           TEXT NOT NULL
                     CHECK (status IN ('pending', 'processing', 'completed', 'failed', 'cancelled')),
    model            TEXT NOT NULL,
    owner_key_id     TEXT,
    params           TEXT NOT NULL,
    inputs           TEXT NOT NULL,
    ttl_seconds      INTEGER NOT NULL,
    created_at       REAL NOT NULL,
    completed_at     REAL,
    expires_at       REAL,
    status_code      INTEGER NOT NULL DEFAULT 0,
    result           TEXT,
    error            TEXT,
    attempts         INTEGER NOT NULL DEFAULT 0,
    lease_owner      TEXT,
    lease_until      REAL,
    labels           TEXT NOT NULL DEFAULT '{}',
    change_seq       INTEGER NOT NULL DEFAULT 1,
    idempotency_key  TEXT,
    request_hash     TEXT
);
INSERT INTO jobs_0003 (
    id, request_type, status, model, owner_key_id, params, inputs, ttl_seconds, created_at,
    completed_at, expires_at, status_code, result, error, attempts, lease_owner, lease_until
)
SELECT
    id, request_type, status, model, owner_key_id, params, inputs, ttl_seconds, created_at,
    completed_at, expires_at, status_code, result, error, attempts, lease_owner, lease_until
FROM jobs;
DROP TABLE jobs;  -- and its indexes, recreated below
ALTER TABLE jobs_0003 RENAME TO jobs;

CREATE INDEX jobs_queue ON jobs (created_at) WHERE status = 'pending';
CREATE INDEX jobs_leases ON jobs (lease_until) WHERE status = 'processing';
CREATE INDEX jobs_expiry ON jobs (expires_at) WHERE expires_at IS NOT NULL;
CREATE UNIQUE INDEX jobs_idempotency ON jobs (COALESCE(owner_key_id, ''), idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX jobs_by_owner ON jobs (owner_key_id, created_at DESC, id DESC);
