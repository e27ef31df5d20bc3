//! The workloads, each run the same way against every registry. Blob bodies are generated on the
//! fly from a shared random pattern (plus a per-blob nonce so no registry can deduplicate), so
//! the client holds no blob in memory and is never the bottleneck it measures.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use futures::{stream, StreamExt, TryStreamExt};
use reqwest::{Client, Url};
use serde_json::json;
use sha2::{Digest as _, Sha256};

/// Random bytes the blob bodies repeat.
pub struct Pattern(pub Bytes);

/// Frame size of generated bodies.
const FRAME: usize = 1024 * 1024;

impl Pattern {
    pub fn new(size: usize) -> Self {
        let mut v = vec![0u8; size];
        for chunk in v.chunks_mut(8) {
            let r: u64 = rand::random();
            chunk.copy_from_slice(&r.to_le_bytes()[..chunk.len()]);
        }
        Pattern(Bytes::from(v))
    }

    /// The frames of a blob of `size` bytes with `nonce` at its start.
    fn frames(&self, nonce: u64, size: u64) -> impl Iterator<Item = Bytes> + Send + 'static {
        let pattern = self.0.clone();
        let mut offset = 0u64;
        std::iter::from_fn(move || {
            if offset >= size {
                return None;
            }
            let start = (offset % pattern.len() as u64) as usize;
            let len = (FRAME as u64)
                .min(size - offset)
                .min((pattern.len() - start) as u64) as usize;
            let mut frame = pattern.slice(start..start + len);
            if offset == 0 {
                let mut first = frame.to_vec();
                let n = first.len().min(8);
                first[..n].copy_from_slice(&nonce.to_le_bytes()[..n]);
                frame = Bytes::from(first);
            }
            offset += len as u64;
            Some(frame)
        })
    }

    /// A blob: its digest (computed by streaming it once) and how to produce its bytes.
    pub fn blob(self: &Arc<Self>, size: u64) -> Blob {
        let nonce: u64 = rand::random();
        let mut h = Sha256::new();
        for f in self.frames(nonce, size) {
            h.update(&f);
        }
        Blob {
            pattern: self.clone(),
            nonce,
            size,
            digest: format!("sha256:{}", hex::encode(h.finalize())),
        }
    }
}

pub struct Blob {
    pattern: Arc<Pattern>,
    nonce: u64,
    pub size: u64,
    pub digest: String,
}

impl Blob {
    /// The blob's bytes, frame by frame.
    pub fn frames(&self) -> impl Iterator<Item = Bytes> + Send + 'static {
        self.pattern.frames(self.nonce, self.size)
    }

    fn body_range(&self, start: u64, end: u64) -> reqwest::Body {
        let frames = self.pattern.frames(self.nonce, self.size);
        // Frames are FRAME-aligned except at pattern wrap; slice exactly [start, end).
        let mut pos = 0u64;
        let iter = frames.filter_map(move |f| {
            let (fs, fe) = (pos, pos + f.len() as u64);
            pos = fe;
            if fe <= start || fs >= end {
                return None;
            }
            let a = start.saturating_sub(fs) as usize;
            let b = (end.min(fe) - fs) as usize;
            Some(Ok::<_, std::io::Error>(f.slice(a..b)))
        });
        reqwest::Body::wrap_stream(stream::iter(iter))
    }
}

fn resolve(base: &str, location: &str) -> anyhow::Result<Url> {
    Ok(Url::parse(base)?.join(location)?)
}

fn with_digest(mut url: Url, digest: &str) -> Url {
    url.query_pairs_mut().append_pair("digest", digest);
    url
}

async fn start_upload(c: &Client, base: &str, repo: &str) -> anyhow::Result<Url> {
    let r = c
        .post(format!("{base}/v2/{repo}/blobs/uploads/"))
        .header("content-length", "0")
        .send()
        .await?;
    if r.status() != 202 {
        bail!("POST upload: {}", r.status());
    }
    resolve(
        base,
        r.headers()
            .get("location")
            .context("no Location")?
            .to_str()?,
    )
}

/// POST, then one PUT with the whole body.
pub async fn push_monolithic(
    c: &Client,
    base: &str,
    repo: &str,
    blob: &Blob,
) -> anyhow::Result<()> {
    let url = start_upload(c, base, repo).await?;
    let r = c
        .put(with_digest(url, &blob.digest))
        .header("content-type", "application/octet-stream")
        .header("content-length", blob.size)
        .body(blob.body_range(0, blob.size))
        .send()
        .await?;
    if r.status() != 201 {
        bail!(
            "PUT blob: {} {}",
            r.status(),
            r.text().await.unwrap_or_default()
        );
    }
    Ok(())
}

/// POST, `PATCH`es of `chunk` bytes, then an empty closing PUT.
pub async fn push_chunked(
    c: &Client,
    base: &str,
    repo: &str,
    blob: &Blob,
    chunk: u64,
) -> anyhow::Result<()> {
    let mut url = start_upload(c, base, repo).await?;
    let mut offset = 0;
    while offset < blob.size {
        let end = (offset + chunk).min(blob.size);
        let r = c
            .patch(url.clone())
            .header("content-type", "application/octet-stream")
            .header("content-length", end - offset)
            .header("content-range", format!("{offset}-{}", end - 1))
            .body(blob.body_range(offset, end))
            .send()
            .await?;
        if r.status() != 202 {
            bail!(
                "PATCH: {} {}",
                r.status(),
                r.text().await.unwrap_or_default()
            );
        }
        url = resolve(
            base,
            r.headers()
                .get("location")
                .context("no Location")?
                .to_str()?,
        )?;
        offset = end;
    }
    let r = c
        .put(with_digest(url, &blob.digest))
        .header("content-length", "0")
        .send()
        .await?;
    if r.status() != 201 {
        bail!("closing PUT: {}", r.status());
    }
    Ok(())
}

/// `count` pushes of distinct `size`-byte blobs, `concurrency` at a time; returns blobs/s.
pub async fn many_pushes(
    c: &Client,
    base: &str,
    pattern: &Arc<Pattern>,
    count: usize,
    size: u64,
    concurrency: usize,
) -> anyhow::Result<f64> {
    let blobs: Vec<Blob> = (0..count).map(|_| pattern.blob(size)).collect();
    let started = Instant::now();
    stream::iter(blobs.iter().enumerate())
        .map(|(i, b)| async move { push_monolithic(c, base, &format!("bench/small{}", i % 4), b).await })
        .buffer_unordered(concurrency)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(count as f64 / started.elapsed().as_secs_f64())
}

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// Pushes a small image's blobs into `repo` and returns a manifest body factory over them.
pub async fn image_base(
    c: &Client,
    base: &str,
    repo: &str,
    pattern: &Arc<Pattern>,
) -> anyhow::Result<(String, String)> {
    let config = pattern.blob(512);
    let layer = pattern.blob(4096);
    push_monolithic(c, base, repo, &config).await?;
    push_monolithic(c, base, repo, &layer).await?;
    Ok((config.digest, layer.digest))
}

pub fn manifest(config: &str, layer: &str, n: u64) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 512 },
        "layers": [{ "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer, "size": 4096 }],
        "annotations": { "n": n.to_string() },
    }))
    .expect("serializable")
}

pub async fn put_manifest(
    c: &Client,
    base: &str,
    repo: &str,
    reference: &str,
    body: Vec<u8>,
) -> anyhow::Result<()> {
    let r = c
        .put(format!("{base}/v2/{repo}/manifests/{reference}"))
        .header("content-type", OCI_MANIFEST)
        .body(body)
        .send()
        .await?;
    if r.status() != 201 {
        bail!(
            "PUT manifest: {} {}",
            r.status(),
            r.text().await.unwrap_or_default()
        );
    }
    Ok(())
}

/// Puts manifests numbered `from..to` (distinct bytes), tagging each `t<n>` when `tag` is set.
pub async fn put_manifests(
    c: &Client,
    base: &str,
    repo: &str,
    layers: &(String, String),
    from: u64,
    to: u64,
    tag: bool,
) -> anyhow::Result<()> {
    stream::iter(from..to)
        .map(|n| async move {
            let body = manifest(&layers.0, &layers.1, n);
            let reference = if tag {
                format!("t{n:06}")
            } else {
                format!("sha256:{}", hex::encode(Sha256::digest(&body)))
            };
            put_manifest(c, base, repo, &reference, body).await
        })
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// Result of a `wrk` run.
pub struct Load {
    pub rps: f64,
    pub p99_ms: f64,
    /// Requests completed in the run.
    pub requests: f64,
}

/// `wrk` with `connections` connections for `seconds` against `url`.
pub fn wrk(url: &str, connections: u32, seconds: u32) -> anyhow::Result<Load> {
    wrk_with(url, connections, seconds, &[])
}

/// `wrk` with extra request headers (`Name: value`).
pub fn wrk_with(
    url: &str,
    connections: u32,
    seconds: u32,
    headers: &[String],
) -> anyhow::Result<Load> {
    let mut cmd = std::process::Command::new("wrk");
    for h in headers {
        cmd.args(["-H", h]);
    }
    let out = cmd
        .args([
            "-t2",
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            "--latency",
        ])
        .args(["-H", &format!("Accept: {OCI_MANIFEST}")])
        .arg(url)
        .output()
        .context("running wrk (bash .ci/setup --bench installs it)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let rps = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .context("wrk printed no Requests/sec")?
        .trim()
        .parse()?;
    let p99 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("99%"))
        .context("wrk printed no 99%")?
        .trim();
    if text.contains("Non-2xx") {
        bail!("wrk saw errors:\n{text}");
    }
    // `  123456 requests in 10.00s, 45.6MB read`
    let requests = text
        .lines()
        .find_map(|l| l.trim().split_once(" requests in "))
        .context("wrk printed no request count")?
        .0
        .trim()
        .parse()?;
    Ok(Load {
        rps,
        p99_ms: parse_duration_ms(p99)?,
        requests,
    })
}

fn parse_duration_ms(s: &str) -> anyhow::Result<f64> {
    let (num, unit): (String, String) = s.chars().partition(|c| c.is_ascii_digit() || *c == '.');
    let v: f64 = num.parse()?;
    Ok(match unit.as_str() {
        "us" => v / 1000.0,
        "ms" => v,
        "s" => v * 1000.0,
        "m" => v * 60_000.0,
        other => bail!("unknown wrk unit {other:?}"),
    })
}

/// Walks the tag list `n` at a time (following `Link`) for about `duration`; returns pages/s and
/// tags per page seen.
pub async fn tag_pages(
    c: &Client,
    base: &str,
    repo: &str,
    n: u32,
    duration: Duration,
) -> anyhow::Result<(f64, f64)> {
    let started = Instant::now();
    let (mut pages, mut tags) = (0u64, 0u64);
    while started.elapsed() < duration {
        let mut next = Some(format!("{base}/v2/{repo}/tags/list?n={n}"));
        while let Some(url) = next.take() {
            let r = c.get(&url).send().await?;
            if r.status() != 200 {
                bail!("tags/list: {}", r.status());
            }
            next = r
                .headers()
                .get("link")
                .and_then(|l| l.to_str().ok())
                .and_then(|l| {
                    l.trim()
                        .strip_prefix('<')
                        .and_then(|l| l.split_once('>'))
                        .map(|(u, _)| u.to_owned())
                })
                .map(|u| resolve(base, &u).map(|u| u.to_string()))
                .transpose()?;
            let body: serde_json::Value = r.json().await?;
            tags += body["tags"].as_array().map_or(0, |t| t.len() as u64);
            pages += 1;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    Ok((pages as f64 / secs, tags as f64 / pages.max(1) as f64))
}

/// Single-core SHA-256 throughput of this machine, bytes/s.
pub fn sha256_ceiling(pattern: &Pattern, bytes: u64) -> f64 {
    let started = Instant::now();
    let mut h = Sha256::new();
    let mut done = 0;
    while done < bytes {
        h.update(&pattern.0);
        done += pattern.0.len() as u64;
    }
    std::hint::black_box(h.finalize());
    done as f64 / started.elapsed().as_secs_f64()
}

/// Sequential write rate of the disk the registries store on: `bytes` written in 1 MiB writes,
/// then fsynced (what a durable push of that size must at least cost).
pub fn disk_ceiling(pattern: &Pattern, dir: &std::path::Path, bytes: u64) -> anyhow::Result<f64> {
    use std::io::Write;
    std::fs::create_dir_all(dir)?;
    let path = dir.join("disk-ceiling");
    let started = Instant::now();
    let mut f = std::fs::File::create(&path)?;
    for frame in pattern.frames(0, bytes) {
        f.write_all(&frame)?;
    }
    f.sync_all()?;
    let rate = bytes as f64 / started.elapsed().as_secs_f64();
    std::fs::remove_file(&path)?;
    Ok(rate)
}

/// The client's loopback copy rate: the same streaming PUT into a server that only discards.
pub async fn loopback_ceiling(c: &Client, blob: &Blob) -> anyhow::Result<f64> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    // A bare hyper connection, as the registry's own accept loop serves: the ceiling is the
    // client and loopback, not a framework.
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await?;
        let sink = hyper::service::service_fn(
            |request: hyper::Request<hyper::body::Incoming>| async move {
                let mut body = request.into_body();
                while let Some(Ok(_)) = http_body_util::BodyExt::frame(&mut body).await {}
                let mut answer = hyper::Response::new(http_body_util::Empty::<bytes::Bytes>::new());
                *answer.status_mut() = hyper::StatusCode::CREATED;
                Ok::<_, std::convert::Infallible>(answer)
            },
        );
        hyper::server::conn::http1::Builder::new()
            .serve_connection(hyper_util::rt::TokioIo::new(stream), sink)
            .await?;
        anyhow::Ok(())
    });
    let started = Instant::now();
    let r = c
        .put(format!("http://{addr}/sink"))
        .header("content-length", blob.size)
        .body(blob.body_range(0, blob.size))
        .send()
        .await?;
    let rate = blob.size as f64 / started.elapsed().as_secs_f64();
    server.abort();
    if r.status() != 201 {
        bail!("sink: {}", r.status());
    }
    Ok(rate)
}
