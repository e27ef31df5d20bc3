-- What each repository holds (the bytes and count of the blobs linked into it), kept in the
-- same transactions that link and unlink blobs, so the storage gauge on /metrics reads one row
-- per repository instead of summing every link on each scrape. A blob shared by two
-- repositories counts in both: it is what each would hold alone.
CREATE TABLE repo_usage (
    repo   TEXT PRIMARY KEY,
    bytes  BIGINT NOT NULL,
    blobs  BIGINT NOT NULL
);

INSERT INTO repo_usage (repo, bytes, blobs)
SELECT r.repo, SUM(b.size), COUNT(*)
FROM repo_blobs r JOIN blobs b ON b.digest = r.digest
GROUP BY r.repo;
