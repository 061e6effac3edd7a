//! Secret scrubbing: what leaves the machine never carries a secret.
//!
//! Rules are byte regexes (`assets/scrub-rules.toml`, plus the agent
//! config's own, plus the literal forms of the agent's own key), compiled
//! with Unicode off so that `.` and negated classes also cover bytes that
//! are not UTF-8: a secret with one invalid byte in it is still one match.
//!
//! A result is scrubbed **as one text**, never string by string
//! ([`Scrubber::scrub_value`]): every string of the result (object keys,
//! values, array items, and the bytes inside the `{"base64": …}` form of
//! [`PathBytes`]) is laid out in document order — array items and object
//! members on lines of their own, a key joined to its string value by `=` —
//! and the rules run over that whole text. A match is then cut back into
//! the pieces it covers, so a PEM block split over forty array items is
//! redacted from BEGIN to END, and `{"DB_PASSWORD": "hunter2"}` is caught
//! like `DB_PASSWORD=hunter2`. Bytes are scrubbed *before* they are encoded:
//! a redacted `{"base64": …}` item is re-encoded from the scrubbed bytes,
//! and any string that is itself standard base64 is decoded, scrubbed and
//! re-encoded as well.
//!
//! Handlers whose parameters filter, search or compare content run those
//! on scrubbed text ([`crate::SecretGuard::scrub`]), so a match that exists
//! only because of a secret is no match. Scrubbing is idempotent: text
//! inside a `[REDACTED:rule]` marker is never matched again, so a second
//! pass over scrubbed output changes and counts nothing.
//!
//! Speed: rules that start with a literal (`-----BEGIN`, `eyJ`, `AKIA`, …)
//! use the regex engine's own literal scan. A rule whose matches all
//! contain one of a few keywords says so (`keywords` in the rule file):
//! one case-insensitive Aho-Corasick pass finds the keywords, and the rule
//! runs only on the lines around them (the line before a hit to the third
//! line after it). Text without secrets costs those scans; see
//! `benches/scrub.rs` and docs/performance.md.

use aho_corasick::AhoCorasick;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use regex::bytes::{Regex, RegexBuilder};
use serde::Deserialize;
use serde_json::{Map, Value};
use sonde_protocol::path::PathBytes;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::ops::Range;

/// The default rule file, compiled in.
pub const DEFAULT_RULES: &str = include_str!("../../assets/scrub-rules.toml");

/// What a redaction leaves in place of the secret: `[REDACTED:<rule>]`.
pub const MARKER_PREFIX: &[u8] = b"[REDACTED:";

/// Name of the rule made from the agent's own secrets ([`Scrubber::with_own_secrets`]).
pub const OWN_SECRET_RULE: &str = "sonde_agent_secret";

/// How many redactions each rule made.
pub type Redactions = BTreeMap<String, u64>;

/// A rule as written in a rule file or the agent config.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    pub name: String,
    pub pattern: String,
    /// Words (ASCII, any case) that every match contains: the rule then
    /// runs only near them. Leave empty when unsure.
    #[serde(default)]
    pub keywords: Vec<String>,
}

/// Why a rule set could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScrubError {
    #[error("the built-in scrub rules do not parse: {0}")]
    Defaults(String),
    #[error("scrub rule {name:?}: {reason}")]
    Rule { name: String, reason: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    rules: Vec<RuleSpec>,
}

#[derive(Debug, Clone)]
struct Rule {
    name: String,
    regex: Regex,
    /// The rule's keywords, when it declares them.
    keywords: Option<AhoCorasick>,
    /// Indices of the groups named `redact…`: the first that took part in a
    /// match is what gets redacted (the whole match when none did).
    groups: Vec<usize>,
}

/// A compiled rule set.
#[derive(Debug, Clone)]
pub struct Scrubber {
    rules: Vec<Rule>,
}

/// Compiles a rule pattern the way every rule is compiled: bytes, Unicode off.
pub fn compile_rule(name: &str, pattern: &str) -> Result<Regex, ScrubError> {
    RegexBuilder::new(pattern)
        .unicode(false)
        .size_limit(8 << 20)
        .build()
        .map_err(|e| ScrubError::Rule {
            name: name.to_owned(),
            reason: e.to_string(),
        })
}

impl Scrubber {
    /// The default rules plus `extra`.
    pub fn new(extra: &[RuleSpec]) -> Result<Self, ScrubError> {
        let file: RuleFile =
            toml::from_str(DEFAULT_RULES).map_err(|e| ScrubError::Defaults(e.to_string()))?;
        Self::from_specs(file.rules.iter().chain(extra))
    }

    /// The default rules only (compiled once per process).
    pub fn default_rules() -> Self {
        Self::shared_defaults().as_ref().clone()
    }

    /// The default rules, shared (tools, tests and benchmarks that make
    /// many guards).
    pub fn shared_defaults() -> std::sync::Arc<Scrubber> {
        static DEFAULTS: std::sync::LazyLock<std::sync::Arc<Scrubber>> =
            std::sync::LazyLock::new(|| {
                // The defaults are compiled in and tested; failing here is a
                // build bug.
                #[allow(clippy::expect_used)]
                std::sync::Arc::new(Scrubber::new(&[]).expect("the built-in scrub rules compile"))
            });
        std::sync::Arc::clone(&DEFAULTS)
    }

    fn from_specs<'a>(specs: impl Iterator<Item = &'a RuleSpec>) -> Result<Self, ScrubError> {
        let mut rules = Vec::new();
        for spec in specs {
            if rules.iter().any(|r: &Rule| r.name == spec.name) {
                return Err(ScrubError::Rule {
                    name: spec.name.clone(),
                    reason: "the name is used twice".into(),
                });
            }
            let regex = compile_rule(&spec.name, &spec.pattern)?;
            let groups = regex
                .capture_names()
                .enumerate()
                .filter(|(_, n)| n.is_some_and(|n| n.starts_with("redact")))
                .map(|(i, _)| i)
                .collect();
            let keywords = if spec.keywords.is_empty() {
                None
            } else {
                Some(
                    AhoCorasick::builder()
                        .ascii_case_insensitive(true)
                        .build(&spec.keywords)
                        .map_err(|e| ScrubError::Rule {
                            name: spec.name.clone(),
                            reason: format!("keywords: {e}"),
                        })?,
                )
            };
            rules.push(Rule {
                name: spec.name.clone(),
                regex,
                keywords,
                groups,
            });
        }
        Ok(Scrubber { rules })
    }

    /// Adds a rule that redacts these exact byte strings wherever they
    /// appear (the agent's own key in every form it is stored or shown
    /// in). Literals shorter than 8 bytes are ignored: they would match
    /// innocent text.
    pub fn with_own_secrets(self, literals: &[Vec<u8>]) -> Result<Self, ScrubError> {
        let mut pattern = String::new();
        for lit in literals.iter().filter(|l| l.len() >= 8) {
            if !pattern.is_empty() {
                pattern.push('|');
            }
            for b in lit {
                let _ = write!(pattern, "\\x{b:02x}");
            }
        }
        if pattern.is_empty() {
            return Ok(self);
        }
        let mut rules = self.rules;
        rules.retain(|r| r.name != OWN_SECRET_RULE);
        rules.insert(
            0,
            Rule {
                name: OWN_SECRET_RULE.into(),
                regex: compile_rule(OWN_SECRET_RULE, &pattern)?,
                keywords: None,
                groups: Vec::new(),
            },
        );
        Ok(Scrubber { rules })
    }

    /// Times each rule alone over `text` (for the benchmark's report).
    #[doc(hidden)]
    pub fn time_rules(&self, text: &[u8]) -> Vec<(String, std::time::Duration)> {
        self.rules
            .iter()
            .map(|r| {
                let t = std::time::Instant::now();
                let n = r.regex.find_iter(text).count();
                std::hint::black_box(n);
                (r.name.clone(), t.elapsed())
            })
            .collect()
    }

    pub fn rule_names(&self) -> Vec<&str> {
        self.rules.iter().map(|r| r.name.as_str()).collect()
    }

    /// The merged spans to redact in `text`, each with the index of the
    /// rule that claims it (the one whose match starts first).
    fn spans(&self, text: &[u8]) -> Vec<(Range<usize>, usize)> {
        let markers = marker_ranges(text);
        let inside_marker =
            |r: &Range<usize>| markers.iter().any(|m| m.start <= r.start && r.end <= m.end);
        let mut spans: Vec<(Range<usize>, usize)> = Vec::new();
        for (i, rule) in self.rules.iter().enumerate() {
            let windows: Vec<Range<usize>> = match &rule.keywords {
                None => std::iter::once(0..text.len()).collect(),
                Some(ac) => keyword_windows(ac, text),
            };
            for window in windows {
                let base = window.start;
                let slice = &text[window];
                let mut push = |r: Range<usize>| {
                    let r = r.start + base..r.end + base;
                    if !r.is_empty() && !inside_marker(&r) {
                        spans.push((r, i));
                    }
                };
                if rule.groups.is_empty() {
                    rule.regex.find_iter(slice).for_each(|m| push(m.range()));
                } else {
                    for caps in rule.regex.captures_iter(slice) {
                        let m = rule.groups.iter().find_map(|g| caps.get(*g));
                        if let Some(m) = m.or_else(|| caps.get(0)) {
                            push(m.range());
                        }
                    }
                }
            }
        }
        if spans.is_empty() {
            return spans;
        }
        spans.sort_by(|a, b| {
            a.0.start
                .cmp(&b.0.start)
                .then(b.0.end.cmp(&a.0.end))
                .then(a.1.cmp(&b.1))
        });
        let mut merged: Vec<(Range<usize>, usize)> = Vec::with_capacity(spans.len());
        for (r, i) in spans {
            match merged.last_mut() {
                Some((last, _)) if r.start < last.end => last.end = last.end.max(r.end),
                _ => merged.push((r, i)),
            }
        }
        merged
    }

    fn count(&self, spans: &[(Range<usize>, usize)], counts: &mut Redactions) {
        for (_, i) in spans {
            *counts.entry(self.rules[*i].name.clone()).or_default() += 1;
        }
    }

    /// Scrubs one piece of text (bytes, any encoding); `None` when nothing
    /// was redacted.
    pub fn scrub_bytes(&self, text: &[u8], counts: &mut Redactions) -> Option<Vec<u8>> {
        let spans = self.spans(text);
        if spans.is_empty() {
            return None;
        }
        self.count(&spans, counts);
        Some(self.rewrite(text, 0..text.len(), &spans, false))
    }

    /// Scrubs text with the whole of it as context but line by line: a
    /// span that crosses lines (a PEM block) redacts its part of every line
    /// it touches, so the line count and every line's number stay as they
    /// were (searches report true line numbers). `None` when nothing was
    /// redacted.
    pub fn scrub_lines(&self, text: &[u8], counts: &mut Redactions) -> Option<Vec<u8>> {
        let spans = self.spans(text);
        if spans.is_empty() {
            return None;
        }
        self.count(&spans, counts);
        let utf8 = std::str::from_utf8(text).is_ok();
        let mut out = Vec::with_capacity(text.len());
        let mut start = 0usize;
        for line in text.split(|b| *b == b'\n') {
            let end = start + line.len();
            out.extend_from_slice(&self.rewrite(text, start..end, &spans, utf8));
            if end < text.len() {
                out.push(b'\n');
            }
            start = end + 1;
        }
        Some(out)
    }

    /// Scrubs one string; `None` when nothing was redacted.
    pub fn scrub_str(&self, text: &str, counts: &mut Redactions) -> Option<String> {
        let spans = self.spans(text.as_bytes());
        if spans.is_empty() {
            return None;
        }
        self.count(&spans, counts);
        let out = self.rewrite(text.as_bytes(), 0..text.len(), &spans, true);
        Some(String::from_utf8_lossy(&out).into_owned())
    }

    /// The bytes of `seg` (a range of `text`) with every span that touches
    /// it replaced by its marker. `utf8`: `seg` is valid UTF-8, and cuts
    /// are widened to character boundaries so it stays valid.
    fn rewrite(
        &self,
        text: &[u8],
        seg: Range<usize>,
        spans: &[(Range<usize>, usize)],
        utf8: bool,
    ) -> Vec<u8> {
        let piece = &text[seg.clone()];
        let mut out = Vec::with_capacity(piece.len());
        let mut at = 0usize;
        let first = spans.partition_point(|(r, _)| r.end <= seg.start);
        for (r, i) in &spans[first..] {
            if r.start >= seg.end {
                break;
            }
            let mut start = r.start.max(seg.start) - seg.start;
            let mut end = r.end.min(seg.end) - seg.start;
            if utf8 {
                while start > 0 && !is_char_start(piece[start]) {
                    start -= 1;
                }
                while end < piece.len() && !is_char_start(piece[end]) {
                    end += 1;
                }
            }
            if end <= at {
                // Widening already covered it.
                continue;
            }
            let start = start.max(at);
            out.extend_from_slice(&piece[at..start]);
            out.extend_from_slice(MARKER_PREFIX);
            out.extend_from_slice(self.rules[*i].name.as_bytes());
            out.push(b']');
            at = end;
        }
        out.extend_from_slice(&piece[at..]);
        out
    }

    /// Scrubs a whole result in place (see the module docs) and returns
    /// the counts.
    pub fn scrub_value(&self, value: &mut Value) -> Redactions {
        let mut counts = Redactions::new();
        let mut layout = Layout::default();
        layout.collect(value);
        let spans = self.spans(&layout.text);
        self.count(&spans, &mut counts);
        let mut index = 0usize;
        self.apply(value, &layout, &spans, &mut index, &mut counts);
        counts
    }

    fn replacement(
        &self,
        layout: &Layout,
        spans: &[(Range<usize>, usize)],
        index: usize,
    ) -> Option<Vec<u8>> {
        let seg = layout.segments.get(index)?;
        let first = spans.partition_point(|(r, _)| r.end <= seg.range.start);
        let touched = spans
            .get(first)
            .is_some_and(|(r, _)| r.start < seg.range.end && seg.range.start < r.end);
        touched.then(|| {
            self.rewrite(
                &layout.text,
                seg.range.clone(),
                spans,
                seg.kind != SegmentKind::Bytes,
            )
        })
    }

    fn apply(
        &self,
        value: &mut Value,
        layout: &Layout,
        spans: &[(Range<usize>, usize)],
        index: &mut usize,
        counts: &mut Redactions,
    ) {
        match value {
            Value::String(s) => {
                let mine = *index;
                *index += 1;
                if let Some(new) = self.replacement(layout, spans, mine) {
                    *s = String::from_utf8_lossy(&new).into_owned();
                } else if let Some(clean) = self.scrub_base64(s, counts) {
                    *s = clean;
                }
            }
            Value::Object(map) if bytes_form(map).is_some() => {
                let mine = *index;
                *index += 1;
                if let Some(new) = self.replacement(layout, spans, mine) {
                    *value = PathBytes(new).to_json();
                }
            }
            Value::Object(map) => {
                let old = std::mem::take(map);
                for (key, mut item) in old {
                    let key_index = *index;
                    *index += 1;
                    self.apply(&mut item, layout, spans, index, counts);
                    let key = match self.replacement(layout, spans, key_index) {
                        Some(new) => unique_key(map, String::from_utf8_lossy(&new).into_owned()),
                        None => key,
                    };
                    map.insert(key, item);
                }
            }
            Value::Array(items) => items
                .iter_mut()
                .for_each(|v| self.apply(v, layout, spans, index, counts)),
            _ => {}
        }
    }

    /// A string that is itself standard base64 (at least 16 characters):
    /// its decoded bytes scrubbed and re-encoded, if anything was redacted.
    fn scrub_base64(&self, s: &str, counts: &mut Redactions) -> Option<String> {
        if !looks_base64(s) {
            return None;
        }
        let bytes = B64.decode(s).ok()?;
        let clean = self.scrub_bytes(&bytes, counts)?;
        Some(B64.encode(clean))
    }
}

/// The stretches of `text` where a keyword rule may match: from the start
/// of the line before each keyword hit to the end of the third line after
/// the line where its value can start, overlapping stretches merged.
///
/// A match may run from the keyword over the rest of its name, then blank space (newlines too),
/// quotes, backslashes, `=` and `:` to its value (`password \n=\n x`), so
/// lines are counted from the first byte after that run. Linear in the
/// text: hits whose values start on the same line share one count.
fn keyword_windows(ac: &AhoCorasick, text: &[u8]) -> Vec<Range<usize>> {
    let filler = |b: u8| {
        matches!(
            b,
            b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c | b'\\' | b'"' | b'\'' | b':' | b'='
        )
    };
    let mut out: Vec<Range<usize>> = Vec::new();
    // (where the previous hit's value may start, its window's end)
    let mut previous: Option<(usize, usize)> = None;
    for hit in ac.find_iter(text) {
        // The rest of the name (the hit may be an earlier keyword inside
        // it, `_PASS` in `DB_PASSWORD`), then the run before the value.
        let mut from = hit.end();
        while from < text.len()
            && (text[from].is_ascii_alphanumeric() || b"_.-".contains(&text[from]))
        {
            from += 1;
        }
        while from < text.len() && filler(text[from]) {
            from += 1;
        }
        let end = match previous {
            Some((p, e)) if p <= from && memchr::memchr(b'\n', &text[p..from]).is_none() => e,
            _ => end_of_fourth_line(text, from),
        };
        previous = Some((from, end));
        if let Some(w) = out.last_mut().filter(|w| hit.start() <= w.end) {
            w.end = w.end.max(end);
            continue;
        }
        let mut start = memchr::memrchr(b'\n', &text[..hit.start()]).unwrap_or(0);
        if start > 0 {
            start = memchr::memrchr(b'\n', &text[..start]).map_or(0, |p| p + 1);
        }
        match out.last_mut() {
            Some(w) if start <= w.end => w.end = w.end.max(end),
            _ => out.push(start..end),
        }
    }
    out
}

/// The end of the fourth line that starts at or before `from` (the line
/// holding `from` and three more), or the end of the text.
fn end_of_fourth_line(text: &[u8], from: usize) -> usize {
    let mut end = from;
    for _ in 0..4 {
        match memchr::memchr(b'\n', &text[end..]) {
            Some(p) => end += p + 1,
            None => return text.len(),
        }
    }
    end
}

fn is_char_start(b: u8) -> bool {
    (b as i8) >= -0x40
}

/// Standard-alphabet base64 with correct padding, at least 16 characters.
fn looks_base64(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 16 || !b.len().is_multiple_of(4) {
        return false;
    }
    let body = s.trim_end_matches('=');
    b.len() - body.len() <= 2
        && body
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'+' || c == b'/')
}

/// `{"base64": …}` or `{"base64": …, "display": …}` (the [`PathBytes`]
/// form for bytes that are not UTF-8): the bytes it carries.
fn bytes_form(map: &Map<String, Value>) -> Option<Vec<u8>> {
    if map.len() > 2 || map.keys().any(|k| k != "base64" && k != "display") {
        return None;
    }
    B64.decode(map.get("base64")?.as_str()?).ok()
}

fn unique_key(map: &Map<String, Value>, key: String) -> String {
    if !map.contains_key(&key) {
        return key;
    }
    (2..)
        .map(|n| format!("{key}#{n}"))
        .find(|k| !map.contains_key(k))
        .unwrap_or(key)
}

/// Ranges of well-formed markers (`[REDACTED:name]`) in `text`.
fn marker_ranges(text: &[u8]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    for start in memchr::memmem::find_iter(text, MARKER_PREFIX) {
        let rest = &text[start + MARKER_PREFIX.len()..];
        let name_len = rest
            .iter()
            .take(65)
            .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_' || **b == b'-')
            .count();
        if name_len > 0 && rest.get(name_len) == Some(&b']') {
            out.push(start..start + MARKER_PREFIX.len() + name_len + 1);
        }
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SegmentKind {
    /// A JSON string (valid UTF-8).
    Text,
    /// The bytes of a `{"base64": …}` item.
    Bytes,
}

#[derive(Debug)]
struct Segment {
    range: Range<usize>,
    kind: SegmentKind,
}

/// A result laid out as one text (see the module docs).
#[derive(Debug, Default)]
struct Layout {
    text: Vec<u8>,
    segments: Vec<Segment>,
}

impl Layout {
    fn push(&mut self, bytes: &[u8], kind: SegmentKind) {
        let start = self.text.len();
        self.text.extend_from_slice(bytes);
        self.segments.push(Segment {
            range: start..self.text.len(),
            kind,
        });
    }

    /// Walks `value` in the same order as [`Scrubber::apply`].
    fn collect(&mut self, value: &Value) {
        match value {
            Value::String(s) => {
                self.push(s.as_bytes(), SegmentKind::Text);
                self.text.push(b'\n');
            }
            Value::Object(map) => {
                if let Some(bytes) = bytes_form(map) {
                    self.push(&bytes, SegmentKind::Bytes);
                    self.text.push(b'\n');
                    return;
                }
                for (key, item) in map {
                    self.push(key.as_bytes(), SegmentKind::Text);
                    let joined = match item {
                        Value::String(_) => true,
                        Value::Object(m) => bytes_form(m).is_some(),
                        _ => false,
                    };
                    self.text.push(if joined { b'=' } else { b'\n' });
                    self.collect(item);
                }
            }
            Value::Array(items) => items.iter().for_each(|v| self.collect(v)),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests;
