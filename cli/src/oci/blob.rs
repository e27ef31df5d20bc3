//! Reading a blob as a stream of chunks: resumed with a `Range` request when the connection
//! drops, hashed on the way, and refused at the end unless size and digest match.

use bytes::Bytes;
use futures::StreamExt;
use reqwest::{Method, StatusCode};
use sha2::{Digest, Sha256};

use super::client::{scope, transient_error, Registry, Req};
use super::{status_error, Descriptor, Error, Result};

type BodyStream = futures::stream::BoxStream<'static, reqwest::Result<Bytes>>;

/// A blob being read from a registry.
pub struct BlobReader<'a> {
    reg: &'a Registry,
    repo: String,
    desc: Descriptor,
    body: Option<BodyStream>,
    offset: u64,
    hasher: Sha256,
    resumes: u32,
}

impl<'a> BlobReader<'a> {
    pub async fn open(reg: &'a Registry, repo: &str, desc: &Descriptor) -> Result<BlobReader<'a>> {
        if !desc.digest.starts_with("sha256:") {
            return Err(Error::other(format!(
                "{}: only sha256 digests are supported",
                desc.digest
            )));
        }
        let mut r = BlobReader {
            reg,
            repo: repo.to_owned(),
            desc: desc.clone(),
            body: None,
            offset: 0,
            hasher: Sha256::new(),
            resumes: 0,
        };
        r.connect().await?;
        Ok(r)
    }

    async fn connect(&mut self) -> Result<()> {
        let mut req = Req::new(
            Method::GET,
            self.reg
                .url(&format!("/v2/{}/blobs/{}", self.repo, self.desc.digest)),
            vec![scope(&self.repo, "pull")],
        );
        if self.offset > 0 {
            req = req.header(reqwest::header::RANGE, &format!("bytes={}-", self.offset));
        }
        let resp = self.reg.send(&req).await?;
        let expected = if self.offset > 0 {
            StatusCode::PARTIAL_CONTENT
        } else {
            StatusCode::OK
        };
        if resp.status() != expected {
            if resp.status().is_success() {
                return Err(Error::other(format!(
                    "{} cannot resume a read of {} at byte {} (answered {})",
                    self.reg.host,
                    self.desc.digest,
                    self.offset,
                    resp.status()
                )));
            }
            return Err(status_error("GET", resp).await);
        }
        self.body = Some(resp.bytes_stream().boxed());
        Ok(())
    }

    /// The next chunk, or `None` at the end once size and digest have been checked.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>> {
        loop {
            let Some(body) = self.body.as_mut() else {
                return Ok(None);
            };
            match body.next().await {
                Some(Ok(chunk)) => {
                    self.offset += chunk.len() as u64;
                    if self.offset > self.desc.size {
                        return Err(Error::other(format!(
                            "{} is longer than its descriptor's {} bytes",
                            self.desc.digest, self.desc.size
                        )));
                    }
                    self.hasher.update(&chunk);
                    return Ok(Some(chunk));
                }
                Some(Err(e)) if transient_error(&e) && self.resumes < self.reg.retry.attempts => {
                    self.reg.note_retry(format!(
                        "reading {} from {}: {e}; resuming at byte {}",
                        self.desc.digest, self.reg.host, self.offset
                    ));
                    tokio::time::sleep(self.reg.retry.delay(self.resumes)).await;
                    self.resumes += 1;
                    self.connect().await?;
                }
                Some(Err(e)) => return Err(e.into()),
                None => {
                    self.body = None;
                    if self.offset != self.desc.size {
                        return Err(Error::other(format!(
                            "{} ended after {} of {} bytes",
                            self.desc.digest, self.offset, self.desc.size
                        )));
                    }
                    let got = format!("sha256:{}", hex::encode(self.hasher.clone().finalize()));
                    if got != self.desc.digest {
                        return Err(Error::other(format!(
                            "{} arrived with digest {got}: corrupt in the source registry",
                            self.desc.digest
                        )));
                    }
                    return Ok(None);
                }
            }
        }
    }
}
