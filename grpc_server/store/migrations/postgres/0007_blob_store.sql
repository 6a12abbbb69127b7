-- Blobs beside rows: a job's files may be kept in a blob store (a directory, an S3 bucket)
-- instead of blob_chunks. Decided per job, so jobs stored before a change of setting stay
-- readable where they are.
-- blob_store: NULL, the job's input files are rows of blob_chunks; else the name of the blob
-- store holding them ("directory", "s3"), under "<id>/in/<role>-<index>".
-- outputs_token: NULL, its outputs (if any) are rows of blob_chunks; else they are in the blob
-- store under "<id>/out-<token>/<index>" (a token per completion, so that the outputs of a
-- worker that lost its lease never mix with the winner's).
ALTER TABLE jobs ADD COLUMN blob_store TEXT;
ALTER TABLE jobs ADD COLUMN outputs_token TEXT;
