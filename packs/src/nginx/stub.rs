//! nginx's `stub_status` page, fetched with one GET from a loopback URL
//! the operator configured (`stub_status_url`), in-process.

use serde_json::{Value, json};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use crate::handler::{ProbeContext, ProbeError};
use crate::http_client::{self, Endpoint, Get, HttpError};
use crate::system::finding;

/// Largest stub_status answer read (it is about 100 bytes).
const MAX_BODY: usize = 16 << 10;

/// A parsed `stub_status_url`: loopback only, `http` only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StubUrl {
    pub addr: SocketAddr,
    /// The `Host` header (as written in the URL).
    pub host: String,
    pub path: String,
}

/// Parses `http://127.0.0.1:8080/nginx_status` (or `localhost`, `[::1]`).
/// Anything else is refused: the pack reads a status page on this
/// machine, not an arbitrary URL.
pub fn parse_url(url: &str) -> Result<StubUrl, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url:?}: only http:// URLs on the loopback are read"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.contains('@') {
        return Err(format!("{url:?}: credentials in the URL are not supported"));
    }
    let (host, port) = if let Some(inner) = authority.strip_prefix('[') {
        let (h, after) = inner
            .split_once(']')
            .ok_or_else(|| format!("{url:?}: unclosed [ in the host"))?;
        let port = match after.strip_prefix(':') {
            Some(p) => p,
            None if after.is_empty() => "80",
            None => return Err(format!("{url:?}: bad port")),
        };
        (h, port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, p),
            None => (authority, "80"),
        }
    };
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("{url:?}: bad port"))?;
    let ip: IpAddr = if host.eq_ignore_ascii_case("localhost") {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        host.parse()
            .map_err(|_| format!("{url:?}: the host must be 127.0.0.1, [::1] or localhost"))?
    };
    if !ip.is_loopback() {
        return Err(format!(
            "{url:?}: only a loopback address is allowed (127.0.0.0/8, ::1, localhost)"
        ));
    }
    if !path.starts_with('/')
        || !path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/-._~%!$&'()*+,;=:@?".contains(&b))
    {
        return Err(format!(
            "{url:?}: the path holds characters that are not allowed"
        ));
    }
    Ok(StubUrl {
        addr: SocketAddr::new(ip, port),
        host: if authority.is_empty() {
            "localhost".into()
        } else {
            authority.to_owned()
        },
        path: path.to_owned(),
    })
}

/// The numbers of a stub_status page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stub {
    pub active: u64,
    pub accepts: u64,
    pub handled: u64,
    pub requests: u64,
    pub reading: u64,
    pub writing: u64,
    pub waiting: u64,
}

/// Parses
/// ```text
/// Active connections: 291
/// server accepts handled requests
///  16630948 16630948 31070465
/// Reading: 6 Writing: 179 Waiting: 106
/// ```
pub fn parse(text: &str) -> Option<Stub> {
    let mut s = Stub::default();
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    s.active = lines
        .next()?
        .strip_prefix("Active connections:")?
        .trim()
        .parse()
        .ok()?;
    if !lines.next()?.starts_with("server accepts handled requests") {
        return None;
    }
    let nums: Vec<u64> = lines
        .next()?
        .split_whitespace()
        .map(|n| n.parse().ok())
        .collect::<Option<_>>()?;
    let [accepts, handled, requests] = nums.as_slice() else {
        return None;
    };
    (s.accepts, s.handled, s.requests) = (*accepts, *handled, *requests);
    let words: Vec<&str> = lines.next()?.split_whitespace().collect();
    for pair in words.chunks(2) {
        let [k, v] = pair else { return None };
        let v: u64 = v.parse().ok()?;
        match *k {
            "Reading:" => s.reading = v,
            "Writing:" => s.writing = v,
            "Waiting:" => s.waiting = v,
            _ => return None,
        }
    }
    Some(s)
}

fn fetch(ctx: &ProbeContext<'_>, url: &StubUrl) -> Result<Stub, ProbeError> {
    let shown = format!("http://{}{}", url.host, url.path);
    let deadline = ctx.deadline.min(Instant::now() + Duration::from_secs(10));
    let err = |e: HttpError| match e {
        HttpError::Timeout => ProbeError::Failed(format!("{shown} did not answer in time")),
        HttpError::Connect { reason, .. } => ProbeError::Failed(format!(
            "nothing answers at {shown} ({reason}): is nginx running, and does a server listen there with a `stub_status` location? Check stub_status_url under [packs.nginx]"
        )),
        other => ProbeError::Failed(format!("{shown}: {other}")),
    };
    let get = Get {
        host: &url.host,
        target: &url.path,
        headers: &[],
        max_body: MAX_BODY,
    };
    let r = http_client::get(&Endpoint::Tcp(url.addr), &get, deadline).map_err(err)?;
    if r.status != 200 {
        return Err(ProbeError::Failed(format!(
            "{shown} answered HTTP {}: is `stub_status;` in that location, and is 127.0.0.1 allowed there?",
            r.status
        )));
    }
    parse(&String::from_utf8_lossy(&r.body)).ok_or_else(|| {
        ProbeError::Failed(format!(
            "{shown} is not a stub_status page (it starts {:?})",
            String::from_utf8_lossy(&r.body[..r.body.len().min(60)])
        ))
    })
}

/// The probe's result: one reading, or two `sample_ms` apart with rates.
pub fn read(ctx: &ProbeContext<'_>, url: &str, sample_ms: u64) -> Result<Value, ProbeError> {
    let parsed = parse_url(url).map_err(ProbeError::InvalidInput)?;
    let first = fetch(ctx, &parsed)?;
    let mut rates = Value::Null;
    let mut last = first;
    if sample_ms > 0 {
        let wait = Duration::from_millis(sample_ms);
        if ctx.time_left() <= wait + Duration::from_millis(200) {
            return Err(ProbeError::InvalidInput(format!(
                "sample_ms = {sample_ms} does not fit in the probe's time left"
            )));
        }
        let started = Instant::now();
        std::thread::sleep(wait);
        last = fetch(ctx, &parsed)?;
        let secs = started.elapsed().as_secs_f64().max(0.001);
        let per_s = |a: u64, b: u64| (b.saturating_sub(a) as f64 / secs * 100.0).round() / 100.0;
        rates = json!({
            "interval_ms": (secs * 1000.0).round() as u64,
            "requests_per_s": per_s(first.requests, last.requests),
            "connections_per_s": per_s(first.accepts, last.accepts),
        });
    }
    let s = last;
    let dropped = s.accepts.saturating_sub(s.handled);
    let mut findings = Vec::new();
    if dropped > 0 {
        findings.push(finding(
            "warning",
            format!("{dropped} connections were accepted but not handled since nginx started: worker_connections (or the open-file limit) was reached"),
        ));
    }
    Ok(json!({
        "configured": true,
        "url": url,
        "active": s.active,
        "accepts": s.accepts,
        "handled": s.handled,
        "dropped": dropped,
        "requests": s.requests,
        "reading": s.reading,
        "writing": s.writing,
        "waiting": s.waiting,
        "requests_per_connection": if s.handled > 0 { json!((s.requests as f64 / s.handled as f64 * 100.0).round() / 100.0) } else { Value::Null },
        "rates": rates,
        "findings": findings,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_loopback_http_only() {
        let u = parse_url("http://127.0.0.1:8080/nginx_status").unwrap();
        assert_eq!(u.addr, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(u.path, "/nginx_status");
        assert_eq!(parse_url("http://localhost/s").unwrap().addr.port(), 80);
        assert_eq!(
            parse_url("http://[::1]:81/basic_status").unwrap().addr,
            "[::1]:81".parse().unwrap()
        );
        assert_eq!(parse_url("http://127.0.0.2").unwrap().path, "/");
        for bad in [
            "https://127.0.0.1/s",
            "http://10.0.0.1/s",
            "http://example.org/s",
            "http://user:pw@127.0.0.1/s",
            "http://127.0.0.1:0/s",
            "http://127.0.0.1:x/s",
            "http://127.0.0.1/a b",
            "http://127.0.0.1/a\r\nX: y",
            "http://[::1/s",
            "ftp://127.0.0.1/",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn stub_pages_parse() {
        let s = parse("Active connections: 291 \nserver accepts handled requests\n 16630948 16630940 31070465 \nReading: 6 Writing: 179 Waiting: 106 \n").unwrap();
        assert_eq!(s.active, 291);
        assert_eq!(s.accepts - s.handled, 8);
        assert_eq!(s.waiting, 106);
        assert!(parse("<html>").is_none());
        assert!(parse("Active connections: x\n").is_none());
        assert!(parse("Active connections: 1\nserver accepts handled requests\n 1 2\nReading: 0 Writing: 1 Waiting: 0\n").is_none());
    }
}
