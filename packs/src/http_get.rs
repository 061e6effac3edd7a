//! A minimal HTTP/1.1 client over TCP (or TLS over TCP) that can only send
//! `GET`: used by in-process handlers that read a local HTTP endpoint
//! (nginx's `stub_status`, the Proxmox VE API on its node).
//!
//! The same rules as the Docker client ([`crate::docker::http`], which
//! speaks over a Unix socket):
//! - **GET only**: [`get`] writes the method itself; there is no method
//!   parameter to get wrong.
//! - **No splicing**: the request target and every header value are
//!   checked to hold no space, control character or line break, so nothing
//!   can add a header or a second request; callers build targets from
//!   percent-encoded pieces ([`crate::docker::http::ApiPath`]).
//! - **Bounded**: headers at most [`MAX_HEAD`] bytes, a body at most the
//!   caller's limit (the rest is left unread and the response marked
//!   truncated); `Content-Length`, chunked and read-to-close bodies.
//! - **Deadline**: connecting, every write and every read wait at most
//!   until the probe's deadline, so a silent or dripping server cannot keep
//!   a probe alive.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Largest header block read.
pub const MAX_HEAD: usize = 64 << 10;
/// Largest chunk-size line accepted.
const MAX_CHUNK_LINE: usize = 1024;

/// A byte stream whose reads and writes can be given a timeout.
pub trait Transport: Read + Write {
    /// Applies `left` as the read and write timeout of the underlying socket.
    fn set_timeouts(&mut self, left: Duration) -> io::Result<()>;
}

impl Transport for TcpStream {
    fn set_timeouts(&mut self, left: Duration) -> io::Result<()> {
        self.set_read_timeout(Some(left))?;
        self.set_write_timeout(Some(left))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// The status line's reason phrase (some APIs put their error there,
    /// e.g. Proxmox VE's `500 Configuration file … does not exist`).
    pub reason: String,
    /// The `Content-Type` header, if any.
    pub content_type: Option<String>,
    pub body: Vec<u8>,
    /// The body was longer than the limit; only its start was read.
    pub truncated: bool,
}

/// Why a GET produced no response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    #[error("cannot connect to {addr}: {reason}")]
    Connect {
        addr: String,
        reason: String,
        kind: io::ErrorKind,
    },
    #[error("no answer in time")]
    Timeout,
    #[error("refusing to send the request: {0}")]
    Request(String),
    #[error("unreadable answer: {0}")]
    Protocol(String),
}

fn io_error(e: &io::Error) -> HttpError {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => HttpError::Timeout,
        _ => HttpError::Protocol(e.to_string()),
    }
}

fn time_left(deadline: Instant) -> Result<Duration, HttpError> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        Err(HttpError::Timeout)
    } else {
        Ok(left)
    }
}

/// Connects to `addr` by TCP, waiting at most until `deadline`.
pub fn connect(addr: SocketAddr, deadline: Instant) -> Result<TcpStream, HttpError> {
    let left = time_left(deadline)?;
    TcpStream::connect_timeout(&addr, left).map_err(|e| {
        if matches!(
            e.kind(),
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
        ) {
            HttpError::Timeout
        } else {
            HttpError::Connect {
                addr: addr.to_string(),
                reason: e.to_string(),
                kind: e.kind(),
            }
        }
    })
}

/// True for text that can sit in a request line or header value without
/// changing the request's shape: visible ASCII, no spaces.
fn is_token_text(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_graphic())
}

/// `GET target` on `stream` with a `Host` header and `headers`, until
/// `deadline`, keeping at most `max_body` bytes of the body. The target
/// must start with `/`; it and every header value must be visible ASCII
/// without spaces (header values may hold single spaces between words).
pub fn get(
    stream: &mut dyn Transport,
    host: &str,
    target: &str,
    headers: &[(&str, &str)],
    max_body: usize,
    deadline: Instant,
) -> Result<Response, HttpError> {
    if !target.starts_with('/') || !is_token_text(target) {
        return Err(HttpError::Request(format!(
            "the request target {:?} is not a plain path",
            target.chars().take(80).collect::<String>()
        )));
    }
    if !is_token_text(host) {
        return Err(HttpError::Request("the host name is not plain text".into()));
    }
    let mut request = format!(
        "GET {target} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: sonde-agent\r\nAccept: */*\r\nConnection: close\r\n"
    );
    for (name, value) in headers {
        let value_ok = value.split(' ').all(is_token_text);
        if !is_token_text(name) || name.contains(':') || !value_ok {
            return Err(HttpError::Request(format!(
                "header {name:?} holds characters that are not allowed"
            )));
        }
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream
        .set_timeouts(time_left(deadline)?)
        .map_err(|e| io_error(&e))?;
    stream
        .write_all(request.as_bytes())
        .and_then(|()| stream.flush())
        .map_err(|e| io_error(&e))?;
    let mut conn = Conn {
        stream,
        deadline,
        buf: Vec::new(),
        eof: false,
    };
    read_response(&mut conn, max_body)
}

/// The connection, read with the deadline re-applied before every read.
struct Conn<'a> {
    stream: &'a mut dyn Transport,
    deadline: Instant,
    buf: Vec<u8>,
    eof: bool,
}

impl Conn<'_> {
    /// Reads more into `buf`; returns how many bytes came (0 at EOF).
    fn fill(&mut self, at_most: usize) -> Result<usize, HttpError> {
        if self.eof {
            return Ok(0);
        }
        let left = time_left(self.deadline)?;
        self.stream.set_timeouts(left).map_err(|e| io_error(&e))?;
        let mut chunk = vec![0u8; at_most.clamp(1, 64 << 10)];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(0);
                }
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // A TLS peer that closes without close_notify: the end of
                // a read-to-close body, like a plain EOF.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    self.eof = true;
                    return Ok(0);
                }
                Err(e) => return Err(io_error(&e)),
            }
        }
    }

    /// Takes everything up to and including `delim`, reading more as
    /// needed, but never more than `max` bytes.
    fn take_through(&mut self, delim: &[u8], max: usize, what: &str) -> Result<Vec<u8>, HttpError> {
        let mut searched: usize = 0;
        loop {
            let from = searched.saturating_sub(delim.len());
            if let Some(i) = find(&self.buf[from..], delim) {
                let end = from + i + delim.len();
                return Ok(self.buf.drain(..end).collect());
            }
            searched = self.buf.len();
            if self.buf.len() > max {
                return Err(HttpError::Protocol(format!(
                    "{what} longer than {max} bytes"
                )));
            }
            if self.fill(max + delim.len() - self.buf.len().min(max))? == 0 {
                return Err(HttpError::Protocol(format!(
                    "connection closed in the middle of the {what}"
                )));
            }
        }
    }

    /// Takes exactly `n` bytes; fewer (and `false`) if the connection
    /// closes first.
    fn take_exact(&mut self, n: usize) -> Result<(Vec<u8>, bool), HttpError> {
        while self.buf.len() < n {
            if self.fill(n - self.buf.len())? == 0 {
                return Ok((std::mem::take(&mut self.buf), false));
            }
        }
        Ok((self.buf.drain(..n).collect(), true))
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

struct Head {
    status: u16,
    reason: String,
    headers: Vec<(String, String)>,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn parse_head(raw: &[u8]) -> Result<Head, HttpError> {
    let text =
        std::str::from_utf8(raw).map_err(|_| HttpError::Protocol("headers are not text".into()))?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let shown = || status_line.chars().take(80).collect::<String>();
    let mut parts = status_line.split(' ');
    if !parts.next().unwrap_or_default().starts_with("HTTP/1.") {
        return Err(HttpError::Protocol(format!(
            "not an HTTP/1.x status line: {:?}",
            shown()
        )));
    }
    let status = parts
        .next()
        .filter(|s| s.len() == 3)
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|s| (100..600).contains(s))
        .ok_or_else(|| HttpError::Protocol(format!("bad status line {:?}", shown())))?;
    let reason: String = parts
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(500)
        .collect();
    let headers = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Ok(Head {
        status,
        reason,
        headers,
    })
}

fn read_response(conn: &mut Conn<'_>, max_body: usize) -> Result<Response, HttpError> {
    let mut head_bytes = conn.take_through(b"\r\n\r\n", MAX_HEAD, "response header")?;
    head_bytes.truncate(head_bytes.len() - 4);
    let head = parse_head(&head_bytes)?;
    let content_type = head.header("content-type").map(str::to_owned);
    let chunked = head
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let (body, truncated) = if head.status == 204 || head.status == 304 {
        (Vec::new(), false)
    } else if chunked {
        read_chunked(conn, max_body)?
    } else if let Some(len) = head.header("content-length") {
        let len: usize = len
            .parse()
            .map_err(|_| HttpError::Protocol(format!("bad Content-Length {len:?}")))?;
        let (body, complete) = conn.take_exact(len.min(max_body))?;
        if !complete {
            return Err(HttpError::Protocol(format!(
                "the connection closed after {} of {len} body bytes",
                body.len()
            )));
        }
        (body, len > max_body)
    } else {
        while conn.buf.len() <= max_body && conn.fill(max_body + 1 - conn.buf.len())? > 0 {}
        let mut body = std::mem::take(&mut conn.buf);
        let truncated = body.len() > max_body;
        body.truncate(max_body);
        (body, truncated)
    };
    Ok(Response {
        status: head.status,
        reason: head.reason,
        content_type,
        body,
        truncated,
    })
}

/// Decodes a chunked body as it arrives, stopping at `max_body`.
fn read_chunked(conn: &mut Conn<'_>, max_body: usize) -> Result<(Vec<u8>, bool), HttpError> {
    let mut body = Vec::new();
    loop {
        let line = conn.take_through(b"\r\n", MAX_CHUNK_LINE, "chunk size line")?;
        let line = std::str::from_utf8(&line[..line.len() - 2])
            .map_err(|_| HttpError::Protocol("chunk size line is not text".into()))?;
        let size_text = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| HttpError::Protocol(format!("bad chunk size {size_text:?}")))?;
        if size == 0 {
            return Ok((body, false));
        }
        let room = max_body - body.len();
        let (data, complete) = conn.take_exact(size.min(room))?;
        body.extend_from_slice(&data);
        if !complete {
            return Err(HttpError::Protocol(
                "the connection closed in the middle of a chunk".into(),
            ));
        }
        if size > room {
            return Ok((body, true));
        }
        let (crlf, _) = conn.take_exact(2)?;
        if crlf != b"\r\n" {
            return Err(HttpError::Protocol("a chunk does not end with CRLF".into()));
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::net::TcpListener;

    /// Serves `answer` once on a loopback port, recording the request.
    fn serve(answer: Vec<u8>, delay: Duration) -> (SocketAddr, std::sync::mpsc::Receiver<Vec<u8>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                }
            }
            let _ = tx.send(req);
            std::thread::sleep(delay);
            let _ = s.write_all(&answer);
        });
        (addr, rx)
    }

    fn soon(ms: u64) -> Instant {
        Instant::now() + Duration::from_millis(ms)
    }

    #[test]
    fn reads_length_chunked_and_closed_bodies_within_the_limit() {
        let cases: Vec<(Vec<u8>, &[u8], bool)> = vec![
            (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello".to_vec(), b"hello", false),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n2;x=y\r\nlo\r\n0\r\n\r\n".to_vec(),
                b"hello",
                false,
            ),
            (b"HTTP/1.0 200 OK\r\n\r\nhello".to_vec(), b"hello", false),
            (b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\nhello world!".to_vec(), b"hello worl", true),
        ];
        for (answer, body, truncated) in cases {
            let (addr, rx) = serve(answer, Duration::ZERO);
            let mut s = connect(addr, soon(5000)).unwrap();
            let r = get(
                &mut s,
                "127.0.0.1",
                "/x?a=1",
                &[("X-Test", "a b")],
                10,
                soon(5000),
            )
            .unwrap();
            assert_eq!(
                (r.status, r.body.as_slice(), r.truncated),
                (200, body, truncated)
            );
            let req = String::from_utf8(rx.recv().unwrap()).unwrap();
            assert!(
                req.starts_with("GET /x?a=1 HTTP/1.1\r\nHost: 127.0.0.1\r\n"),
                "{req}"
            );
            assert!(req.contains("\r\nX-Test: a b\r\n"), "{req}");
        }
    }

    #[test]
    fn nothing_can_be_spliced_into_the_request() {
        let (addr, _rx) = serve(Vec::new(), Duration::ZERO);
        let mut s = connect(addr, soon(5000)).unwrap();
        for target in ["x", "/a b", "/a\r\nX: y", "/a\nb", ""] {
            let err = get(&mut s, "h", target, &[], 10, soon(5000)).unwrap_err();
            assert!(matches!(err, HttpError::Request(_)), "{target:?}: {err:?}");
        }
        for (name, value) in [
            ("X", "a\r\nEvil: 1"),
            ("X:Y", "a"),
            ("X", "a  b"),
            ("", "a"),
        ] {
            let err = get(&mut s, "h", "/", &[(name, value)], 10, soon(5000)).unwrap_err();
            assert!(matches!(err, HttpError::Request(_)), "{name:?}: {err:?}");
        }
        assert!(matches!(
            get(&mut s, "h\r\nX: 1", "/", &[], 10, soon(5000)).unwrap_err(),
            HttpError::Request(_)
        ));
    }

    #[test]
    fn a_silent_server_is_cut_off_at_the_deadline() {
        let (addr, _rx) = serve(b"HTTP/1.1 200 OK\r\n\r\n".to_vec(), Duration::from_secs(30));
        let start = Instant::now();
        let mut s = connect(addr, soon(5000)).unwrap();
        let err = get(&mut s, "h", "/", &[], 10, soon(300)).unwrap_err();
        assert_eq!(err, HttpError::Timeout);
        assert!(start.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn garbage_answers_are_errors_not_panics() {
        for answer in [
            b"SSH-2.0-OpenSSH_9.2\r\n\r\n".to_vec(),
            b"HTTP/1.1 abc OK\r\n\r\n".to_vec(),
            b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n".to_vec(),
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".to_vec(),
            b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nshort".to_vec(),
            vec![0xff; 100],
        ] {
            let (addr, _rx) = serve(answer.clone(), Duration::ZERO);
            let mut s = connect(addr, soon(5000)).unwrap();
            let r = get(&mut s, "h", "/", &[], 100, soon(5000));
            assert!(
                matches!(r, Err(HttpError::Protocol(_))),
                "{answer:?}: {r:?}"
            );
        }
    }
}
