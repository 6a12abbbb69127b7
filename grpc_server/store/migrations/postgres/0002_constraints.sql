-- Blob chunks belong to their job: deleted with it (as in SQLite's schema of the same version).

ALTER TABLE blob_chunks DROP CONSTRAINT blob_chunks_job_id_fkey;
ALTER TABLE blob_chunks ADD CONSTRAINT blob_chunks_job_id_fkey
    FOREIGN KEY (job_id) REFERENCES jobs (id) ON DELETE CASCADE;
