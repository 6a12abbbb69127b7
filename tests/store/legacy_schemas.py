"""The schemas asyncgate made before its schema was versioned, frozen as they shipped (at
85ac66c): databases made by that code must be adopted and migrated, never refused."""

LEGACY_SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
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
CREATE INDEX IF NOT EXISTS jobs_queue ON jobs (status, created_at);
CREATE INDEX IF NOT EXISTS jobs_leases ON jobs (status, lease_until);
CREATE INDEX IF NOT EXISTS jobs_expiry ON jobs (expires_at) WHERE expires_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS blob_chunks (
    job_id  TEXT NOT NULL,
    kind    TEXT NOT NULL,      -- image | mask | output
    idx     INTEGER NOT NULL,
    seq     INTEGER NOT NULL,
    data    BLOB NOT NULL,
    PRIMARY KEY (job_id, kind, idx, seq)
);
"""
"""What SQLiteStore.open ran on every file (grpc_server/store/sqlite.py, SCHEMA)."""

LEGACY_POSTGRES_SCHEMA = """

CREATE TABLE jobs (
    id            text PRIMARY KEY,
    request_type  text NOT NULL,
    status        text NOT NULL CHECK (status IN ('pending', 'processing', 'completed', 'failed')),
    model         text NOT NULL,
    owner_key_id  text,
    params        text NOT NULL,
    inputs        text NOT NULL,
    ttl_seconds   integer NOT NULL,
    created_at    timestamptz NOT NULL,
    completed_at  timestamptz,
    expires_at    timestamptz,
    status_code   integer NOT NULL DEFAULT 0,
    result        text,
    error         text,
    attempts      integer NOT NULL DEFAULT 0,
    lease_owner   text,
    lease_until   timestamptz
);

-- Partial indexes: the claim scans only pending jobs oldest first, the reaper only running ones.
CREATE INDEX jobs_queue ON jobs (created_at) WHERE status = 'pending';
CREATE INDEX jobs_leases ON jobs (lease_until) WHERE status = 'processing';
CREATE INDEX jobs_expiry ON jobs (expires_at) WHERE expires_at IS NOT NULL;

-- kind: image | mask (inputs, idx = the input's index) or output (idx = the stored output index);
-- seq numbers the chunks of one blob from 0.
CREATE TABLE blob_chunks (
    job_id  text NOT NULL REFERENCES jobs (id),
    kind    text NOT NULL CHECK (kind IN ('image', 'mask', 'output')),
    idx     integer NOT NULL,
    seq     integer NOT NULL,
    data    bytea NOT NULL,
    PRIMARY KEY (job_id, kind, idx, seq)
);

-- Images are already compressed: store chunks out of line without trying pglz on them again.
ALTER TABLE blob_chunks ALTER COLUMN data SET STORAGE EXTERNAL;
"""
"""grpc_server/store/migrations/0001_initial.sql (without its two opening comment lines),
recorded as version 0001_initial by the runner of the time (or applied by hand, unrecorded)."""
