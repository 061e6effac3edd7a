//! Request templates: the only way an integration probe makes a URL.
//!
//! **Guarantee** (SECURITY.md, "integration request templates"): no
//! parameter can change the scheme, host, port or path structure of a
//! request. A template is a path of segments — literals fixed by the
//! manifest, or `{value}` placeholders that each fill exactly *one whole
//! segment* — and fixed query keys whose values are literals or one
//! placeholder. A placeholder value is refused when it is empty, `.` or
//! `..`, or holds `/`, `\`, `?`, `#`, `%` or a control character, and is
//! then percent-encoded (everything but RFC 3986 unreserved bytes), so it
//! can neither add a segment, climb out of one, start a query or fragment,
//! nor smuggle an escape of any of those. Query values are
//! form-encoded. The built URL is parsed again and compared with the base
//! (scheme, host, port, segment count) before it is used: a mismatch is an
//! error, never a request.

use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use url::Url;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Value(String),
}

/// A checked template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    segments: Vec<Part>,
    query: Vec<(String, Part)>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("path template {0:?}: {1}")]
    Path(String, String),
    #[error("query key {0:?}: {1}")]
    Query(String, String),
    #[error("value {name}: {reason}")]
    Value { name: String, reason: String },
    #[error("base URL {0:?}: {1}")]
    Base(String, String),
    #[error("the built URL does not keep the template's structure ({0}); nothing was sent")]
    Structure(String),
}

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// A literal segment: unreserved bytes and `:`/`@`, never `.` or `..`.
fn literal_ok(s: &str) -> bool {
    !s.is_empty()
        && s != "."
        && s != ".."
        && s.bytes().all(|b| unreserved(b) || b == b':' || b == b'@')
}

fn placeholder(s: &str) -> Option<&str> {
    let name = s.strip_prefix('{')?.strip_suffix('}')?;
    super::manifest::is_word(name).then_some(name)
}

/// Percent-encodes everything but unreserved bytes.
pub fn encode_segment(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if unreserved(b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Checks a value that fills one path segment.
pub fn check_segment_value(name: &str, value: &str) -> Result<(), TemplateError> {
    let bad = |reason: &str| TemplateError::Value {
        name: name.to_owned(),
        reason: reason.to_owned(),
    };
    if value.is_empty() {
        return Err(bad("is empty"));
    }
    if value == "." || value == ".." {
        return Err(bad("cannot be . or .."));
    }
    if value.len() > 512 {
        return Err(bad("is longer than 512 bytes"));
    }
    if let Some(c) = value
        .chars()
        .find(|c| matches!(c, '/' | '\\' | '?' | '#' | '%') || c.is_control())
    {
        return Err(bad(&format!(
            "holds {c:?}, which could change the request's path (a path value is one segment)"
        )));
    }
    Ok(())
}

fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

impl Template {
    pub fn parse(path: &str, query: &BTreeMap<String, String>) -> Result<Template, TemplateError> {
        let perr = |m: &str| TemplateError::Path(path.to_owned(), m.to_owned());
        let rest = path
            .strip_prefix('/')
            .ok_or_else(|| perr("must start with '/'"))?;
        let mut segments = Vec::new();
        if !rest.is_empty() {
            for seg in rest.split('/') {
                if let Some(name) = placeholder(seg) {
                    segments.push(Part::Value(name.to_owned()));
                } else if literal_ok(seg) {
                    segments.push(Part::Literal(seg.to_owned()));
                } else {
                    return Err(perr(&format!(
                        "segment {seg:?} must be a literal (A-Z a-z 0-9 - . _ ~ : @, not . or ..) or one whole {{value}}"
                    )));
                }
            }
        }
        let mut q = Vec::new();
        for (k, v) in query {
            if k.is_empty()
                || k.len() > 64
                || !k.bytes().all(|b| {
                    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'[' | b']')
                })
            {
                return Err(TemplateError::Query(k.clone(), "not a plain key".into()));
            }
            let part = if v.starts_with('{') || v.ends_with('}') {
                Part::Value(
                    placeholder(v)
                        .ok_or_else(|| {
                            TemplateError::Query(k.clone(), format!("{v:?} is not a {{value}}"))
                        })?
                        .to_owned(),
                )
            } else {
                Part::Literal(v.clone())
            };
            q.push((k.clone(), part));
        }
        Ok(Template { segments, query: q })
    }

    /// The value names the template uses.
    pub fn placeholders(&self) -> Vec<String> {
        self.segments
            .iter()
            .chain(self.query.iter().map(|(_, p)| p))
            .filter_map(|p| match p {
                Part::Value(n) => Some(n.clone()),
                Part::Literal(_) => None,
            })
            .collect()
    }

    /// Builds the URL under `base` (scheme, host, port and an optional
    /// fixed path prefix, as the operator configured and approved it).
    /// A query key whose value is absent is left out; a path value that is
    /// absent is an error.
    pub fn build(&self, base: &Url, values: &Map<String, Value>) -> Result<Url, TemplateError> {
        let mut path = base.path().trim_end_matches('/').to_owned();
        for seg in &self.segments {
            path.push('/');
            match seg {
                Part::Literal(l) => path.push_str(l),
                Part::Value(name) => {
                    let v =
                        values
                            .get(name)
                            .and_then(text_of)
                            .ok_or_else(|| TemplateError::Value {
                                name: name.clone(),
                                reason: "is required".into(),
                            })?;
                    check_segment_value(name, &v)?;
                    path.push_str(&encode_segment(&v));
                }
            }
        }
        if path.is_empty() {
            path.push('/');
        }
        let mut url = base.clone();
        url.set_path(&path);
        url.set_fragment(None);
        let mut pairs: Vec<(String, String)> = Vec::new();
        for (k, part) in &self.query {
            match part {
                Part::Literal(l) => pairs.push((k.clone(), l.clone())),
                Part::Value(name) => match values.get(name) {
                    None | Some(Value::Null) => {}
                    Some(v) => {
                        let text = text_of(v).ok_or_else(|| TemplateError::Value {
                            name: name.clone(),
                            reason: "must be a string, number or boolean".into(),
                        })?;
                        pairs.push((k.clone(), text));
                    }
                },
            }
        }
        if pairs.is_empty() {
            url.set_query(None);
        } else {
            url.query_pairs_mut().clear().extend_pairs(pairs);
        }
        self.check_structure(base, &url)?;
        Ok(url)
    }

    /// The built URL, parsed again, has the base's scheme, host and port
    /// and exactly the base's segments plus the template's.
    fn check_structure(&self, base: &Url, built: &Url) -> Result<(), TemplateError> {
        let again = Url::parse(built.as_str())
            .map_err(|e| TemplateError::Structure(format!("does not parse: {e}")))?;
        if again.scheme() != base.scheme()
            || again.host_str() != base.host_str()
            || again.port_or_known_default() != base.port_or_known_default()
            || !again.username().is_empty()
            || again.password().is_some()
            || again.fragment().is_some()
        {
            return Err(TemplateError::Structure("origin changed".into()));
        }
        let base_segments = base
            .path_segments()
            .map(|s| s.filter(|x| !x.is_empty()).count())
            .unwrap_or(0);
        let got: Vec<&str> = again
            .path_segments()
            .map(|s| s.collect())
            .unwrap_or_default();
        let want = base_segments + self.segments.len();
        let got_n = if self.segments.is_empty() && got == [""] {
            base_segments
        } else {
            got.len()
        };
        if got_n != want || got.iter().any(|s| *s == "." || *s == "..") {
            return Err(TemplateError::Structure(format!(
                "{got_n} path segments, the template has {want}"
            )));
        }
        Ok(())
    }
}

/// Checks an operator's base URL: `http` or `https`, a host, no user
/// info, query or fragment; an optional path prefix of literal segments.
pub fn parse_base(text: &str) -> Result<Url, TemplateError> {
    let bad = |m: &str| TemplateError::Base(text.to_owned(), m.to_owned());
    let url = Url::parse(text).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("the scheme must be https (or http)"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("needs a host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            "must not hold a user or password (store credentials with `integrations set-credential`)",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("must not hold a query or fragment"));
    }
    if let Some(segs) = url.path_segments() {
        for s in segs.filter(|s| !s.is_empty()) {
            if !literal_ok(s) {
                return Err(bad(&format!("path segment {s:?} is not a plain literal")));
            }
        }
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn t(path: &str, q: &[(&str, &str)]) -> Template {
        let q: BTreeMap<String, String> = q
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Template::parse(path, &q).unwrap()
    }

    #[test]
    fn values_fill_one_segment_and_hostile_ones_are_refused() {
        let base = parse_base("https://pve.lan:8006/").unwrap();
        let tpl = t("/api2/json/nodes/{node}/status", &[("type", "{kind}")]);
        let mut v = Map::new();
        v.insert("node".into(), json!("pve 1"));
        v.insert("kind".into(), json!("vm&x=1#y"));
        let url = tpl.build(&base, &v).unwrap();
        assert_eq!(url.host_str(), Some("pve.lan"));
        assert_eq!(url.path(), "/api2/json/nodes/pve%201/status");
        assert_eq!(url.query_pairs().count(), 1);
        assert_eq!(url.query_pairs().next().unwrap().1, "vm&x=1#y");
        for hostile in [
            "..", ".", "", "a/b", "a?b", "a#b", "%2e%2e", "%2F", "a\\b", "a\nb",
        ] {
            v.insert("node".into(), json!(hostile));
            assert!(tpl.build(&base, &v).is_err(), "{hostile:?}");
        }
        v.remove("node");
        assert!(
            tpl.build(&base, &v).is_err(),
            "a missing path value is an error"
        );
    }

    #[test]
    fn base_urls_are_checked() {
        assert!(parse_base("https://10.0.0.2:8006").is_ok());
        assert!(parse_base("http://127.0.0.1:9090/prometheus").is_ok());
        for bad in [
            "ftp://x",
            "https://user:pw@x",
            "https://x/?q=1",
            "https://x/#f",
            "file:///etc/passwd",
            "unix:/run/x",
            "https://x/a%2Fb",
        ] {
            assert!(parse_base(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        /// integration_request_templates_keep_scheme_host_port_and_path_structure
        #[test]
        fn integration_request_templates_keep_scheme_host_port_and_path_structure(
            a in any::<String>(),
            b in "[./?#%\\\\a-z0-9@:;=&+ \\-]{0,12}",
            q in any::<String>(),
            prefix in prop_oneof![Just(""), Just("/sub"), Just("/a/b")],
        ) {
            let base = parse_base(&format!("https://host.example:8443{prefix}")).unwrap();
            let tpl = t("/api/{a}/x/{b}", &[("q", "{q}"), ("fixed", "1")]);
            let mut v = Map::new();
            v.insert("a".into(), json!(a));
            v.insert("b".into(), json!(b));
            v.insert("q".into(), json!(q));
            if let Ok(url) = tpl.build(&base, &v) {
                let url = Url::parse(url.as_str()).unwrap();
                prop_assert_eq!(url.scheme(), "https");
                prop_assert_eq!(url.host_str(), Some("host.example"));
                prop_assert_eq!(url.port(), Some(8443));
                prop_assert!(url.fragment().is_none());
                let segs: Vec<String> = url.path_segments().unwrap().map(str::to_owned).collect();
                let pre: Vec<&str> = prefix.split('/').filter(|s| !s.is_empty()).collect();
                prop_assert_eq!(segs.len(), pre.len() + 4);
                prop_assert_eq!(&segs[pre.len()], "api");
                prop_assert_eq!(&segs[pre.len() + 2], "x");
                // Each value comes back whole from its own segment.
                let decode = |s: &str| {
                    let bytes = s.as_bytes();
                    let mut out = Vec::new();
                    let mut i = 0;
                    while i < bytes.len() {
                        if bytes[i] == b'%' {
                            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                            i += 3;
                        } else {
                            out.push(bytes[i]);
                            i += 1;
                        }
                    }
                    String::from_utf8(out).unwrap()
                };
                prop_assert_eq!(decode(&segs[pre.len() + 1]), a);
                prop_assert_eq!(decode(&segs[pre.len() + 3]), b);
                let pairs: Vec<(String, String)> = url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
                prop_assert_eq!(pairs.len(), 2);
                prop_assert!(pairs.contains(&("q".to_owned(), q.clone())));
                prop_assert!(pairs.contains(&("fixed".to_owned(), "1".to_owned())));
            } else {
                // Refused only for a reason the guarantee names.
                let bad = |s: &str| s.is_empty() || s == "." || s == ".." || s.len() > 512
                    || s.chars().any(|c| matches!(c, '/' | '\\' | '?' | '#' | '%') || c.is_control());
                prop_assert!(bad(&a) || bad(&b));
            }
        }
    }
}
