-- ListJobs filters served by indexes, as in PostgreSQL's 0006 (see there). SQLite writes an
-- index at an update only when a column it holds changes: jobs_by_owner_type_status is written
-- at a job's insert and at each change of its status, not at lease renewals.
CREATE INDEX jobs_by_owner_type_status ON jobs (owner_key_id, request_type, status, created_at DESC, id DESC);

-- Labels: one row per label of a job, written by a trigger at the job's insert and deleted by
-- another with the job, as in PostgreSQL (keyless jobs under the owner '', no foreign key). The
-- table is stored in the order of its primary key, which is the listing's: no other index. A
-- migration that rebuilds jobs (CREATE, copy, DROP, RENAME) drops these triggers with the old
-- table and must make them again.
CREATE TABLE job_labels (
    owner_key_id  TEXT NOT NULL,
    key           TEXT NOT NULL,
    value         TEXT NOT NULL,
    created_at    REAL NOT NULL,
    job_id        TEXT NOT NULL,
    PRIMARY KEY (owner_key_id, key, value, created_at, job_id)
) WITHOUT ROWID;
INSERT INTO job_labels (owner_key_id, key, value, created_at, job_id)
SELECT COALESCE(jobs.owner_key_id, ''), l.key, l.value, jobs.created_at, jobs.id
FROM jobs, json_each(jobs.labels) AS l
WHERE jobs.labels <> '{}';

CREATE TRIGGER jobs_labels AFTER INSERT ON jobs WHEN NEW.labels <> '{}'
BEGIN
    INSERT INTO job_labels (owner_key_id, key, value, created_at, job_id)
    SELECT COALESCE(NEW.owner_key_id, ''), l.key, l.value, NEW.created_at, NEW.id
    FROM json_each(NEW.labels) AS l;
END;
CREATE TRIGGER jobs_labels_gone AFTER DELETE ON jobs WHEN OLD.labels <> '{}'
BEGIN
    DELETE FROM job_labels
    WHERE owner_key_id = COALESCE(OLD.owner_key_id, '') AND created_at = OLD.created_at AND job_id = OLD.id
      AND (key, value) IN (SELECT l.key, l.value FROM json_each(OLD.labels) AS l);
END;
