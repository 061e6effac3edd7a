//! Access-log lines: the `log_format` they were written with, compiled
//! into a matcher, and what the tail and summary make of them.
//!
//! A format is nginx's own text (`$remote_addr - $remote_user
//! [$time_local] "$request" …`): literal pieces and `$variables`. A line
//! matches when every literal piece is found in order; each variable is
//! the text between its neighbours. nginx escapes `"` and control bytes in
//! variable values (`\x22`), so quoted fields cannot hold their delimiter.
//!
//! Every line is parsed from **scrubbed** text: paths, query strings and
//! referers can carry tokens, and a filter or a "top paths" list must
//! never see, match or count what the scrubber hides.

use serde::Serialize;
use std::collections::HashMap;

use super::logtime;

/// nginx's built-in `combined` format.
pub const COMBINED: &str = r#"$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent""#;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(Vec<u8>),
    Var(String),
}

/// A compiled `log_format`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFormat {
    pieces: Vec<Piece>,
    text: String,
}

impl LogFormat {
    /// Compiles a format; `Err` when it has no variable or two variables
    /// with nothing between them (they could not be told apart).
    pub fn compile(format: &str) -> Result<LogFormat, String> {
        let bytes = format.as_bytes();
        let mut pieces = Vec::new();
        let mut literal = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'$' {
                let (name, next) = if bytes.get(i + 1) == Some(&b'{') {
                    let close = bytes[i + 2..]
                        .iter()
                        .position(|b| *b == b'}')
                        .ok_or_else(|| format!("unclosed ${{ in log format {format:?}"))?;
                    (&bytes[i + 2..i + 2 + close], i + 3 + close)
                } else {
                    let len = bytes[i + 1..]
                        .iter()
                        .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
                        .count();
                    (&bytes[i + 1..i + 1 + len], i + 1 + len)
                };
                if name.is_empty() {
                    literal.push(b'$');
                    i += 1;
                    continue;
                }
                if !literal.is_empty() {
                    pieces.push(Piece::Literal(std::mem::take(&mut literal)));
                } else if matches!(pieces.last(), Some(Piece::Var(_))) {
                    return Err(format!(
                        "log format {format:?}: two variables with nothing between them cannot be told apart"
                    ));
                }
                pieces.push(Piece::Var(String::from_utf8_lossy(name).into_owned()));
                i = next;
            } else {
                literal.push(bytes[i]);
                i += 1;
            }
        }
        if !literal.is_empty() {
            pieces.push(Piece::Literal(literal));
        }
        if !pieces.iter().any(|p| matches!(p, Piece::Var(_))) {
            return Err(format!("log format {format:?} has no variable"));
        }
        Ok(LogFormat {
            pieces,
            text: format.to_owned(),
        })
    }

    pub fn combined() -> LogFormat {
        // COMBINED is a constant that compiles; a failure would be a bug
        // caught by the tests, so fall back to an empty matcher.
        LogFormat::compile(COMBINED).unwrap_or(LogFormat {
            pieces: Vec::new(),
            text: String::new(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The variables of `line`, or `None` when it does not fit the format.
    pub fn fields<'a>(&self, line: &'a [u8]) -> Option<HashMap<&str, &'a [u8]>> {
        let mut out = HashMap::new();
        let mut pos = 0;
        let mut i = 0;
        while i < self.pieces.len() {
            match &self.pieces[i] {
                Piece::Literal(lit) => {
                    if !line[pos..].starts_with(lit) {
                        return None;
                    }
                    pos += lit.len();
                }
                Piece::Var(name) => {
                    let end = match self.pieces.get(i + 1) {
                        Some(Piece::Literal(lit)) => pos + memchr::memmem::find(&line[pos..], lit)?,
                        _ => line.len(),
                    };
                    out.insert(name.as_str(), &line[pos..end]);
                    pos = end;
                }
            }
            i += 1;
        }
        (pos == line.len()).then_some(out)
    }
}

/// One access-log line, parsed (from scrubbed text).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    pub time_ms: Option<i64>,
    pub client: Option<String>,
    pub method: Option<String>,
    /// The path without its query string.
    pub path: Option<String>,
    /// The query string (scrubbed), without the `?`.
    pub query: Option<String>,
    pub protocol: Option<String>,
    pub status: Option<u16>,
    pub bytes: Option<u64>,
    pub referer: Option<String>,
    pub user_agent: Option<String>,
    pub host: Option<String>,
    pub request_time_s: Option<f64>,
    pub upstream_time_s: Option<f64>,
}

fn text(v: Option<&&[u8]>) -> Option<String> {
    let v = v?;
    (!v.is_empty() && *v != b"-").then(|| String::from_utf8_lossy(v).into_owned())
}

/// `$upstream_response_time` may list several upstreams (`0.010, 0.500`)
/// or hold `-`: the sum of the numbers.
fn seconds(v: Option<&&[u8]>) -> Option<f64> {
    let t = text(v)?;
    let mut total = 0.0;
    let mut any = false;
    for part in t.split([',', ':', ' ']).filter(|p| !p.is_empty()) {
        if let Ok(x) = part.parse::<f64>() {
            total += x;
            any = true;
        }
    }
    any.then_some(total)
}

/// Parses one (scrubbed) line with `format`; `None` if it does not fit.
pub fn parse_line(format: &LogFormat, line: &[u8]) -> Option<Entry> {
    let f = format.fields(line)?;
    let time_ms = f
        .get("time_local")
        .and_then(|t| logtime::parse_time_local(&String::from_utf8_lossy(t)))
        .or_else(|| {
            f.get("time_iso8601")
                .and_then(|t| logtime::parse_iso8601(&String::from_utf8_lossy(t)))
        })
        .or_else(|| {
            f.get("msec")
                .and_then(|t| logtime::parse_msec(&String::from_utf8_lossy(t)))
        });
    let (mut method, mut target, mut protocol) = (None, None, None);
    if let Some(request) = text(f.get("request")) {
        let mut parts = request.splitn(3, ' ');
        method = parts.next().map(str::to_owned);
        target = parts.next().map(str::to_owned);
        protocol = parts.next().map(str::to_owned);
    }
    method = method.or_else(|| text(f.get("request_method")));
    target = target
        .or_else(|| text(f.get("request_uri")))
        .or_else(|| text(f.get("uri")));
    let (path, query) = match target {
        Some(t) => match t.split_once('?') {
            Some((p, q)) => (Some(p.to_owned()), Some(q.to_owned())),
            None => (Some(t), None),
        },
        None => (None, None),
    };
    let status = text(f.get("status")).and_then(|s| s.parse().ok());
    let bytes = text(f.get("body_bytes_sent"))
        .or_else(|| text(f.get("bytes_sent")))
        .and_then(|b| b.parse().ok());
    let client = text(f.get("remote_addr")).or_else(|| text(f.get("realip_remote_addr")));
    Some(Entry {
        time_ms,
        client,
        method,
        path,
        query,
        protocol: protocol.or_else(|| text(f.get("server_protocol"))),
        status,
        bytes,
        referer: text(f.get("http_referer")),
        user_agent: text(f.get("http_user_agent")),
        host: text(f.get("host")).or_else(|| text(f.get("server_name"))),
        request_time_s: seconds(f.get("request_time")),
        upstream_time_s: seconds(f.get("upstream_response_time")),
    })
}

/// A status filter: `5xx`, `4xx`, … or one code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFilter {
    Class(u16),
    Code(u16),
}

impl StatusFilter {
    pub fn parse(text: &str) -> Option<StatusFilter> {
        let b = text.as_bytes();
        match b {
            [c @ b'1'..=b'5', b'x', b'x'] => Some(StatusFilter::Class(u16::from(c - b'0'))),
            _ => text
                .parse::<u16>()
                .ok()
                .filter(|c| (100..600).contains(c))
                .map(StatusFilter::Code),
        }
    }

    pub fn matches(&self, status: Option<u16>) -> bool {
        match (self, status) {
            (StatusFilter::Class(c), Some(s)) => s / 100 == *c,
            (StatusFilter::Code(c), Some(s)) => s == *c,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &[u8] = br#"203.0.113.7 - alice [01/May/2024:10:00:00 +0000] "GET /api/items?page=2 HTTP/1.1" 502 157 "https://example.org/" "curl/8.0""#;

    #[test]
    fn combined_lines_parse() {
        let e = parse_line(&LogFormat::combined(), LINE).unwrap();
        assert_eq!(e.client.as_deref(), Some("203.0.113.7"));
        assert_eq!(e.method.as_deref(), Some("GET"));
        assert_eq!(e.path.as_deref(), Some("/api/items"));
        assert_eq!(e.query.as_deref(), Some("page=2"));
        assert_eq!(e.status, Some(502));
        assert_eq!(e.bytes, Some(157));
        assert_eq!(e.time_ms, Some(1_714_557_600_000));
        assert_eq!(e.user_agent.as_deref(), Some("curl/8.0"));
        assert!(parse_line(&LogFormat::combined(), b"garbage").is_none());
        assert!(parse_line(&LogFormat::combined(), &LINE[..LINE.len() - 1]).is_none());
    }

    #[test]
    fn custom_formats_with_timings_and_braces() {
        let f = LogFormat::compile(
            "$remote_addr [$time_iso8601] \"$request\" $status ${body_bytes_sent}b rt=$request_time urt=$upstream_response_time",
        )
        .unwrap();
        let e = parse_line(
            &f,
            br#"::1 [2024-05-01T12:00:00+02:00] "POST /login HTTP/2.0" 200 12b rt=0.250 urt=0.100, 0.140"#,
        )
        .unwrap();
        assert_eq!(e.time_ms, Some(1_714_557_600_000));
        assert_eq!(e.request_time_s, Some(0.25));
        assert!((e.upstream_time_s.unwrap() - 0.24).abs() < 1e-9);
        assert!(LogFormat::compile("$a$b").is_err());
        assert!(LogFormat::compile("no variables").is_err());
        assert!(LogFormat::compile("${unclosed").is_err());
        assert!(LogFormat::compile("cost $ $x").is_ok());
    }

    #[test]
    fn status_filters() {
        assert_eq!(StatusFilter::parse("5xx"), Some(StatusFilter::Class(5)));
        assert_eq!(StatusFilter::parse("404"), Some(StatusFilter::Code(404)));
        assert_eq!(StatusFilter::parse("6xx"), None);
        assert_eq!(StatusFilter::parse("99"), None);
        assert!(StatusFilter::Class(5).matches(Some(503)));
        assert!(!StatusFilter::Class(5).matches(Some(404)));
        assert!(!StatusFilter::Code(404).matches(None));
    }
}
