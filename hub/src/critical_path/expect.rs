//! The expectation language of critical-path checks: a JSON pointer into
//! the probe's result, an operator and (for most operators) a JSON value.
//!
//! Text form: `<pointer> <op> [<value>]`, e.g. `/active == true`,
//! `/load/one < 4`, `/pools/*/health == "ONLINE"`, `/failed_units empty`,
//! `/version matches "^2\\."`. The pointer is RFC 6901 (`~1` is `/`, `~0`
//! is `~`; the empty pointer is the whole result) with one addition: a
//! segment `*` stands for every element of an array or every value of an
//! object (`~2` is a literal `*` key). A pointer with spaces is written as
//! a JSON string (`"/a b" exists`). The value is JSON: strings are quoted.
//!
//! | op | value | passes when |
//! |---|---|---|
//! | `exists` | — | something is at the pointer |
//! | `absent` | — | nothing is at the pointer |
//! | `==`, `!=` | any JSON | equal / not equal (numbers by value: `1 == 1.0`) |
//! | `<`, `<=`, `>`, `>=` | number | the value is a number and compares so |
//! | `contains`, `!contains` | any JSON | a string holds the substring, an array an equal element, an object the key |
//! | `matches` | string (regex) | the value is a string the regex finds a match in |
//! | `empty`, `!empty` | — | the string, array or object is (not) empty |
//!
//! With `*`, every value the pointer reaches must pass (and at least one
//! must be reached), except `exists` (at least one) and `absent` (none).
//! Everything is checked when the path is defined, so a run never meets a
//! malformed expectation.

use regex::Regex;
use serde_json::Value;
use sonde_admin::api::ExpectationDef;
use std::fmt;

/// Longest expectation text, pointer, value (bytes).
const MAX_TEXT: usize = 4096;
/// Most segments in a pointer.
const MAX_SEGMENTS: usize = 32;
/// Compiled regex size limit.
const REGEX_SIZE: usize = 1 << 20;
/// Longest actual value shown as evidence (characters of its JSON).
const EVIDENCE_CHARS: usize = 256;

/// Why an expectation is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpectError {
    #[error("empty expectation; write `<pointer> <op> [<value>]`, e.g. `/active == true`")]
    Empty,
    #[error("expectation longer than {MAX_TEXT} bytes")]
    TooLong,
    #[error("pointer {0:?} must be empty or start with `/` (RFC 6901), e.g. `/status`")]
    PointerStart(String),
    #[error(
        "pointer {pointer:?}: bad escape `~{after}` (use ~0 for `~`, ~1 for `/`, ~2 for a literal `*`)"
    )]
    PointerEscape { pointer: String, after: String },
    #[error("pointer {0:?} has more than {MAX_SEGMENTS} segments")]
    PointerDepth(String),
    #[error("pointer written as a JSON string is not valid JSON: {0}")]
    PointerString(String),
    #[error("missing operator after {0:?}; one of: {ops}", ops = Op::ALL_TEXT)]
    MissingOp(String),
    #[error("unknown operator {0:?}; one of: {ops}", ops = Op::ALL_TEXT)]
    UnknownOp(String),
    #[error("operator `{0}` takes no value (found {1:?})")]
    UnexpectedValue(Op, String),
    #[error("operator `{0}` needs a value")]
    MissingValue(Op),
    #[error("value {text:?} is not JSON ({error}); quote strings: \"active\"")]
    BadValue { text: String, error: String },
    #[error("operator `{0}` compares numbers; {1} is not a number")]
    NotNumber(Op, String),
    #[error("operator `matches` needs a string (a regex), not {0}")]
    NotPattern(String),
    #[error("regex {pattern:?} is invalid: {error}")]
    BadRegex { pattern: String, error: String },
}

/// An operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Exists,
    Absent,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Contains,
    NotContains,
    Matches,
    Empty,
    NotEmpty,
}

impl Op {
    pub const ALL: [Op; 13] = [
        Op::Exists,
        Op::Absent,
        Op::Eq,
        Op::Ne,
        Op::Lt,
        Op::Le,
        Op::Gt,
        Op::Ge,
        Op::Contains,
        Op::NotContains,
        Op::Matches,
        Op::Empty,
        Op::NotEmpty,
    ];
    const ALL_TEXT: &'static str =
        "exists, absent, ==, !=, <, <=, >, >=, contains, !contains, matches, empty, !empty";

    pub fn as_str(self) -> &'static str {
        match self {
            Op::Exists => "exists",
            Op::Absent => "absent",
            Op::Eq => "==",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Contains => "contains",
            Op::NotContains => "!contains",
            Op::Matches => "matches",
            Op::Empty => "empty",
            Op::NotEmpty => "!empty",
        }
    }

    pub fn parse(text: &str) -> Result<Op, ExpectError> {
        Op::ALL
            .into_iter()
            .find(|o| o.as_str() == text)
            .ok_or_else(|| ExpectError::UnknownOp(text.to_owned()))
    }

    fn takes_value(self) -> bool {
        !matches!(self, Op::Exists | Op::Absent | Op::Empty | Op::NotEmpty)
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One segment of a pointer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Key(String),
    Any,
}

/// A parsed pointer (RFC 6901 plus `*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pointer {
    segments: Vec<Segment>,
}

impl Pointer {
    pub fn parse(text: &str) -> Result<Pointer, ExpectError> {
        if text.is_empty() {
            return Ok(Pointer { segments: vec![] });
        }
        let Some(rest) = text.strip_prefix('/') else {
            return Err(ExpectError::PointerStart(text.to_owned()));
        };
        let mut segments = Vec::new();
        for raw in rest.split('/') {
            if segments.len() == MAX_SEGMENTS {
                return Err(ExpectError::PointerDepth(text.to_owned()));
            }
            if raw == "*" {
                segments.push(Segment::Any);
                continue;
            }
            let mut key = String::with_capacity(raw.len());
            let mut chars = raw.chars();
            while let Some(c) = chars.next() {
                if c != '~' {
                    key.push(c);
                    continue;
                }
                match chars.next() {
                    Some('0') => key.push('~'),
                    Some('1') => key.push('/'),
                    Some('2') => key.push('*'),
                    other => {
                        return Err(ExpectError::PointerEscape {
                            pointer: text.to_owned(),
                            after: other.map(String::from).unwrap_or_default(),
                        });
                    }
                }
            }
            segments.push(Segment::Key(key));
        }
        Ok(Pointer { segments })
    }

    /// The pointer's text (canonical escapes).
    pub fn render(&self) -> String {
        let mut out = String::new();
        for s in &self.segments {
            out.push('/');
            match s {
                Segment::Any => out.push('*'),
                Segment::Key(k) => {
                    for c in k.chars() {
                        match c {
                            '~' => out.push_str("~0"),
                            '/' => out.push_str("~1"),
                            '*' => out.push_str("~2"),
                            c => out.push(c),
                        }
                    }
                }
            }
        }
        out
    }

    /// Every value the pointer reaches, with its concrete pointer.
    pub fn resolve<'a>(&self, root: &'a Value) -> Vec<(String, &'a Value)> {
        let mut found = vec![(String::new(), root)];
        for seg in &self.segments {
            let mut next = Vec::new();
            for (at, v) in found {
                match (seg, v) {
                    (Segment::Key(k), Value::Object(m)) => {
                        if let Some(x) = m.get(k) {
                            next.push((format!("{at}/{}", escape(k)), x));
                        }
                    }
                    (Segment::Key(k), Value::Array(a)) => {
                        if let Some(x) = index(k).and_then(|i| a.get(i)) {
                            next.push((format!("{at}/{k}"), x));
                        }
                    }
                    (Segment::Any, Value::Object(m)) => {
                        next.extend(m.iter().map(|(k, x)| (format!("{at}/{}", escape(k)), x)));
                    }
                    (Segment::Any, Value::Array(a)) => {
                        next.extend(a.iter().enumerate().map(|(i, x)| (format!("{at}/{i}"), x)));
                    }
                    _ => {}
                }
            }
            found = next;
        }
        found
    }

    fn has_wildcard(&self) -> bool {
        self.segments.contains(&Segment::Any)
    }
}

fn escape(k: &str) -> String {
    k.replace('~', "~0").replace('/', "~1").replace('*', "~2")
}

/// An RFC 6901 array index: `0` or digits without a leading zero.
fn index(k: &str) -> Option<usize> {
    if k.is_empty() || (k.len() > 1 && k.starts_with('0')) || !k.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    k.parse().ok()
}

/// A validated expectation.
#[derive(Debug, Clone)]
pub struct Expectation {
    pub pointer: Pointer,
    pub op: Op,
    pub value: Option<Value>,
    regex: Option<Regex>,
}

impl PartialEq for Expectation {
    fn eq(&self, other: &Self) -> bool {
        self.pointer == other.pointer && self.op == other.op && self.value == other.value
    }
}

/// Why an expectation failed on a result (evidence for the report).
#[derive(Debug, Clone, PartialEq)]
pub struct Miss {
    /// The concrete pointer that failed (with `*` resolved), or the
    /// pointer as written when nothing was there.
    pub at: String,
    /// The value found there (shortened), `None` when nothing was.
    pub actual: Option<Value>,
    pub reason: String,
}

impl Expectation {
    /// Builds and checks one expectation.
    pub fn new(pointer: &str, op: Op, value: Option<Value>) -> Result<Expectation, ExpectError> {
        if pointer.len() > MAX_TEXT {
            return Err(ExpectError::TooLong);
        }
        let pointer = Pointer::parse(pointer)?;
        match (&value, op.takes_value()) {
            (Some(v), false) => return Err(ExpectError::UnexpectedValue(op, v.to_string())),
            (None, true) => return Err(ExpectError::MissingValue(op)),
            _ => {}
        }
        if let Some(v) = &value
            && v.to_string().len() > MAX_TEXT
        {
            return Err(ExpectError::TooLong);
        }
        if matches!(op, Op::Lt | Op::Le | Op::Gt | Op::Ge)
            && !value.as_ref().is_some_and(Value::is_number)
        {
            return Err(ExpectError::NotNumber(
                op,
                value.map(|v| v.to_string()).unwrap_or_default(),
            ));
        }
        let regex = if op == Op::Matches {
            let Some(Value::String(pattern)) = &value else {
                return Err(ExpectError::NotPattern(
                    value.map(|v| v.to_string()).unwrap_or_default(),
                ));
            };
            Some(
                regex::RegexBuilder::new(pattern)
                    .size_limit(REGEX_SIZE)
                    .build()
                    .map_err(|e| ExpectError::BadRegex {
                        pattern: pattern.clone(),
                        error: e.to_string(),
                    })?,
            )
        } else {
            None
        };
        Ok(Expectation {
            pointer,
            op,
            value,
            regex,
        })
    }

    /// Parses the text form.
    pub fn parse(text: &str) -> Result<Expectation, ExpectError> {
        if text.len() > MAX_TEXT {
            return Err(ExpectError::TooLong);
        }
        let text = text.trim();
        if text.is_empty() {
            return Err(ExpectError::Empty);
        }
        let (pointer, rest) = if text.starts_with('"') {
            // A JSON string, then the rest.
            let mut de = serde_json::Deserializer::from_str(text).into_iter::<String>();
            let p = match de.next() {
                Some(Ok(p)) => p,
                Some(Err(e)) => return Err(ExpectError::PointerString(e.to_string())),
                None => return Err(ExpectError::Empty),
            };
            let used = de.byte_offset();
            (p, &text[used..])
        } else {
            let end = text.find(char::is_whitespace).unwrap_or(text.len());
            (text[..end].to_owned(), &text[end..])
        };
        let rest = rest.trim_start();
        if rest.is_empty() {
            return Err(ExpectError::MissingOp(pointer));
        }
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let op = Op::parse(&rest[..end])?;
        let value_text = rest[end..].trim();
        let value = if value_text.is_empty() {
            None
        } else {
            if !op.takes_value() {
                return Err(ExpectError::UnexpectedValue(op, value_text.to_owned()));
            }
            Some(
                serde_json::from_str::<Value>(value_text).map_err(|e| ExpectError::BadValue {
                    text: value_text.to_owned(),
                    error: e.to_string(),
                })?,
            )
        };
        Expectation::new(&pointer, op, value)
    }

    /// Either written form.
    pub fn from_def(def: &ExpectationDef) -> Result<Expectation, ExpectError> {
        match def {
            ExpectationDef::Text(t) => Expectation::parse(t),
            ExpectationDef::Parts { at, op, value } => {
                Expectation::new(at, Op::parse(op)?, value.clone())
            }
        }
    }

    /// The canonical text form (parses back to an equal expectation).
    pub fn render(&self) -> String {
        let p = self.pointer.render();
        let needs_quotes = p.is_empty() || p.contains(char::is_whitespace) || p.starts_with('"');
        let p = if needs_quotes {
            serde_json::to_string(&p).unwrap_or_default()
        } else {
            p
        };
        match &self.value {
            Some(v) => format!("{p} {} {v}", self.op),
            None => format!("{p} {}", self.op),
        }
    }

    /// Checks a result; `Err` says where and why it failed.
    pub fn check(&self, result: &Value) -> Result<(), Miss> {
        let found = self.pointer.resolve(result);
        let written = self.pointer.render();
        match self.op {
            Op::Exists => {
                return if found.is_empty() {
                    Err(Miss {
                        at: written,
                        actual: None,
                        reason: "nothing is there".into(),
                    })
                } else {
                    Ok(())
                };
            }
            Op::Absent => {
                return match found.first() {
                    None => Ok(()),
                    Some((at, v)) => Err(Miss {
                        at: at.clone(),
                        actual: Some(shorten(v)),
                        reason: "expected nothing there".into(),
                    }),
                };
            }
            _ => {}
        }
        if found.is_empty() {
            return Err(Miss {
                at: written,
                actual: None,
                reason: if self.pointer.has_wildcard() {
                    "the pointer reaches no value".into()
                } else {
                    "nothing is there".into()
                },
            });
        }
        for (at, v) in found {
            if let Err(reason) = self.holds(v) {
                return Err(Miss {
                    at,
                    actual: Some(shorten(v)),
                    reason,
                });
            }
        }
        Ok(())
    }

    /// Whether one value passes (`Err` gives the reason it does not).
    fn holds(&self, v: &Value) -> Result<(), String> {
        let expected = self.value.as_ref().unwrap_or(&Value::Null);
        let ok = match self.op {
            Op::Exists | Op::Absent => true,
            Op::Eq => json_eq(v, expected),
            Op::Ne => !json_eq(v, expected),
            Op::Lt | Op::Le | Op::Gt | Op::Ge => {
                let (Some(a), Some(b)) = (v.as_f64(), expected.as_f64()) else {
                    return Err(format!("{} is not a number", kind(v)));
                };
                match self.op {
                    Op::Lt => a < b,
                    Op::Le => a <= b,
                    Op::Gt => a > b,
                    _ => a >= b,
                }
            }
            Op::Contains | Op::NotContains => {
                let has = match (v, expected) {
                    (Value::String(s), Value::String(sub)) => s.contains(sub.as_str()),
                    (Value::Array(items), x) => items.iter().any(|i| json_eq(i, x)),
                    (Value::Object(m), Value::String(k)) => m.contains_key(k),
                    _ => {
                        return Err(format!("{} cannot contain {}", kind(v), kind(expected)));
                    }
                };
                has == (self.op == Op::Contains)
            }
            Op::Matches => match (v, &self.regex) {
                (Value::String(s), Some(re)) => re.is_match(s),
                _ => return Err(format!("{} is not a string", kind(v))),
            },
            Op::Empty | Op::NotEmpty => {
                let empty = match v {
                    Value::String(s) => s.is_empty(),
                    Value::Array(a) => a.is_empty(),
                    Value::Object(m) => m.is_empty(),
                    _ => return Err(format!("{} has no length", kind(v))),
                };
                empty == (self.op == Op::Empty)
            }
        };
        if ok {
            Ok(())
        } else {
            Err(format!("expected {}", self.render_op_value()))
        }
    }

    fn render_op_value(&self) -> String {
        match &self.value {
            Some(v) => format!("{} {v}", self.op),
            None => self.op.to_string(),
        }
    }
}

impl fmt::Display for Expectation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render())
    }
}

fn kind(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(_) => "a string".into(),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

/// JSON equality with numbers compared by value (`1 == 1.0`).
pub fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if let (Some(x), Some(y)) = (x.as_i64(), y.as_i64()) {
                x == y
            } else if let (Some(x), Some(y)) = (x.as_u64(), y.as_u64()) {
                x == y
            } else {
                x.as_f64() == y.as_f64()
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

/// A value for evidence: short ones whole, long ones as a cut JSON text.
pub fn shorten(v: &Value) -> Value {
    let text = v.to_string();
    if text.chars().count() <= EVIDENCE_CHARS {
        v.clone()
    } else {
        let cut: String = text.chars().take(EVIDENCE_CHARS).collect();
        Value::String(format!("{cut}… ({} bytes of JSON)", text.len()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn check(text: &str, v: &Value) -> Result<(), Miss> {
        Expectation::parse(text).unwrap().check(v)
    }

    #[test]
    fn every_operator_passes_and_fails_where_it_should() {
        let v = json!({"active": true, "load": {"one": 0.5}, "name": "nas-01",
            "units": [], "pools": [{"health": "ONLINE"}, {"health": "DEGRADED"}],
            "tags": ["a", "b"], "n": 3, "a/b": 1, "x y": 2});
        let pass = [
            "/active == true",
            "/active exists",
            "/missing absent",
            "/n == 3.0",
            "/n != 4",
            "/load/one < 1",
            "/load/one <= 0.5",
            "/n > 2",
            "/n >= 3",
            "/name contains \"nas\"",
            "/tags contains \"b\"",
            "/load contains \"one\"",
            "/tags !contains \"c\"",
            "/name matches \"^nas-\\\\d+$\"",
            "/units empty",
            "/tags !empty",
            "/pools/0/health == \"ONLINE\"",
            "/pools/*/health exists",
            "/pools/*/health matches \"^[A-Z]+$\"",
            "/pools/*/missing absent",
            "/a~1b == 1",
            "\"/x y\" == 2",
            "\"\" exists",
        ];
        for t in pass {
            assert_eq!(check(t, &v), Ok(()), "{t}");
        }
        let fail = [
            ("/active == false", "/active", "expected == false"),
            (
                "/pools/*/health == \"ONLINE\"",
                "/pools/1/health",
                "expected",
            ),
            ("/name < 3", "/name", "not a number"),
            ("/nothing == 1", "/nothing", "nothing is there"),
            ("/pools/*/nope == 1", "/pools/*/nope", "reaches no value"),
            ("/n absent", "/n", "expected nothing"),
            ("/units !empty", "/units", "expected !empty"),
            ("/n empty", "/n", "has no length"),
            ("/n matches \"3\"", "/n", "not a string"),
            ("/pools/5 exists", "/pools/5", "nothing"),
            ("/pools/01 exists", "/pools/01", "nothing"),
        ];
        for (t, at, why) in fail {
            let miss = check(t, &v).unwrap_err();
            assert_eq!(miss.at, at, "{t}");
            assert!(miss.reason.contains(why), "{t}: {}", miss.reason);
        }
        let miss = check("/pools/*/health == \"ONLINE\"", &v).unwrap_err();
        assert_eq!(miss.actual, Some(json!("DEGRADED")));
    }

    #[test]
    fn malformed_expectations_are_refused_with_what_to_write() {
        let cases = [
            ("", "empty expectation"),
            ("active == true", "must be empty or start with `/`"),
            ("/a", "missing operator"),
            ("/a = 1", "unknown operator \"=\""),
            ("/a exists 1", "takes no value"),
            ("/a ==", "needs a value"),
            ("/a == active", "quote strings"),
            ("/a < \"3\"", "compares numbers"),
            ("/a matches 3", "needs a string"),
            ("/a matches \"(\"", "regex \"(\" is invalid"),
            ("/a~3 exists", "bad escape"),
            ("\"/a exists", "not valid JSON"),
        ];
        for (t, why) in cases {
            let e = Expectation::parse(t).unwrap_err().to_string();
            assert!(e.contains(why), "{t:?}: {e}");
        }
        let deep = format!("{} exists", "/a".repeat(40));
        assert!(matches!(
            Expectation::parse(&deep),
            Err(ExpectError::PointerDepth(_))
        ));
        assert!(matches!(
            Expectation::parse(&"x".repeat(5000)),
            Err(ExpectError::TooLong)
        ));
        let parts = ExpectationDef::Parts {
            at: "/a".into(),
            op: "<".into(),
            value: Some(json!("x")),
        };
        assert!(Expectation::from_def(&parts).is_err());
    }

    fn arb_key() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z_]{1,6}",
            "[ -~]{0,6}",
            Just("*".to_owned()),
            "\\PC{0,4}"
        ]
    }

    fn arb_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            (-1e9f64..1e9).prop_map(|n| json!(n)),
            "\\PC{0,8}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-z]{1,3}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Any text either parses or is refused with an error: never a panic.
        #[test]
        fn any_text_parses_or_is_refused(text in "\\PC{0,64}") {
            let _ = Expectation::parse(&text);
        }

        /// Texts shaped like expectations: the canonical rendering parses
        /// back to the same expectation, and rendering is stable.
        #[test]
        fn rendering_round_trips(
            keys in prop::collection::vec(arb_key(), 0..4),
            wild in prop::collection::vec(any::<bool>(), 4),
            op in prop::sample::select(Op::ALL.to_vec()),
            value in arb_value(),
        ) {
            let pointer: String = keys
                .iter()
                .zip(&wild)
                .map(|(k, w)| if *w { "/*".to_owned() } else { format!("/{}", escape(k)) })
                .collect();
            let value = if op.takes_value() {
                match op {
                    Op::Lt | Op::Le | Op::Gt | Op::Ge => Some(json!(value.as_f64().unwrap_or(1.5))),
                    Op::Matches => Some(json!(value.as_str().map(regex::escape).unwrap_or_default())),
                    _ => Some(value),
                }
            } else {
                None
            };
            let e = Expectation::new(&pointer, op, value).unwrap();
            let text = e.render();
            let back = Expectation::parse(&text).unwrap();
            prop_assert_eq!(&back, &e, "{}", text);
            prop_assert_eq!(back.render(), text);
        }

        /// Checking never panics, and `==` agrees with `!=`, `exists` with
        /// `absent` on a pointer without `*`.
        #[test]
        fn checks_are_total_and_consistent(doc in arb_value(), key in "[a-z]{1,3}", value in arb_value()) {
            let p = format!("/{key}");
            let eq = Expectation::new(&p, Op::Eq, Some(value.clone())).unwrap().check(&doc);
            let ne = Expectation::new(&p, Op::Ne, Some(value)).unwrap().check(&doc);
            let exists = Expectation::new(&p, Op::Exists, None).unwrap().check(&doc);
            let absent = Expectation::new(&p, Op::Absent, None).unwrap().check(&doc);
            prop_assert_ne!(exists.is_ok(), absent.is_ok());
            if exists.is_ok() {
                prop_assert_ne!(eq.is_ok(), ne.is_ok());
            } else {
                prop_assert!(eq.is_err() && ne.is_err());
            }
        }
    }
}
