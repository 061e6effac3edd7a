//! The one HTTP client in-process handlers use (the Docker API over its
//! Unix socket, nginx's `stub_status`, the Proxmox VE API over pinned TLS):
//! hyper's HTTP/1.1 client connection on a single-threaded runtime built
//! for the call, under the probe's deadline.
//!
//! - **GET only**: [`get`] builds the request itself; there is no method
//!   parameter to get wrong.
//! - **No splicing**: the request target must be a plain path (built from
//!   percent-encoded pieces with [`ApiPath`]) and every header value plain
//!   visible text, checked before anything is sent, so no value can add a
//!   segment, a query, a header or a second request. hyper refuses the
//!   rest (control characters in names, values or the target).
//! - **Bounded**: a body is kept up to the caller's limit; the rest is left
//!   unread, the connection dropped and the response marked truncated.
//!   hyper bounds the header block and parses `Content-Length`, chunked
//!   and read-to-close bodies.
//! - **Deadline**: connecting, the TLS handshake, sending and every read
//!   share one deadline, so a silent or dripping server cannot keep a
//!   probe alive.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};

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

/// Where the server is.
#[derive(Clone)]
pub enum Endpoint<'a> {
    /// A Unix socket (the Docker daemon's).
    Unix(&'a Path),
    /// Plain TCP (loopback endpoints such as nginx's `stub_status`).
    Tcp(SocketAddr),
    /// TLS over TCP, verified by `config` (e.g. a pinned certificate) for
    /// `server_name`.
    Tls {
        addr: SocketAddr,
        server_name: ServerName<'static>,
        config: Arc<ClientConfig>,
    },
}

impl std::fmt::Debug for Endpoint<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Endpoint({})", self.shown())
    }
}

impl Endpoint<'_> {
    fn shown(&self) -> String {
        match self {
            Endpoint::Unix(p) => p.display().to_string(),
            Endpoint::Tcp(a) | Endpoint::Tls { addr: a, .. } => a.to_string(),
        }
    }
}

/// One `GET`.
#[derive(Debug, Clone, Copy)]
pub struct Get<'a> {
    /// The `Host` header.
    pub host: &'a str,
    /// The request target: starts with `/`, visible ASCII, no spaces.
    pub target: &'a str,
    /// Extra headers; values are words of visible ASCII separated by
    /// single spaces.
    pub headers: &'a [(&'a str, &'a str)],
    /// The most body bytes kept.
    pub max_body: usize,
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

/// True for text that can sit in a request line or header value without
/// changing the request's shape: visible ASCII, no spaces.
fn is_token_text(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_graphic())
}

/// The request, or why it would change shape.
fn build(request: &Get<'_>) -> Result<hyper::Request<Empty<Bytes>>, HttpError> {
    let refuse = HttpError::Request;
    if !request.target.starts_with('/') || !is_token_text(request.target) {
        return Err(refuse(format!(
            "the request target {:?} is not a plain path",
            request.target.chars().take(80).collect::<String>()
        )));
    }
    if !is_token_text(request.host) {
        return Err(refuse("the host name is not plain text".into()));
    }
    let mut builder = hyper::Request::get(request.target)
        .header(hyper::header::HOST, request.host)
        .header(hyper::header::USER_AGENT, "sonde-agent")
        .header(hyper::header::CONNECTION, "close");
    for (name, value) in request.headers {
        let value_ok = value.split(' ').all(is_token_text);
        if !is_token_text(name) || name.contains(':') || !value_ok {
            return Err(refuse(format!(
                "the header {:?} is not plain text",
                name.chars().take(40).collect::<String>()
            )));
        }
        builder = builder.header(*name, *value);
    }
    builder
        .body(Empty::new())
        .map_err(|e| refuse(e.to_string()))
}

fn connect_error(endpoint: &Endpoint<'_>, e: &io::Error) -> HttpError {
    if matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    ) {
        return HttpError::Timeout;
    }
    HttpError::Connect {
        addr: endpoint.shown(),
        reason: e.to_string(),
        kind: e.kind(),
    }
}

/// `GET` on `endpoint` until `deadline`, keeping at most
/// `request.max_body` bytes of the body. Runs its own single-threaded
/// runtime: call it from a probe's blocking thread, not from async code.
pub fn get(
    endpoint: &Endpoint<'_>,
    request: &Get<'_>,
    deadline: Instant,
) -> Result<Response, HttpError> {
    let built = build(request)?;
    if Instant::now() >= deadline {
        return Err(HttpError::Timeout);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| HttpError::Request(format!("cannot start the HTTP client: {e}")))?;
    let until = tokio::time::Instant::from_std(deadline);
    let result = rt.block_on(async {
        tokio::time::timeout_at(until, exchange(endpoint, built, request.max_body)).await
    });
    // The connection task, if still running, is dropped, not awaited.
    rt.shutdown_background();
    result.unwrap_or(Err(HttpError::Timeout))
}

async fn exchange(
    endpoint: &Endpoint<'_>,
    request: hyper::Request<Empty<Bytes>>,
    max_body: usize,
) -> Result<Response, HttpError> {
    match endpoint {
        Endpoint::Unix(path) => {
            let stream = tokio::net::UnixStream::connect(path)
                .await
                .map_err(|e| connect_error(endpoint, &e))?;
            send(stream, request, max_body).await
        }
        Endpoint::Tcp(addr) => {
            let stream = tokio::net::TcpStream::connect(addr)
                .await
                .map_err(|e| connect_error(endpoint, &e))?;
            let _ = stream.set_nodelay(true);
            send(stream, request, max_body).await
        }
        Endpoint::Tls {
            addr,
            server_name,
            config,
        } => {
            let stream = tokio::net::TcpStream::connect(addr)
                .await
                .map_err(|e| connect_error(endpoint, &e))?;
            let tls = tokio_rustls::TlsConnector::from(Arc::clone(config))
                .connect(server_name.clone(), stream)
                .await
                .map_err(|e| HttpError::Protocol(format!("TLS: {e}")))?;
            send(tls, request, max_body).await
        }
    }
}

fn protocol(e: &hyper::Error) -> HttpError {
    // hyper's own messages are short ("invalid HTTP status-code parsed");
    // the source says which byte or length was wrong.
    match std::error::Error::source(e) {
        Some(source) => HttpError::Protocol(format!("{e}: {source}")),
        None => HttpError::Protocol(e.to_string()),
    }
}

async fn send<S>(
    stream: S,
    request: hyper::Request<Empty<Bytes>>,
    max_body: usize,
) -> Result<Response, HttpError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // Header names go out as `Host`, `Authorization`: HTTP says case does
    // not matter, but small embedded servers sometimes think it does.
    let (mut sender, connection) = hyper::client::conn::http1::Builder::new()
        .title_case_headers(true)
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|e| protocol(&e))?;
    tokio::spawn(connection);
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| protocol(&e))?;
    let status = response.status();
    let reason = response
        .extensions()
        .get::<hyper::ext::ReasonPhrase>()
        .map(|r| String::from_utf8_lossy(r.as_bytes()).into_owned())
        .or_else(|| status.canonical_reason().map(str::to_owned))
        .unwrap_or_default();
    let content_type = response
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut body = response.into_body();
    let mut kept = Vec::new();
    let mut truncated = false;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| protocol(&e))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let room = max_body - kept.len();
        if data.len() > room {
            kept.extend_from_slice(&data[..room]);
            truncated = true;
            break;
        }
        kept.extend_from_slice(&data);
    }
    Ok(Response {
        status: status.as_u16(),
        reason,
        content_type,
        body: kept,
        truncated,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::os::unix::net::UnixListener;
    use std::sync::mpsc;
    use std::time::Duration;

    /// Reads one request head, then writes `pieces` with `pause` between
    /// them and keeps the connection open for `linger` (a complete body
    /// must not need the close). Sends the request it read.
    fn answer(
        mut s: impl Read + Write,
        pieces: Vec<Vec<u8>>,
        pause: Duration,
        linger: Duration,
        tx: mpsc::Sender<Vec<u8>>,
    ) {
        let mut req = Vec::new();
        let mut buf = [0u8; 1024];
        while !req.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => req.extend_from_slice(&buf[..n]),
            }
        }
        let _ = tx.send(req);
        for p in pieces {
            if s.write_all(&p).is_err() {
                return;
            }
            let _ = s.flush();
            std::thread::sleep(pause);
        }
        std::thread::sleep(linger);
    }

    fn tcp_server(
        pieces: Vec<Vec<u8>>,
        pause: Duration,
        linger: Duration,
    ) -> (SocketAddr, mpsc::Receiver<Vec<u8>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            if let Ok((s, _)) = listener.accept() {
                answer(s, pieces, pause, linger, tx);
            }
        });
        (addr, rx)
    }

    fn unix_server(
        pieces: Vec<Vec<u8>>,
        pause: Duration,
        linger: Duration,
    ) -> (
        tempfile::TempDir,
        std::path::PathBuf,
        mpsc::Receiver<Vec<u8>>,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("docker.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            if let Ok((s, _)) = listener.accept() {
                answer(s, pieces, pause, linger, tx);
            }
        });
        (dir, path, rx)
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(10)
    }

    fn plain(target: &str, max_body: usize) -> Get<'_> {
        Get {
            host: "127.0.0.1",
            target,
            headers: &[],
            max_body,
        }
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
            // Read-to-close bodies end when this server closes, at once.
            let (addr, rx) = tcp_server(vec![answer], Duration::ZERO, Duration::ZERO);
            let r = get(
                &Endpoint::Tcp(addr),
                &Get {
                    host: "127.0.0.1",
                    target: "/x?a=1",
                    headers: &[("X-Test", "a b")],
                    max_body: 10,
                },
                soon(),
            )
            .unwrap();
            assert_eq!(
                (r.status, r.body.as_slice(), r.truncated),
                (200, body, truncated)
            );
            let req = String::from_utf8(rx.recv().unwrap()).unwrap();
            assert!(req.starts_with("GET /x?a=1 HTTP/1.1\r\n"), "{req}");
            let lower = req.to_ascii_lowercase();
            assert!(lower.contains("\r\nhost: 127.0.0.1\r\n"), "{req}");
            assert!(lower.contains("\r\nx-test: a b\r\n"), "{req}");
        }
    }

    #[test]
    fn a_complete_body_does_not_wait_for_the_close() {
        // The server keeps the connection open for a minute after a
        // complete answer: the call must not end by the deadline.
        let (_d, path, _rx) = unix_server(
            vec![
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
                    .to_vec(),
            ],
            Duration::ZERO,
            Duration::from_secs(60),
        );
        let r = get(
            &Endpoint::Unix(&path),
            &plain("/info", 1 << 20),
            Instant::now() + Duration::from_secs(30),
        )
        .unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"{}"[..]));
        assert_eq!(r.content_type.as_deref(), Some("application/json"));
        assert_eq!(r.reason, "OK");
    }

    #[test]
    fn chunked_bodies_split_anywhere_are_decoded() {
        let whole = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\n\r\n";
        // One byte per write: every boundary falls inside a token somewhere.
        let pieces = whole.iter().map(|b| vec![*b]).collect();
        let (_d, path, _rx) = unix_server(pieces, Duration::from_millis(1), Duration::ZERO);
        let r = get(&Endpoint::Unix(&path), &plain("/x", 1 << 20), soon()).unwrap();
        assert_eq!(r.body, b"abcde");
        assert!(!r.truncated);
    }

    #[test]
    fn bodies_beyond_the_limit_are_cut_and_marked() {
        for head in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n186A0\r\n",
        ] {
            let (_d, path, _rx) = unix_server(
                vec![head.to_vec(), vec![b'x'; 100_000]],
                Duration::ZERO,
                Duration::from_secs(60),
            );
            let r = get(&Endpoint::Unix(&path), &plain("/x", 1000), soon()).unwrap();
            assert_eq!(r.body.len(), 1000);
            assert!(r.truncated);
        }
    }

    #[test]
    fn a_silent_or_dripping_server_is_cut_off_at_the_deadline() {
        let mut drip = vec![b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n".to_vec()];
        drip.extend((0..1000).map(|_| b"x".to_vec()));
        let (_d, path, _rx) = unix_server(drip, Duration::from_millis(50), Duration::ZERO);
        let err = get(
            &Endpoint::Unix(&path),
            &plain("/x", 1 << 20),
            Instant::now() + Duration::from_millis(300),
        )
        .unwrap_err();
        assert_eq!(err, HttpError::Timeout);
        let (addr, _rx) = tcp_server(Vec::new(), Duration::ZERO, Duration::from_secs(60));
        let err = get(
            &Endpoint::Tcp(addr),
            &plain("/", 10),
            Instant::now() + Duration::from_millis(300),
        )
        .unwrap_err();
        assert_eq!(err, HttpError::Timeout);
        // A deadline already passed sends nothing.
        let err = get(&Endpoint::Tcp(addr), &plain("/", 10), Instant::now()).unwrap_err();
        assert_eq!(err, HttpError::Timeout);
    }

    #[test]
    fn nothing_can_be_spliced_into_the_request() {
        let unused = Endpoint::Unix(Path::new("/nonexistent/never-connected.sock"));
        for target in ["x", "/a b", "/a\r\nX: y", "/a\nb", ""] {
            let err = get(&unused, &plain(target, 10), soon()).unwrap_err();
            assert!(matches!(err, HttpError::Request(_)), "{target:?}: {err:?}");
        }
        for (name, value) in [
            ("X", "a\r\nEvil: 1"),
            ("X:Y", "a"),
            ("X", "a  b"),
            ("", "a"),
            ("X\r\nY", "a"),
        ] {
            let headers = [(name, value)];
            let request = Get {
                headers: &headers,
                ..plain("/", 10)
            };
            let err = get(&unused, &request, soon()).unwrap_err();
            assert!(matches!(err, HttpError::Request(_)), "{name:?}: {err:?}");
        }
        let request = Get {
            host: "h\r\nX: 1",
            ..plain("/", 10)
        };
        assert!(matches!(
            get(&unused, &request, soon()).unwrap_err(),
            HttpError::Request(_)
        ));
    }

    #[test]
    fn garbage_and_short_answers_are_errors_not_panics() {
        for answer in [
            b"SSH-2.0-OpenSSH_9.2\r\n\r\n".to_vec(),
            b"garbage\r\n\r\n".to_vec(),
            b"HTTP/1.1 abc OK\r\n\r\n".to_vec(),
            b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n".to_vec(),
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n".to_vec(),
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".to_vec(),
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab".to_vec(),
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXX0\r\n\r\n".to_vec(),
            b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nshort".to_vec(),
            b"HTTP/1.1 200 OK\r\n".to_vec(),
            vec![0xff; 100],
            Vec::new(),
        ] {
            // The server closes right after writing.
            let (addr, _rx) = tcp_server(vec![answer.clone()], Duration::ZERO, Duration::ZERO);
            let r = get(&Endpoint::Tcp(addr), &plain("/", 100), soon());
            assert!(
                matches!(r, Err(HttpError::Protocol(_))),
                "{:?}: {r:?}",
                String::from_utf8_lossy(&answer)
            );
        }
    }

    #[test]
    fn reason_phrases_are_kept() {
        let (addr, _rx) = tcp_server(
            vec![
                b"HTTP/1.1 500 Configuration file 'x' does not exist\r\nContent-Length: 0\r\n\r\n"
                    .to_vec(),
            ],
            Duration::ZERO,
            Duration::ZERO,
        );
        let r = get(&Endpoint::Tcp(addr), &plain("/", 100), soon()).unwrap();
        assert_eq!(
            (r.status, r.reason.as_str()),
            (500, "Configuration file 'x' does not exist")
        );
    }

    #[test]
    fn a_missing_socket_is_a_connect_error() {
        let err = get(
            &Endpoint::Unix(Path::new("/nonexistent/docker.sock")),
            &plain("/info", 1),
            soon(),
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                HttpError::Connect {
                    kind: io::ErrorKind::NotFound,
                    ..
                }
            ),
            "{err:?}"
        );
    }
}
