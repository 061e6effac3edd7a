//! A minimal HTTP/1.1 client over a Unix socket that can only send `GET`.
//!
//! - **GET only**: [`get`] is the only way to send a request, and it writes
//!   the method itself; there is no method parameter to get wrong.
//! - **No splicing**: a request target is an [`ApiPath`], built from path
//!   segments and query pairs that are percent-encoded one by one, so a
//!   value can never add a segment, a query, a header or a second request.
//! - **Bounded**: headers are at most [`MAX_HEAD`] bytes, a body at most
//!   the caller's limit (the rest is left unread and the response is marked
//!   truncated); `Content-Length`, chunked and read-to-close bodies are
//!   understood, and reading stops as soon as the body is complete.
//! - **Deadline**: every read and write waits at most until the probe's
//!   deadline, so a server that drips bytes cannot keep a probe alive.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// Largest header block read.
pub const MAX_HEAD: usize = 64 << 10;
/// Largest chunk-size line (size, extensions) accepted.
const MAX_CHUNK_LINE: usize = 1024;

/// A request target: `/seg/seg?key=value&…`, every piece percent-encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiPath {
    text: String,
    has_query: bool,
}

/// Bytes that stay as they are in a segment or query value (RFC 3986
/// unreserved); everything else is `%XX`.
fn encode_into(out: &mut String, value: &str) {
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

impl ApiPath {
    /// `/a/b/c` from segments. A segment that is empty, `.` or `..` would
    /// change the path's shape, so it is encoded (`%2E`) rather than kept.
    pub fn new<'a>(segments: impl IntoIterator<Item = &'a str>) -> Self {
        let mut text = String::new();
        for s in segments {
            text.push('/');
            match s {
                "" => text.push_str("%20"),
                "." => text.push_str("%2E"),
                ".." => text.push_str("%2E%2E"),
                s => encode_into(&mut text, s),
            }
        }
        if text.is_empty() {
            text.push('/');
        }
        ApiPath {
            text,
            has_query: false,
        }
    }

    /// Adds `key=value` to the query.
    pub fn query(mut self, key: &str, value: &str) -> Self {
        self.text.push(if self.has_query { '&' } else { '?' });
        self.has_query = true;
        encode_into(&mut self.text, key);
        self.text.push('=');
        encode_into(&mut self.text, value);
        self
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// The `Content-Type` header, if any.
    pub content_type: Option<String>,
    pub body: Vec<u8>,
    /// The body was longer than the limit; only its start was read.
    pub truncated: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    #[error("cannot connect to {socket}: {reason}")]
    Connect {
        socket: String,
        reason: String,
        kind: std::io::ErrorKind,
    },
    #[error("the Docker API did not answer in time")]
    Timeout,
    #[error("unreadable answer from the Docker API: {0}")]
    Protocol(String),
}

/// The connection, read with the deadline re-applied before every read.
struct Conn {
    stream: UnixStream,
    deadline: Instant,
    buf: Vec<u8>,
    eof: bool,
}

fn io_error(e: &std::io::Error) -> HttpError {
    match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => HttpError::Timeout,
        _ => HttpError::Protocol(e.to_string()),
    }
}

impl Conn {
    fn time_left(&self) -> Result<Duration, HttpError> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            Err(HttpError::Timeout)
        } else {
            Ok(left)
        }
    }

    /// Reads more into `buf`; returns how many bytes came (0 at EOF).
    fn fill(&mut self, at_most: usize) -> Result<usize, HttpError> {
        if self.eof {
            return Ok(0);
        }
        let left = self.time_left()?;
        self.stream
            .set_read_timeout(Some(left))
            .map_err(|e| io_error(&e))?;
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
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_error(&e)),
            }
        }
    }

    /// Takes everything up to and including `delim` from the buffer,
    /// reading more as needed, but never more than `max` bytes.
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

    /// Takes exactly `n` bytes; fewer if the connection closes first.
    fn take_exact(&mut self, n: usize) -> Result<(Vec<u8>, bool), HttpError> {
        while self.buf.len() < n {
            if self.fill(n - self.buf.len())? == 0 {
                let all = std::mem::take(&mut self.buf);
                return Ok((all, false));
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

/// `GET target` on the Unix socket at `socket`, until `deadline`, keeping at
/// most `max_body` bytes of the body.
pub fn get(
    socket: &Path,
    target: &ApiPath,
    max_body: usize,
    deadline: Instant,
) -> Result<Response, HttpError> {
    let stream = UnixStream::connect(socket).map_err(|e| HttpError::Connect {
        socket: socket.display().to_string(),
        reason: e.to_string(),
        kind: e.kind(),
    })?;
    let mut conn = Conn {
        stream,
        deadline,
        buf: Vec::new(),
        eof: false,
    };
    let left = conn.time_left()?;
    conn.stream
        .set_write_timeout(Some(left))
        .map_err(|e| io_error(&e))?;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: docker\r\nUser-Agent: sonde-agent\r\nAccept: application/json\r\nConnection: close\r\n\r\n",
        target.as_str()
    );
    conn.stream
        .write_all(request.as_bytes())
        .map_err(|e| io_error(&e))?;
    read_response(&mut conn, max_body)
}

/// Status line and headers.
#[derive(Debug)]
struct Head {
    status: u16,
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
    let mut parts = status_line.split(' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(HttpError::Protocol(format!(
            "not an HTTP/1.x status line: {:?}",
            status_line.chars().take(80).collect::<String>()
        )));
    }
    let status = parts
        .next()
        .filter(|s| s.len() == 3)
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|s| (100..600).contains(s))
        .ok_or_else(|| {
            HttpError::Protocol(format!(
                "bad status line {:?}",
                status_line.chars().take(80).collect::<String>()
            ))
        })?;
    let headers = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Ok(Head { status, headers })
}

fn read_response(conn: &mut Conn, max_body: usize) -> Result<Response, HttpError> {
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
        let want = len.min(max_body);
        let (body, complete) = conn.take_exact(want)?;
        if !complete {
            return Err(HttpError::Protocol(format!(
                "the connection closed after {} of {len} body bytes",
                body.len()
            )));
        }
        (body, len > max_body)
    } else {
        // Read to close.
        loop {
            if conn.buf.len() > max_body {
                break;
            }
            if conn.fill(max_body + 1 - conn.buf.len())? == 0 {
                break;
            }
        }
        let mut body = std::mem::take(&mut conn.buf);
        let truncated = body.len() > max_body;
        body.truncate(max_body);
        (body, truncated)
    };
    Ok(Response {
        status: head.status,
        content_type,
        body,
        truncated,
    })
}

/// Decodes a chunked body as it arrives, stopping at `max_body`.
fn read_chunked(conn: &mut Conn, max_body: usize) -> Result<(Vec<u8>, bool), HttpError> {
    let mut body = Vec::new();
    loop {
        let line = conn.take_through(b"\r\n", MAX_CHUNK_LINE, "chunk size line")?;
        let text = std::str::from_utf8(&line[..line.len() - 2])
            .map_err(|_| HttpError::Protocol("chunk size is not text".into()))?;
        let digits = text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(digits, 16)
            .map_err(|_| HttpError::Protocol(format!("bad chunk size {digits:?}")))?;
        if size == 0 {
            return Ok((body, false));
        }
        let room = max_body - body.len();
        if size > room {
            let (part, _) = conn.take_exact(room)?;
            body.extend_from_slice(&part);
            return Ok((body, true));
        }
        let (data, complete) = conn.take_exact(size)?;
        body.extend_from_slice(&data);
        if !complete {
            return Err(HttpError::Protocol(format!(
                "the connection closed in the middle of a chunk ({} of {size} bytes)",
                data.len()
            )));
        }
        let (crlf, _) = conn.take_exact(2)?;
        if crlf != b"\r\n" {
            return Err(HttpError::Protocol("chunk not followed by CRLF".to_owned()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    /// Serves `answer` (in pieces, with `pause` between them) to one client
    /// and returns the request it read.
    fn serve_once(
        answer: Vec<Vec<u8>>,
        pause: Duration,
    ) -> (
        tempfile::TempDir,
        std::thread::JoinHandle<Vec<u8>>,
        std::path::PathBuf,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let handle = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut req = Vec::new();
            let mut buf = [0u8; 512];
            while find(&req, b"\r\n\r\n").is_none() {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                }
            }
            for piece in answer {
                if s.write_all(&piece).is_err() {
                    break;
                }
                std::thread::sleep(pause);
            }
            // Keep the connection open a while: a complete body must not
            // need the close.
            std::thread::sleep(Duration::from_millis(1500));
            req
        });
        (dir, handle, path)
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(5)
    }

    #[test]
    fn paths_are_built_from_encoded_pieces() {
        let p = ApiPath::new(["containers", "web", "json"]);
        assert_eq!(p.as_str(), "/containers/web/json");
        let p = ApiPath::new(["containers", "../../info?x=1 HTTP/1.1\r\nX: y", "json"])
            .query("tail", "10&all=1");
        assert_eq!(
            p.as_str(),
            "/containers/..%2F..%2Finfo%3Fx%3D1%20HTTP%2F1.1%0D%0AX%3A%20y/json?tail=10%26all%3D1"
        );
        assert_eq!(ApiPath::new([".."]).as_str(), "/%2E%2E");
        assert_eq!(ApiPath::new(["a", ""]).as_str(), "/a/%20");
        assert_eq!(ApiPath::new([]).as_str(), "/");
    }

    #[test]
    fn content_length_body_is_complete_without_waiting_for_close() {
        let (_d, h, path) = serve_once(
            vec![
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
                    .to_vec(),
            ],
            Duration::ZERO,
        );
        let start = Instant::now();
        let r = get(&path, &ApiPath::new(["info"]), 1 << 20, soon()).unwrap();
        assert!(start.elapsed() < Duration::from_millis(1000));
        assert_eq!((r.status, r.body.as_slice()), (200, &b"{}"[..]));
        assert_eq!(r.content_type.as_deref(), Some("application/json"));
        let req = String::from_utf8(h.join().unwrap()).unwrap();
        assert!(req.starts_with("GET /info HTTP/1.1\r\n"), "{req}");
    }

    #[test]
    fn chunked_bodies_split_anywhere_are_decoded() {
        let whole = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\n\r\n";
        // One byte per write: every boundary falls inside a token somewhere.
        let pieces = whole.iter().map(|b| vec![*b]).collect();
        let (_d, _h, path) = serve_once(pieces, Duration::from_millis(1));
        let r = get(&path, &ApiPath::new(["x"]), 1 << 20, soon()).unwrap();
        assert_eq!(r.body, b"abcde");
        assert!(!r.truncated);
    }

    #[test]
    fn bodies_beyond_the_limit_are_cut_and_marked() {
        let (_d, _h, path) = serve_once(
            vec![
                b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n".to_vec(),
                vec![b'x'; 100_000],
            ],
            Duration::ZERO,
        );
        let r = get(&path, &ApiPath::new(["x"]), 1000, soon()).unwrap();
        assert_eq!(r.body.len(), 1000);
        assert!(r.truncated);
        let (_d, _h, path) = serve_once(
            vec![
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec(),
                b"2710\r\n".to_vec(),
                vec![b'y'; 10_000],
            ],
            Duration::ZERO,
        );
        let r = get(&path, &ApiPath::new(["x"]), 1000, soon()).unwrap();
        assert_eq!(r.body.len(), 1000);
        assert!(r.truncated);
    }

    #[test]
    fn a_dripping_server_is_cut_off_at_the_deadline() {
        let mut pieces = vec![b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n".to_vec()];
        pieces.extend((0..1000).map(|_| b"x".to_vec()));
        let (_d, _h, path) = serve_once(pieces, Duration::from_millis(20));
        let start = Instant::now();
        let err = get(
            &path,
            &ApiPath::new(["x"]),
            1 << 20,
            Instant::now() + Duration::from_millis(300),
        )
        .unwrap_err();
        assert_eq!(err, HttpError::Timeout);
        assert!(start.elapsed() < Duration::from_millis(1200));
    }

    #[test]
    fn short_bodies_and_garbage_are_errors_not_panics() {
        for answer in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"[..],
            b"garbage\r\n\r\n",
            b"HTTP/1.1 abc\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXX0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\n",
        ] {
            let (_d, _h, path) = serve_once(vec![answer.to_vec()], Duration::ZERO);
            // The test server keeps the socket open after writing: a short
            // answer must end at the deadline at the latest.
            let r = get(
                &path,
                &ApiPath::new(["x"]),
                1 << 20,
                Instant::now() + Duration::from_millis(500),
            );
            assert!(
                r.is_err(),
                "{:?} gave {r:?}",
                String::from_utf8_lossy(answer)
            );
        }
    }

    #[test]
    fn read_to_close_bodies_and_empty_statuses() {
        let (_d, _h, path) = serve_once(
            vec![b"HTTP/1.0 404 Not Found\r\n\r\n{\"message\":\"nope\"}".to_vec()],
            Duration::ZERO,
        );
        // Read-to-close needs the close: this server closes after 1.5 s.
        let r = get(&path, &ApiPath::new(["x"]), 1 << 20, soon()).unwrap();
        assert_eq!(r.status, 404);
        assert_eq!(r.body, b"{\"message\":\"nope\"}");
        let (_d, _h, path) = serve_once(
            vec![b"HTTP/1.1 204 No Content\r\n\r\n".to_vec()],
            Duration::ZERO,
        );
        let r = get(&path, &ApiPath::new(["x"]), 1 << 20, soon()).unwrap();
        assert_eq!((r.status, r.body.len()), (204, 0));
    }

    #[test]
    fn a_missing_socket_is_a_connect_error() {
        let err = get(
            Path::new("/nonexistent/docker.sock"),
            &ApiPath::new(["info"]),
            1,
            soon(),
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                HttpError::Connect {
                    kind: std::io::ErrorKind::NotFound,
                    ..
                }
            ),
            "{err:?}"
        );
    }
}
