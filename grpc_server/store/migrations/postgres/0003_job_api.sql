-- The job API beyond polling: the cancelled status, labels, a change number per job, request
-- ids (idempotency), and the index that lists a caller's jobs newest first.

ALTER TABLE jobs DROP CONSTRAINT jobs_status_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_status_check
    CHECK (status IN ('pending', 'processing', 'completed', 'failed', 'cancelled'));

-- labels: a JSON object {"key": "value"}; change_seq: 1 when created, +1 at each change of
-- status or attempt; idempotency_key with request_hash: the caller's request id and a digest of
-- the request, unique per owner (keyless callers share the scope '') among live keys.
ALTER TABLE jobs ADD COLUMN labels text NOT NULL DEFAULT '{}';
ALTER TABLE jobs ADD COLUMN change_seq integer NOT NULL DEFAULT 1;
ALTER TABLE jobs ADD COLUMN idempotency_key text;
ALTER TABLE jobs ADD COLUMN request_hash text;

CREATE UNIQUE INDEX jobs_idempotency ON jobs ((COALESCE(owner_key_id, '')), idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX jobs_by_owner ON jobs (owner_key_id, created_at DESC, id DESC);
