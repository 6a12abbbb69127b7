-- The initial schema: jobs, and their blobs in 1 MiB chunks (grpc_server.store.base.CHUNK_BYTES).
-- Columns mirror the SQLite backend; times are timestamptz, documents the codec's JSON text.

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
