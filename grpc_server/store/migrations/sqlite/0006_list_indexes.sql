-- ListJobs filters served by indexes, as in PostgreSQL's 0006 (see there). SQLite writes an
-- index at an update only when a column it holds changes: jobs_by_owner_type_status is written
-- at a job's insert and at each change of its status, not at lease renewals.
CREATE INDEX jobs_by_owner_type_status ON jobs (owner_key_id, request_type, status, created_at DESC, id DESC);

-- Labels: one row per label of a job, written by a trigger at the job's insert and deleted by
-- another with the job (no foreign key, as in PostgreSQL). A migration that rebuilds jobs
-- (CREATE, copy, DROP, RENAME) drops these triggers with the old table and must make them again.
CREATE TABLE job_labels (
    job_id        TEXT NOT NULL,
    key           TEXT NOT NULL,
    value         TEXT NOT NULL,
    owner_key_id  TEXT,
    created_at    REAL NOT NULL,
    PRIMARY KEY (job_id, key)
) WITHOUT ROWID;
INSERT INTO job_labels (job_id, key, value, owner_key_id, created_at)
SELECT jobs.id, l.key, l.value, jobs.owner_key_id, jobs.created_at
FROM jobs, json_each(jobs.labels) AS l
WHERE jobs.labels <> '{}';
CREATE INDEX job_labels_by_owner ON job_labels (owner_key_id, key, value, created_at DESC, job_id DESC);

CREATE TRIGGER jobs_labels AFTER INSERT ON jobs WHEN NEW.labels <> '{}'
BEGIN
    INSERT INTO job_labels (job_id, key, value, owner_key_id, created_at)
    SELECT NEW.id, l.key, l.value, NEW.owner_key_id, NEW.created_at FROM json_each(NEW.labels) AS l;
END;
CREATE TRIGGER jobs_labels_gone AFTER DELETE ON jobs WHEN OLD.labels <> '{}'
BEGIN
    DELETE FROM job_labels WHERE job_id = OLD.id;
END;
