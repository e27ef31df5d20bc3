//! One request the least forgiving way, on a fresh connection: the whole head and body are
//! written before a byte of the answer is read (as Python's `http.client` and many scripts do).
//! A registry that answers early (a `416`, `404`, `401`, `413`) and then closes with the body
//! unread makes its kernel reset the connection, and such a client sees `broken pipe` or
//! `connection reset` instead of the answer. Plain `http://` only (so is the rest of the suite).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// An answer read off the connection.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    /// Header names lower-cased; repeated fields joined with `, `.
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    /// Whether the server said it closes the connection after this answer.
    pub fn closes(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }

    /// The first error code of a JSON error body, if any.
    pub fn code(&self) -> Option<String> {
        let v: serde_json::Value = serde_json::from_slice(&self.body).ok()?;
        v["errors"][0]["code"].as_str().map(str::to_owned)
    }
}

/// A connection that sends each request whole before reading its answer.
pub struct Connection {
    reader: BufReader<TcpStream>,
    host: String,
}

impl Connection {
    /// Connects to the host of `base` (`http://host:port`).
    pub fn open(base: &str) -> Result<Connection, String> {
        let host = base
            .strip_prefix("http://")
            .ok_or_else(|| format!("raw-socket checks need an http:// URL, not {base:?}"))?
            .split('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        let stream = TcpStream::connect(&host).map_err(|e| format!("connecting to {host}: {e}"))?;
        for timeout in [
            stream.set_read_timeout(Some(Duration::from_secs(30))),
            stream.set_write_timeout(Some(Duration::from_secs(30))),
        ] {
            timeout.map_err(|e| e.to_string())?;
        }
        Ok(Connection {
            reader: BufReader::new(stream),
            host,
        })
    }

    /// Sends `method path` with `headers` and all of `body` (with its `Content-Length`), then
    /// reads the answer. An `Err` is a transport failure: the answer never arrived.
    pub fn exchange(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Answer, String> {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.host);
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        let stream = self.reader.get_mut();
        let sent = stream
            .write_all(head.as_bytes())
            .and_then(|()| stream.write_all(body));
        sent.map_err(|e| format!("{method} {path}: sending the request: {e}"))?;
        self.read_answer()
            .map_err(|e| format!("{method} {path}: reading the answer: {e}"))
    }

    fn read_answer(&mut self) -> std::io::Result<Answer> {
        let mut line = String::new();
        loop {
            line.clear();
            if self.reader.read_line(&mut line)? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            let status: u16 = line
                .get(9..12)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| std::io::Error::other(format!("not an HTTP answer: {line:?}")))?;
            let mut headers: HashMap<String, String> = HashMap::new();
            loop {
                line.clear();
                self.reader.read_line(&mut line)?;
                let l = line.trim_end();
                if l.is_empty() {
                    break;
                }
                if let Some((k, v)) = l.split_once(':') {
                    let entry = headers.entry(k.trim().to_ascii_lowercase()).or_default();
                    if !entry.is_empty() {
                        entry.push_str(", ");
                    }
                    entry.push_str(v.trim());
                }
            }
            if status == 100 {
                // An interim answer: the final one follows.
                continue;
            }
            let chunked = headers
                .get("transfer-encoding")
                .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
            let body = if chunked {
                self.read_chunked()?
            } else {
                let length: usize = headers
                    .get("content-length")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                let mut body = vec![0; length];
                self.reader.read_exact(&mut body)?;
                body
            };
            return Ok(Answer {
                status,
                headers,
                body,
            });
        }
    }

    /// A `Transfer-Encoding: chunked` body (trailers skipped).
    fn read_chunked(&mut self) -> std::io::Result<Vec<u8>> {
        let mut body = Vec::new();
        let mut line = String::new();
        loop {
            line.clear();
            self.reader.read_line(&mut line)?;
            let size = line.trim().split(';').next().unwrap_or_default();
            let size = usize::from_str_radix(size, 16)
                .map_err(|_| std::io::Error::other(format!("bad chunk size {line:?}")))?;
            if size == 0 {
                loop {
                    line.clear();
                    if self.reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
                        return Ok(body);
                    }
                }
            }
            let start = body.len();
            body.resize(start + size, 0);
            self.reader.read_exact(&mut body[start..])?;
            line.clear();
            self.reader.read_line(&mut line)?;
        }
    }
}
