-- ListJobs filters served by indexes (grpc_server.store.job_api_sql; plans in docs/benchmarks.md).
--
-- Status and type: one composite index. A listing filtered by either is one arm per (type,
-- status) pair it allows, each an ordered scan of this index, merged newest first (Merge
-- Append), so a page reads its own rows and one more per arm. Every update of a job already
-- writes an entry into each of the table's full indexes (no update is HOT: status and
-- lease_until are in index keys and predicates), so this index costs one entry per row version
-- (bench/list_plans.py measures it), and it serves status, type and both at once.
CREATE INDEX jobs_by_owner_type_status ON jobs (owner_key_id, request_type, status, created_at DESC, id DESC);

-- Labels: one row per label of a job, written by a trigger when the job is inserted (labels
-- never change afterwards) and deleted with the job by another. Its one index, the primary key,
-- lists an owner's jobs with a label newest first (scanned backwards), in keyset order, which a
-- GIN index on the JSON cannot (it yields every match unordered); being another table, it costs
-- nothing when the job's row is updated. Keyless jobs are under the owner ''. No foreign key:
-- the rows are derived from the job's by the triggers alone, and checking one cost each
-- labelled insert more than writing the label rows (bench/list_plans.py).
CREATE TABLE job_labels (
    owner_key_id  text NOT NULL,
    key           text NOT NULL,
    value         text NOT NULL,
    created_at    timestamptz NOT NULL,
    job_id        text NOT NULL,
    PRIMARY KEY (owner_key_id, key, value, created_at, job_id)
);
INSERT INTO job_labels (owner_key_id, key, value, created_at, job_id)
SELECT COALESCE(jobs.owner_key_id, ''), l.key, l.value, jobs.created_at, jobs.id
FROM jobs CROSS JOIN LATERAL jsonb_each_text(jobs.labels::jsonb) AS l
WHERE jobs.labels <> '{}';

CREATE FUNCTION job_labels_of_new_job() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO job_labels (owner_key_id, key, value, created_at, job_id)
    SELECT COALESCE(NEW.owner_key_id, ''), l.key, l.value, NEW.created_at, NEW.id
    FROM jsonb_each_text(NEW.labels::jsonb) AS l;
    RETURN NULL;
END
$$;
-- Each of the job's labels by its whole key: one index probe each (a single DELETE ... IN
-- (the labels) is planned as a scan of all the owner's label rows).
CREATE FUNCTION job_labels_of_deleted_job() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    label record;
BEGIN
    FOR label IN SELECT l.key, l.value FROM jsonb_each_text(OLD.labels::jsonb) AS l LOOP
        DELETE FROM job_labels
        WHERE owner_key_id = COALESCE(OLD.owner_key_id, '') AND key = label.key AND value = label.value
          AND created_at = OLD.created_at AND job_id = OLD.id;
    END LOOP;
    RETURN NULL;
END
$$;
-- WHEN: a job without labels calls neither function.
CREATE TRIGGER jobs_labels AFTER INSERT ON jobs
    FOR EACH ROW WHEN (NEW.labels <> '{}') EXECUTE FUNCTION job_labels_of_new_job();
CREATE TRIGGER jobs_labels_gone AFTER DELETE ON jobs
    FOR EACH ROW WHEN (OLD.labels <> '{}') EXECUTE FUNCTION job_labels_of_deleted_job();
