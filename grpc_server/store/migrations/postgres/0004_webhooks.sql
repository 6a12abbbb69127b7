-- Webhook deliveries: the endpoint a job names, the outbox (one row per event, written in the
-- same transaction as the job's terminal state), each attempt, and endpoints disabled by a 410.
-- The outbox keeps no foreign key to jobs: an event outlives the job it tells of.

ALTER TABLE jobs ADD COLUMN webhook text;

CREATE TABLE webhook_outbox (
    webhook_id       text PRIMARY KEY,
    endpoint         text NOT NULL,
    job_id           text NOT NULL,
    event_type       text NOT NULL
                     CHECK (event_type IN ('async_job.completed', 'async_job.failed', 'async_job.cancelled')),
    body             bytea NOT NULL,
    created_at       timestamptz NOT NULL,
    state            text NOT NULL DEFAULT 'pending'
                     CHECK (state IN ('pending', 'delivered', 'given_up')),
    next_attempt_at  timestamptz,
    attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_status      integer,
    last_error       text,
    lease_owner      text,
    lease_until      timestamptz,
    CHECK ((state = 'pending') = (next_attempt_at IS NOT NULL))
);
CREATE INDEX webhook_outbox_due ON webhook_outbox (next_attempt_at) WHERE state = 'pending';
CREATE INDEX webhook_outbox_by_endpoint ON webhook_outbox (endpoint, created_at DESC, webhook_id DESC);

CREATE TABLE webhook_attempts (
    webhook_id        text NOT NULL REFERENCES webhook_outbox (webhook_id) ON DELETE CASCADE,
    attempt           integer NOT NULL CHECK (attempt >= 1),
    started_at        timestamptz NOT NULL,
    status            integer,
    error             text,
    duration_seconds  double precision NOT NULL CHECK (duration_seconds >= 0),
    excerpt           text NOT NULL,
    CHECK ((status IS NULL) <> (error IS NULL)),
    PRIMARY KEY (webhook_id, attempt)
);

CREATE TABLE webhook_endpoints_disabled (
    name         text PRIMARY KEY,
    disabled_at  timestamptz NOT NULL,
    reason       text NOT NULL
);
