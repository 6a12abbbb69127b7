-- Webhook deliveries: the endpoint a job names, the outbox (one row per event, written in the
-- same transaction as the job's terminal state), each attempt, and endpoints disabled by a 410.
-- The outbox keeps no foreign key to jobs: an event outlives the job it tells of.

ALTER TABLE jobs ADD COLUMN webhook TEXT;

CREATE TABLE webhook_outbox (
    webhook_id       TEXT PRIMARY KEY,
    endpoint         TEXT NOT NULL,
    job_id           TEXT NOT NULL,
    event_type       TEXT NOT NULL
                     CHECK (event_type IN ('async_job.completed', 'async_job.failed', 'async_job.cancelled')),
    body             BLOB NOT NULL,
    created_at       REAL NOT NULL,
    state            TEXT NOT NULL DEFAULT 'pending'
                     CHECK (state IN ('pending', 'delivered', 'given_up')),
    next_attempt_at  REAL,
    attempts         INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_status      INTEGER,
    last_error       TEXT,
    lease_owner      TEXT,
    lease_until      REAL,
    CHECK ((state = 'pending') = (next_attempt_at IS NOT NULL))
);
CREATE INDEX webhook_outbox_due ON webhook_outbox (next_attempt_at) WHERE state = 'pending';
CREATE INDEX webhook_outbox_by_endpoint ON webhook_outbox (endpoint, created_at DESC, webhook_id DESC);

CREATE TABLE webhook_attempts (
    webhook_id        TEXT NOT NULL REFERENCES webhook_outbox (webhook_id) ON DELETE CASCADE,
    attempt           INTEGER NOT NULL CHECK (attempt >= 1),
    started_at        REAL NOT NULL,
    status            INTEGER,
    error             TEXT,
    duration_seconds  REAL NOT NULL CHECK (duration_seconds >= 0),
    excerpt           TEXT NOT NULL,
    CHECK ((status IS NULL) <> (error IS NULL)),
    PRIMARY KEY (webhook_id, attempt)
);

CREATE TABLE webhook_endpoints_disabled (
    name         TEXT PRIMARY KEY,
    disabled_at  REAL NOT NULL,
    reason       TEXT NOT NULL
);
