-- Per-key admission counts and fair-share claims: the queue and the running jobs by owner
-- (keyless jobs under the owner '', as one key). jobs_owner_queue serves the claim's turn
-- between keys (each key's oldest pending jobs) and the count of a key's pending jobs;
-- jobs_owner_running the count of a key's processing jobs.
CREATE INDEX jobs_owner_queue ON jobs ((COALESCE(owner_key_id, '')), created_at, id)
    WHERE status = 'pending';
CREATE INDEX jobs_owner_running ON jobs ((COALESCE(owner_key_id, ''))) WHERE status = 'processing';
