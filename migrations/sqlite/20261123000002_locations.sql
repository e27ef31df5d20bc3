-- Where each blob's bytes are (a store-specific location: the digest for files, the object key
-- for S3), and each upload session's store state (e.g. its S3 multipart upload and parts).
ALTER TABLE blobs ADD COLUMN location TEXT NOT NULL DEFAULT '';
UPDATE blobs SET location = digest;
ALTER TABLE uploads ADD COLUMN store_state BLOB NOT NULL DEFAULT x'';
