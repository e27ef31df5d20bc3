//! The socket of one client connection, as hyper sees it: a connection on which no byte moves
//! for the idle timeout is closed (a client that stops reading a download, or stops sending an
//! upload's body, costs a socket for that long and no longer); a connection being closed lingers
//! (as nginx's `lingering_close`), reading and dropping what its client still sends for a few
//! seconds, so the last answer is not destroyed by a reset; and hyper's own answers to
//! requests it cannot parse (400, 414, 431, sent before any handler runs) leave in the
//! registry's JSON error envelope, like every other error.
//!
//! hyper offers no hook for the first and the last: its automatic answers are written by its HTTP/1 state
//! machine with an empty body. They are recognised here by their exact shape (status 400, 414 or
//! 431, no `content-type`, `content-length: 0`: the registry's own answers always carry a
//! content type) and replaced whole.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// The longest a closing connection goes on reading what its client still sends.
const LINGER_TIME: Duration = Duration::from_secs(10);
/// A closing connection on which nothing arrives for this long is closed at once.
const LINGER_IDLE: Duration = Duration::from_secs(2);

/// The statuses hyper answers by itself, and the JSON envelope each gets instead.
fn envelope(status: u16) -> Option<(&'static str, &'static str)> {
    Some(match status {
        400 => (
            "400 Bad Request",
            r#"{"errors":[{"code":"UNSUPPORTED","message":"malformed HTTP request"}]}"#,
        ),
        414 => (
            "414 URI Too Long",
            r#"{"errors":[{"code":"UNSUPPORTED","message":"request URI too long"}]}"#,
        ),
        431 => (
            "431 Request Header Fields Too Large",
            r#"{"errors":[{"code":"UNSUPPORTED","message":"request headers too large"}]}"#,
        ),
        _ => return None,
    })
}

/// If `head` is exactly one of hyper's automatic error answers, the replacement bytes.
fn replacement(head: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(head).ok()?;
    let (head, rest) = text.split_once("\r\n\r\n")?;
    if !rest.is_empty() {
        return None;
    }
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()?
        .strip_prefix("HTTP/1.1 ")?
        .get(..3)?
        .parse()
        .ok()?;
    let (line, body) = envelope(status)?;
    let mut date = None;
    for header in lines {
        let (name, value) = header.split_once(':')?;
        match name.to_ascii_lowercase().as_str() {
            "content-length" if value.trim() == "0" => {}
            "date" => date = Some(value.trim().to_owned()),
            "connection" => {}
            _ => return None,
        }
    }
    let mut out = format!(
        "HTTP/1.1 {line}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    if let Some(date) = date {
        out.push_str(&format!("date: {date}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(body);
    Some(out.into_bytes())
}

/// A client socket with an idle timeout and enveloped automatic answers.
pub struct GuardedIo<T> {
    inner: T,
    idle: Duration,
    /// When a byte last moved either way.
    last: Instant,
    /// Wakes the connection when it may have been idle too long.
    timer: Pin<Box<Sleep>>,
    /// A replacement answer being written, and how much of it is out, and the length of what
    /// hyper asked to write (reported as written once the replacement is).
    pending: Option<(Vec<u8>, usize, usize)>,
    /// Set once the connection is being closed: until when it lingers at most.
    lingering: Option<Instant>,
}

impl<T> GuardedIo<T> {
    pub fn new(inner: T, idle: Duration) -> Self {
        let now = Instant::now();
        GuardedIo {
            inner,
            idle,
            last: now,
            timer: Box::pin(tokio::time::sleep_until(now + idle)),
            pending: None,
            lingering: None,
        }
    }

    fn moved(&mut self, n: usize) {
        if n > 0 {
            self.last = Instant::now();
        }
    }

    /// After the inner socket said `Pending`: an error if nothing moved for the idle timeout,
    /// else `Pending` with the timer armed.
    fn idle_check<R>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<R>> {
        loop {
            if self.timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let deadline = self.last + self.idle;
            if Instant::now() >= deadline {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "connection idle past the idle timeout",
                )));
            }
            // Something moved since the timer was set: wait for the rest of the idle time.
            self.timer.as_mut().reset(deadline);
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for GuardedIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                this.moved(buf.filled().len() - before);
                Poll::Ready(r)
            }
            Poll::Pending => this.idle_check(cx),
        }
    }
}

impl<T: AsyncWrite + Unpin> GuardedIo<T> {
    /// Writes the pending replacement; `Ready(Ok(n))` with hyper's length once it is all out.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        loop {
            let Some((bytes, sent, claimed)) = self.pending.as_mut() else {
                return Poll::Ready(Ok(0));
            };
            if *sent == bytes.len() {
                let n = *claimed;
                self.pending = None;
                return Poll::Ready(Ok(n));
            }
            match Pin::new(&mut self.inner).poll_write(cx, &bytes[*sent..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => {
                    *sent += n;
                    self.last = Instant::now();
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return self.idle_check(cx),
            }
        }
    }

    /// Notes progress of a write to the inner socket, or arms the idle timer if it waits.
    fn after_write(
        &mut self,
        cx: &mut Context<'_>,
        written: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        match written {
            Poll::Ready(Ok(n)) => {
                self.moved(n);
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => self.idle_check(cx),
        }
    }

    /// Starts replacing `first` (with `total` bytes asked for in all) if it is an automatic
    /// answer.
    fn intercept(&mut self, first: &[u8], total: usize) -> bool {
        // An automatic answer is a lone head: the whole write, and short.
        if total != first.len() || total > 256 || !first.starts_with(b"HTTP/1.1 4") {
            return false;
        }
        match replacement(first) {
            Some(bytes) => {
                self.pending = Some((bytes, 0, total));
                true
            }
            None => false,
        }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncWrite for GuardedIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.pending.is_some() || this.intercept(buf, buf.len()) {
            return this.poll_pending(cx);
        }
        let written = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.after_write(cx, written)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let total = bufs.iter().map(|b| b.len()).sum();
        let first = bufs
            .iter()
            .find(|b| !b.is_empty())
            .map_or(&[][..], |b| &b[..]);
        if this.pending.is_some() || this.intercept(first, total) {
            return this.poll_pending(cx);
        }
        let written = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.after_write(cx, written)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.pending.is_some() {
            match this.poll_pending(cx) {
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    /// Sends the end of the stream, then lingers: what the client still sends is read and
    /// dropped until it closes its side, goes quiet for [`LINGER_IDLE`], or [`LINGER_TIME`] has
    /// passed. Closing at once with its bytes unread would reset the connection, and a reset can
    /// destroy the answer before the client has read it.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let deadline = match this.lingering {
            Some(deadline) => deadline,
            None => {
                if this.pending.is_some() {
                    if let Err(e) = ready!(this.poll_pending(cx)) {
                        return Poll::Ready(Err(e));
                    }
                }
                ready!(Pin::new(&mut this.inner).poll_shutdown(cx))?;
                let now = Instant::now();
                this.last = now;
                this.lingering = Some(now + LINGER_TIME);
                now + LINGER_TIME
            }
        };
        let mut scratch = [0u8; 16 * 1024];
        loop {
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut this.inner).poll_read(cx, &mut buf) {
                // The client closed its side (or the connection is gone): done.
                Poll::Ready(Ok(())) if buf.filled().is_empty() => return Poll::Ready(Ok(())),
                Poll::Ready(Err(_)) => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(())) => this.last = Instant::now(),
                Poll::Pending => {
                    let until = deadline.min(this.last + LINGER_IDLE);
                    if Instant::now() >= until {
                        return Poll::Ready(Ok(()));
                    }
                    this.timer.as_mut().reset(until);
                    if this.timer.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::replacement;

    #[test]
    fn recognises_only_hypers_own_answers() {
        let auto = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: Tue, 01 Dec 2026 10:00:00 GMT\r\n\r\n";
        let out = String::from_utf8(replacement(auto).unwrap()).unwrap();
        assert!(out.starts_with("HTTP/1.1 431 "), "{out}");
        assert!(out.contains("content-type: application/json"));
        assert!(
            out.ends_with(r#""message":"request headers too large"}]}"#),
            "{out}"
        );
        let length: usize = out
            .split("content-length: ")
            .nth(1)
            .unwrap()
            .split("\r\n")
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(length, out.split("\r\n\r\n").nth(1).unwrap().len());
        // The registry's own answers carry a content type (and often a body): untouched.
        let own = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 0\r\n\r\n";
        assert!(replacement(own).is_none());
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        assert!(replacement(ok).is_none());
        let with_body = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\nx";
        assert!(replacement(with_body).is_none());
    }
}
