//! Telling a TLS failure from a transient one. A registry that speaks plain HTTP where HTTPS
//! was asked for (or presents a certificate we do not trust) will answer the same way however
//! often it is asked: such a failure is reported at once, with the flag that helps, instead of
//! being retried for a minute.

use std::error::Error as StdError;

fn classify(t: &rustls::Error) -> TlsFailure {
    match t {
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
            TlsFailure::PlainHttpPeer
        }
        rustls::Error::InvalidCertificate(why) => TlsFailure::Certificate(format!("{why:?}")),
        other => TlsFailure::Handshake(other.to_string()),
    }
}

/// Why a TLS connection could not be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsFailure {
    /// The peer answered the TLS handshake with something that is not TLS: a plain-HTTP server.
    PlainHttpPeer,
    /// The peer's certificate was refused (unknown issuer, wrong name, expired...).
    Certificate(String),
    /// Any other handshake failure (no common protocol version or cipher, an alert...).
    Handshake(String),
}

/// The TLS failure somewhere in `e`'s chain of causes, if there is one.
pub fn failure(e: &(dyn StdError + 'static)) -> Option<TlsFailure> {
    let mut cause: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(c) = cause {
        if let Some(t) = c.downcast_ref::<rustls::Error>() {
            return Some(classify(t));
        }
        // hyper-rustls hands rustls' error up inside `io::Error`s (nested), whose `source()`
        // skips the error they wrap: step into it instead.
        cause = match c
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn StdError + 'static)),
            None => c.source(),
        };
    }
    None
}

impl TlsFailure {
    /// A sentence for `url`'s host, ending with what to do: `plain_http_hint` names the flag
    /// that makes this command talk plain HTTP to it.
    pub fn explain(&self, host: &str, plain_http_hint: &str) -> String {
        match self {
            TlsFailure::PlainHttpPeer => format!(
                "{host} answered the TLS handshake with plain HTTP: it is not an HTTPS registry; {plain_http_hint}"
            ),
            TlsFailure::Certificate(why) => format!(
                "{host}'s TLS certificate is not trusted ({why}); add its CA to the system's trust store, or {plain_http_hint} if it serves plain HTTP too"
            ),
            TlsFailure::Handshake(why) => format!(
                "TLS with {host} failed ({why}); {plain_http_hint} if it serves plain HTTP"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// HTTPS to a real plain-HTTP listener, through the client the CLI uses.
    #[tokio::test]
    async fn recognises_a_plain_http_server() {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut buf = [0u8; 512];
            let _ = conn.read(&mut buf);
            let _ = conn.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
        });
        let http = reqwest::Client::builder().use_rustls_tls().build().unwrap();
        let e = http
            .get(format!("https://127.0.0.1:{port}/v2/"))
            .send()
            .await
            .unwrap_err();
        assert_eq!(failure(&e), Some(TlsFailure::PlainHttpPeer), "{e:?}");
    }

    #[test]
    fn finds_rustls_errors_inside_io_errors() {
        let plain = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType),
        );
        assert_eq!(failure(&plain), Some(TlsFailure::PlainHttpPeer));
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert_eq!(failure(&refused), None);
        let text = TlsFailure::PlainHttpPeer
            .explain("127.0.0.1:5000", "use --insecure-registry 127.0.0.1:5000");
        assert!(
            text.contains("plain HTTP") && text.ends_with("--insecure-registry 127.0.0.1:5000")
        );
    }
}
