//! A blob upload session on a destination registry: started by `POST` (or a mount attempt),
//! fed in chunks by `PATCH`, closed by `PUT ?digest=` carrying the last chunk.
//!
//! A chunk that fails on the way is not blindly sent again: the registry is asked where the
//! upload stands (`GET` on the session, `Range: 0-N`) and the rest of the chunk is sent from
//! there. A session the registry no longer knows (restarted without it, or it cancelled the
//! upload) is [`UploadError::Lost`]: the caller starts over with the bytes from the source.

use bytes::Bytes;
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, LOCATION, RANGE};
use reqwest::{Method, Response, StatusCode};

use super::client::{retry_after, scope, transient_error, transient_status, Registry, Req};
use super::{status_error, Error};

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// The session is gone or behind the bytes we still hold: start again from the source.
    #[error("upload session lost: {0}")]
    Lost(String),
    #[error("{0}")]
    Failed(#[from] Error),
}

/// An open upload session.
#[derive(Debug)]
pub struct Upload<'a> {
    reg: &'a Registry,
    repo: String,
    location: String,
    /// Bytes the registry holds.
    offset: u64,
}

/// How an upload request went.
enum Answer {
    Done(Response),
    Retry(Setback),
}

/// A failure worth retrying: why, and how long the registry asked us to wait (`Retry-After`).
struct Setback {
    why: String,
    wait: Option<std::time::Duration>,
}

/// What starting an upload with a mount attempt gave.
pub enum Started<'a> {
    Mounted,
    Upload(Upload<'a>),
}

fn location_of(reg: &Registry, resp: &Response) -> Result<String, Error> {
    resp.headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(|l| reg.resolve(l))
        .ok_or_else(|| Error::other(format!("{} answered an upload without Location", reg.host)))
}

/// The end of `Range: 0-N` (or `bytes=0-N`) as a count of bytes held.
fn held(resp: &Response) -> Option<u64> {
    let v = resp.headers().get(RANGE)?.to_str().ok()?;
    let v = v.trim().trim_start_matches("bytes=");
    let (start, end) = v.split_once('-')?;
    let (start, end) = (start.parse::<u64>().ok()?, end.parse::<u64>().ok()?);
    // `0-0` is how registries say "nothing yet" as well as "one byte"; a one-byte chunk is
    // simply sent again if it was not held.
    Some(if start == 0 && end == 0 { 0 } else { end + 1 })
}

fn with_query(url: &str, key: &str, value: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{key}={value}")
}

impl Registry {
    /// Starts an upload session in `repo`.
    pub async fn start_upload(&self, repo: &str) -> Result<Upload<'_>, Error> {
        let req = Req::new(
            Method::POST,
            self.url(&format!("/v2/{repo}/blobs/uploads/")),
            vec![scope(repo, "pull,push")],
        )
        .header(CONTENT_LENGTH, "0");
        let resp = self.send(&req).await?;
        let resp = self.expect(&req, resp, &[StatusCode::ACCEPTED]).await?;
        Ok(Upload {
            reg: self,
            repo: repo.to_owned(),
            location: location_of(self, &resp)?,
            offset: 0,
        })
    }

    /// Asks `repo` to mount `digest` from `from` in the same registry. A registry that cannot
    /// (or will not) answers with an upload session instead, as the spec allows.
    pub async fn mount(&self, repo: &str, digest: &str, from: &str) -> Result<Started<'_>, Error> {
        let req = Req::new(
            Method::POST,
            self.url(&format!(
                "/v2/{repo}/blobs/uploads/?mount={digest}&from={from}"
            )),
            vec![scope(repo, "pull,push"), scope(from, "pull")],
        )
        .header(CONTENT_LENGTH, "0");
        let resp = self.send(&req).await?;
        let resp = self
            .expect(&req, resp, &[StatusCode::CREATED, StatusCode::ACCEPTED])
            .await?;
        if resp.status() == StatusCode::CREATED {
            return Ok(Started::Mounted);
        }
        Ok(Started::Upload(Upload {
            reg: self,
            repo: repo.to_owned(),
            location: location_of(self, &resp)?,
            offset: 0,
        }))
    }
}

impl<'a> Upload<'a> {
    fn req(&self, method: Method, url: String) -> Req {
        Req::new(method, url, vec![scope(&self.repo, "pull,push")])
    }

    /// Appends `data`, which starts at byte `start` of the blob.
    pub async fn append(&mut self, start: u64, data: &Bytes) -> Result<(), UploadError> {
        let end = start + data.len() as u64;
        let mut failures = 0;
        while self.offset < end {
            if self.offset < start {
                return Err(UploadError::Lost(format!(
                    "{} holds {} bytes, before this chunk at {start}",
                    self.reg.host, self.offset
                )));
            }
            let part = data.slice((self.offset - start) as usize..);
            let req = self
                .req(Method::PATCH, self.location.clone())
                .header(CONTENT_TYPE, "application/octet-stream")
                .header(
                    CONTENT_RANGE,
                    &format!("{}-{}", self.offset, self.offset + part.len() as u64 - 1),
                )
                .body(part.clone());
            let outcome = self.reg.send_once(&req).await;
            match self.answer("PATCH", outcome, StatusCode::ACCEPTED).await? {
                Answer::Done(resp) => {
                    self.location = location_of(self.reg, &resp)?;
                    self.offset = held(&resp).unwrap_or(self.offset + part.len() as u64);
                }
                Answer::Retry(setback) => {
                    failures += 1;
                    self.recover(&mut failures, setback).await?;
                }
            }
        }
        Ok(())
    }

    /// Closes the upload with `last` (the final chunk, starting at `start`; may be empty).
    pub async fn finish(
        &mut self,
        start: u64,
        last: &Bytes,
        digest: &str,
    ) -> Result<(), UploadError> {
        let end = start + last.len() as u64;
        let mut failures = 0;
        loop {
            if self.offset < start {
                return Err(UploadError::Lost(format!(
                    "{} holds {} bytes, before the last chunk at {start}",
                    self.reg.host, self.offset
                )));
            }
            let part = last.slice((self.offset.min(end) - start) as usize..);
            let mut req = self
                .req(Method::PUT, with_query(&self.location, "digest", digest))
                .header(CONTENT_TYPE, "application/octet-stream")
                .body(part.clone());
            if !part.is_empty() {
                req = req.header(
                    CONTENT_RANGE,
                    &format!("{}-{}", self.offset, self.offset + part.len() as u64 - 1),
                );
            }
            let outcome = self.reg.send_once(&req).await;
            let Answer::Retry(setback) = self.answer("PUT", outcome, StatusCode::CREATED).await?
            else {
                return Ok(());
            };
            failures += 1;
            // The PUT may have landed before the connection broke.
            if let Ok(true) = self.reg.blob_exists(&self.repo, digest).await {
                return Ok(());
            }
            self.recover(&mut failures, setback).await?;
        }
    }

    /// Sorts an answer: the expected success, a setback worth retrying, or a refusal.
    async fn answer(
        &self,
        method: &str,
        outcome: Result<Response, Error>,
        ok: StatusCode,
    ) -> Result<Answer, UploadError> {
        match outcome {
            Ok(resp) if resp.status() == ok => Ok(Answer::Done(resp)),
            Ok(resp) if transient_status(resp.status()) => Ok(Answer::Retry(Setback {
                why: format!("answered {}", resp.status()),
                wait: retry_after(&resp),
            })),
            Ok(resp) => Err(self.refused(method, resp).await),
            Err(Error::Http(e)) if transient_error(&e) => Ok(Answer::Retry(Setback {
                why: Error::Http(e).to_string(),
                wait: None,
            })),
            Err(e) => Err(e.into()),
        }
    }

    /// After a setback: waits (as the registry asked, else with backoff), then asks the
    /// registry where the upload stands.
    async fn recover(&mut self, failures: &mut u32, setback: Setback) -> Result<(), UploadError> {
        let Setback { why, mut wait } = setback;
        loop {
            if *failures >= self.reg.retry.attempts {
                return Err(UploadError::Failed(Error::other(format!(
                    "upload to {}/{} gave up after {failures} attempts: {why}",
                    self.reg.host, self.repo
                ))));
            }
            let wait = wait
                .take()
                .unwrap_or_else(|| self.reg.retry.delay(*failures - 1));
            self.reg.note_retry(format!(
                "upload to {}/{}: {why}; asking where it stands in {:.1}s",
                self.reg.host,
                self.repo,
                wait.as_secs_f64()
            ));
            tokio::time::sleep(wait).await;
            let req = self.req(Method::GET, self.location.clone());
            match self.reg.send_once(&req).await {
                Ok(resp)
                    if resp.status() == StatusCode::NO_CONTENT || resp.status().is_success() =>
                {
                    if let Ok(l) = location_of(self.reg, &resp) {
                        self.location = l;
                    }
                    self.offset = held(&resp).unwrap_or(0);
                    return Ok(());
                }
                Ok(resp) if transient_status(resp.status()) => {}
                Ok(resp) => return Err(self.refused("GET", resp).await),
                Err(Error::Http(e)) if transient_error(&e) => {}
                Err(e) => return Err(e.into()),
            }
            *failures += 1;
        }
    }

    /// A definite refusal: a lost session when the registry says so, else a failure.
    async fn refused(&self, method: &str, resp: Response) -> UploadError {
        let status = resp.status();
        let err = status_error(method, resp).await;
        let text = err.to_string();
        if status == StatusCode::NOT_FOUND
            || text.contains("BLOB_UPLOAD_UNKNOWN")
            || text.contains("BLOB_UPLOAD_INVALID")
            || status == StatusCode::RANGE_NOT_SATISFIABLE
        {
            UploadError::Lost(text)
        } else {
            UploadError::Failed(err)
        }
    }

    /// Abandons the session (best effort: registries also expire abandoned sessions).
    pub async fn cancel(self) {
        let req = self.req(Method::DELETE, self.location.clone());
        let _ = self.reg.send_once(&req).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_goes_after_an_existing_query() {
        assert_eq!(
            with_query(
                "http://r/v2/a/blobs/uploads/u?_state=x",
                "digest",
                "sha256:1"
            ),
            "http://r/v2/a/blobs/uploads/u?_state=x&digest=sha256:1"
        );
        assert_eq!(
            with_query("http://r/v2/a/blobs/uploads/u", "digest", "sha256:1"),
            "http://r/v2/a/blobs/uploads/u?digest=sha256:1"
        );
    }
}
