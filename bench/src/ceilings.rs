//! What this machine can do at best, measured in the same run as the registries, so that each
//! registry figure is also read against a limit: a client that receives bytes as fast as the
//! kernel hands them over (no allocation per read), the same client against a bare server that
//! sends from memory (is the client the limit?), and a bare hyper server answering a fixed
//! 1 KiB body to the same `wrk` command as the manifest GET (the most a small request can cost).

use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::workloads::{wrk, Load, Pattern};

/// GETs `url` (plain HTTP/1.1, one connection) and counts the body's bytes, reading into one
/// reused 1 MiB buffer: the cheapest a client can receive. Returns the body's length.
pub async fn raw_pull(url: &str) -> anyhow::Result<u64> {
    let rest = url.strip_prefix("http://").context("an http:// URL")?;
    let (host, path) = rest.split_once('/').context("a path")?;
    let mut stream = tokio::net::TcpStream::connect(host).await?;
    stream
        .write_all(
            format!("GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
    let mut buf = vec![0u8; 1024 * 1024];
    // The head first: up to the blank line.
    let mut filled = 0;
    let head_end = loop {
        let n = stream.read(&mut buf[filled..]).await?;
        if n == 0 {
            bail!("{url}: the connection closed before the response head");
        }
        filled += n;
        if let Some(i) = buf[..filled].windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if filled == buf.len() {
            bail!("{url}: a response head over 1 MiB");
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    if !head.starts_with("http/1.1 200") {
        bail!("{url}: {}", head.lines().next().unwrap_or_default());
    }
    let length: u64 = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .context("no Content-Length (a chunked answer)")?
        .trim()
        .parse()?;
    let mut received = (filled - head_end) as u64;
    while received < length {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            bail!("{url}: closed after {received} of {length} bytes");
        }
        received += n as u64;
    }
    Ok(received)
}

/// A bare hyper server on its own runtime (two worker threads, as the registry has here),
/// answering every request with `body(path)`; stops when dropped.
pub struct BareServer {
    pub addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl BareServer {
    fn start(answer: Arc<dyn Fn() -> hyper::Response<Body> + Send + Sync>) -> anyhow::Result<Self> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("a runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("a listener");
                loop {
                    let (stream, _) = tokio::select! {
                        accepted = listener.accept() => match accepted {
                            Ok(a) => a,
                            Err(_) => continue,
                        },
                        _ = &mut stopped => return,
                    };
                    let _ = stream.set_nodelay(true);
                    let answer = answer.clone();
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(move |_req| {
                            let answer = answer.clone();
                            async move { Ok::<_, std::convert::Infallible>(answer()) }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                            .await;
                    });
                }
            });
        });
        Ok(BareServer {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for BareServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

type Body = http_body_util::StreamBody<
    futures::stream::Iter<
        std::vec::IntoIter<Result<hyper::body::Frame<Bytes>, std::convert::Infallible>>,
    >,
>;

fn body(frames: Vec<Bytes>) -> Body {
    http_body_util::StreamBody::new(futures::stream::iter(
        frames
            .into_iter()
            .map(|b| Ok(hyper::body::Frame::data(b)))
            .collect::<Vec<_>>(),
    ))
}

/// How fast the pull client alone receives `bytes`: from a bare server sending them from
/// memory (slices of one buffer, no copy), read by [`raw_pull`]. Bytes/s.
pub async fn client_receive_ceiling(pattern: &Pattern, bytes: u64) -> anyhow::Result<f64> {
    let chunk = Bytes::copy_from_slice(&pattern.0[..(16 << 20).min(pattern.0.len())]);
    let answer = Arc::new(move || {
        let mut frames = Vec::new();
        let mut left = bytes;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            frames.push(chunk.slice(..n));
            left -= n as u64;
        }
        let mut r = hyper::Response::new(body(frames));
        r.headers_mut()
            .insert(hyper::header::CONTENT_LENGTH, bytes.into());
        r
    });
    let server = BareServer::start(answer)?;
    let url = format!("http://{}/blob", server.addr);
    // The best of three: the ceiling, not its noise.
    let mut best: f64 = 0.0;
    for _ in 0..3 {
        let t = Instant::now();
        let n = raw_pull(&url).await?;
        anyhow::ensure!(n == bytes, "received {n} of {bytes}");
        best = best.max(n as f64 / t.elapsed().as_secs_f64());
    }
    Ok(best)
}

/// A bare hyper server answering a fixed 1 KiB body, under the same `wrk` command as the
/// manifest GET (`connections`, `seconds`): the most small requests this machine serves.
pub fn small_request_ceiling(connections: u32, seconds: u32) -> anyhow::Result<Load> {
    let kib = Bytes::from(vec![b'x'; 1024]);
    let answer = Arc::new(move || {
        let mut r = hyper::Response::new(body(vec![kib.clone()]));
        let h = r.headers_mut();
        h.insert(hyper::header::CONTENT_LENGTH, 1024u64.into());
        h.insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("application/vnd.oci.image.manifest.v1+json"),
        );
        r
    });
    let server = BareServer::start(answer)?;
    let load = wrk(
        &format!("http://{}/v2/x/manifests/hot", server.addr),
        connections,
        seconds,
    )?;
    drop(server);
    Ok(load)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_raw_client_counts_exactly_what_a_server_sends() {
        let pattern = Pattern::new(1 << 20);
        let rate = client_receive_ceiling(&pattern, 5 * (1 << 20) + 7)
            .await
            .unwrap();
        assert!(rate > 0.0);
    }
}
