//! Parameter schemas for probes, and the validation every request goes through.
//!
//! A probe declares its parameters in its pack manifest; the hub validates
//! requests against the same schema before sending them, and the agent
//! validates again before running anything (it never trusts the hub's check).
//! A validation error names the parameter and the rule it broke.
//!
//! In a manifest (TOML) a parameter looks like:
//!
//! ```toml
//! [[probes.params]]
//! name = "dataset"
//! type = "dataset"          # string | integer | boolean | relative_path | string_list | a named format
//! required = true
//! description = "Dataset to list, e.g. tank/home"
//! ```
//!
//! with per-type rules: `max_len`, `pattern` (a regex the *whole* value must
//! match) and `values` (an enum) for strings and string lists; `min`/`max`
//! for integers; `max_len` for paths; `max_items` for lists.
//!
//! **Named formats** ([`NAMED_FORMATS`]) are the one extension point: a
//! string type a pack needs under a name of its own (`dataset`,
//! `snapshot` for the zfs pack), defined by generic rules only — a length,
//! a whole-value pattern, and separators whose components may not be
//! empty, `.` or `..`. Hub and agent resolve the name from the same table,
//! so the wire keeps the short name and both sides check the same rules.
//! Adding one is adding a row (with a test); the validation code knows no
//! pack.

use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use crate::path::{PathBytes, RelativePath};

/// Default longest string parameter.
pub const DEFAULT_STRING_MAX: usize = 256;
/// Default longest relative path parameter, in bytes.
pub const DEFAULT_PATH_MAX: usize = 4096;
/// Default longest list parameter.
pub const DEFAULT_LIST_MAX: usize = 32;
/// A string type known by name (see the module documentation): generic
/// rules under a name a pack's manifest uses as a parameter type.
#[derive(Debug)]
pub struct NamedFormat {
    /// The type name in manifests and on the wire.
    pub name: &'static str,
    /// What it is, for people (form hints, error messages).
    pub summary: &'static str,
    /// Longest value, in bytes.
    pub max_len: usize,
    /// Regex (JSON Schema form, anchored) the whole value must match.
    pub pattern: &'static str,
    /// Characters that split the value into components; no component may
    /// be empty, `.` or `..`.
    pub separators: &'static str,
    /// The pack it was added for.
    pub added_for: &'static str,
}

/// A pool or dataset name as ZFS allows it (ZFS's own 255-byte limit).
pub const DATASET: NamedFormat = NamedFormat {
    name: "dataset",
    summary: "ZFS dataset",
    max_len: 255,
    pattern: "^[A-Za-z0-9_][A-Za-z0-9_.:/-]*$",
    separators: "/",
    added_for: "zfs",
};

/// `dataset@snapshot`.
pub const SNAPSHOT: NamedFormat = NamedFormat {
    name: "snapshot",
    summary: "ZFS snapshot (dataset@snap)",
    max_len: 255,
    pattern: "^[A-Za-z0-9_][A-Za-z0-9_.:/-]*@[A-Za-z0-9_][A-Za-z0-9_.:-]*$",
    separators: "/@",
    added_for: "zfs",
};

/// Every named format.
pub const NAMED_FORMATS: &[&NamedFormat] = &[&DATASET, &SNAPSHOT];

impl NamedFormat {
    /// The format called `name`, if any.
    pub fn by_name(name: &str) -> Option<&'static NamedFormat> {
        NAMED_FORMATS.iter().copied().find(|f| f.name == name)
    }

    fn regex(&self) -> Regex {
        static COMPILED: OnceLock<Mutex<HashMap<&'static str, Regex>>> = OnceLock::new();
        let compiled = COMPILED.get_or_init(|| Mutex::new(HashMap::new()));
        if let Ok(mut c) = compiled.lock() {
            return c
                .entry(self.name)
                .or_insert_with(|| {
                    Regex::new(self.pattern).unwrap_or_else(|_| unreachable!("constant regex"))
                })
                .clone();
        }
        Regex::new(self.pattern).unwrap_or_else(|_| unreachable!("constant regex"))
    }

    /// Checks `text` against the format's rules; the error says which.
    pub fn validate(&self, text: &str) -> Result<(), String> {
        if text.len() > self.max_len {
            return Err(format!(
                "a {} is at most {} bytes, got {}",
                self.summary,
                self.max_len,
                text.len()
            ));
        }
        if !self.regex().is_match(text) {
            return Err(format!(
                "{} is not a {} (must match {})",
                shown(text),
                self.summary,
                self.pattern
            ));
        }
        if !self.separators.is_empty()
            && text
                .split(|c| self.separators.contains(c))
                .any(|c| c.is_empty() || c == "." || c == "..")
        {
            return Err(format!(
                "{} has an empty, `.` or `..` component",
                shown(text)
            ));
        }
        Ok(())
    }
}

/// One declared parameter.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "RawParamSpec", into = "RawParamSpec")]
pub struct ParamSpec {
    pub name: String,
    pub description: String,
    pub required: bool,
    pub default: Option<Value>,
    pub kind: ParamKind,
}

/// The type of a parameter and its rules.
#[derive(Debug, Clone)]
pub enum ParamKind {
    String {
        max_len: usize,
        pattern: Option<Pattern>,
        values: Option<Vec<String>>,
    },
    Integer {
        min: i64,
        max: i64,
    },
    Boolean,
    RelativePath {
        max_len: usize,
    },
    /// A string in a [`NamedFormat`].
    Named(&'static NamedFormat),
    StringList {
        max_len: usize,
        pattern: Option<Pattern>,
        values: Option<Vec<String>>,
        max_items: usize,
    },
}

/// A compiled, whole-value regular expression.
#[derive(Debug, Clone)]
pub struct Pattern {
    source: String,
    regex: Regex,
}

/// Compiled patterns, shared: schemas are parsed again and again (the hub
/// reads each agent's probe catalog from its store on every call), and
/// compiling a regex costs far more than matching one. Bounded, so that
/// peers sending ever-new patterns cannot grow it without limit; past the
/// bound patterns are simply compiled each time.
const PATTERN_CACHE_MAX: usize = 1024;

fn compile_cached(source: &str) -> Result<Regex, String> {
    static CACHE: OnceLock<Mutex<HashMap<String, Regex>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(re) = cache.lock().ok().and_then(|c| c.get(source).cloned()) {
        return Ok(re);
    }
    let regex = Regex::new(&format!("^(?:{source})$"))
        .map_err(|e| format!("invalid pattern {source:?}: {e}"))?;
    if let Ok(mut c) = cache.lock()
        && c.len() < PATTERN_CACHE_MAX
    {
        c.insert(source.to_owned(), regex.clone());
    }
    Ok(regex)
}

impl Pattern {
    pub fn new(source: &str) -> Result<Self, String> {
        Ok(Pattern {
            source: source.to_owned(),
            regex: compile_cached(source)?,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    pub fn is_match(&self, text: &str) -> bool {
        self.regex.is_match(text)
    }
}

/// The manifest form of a [`ParamSpec`]; unknown keys are refused.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawParamSpec {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub required: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_len: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_items: Option<usize>,
}

impl TryFrom<RawParamSpec> for ParamSpec {
    type Error = String;

    fn try_from(raw: RawParamSpec) -> Result<Self, String> {
        if raw.name.is_empty()
            || raw.name.len() > 64
            || !raw
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(format!(
                "parameter name {:?} must be 1..=64 chars of [a-z0-9_]",
                raw.name
            ));
        }
        let name = raw.name.clone();
        let only = |allowed: &[&str]| -> Result<(), String> {
            let present = [
                ("max_len", raw.max_len.is_some()),
                ("pattern", raw.pattern.is_some()),
                ("values", raw.values.is_some()),
                ("min", raw.min.is_some()),
                ("max", raw.max.is_some()),
                ("max_items", raw.max_items.is_some()),
            ];
            match present
                .iter()
                .find(|(key, set)| *set && !allowed.contains(key))
            {
                Some((key, _)) => Err(format!(
                    "parameter {name:?}: `{key}` does not apply to type {:?}",
                    raw.kind
                )),
                None => Ok(()),
            }
        };
        let pattern = raw.pattern.as_deref().map(Pattern::new).transpose()?;
        let kind = match raw.kind.as_str() {
            "string" => {
                only(&["max_len", "pattern", "values"])?;
                ParamKind::String {
                    max_len: raw.max_len.unwrap_or(DEFAULT_STRING_MAX),
                    pattern,
                    values: raw.values.clone(),
                }
            }
            "integer" => {
                only(&["min", "max"])?;
                let (min, max) = (raw.min.unwrap_or(i64::MIN), raw.max.unwrap_or(i64::MAX));
                if min > max {
                    return Err(format!(
                        "parameter {name:?}: min {min} is greater than max {max}"
                    ));
                }
                ParamKind::Integer { min, max }
            }
            "boolean" => {
                only(&[])?;
                ParamKind::Boolean
            }
            "relative_path" => {
                only(&["max_len"])?;
                ParamKind::RelativePath {
                    max_len: raw.max_len.unwrap_or(DEFAULT_PATH_MAX),
                }
            }
            "string_list" => {
                only(&["max_len", "pattern", "values", "max_items"])?;
                ParamKind::StringList {
                    max_len: raw.max_len.unwrap_or(DEFAULT_STRING_MAX),
                    pattern,
                    values: raw.values.clone(),
                    max_items: raw.max_items.unwrap_or(DEFAULT_LIST_MAX),
                }
            }
            other => match NamedFormat::by_name(other) {
                Some(format) => {
                    only(&[])?;
                    ParamKind::Named(format)
                }
                None => {
                    let named: Vec<&str> = NAMED_FORMATS.iter().map(|f| f.name).collect();
                    return Err(format!(
                        "parameter {name:?}: unknown type {other:?} (string, integer, boolean, relative_path, string_list, or a named format: {})",
                        named.join(", ")
                    ));
                }
            },
        };
        let spec = ParamSpec {
            name: raw.name,
            description: raw.description,
            required: raw.required,
            default: raw.default,
            kind,
        };
        if let Some(default) = &spec.default {
            spec.check(default)
                .map_err(|e| format!("default for {e}"))?;
        }
        Ok(spec)
    }
}

impl From<ParamSpec> for RawParamSpec {
    fn from(spec: ParamSpec) -> Self {
        let mut raw = RawParamSpec {
            name: spec.name,
            description: spec.description,
            required: spec.required,
            default: spec.default,
            ..RawParamSpec::default()
        };
        match spec.kind {
            ParamKind::String {
                max_len,
                pattern,
                values,
            } => {
                raw.kind = "string".into();
                raw.max_len = Some(max_len);
                raw.pattern = pattern.map(|p| p.source);
                raw.values = values;
            }
            ParamKind::Integer { min, max } => {
                raw.kind = "integer".into();
                raw.min = (min != i64::MIN).then_some(min);
                raw.max = (max != i64::MAX).then_some(max);
            }
            ParamKind::Boolean => raw.kind = "boolean".into(),
            ParamKind::RelativePath { max_len } => {
                raw.kind = "relative_path".into();
                raw.max_len = Some(max_len);
            }
            ParamKind::Named(format) => raw.kind = format.name.into(),
            ParamKind::StringList {
                max_len,
                pattern,
                values,
                max_items,
            } => {
                raw.kind = "string_list".into();
                raw.max_len = Some(max_len);
                raw.pattern = pattern.map(|p| p.source);
                raw.values = values;
                raw.max_items = Some(max_items);
            }
        }
        raw
    }
}

/// A parameter failed validation: which one, which rule, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("parameter `{param}`: {message}")]
pub struct ParamError {
    pub param: String,
    /// The rule that was broken, as a stable word: `required`, `unknown`,
    /// `type`, `max_len`, `pattern`, `values`, `range`, `path`, `format`,
    /// `max_items`.
    pub rule: &'static str,
    pub message: String,
}

fn err(param: &str, rule: &'static str, message: impl Into<String>) -> ParamError {
    ParamError {
        param: param.to_owned(),
        rule,
        message: message.into(),
    }
}

/// Shortened, quoted form of a bad value for messages (never the whole input).
fn shown(text: &str) -> String {
    if text.chars().count() > 64 {
        format!("{:?}…", text.chars().take(64).collect::<String>())
    } else {
        format!("{text:?}")
    }
}

impl ParamSpec {
    /// Checks one value against this parameter's rules and returns its
    /// normalized form (paths normalized; everything else unchanged).
    pub fn check(&self, value: &Value) -> Result<Value, ParamError> {
        let name = self.name.as_str();
        match &self.kind {
            ParamKind::String {
                max_len,
                pattern,
                values,
            } => {
                let text = value
                    .as_str()
                    .ok_or_else(|| err(name, "type", "must be a string"))?;
                check_string(name, text, *max_len, pattern.as_ref(), values.as_deref())?;
                Ok(value.clone())
            }
            ParamKind::Integer { min, max } => {
                let n = value
                    .as_i64()
                    .ok_or_else(|| err(name, "type", "must be an integer"))?;
                if n < *min || n > *max {
                    return Err(err(
                        name,
                        "range",
                        format!("must be between {min} and {max}, got {n}"),
                    ));
                }
                Ok(value.clone())
            }
            ParamKind::Boolean => {
                value
                    .as_bool()
                    .ok_or_else(|| err(name, "type", "must be true or false"))?;
                Ok(value.clone())
            }
            ParamKind::RelativePath { max_len } => {
                let bytes = PathBytes::from_json(value).map_err(|e| err(name, "type", e))?;
                let path = RelativePath::parse(bytes.as_bytes(), *max_len)
                    .map_err(|e| err(name, "path", e.to_string()))?;
                Ok(path.to_wire().to_json())
            }
            ParamKind::Named(format) => {
                let text = value
                    .as_str()
                    .ok_or_else(|| err(name, "type", "must be a string"))?;
                format.validate(text).map_err(|e| err(name, "format", e))?;
                Ok(value.clone())
            }
            ParamKind::StringList {
                max_len,
                pattern,
                values,
                max_items,
            } => {
                let items = value
                    .as_array()
                    .ok_or_else(|| err(name, "type", "must be a list of strings"))?;
                if items.len() > *max_items {
                    return Err(err(
                        name,
                        "max_items",
                        format!("at most {max_items} items, got {}", items.len()),
                    ));
                }
                for item in items {
                    let text = item
                        .as_str()
                        .ok_or_else(|| err(name, "type", "must be a list of strings"))?;
                    check_string(name, text, *max_len, pattern.as_ref(), values.as_deref())?;
                }
                Ok(value.clone())
            }
        }
    }

    /// JSON Schema for this parameter (draft 2020-12 subset), for MCP clients.
    pub fn json_schema(&self) -> Value {
        let mut schema = match &self.kind {
            ParamKind::String {
                max_len,
                pattern,
                values,
            } => string_schema(*max_len, pattern.as_ref(), values.as_deref()),
            ParamKind::Integer { min, max } => {
                let mut s = json!({"type": "integer"});
                if *min != i64::MIN {
                    s["minimum"] = json!(min);
                }
                if *max != i64::MAX {
                    s["maximum"] = json!(max);
                }
                s
            }
            ParamKind::Boolean => json!({"type": "boolean"}),
            ParamKind::RelativePath { max_len } => json!({
                "description": "Relative path (no leading /, no ..). A string, or {\"base64\": …} for names that are not UTF-8.",
                "anyOf": [
                    {"type": "string", "maxLength": max_len},
                    {"type": "object", "properties": {"base64": {"type": "string"}}, "required": ["base64"]}
                ]
            }),
            ParamKind::Named(format) => {
                json!({"type": "string", "maxLength": format.max_len, "pattern": format.pattern})
            }
            ParamKind::StringList {
                max_len,
                pattern,
                values,
                max_items,
            } => json!({
                "type": "array",
                "maxItems": max_items,
                "items": string_schema(*max_len, pattern.as_ref(), values.as_deref()),
            }),
        };
        if let Some(obj) = schema.as_object_mut() {
            if !self.description.is_empty() {
                let text = match obj.get("description").and_then(Value::as_str) {
                    Some(extra) => format!("{} {extra}", self.description),
                    None => self.description.clone(),
                };
                obj.insert("description".into(), json!(text));
            }
            if let Some(default) = &self.default {
                obj.insert("default".into(), default.clone());
            }
        }
        schema
    }
}

fn string_schema(max_len: usize, pattern: Option<&Pattern>, values: Option<&[String]>) -> Value {
    let mut s = json!({"type": "string", "maxLength": max_len});
    if let Some(p) = pattern {
        s["pattern"] = json!(format!("^(?:{})$", p.as_str()));
    }
    if let Some(v) = values {
        s["enum"] = json!(v);
    }
    s
}

fn check_string(
    name: &str,
    text: &str,
    max_len: usize,
    pattern: Option<&Pattern>,
    values: Option<&[String]>,
) -> Result<(), ParamError> {
    if text.len() > max_len {
        return Err(err(
            name,
            "max_len",
            format!("at most {max_len} bytes, got {}", text.len()),
        ));
    }
    if let Some(values) = values
        && !values.iter().any(|v| v == text)
    {
        return Err(err(
            name,
            "values",
            format!("must be one of {}, got {}", values.join(", "), shown(text)),
        ));
    }
    if let Some(p) = pattern
        && !p.is_match(text)
    {
        return Err(err(
            name,
            "pattern",
            format!("must match ^(?:{})$, got {}", p.as_str(), shown(text)),
        ));
    }
    Ok(())
}

/// Parameters that passed validation: defaults applied, paths normalized,
/// nothing undeclared.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ValidatedParams(Map<String, Value>);

impl ValidatedParams {
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }

    pub fn into_map(self) -> Map<String, Value> {
        self.0
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name)
    }

    pub fn str(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(Value::as_str)
    }

    pub fn i64(&self, name: &str) -> Option<i64> {
        self.0.get(name).and_then(Value::as_i64)
    }

    pub fn bool(&self, name: &str) -> Option<bool> {
        self.0.get(name).and_then(Value::as_bool)
    }

    /// A relative-path parameter (already validated).
    pub fn path(&self, name: &str) -> Option<RelativePath> {
        let bytes = PathBytes::from_json(self.0.get(name)?).ok()?;
        RelativePath::parse(bytes.as_bytes(), usize::MAX).ok()
    }

    pub fn strings(&self, name: &str) -> Option<Vec<&str>> {
        self.0
            .get(name)?
            .as_array()?
            .iter()
            .map(Value::as_str)
            .collect()
    }
}

/// Validates `params` against `specs`: unknown names refused, required ones
/// present, each value checked, defaults filled in.
pub fn validate(
    specs: &[ParamSpec],
    params: &Map<String, Value>,
) -> Result<ValidatedParams, ParamError> {
    if let Some(unknown) = params.keys().find(|k| !specs.iter().any(|s| &s.name == *k)) {
        let known: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        let known = if known.is_empty() {
            "none".to_owned()
        } else {
            known.join(", ")
        };
        return Err(err(
            unknown,
            "unknown",
            format!("unknown parameter (this probe takes: {known})"),
        ));
    }
    let mut out = Map::new();
    for spec in specs {
        match params.get(&spec.name) {
            Some(Value::Null) | None => {
                if let Some(default) = &spec.default {
                    out.insert(spec.name.clone(), spec.check(default)?);
                } else if spec.required {
                    return Err(err(&spec.name, "required", "is required"));
                }
            }
            Some(value) => {
                out.insert(spec.name.clone(), spec.check(value)?);
            }
        }
    }
    Ok(ValidatedParams(out))
}

/// JSON Schema (an `object` schema) for a whole parameter list.
pub fn object_schema(specs: &[ParamSpec]) -> Value {
    let properties: Map<String, Value> = specs
        .iter()
        .map(|s| (s.name.clone(), s.json_schema()))
        .collect();
    let required: Vec<&str> = specs
        .iter()
        .filter(|s| s.required)
        .map(|s| s.name.as_str())
        .collect();
    json!({
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(toml_like: Value) -> ParamSpec {
        serde_json::from_value(toml_like).unwrap()
    }

    fn params(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn string_rules_name_the_parameter_and_rule() {
        let specs = vec![spec(
            json!({"name": "unit", "type": "string", "max_len": 8, "pattern": "[a-z.]+"}),
        )];
        let e = validate(&specs, &params(json!({"unit": "ssh service"}))).unwrap_err();
        assert_eq!((e.param.as_str(), e.rule), ("unit", "max_len"));
        let e = validate(&specs, &params(json!({"unit": "A;b"}))).unwrap_err();
        assert_eq!(e.rule, "pattern");
        assert!(
            e.to_string().starts_with("parameter `unit`: must match"),
            "{e}"
        );
        assert!(validate(&specs, &params(json!({"unit": "ssh.svc"}))).is_ok());
    }

    #[test]
    fn pattern_must_match_the_whole_value() {
        let specs = vec![spec(
            json!({"name": "h", "type": "string", "pattern": "[a-z]+"}),
        )];
        assert!(validate(&specs, &params(json!({"h": "abc; rm -rf /"}))).is_err());
    }

    #[test]
    fn enum_integer_boolean() {
        let specs = vec![
            spec(json!({"name": "p", "type": "string", "values": ["err", "warning"]})),
            spec(json!({"name": "n", "type": "integer", "min": 1, "max": 10, "default": 3})),
            spec(json!({"name": "f", "type": "boolean"})),
        ];
        assert_eq!(
            validate(&specs, &params(json!({"p": "info"})))
                .unwrap_err()
                .rule,
            "values"
        );
        assert_eq!(
            validate(&specs, &params(json!({"n": 11})))
                .unwrap_err()
                .rule,
            "range"
        );
        assert_eq!(
            validate(&specs, &params(json!({"n": "3"})))
                .unwrap_err()
                .rule,
            "type"
        );
        assert_eq!(
            validate(&specs, &params(json!({"f": "yes"})))
                .unwrap_err()
                .rule,
            "type"
        );
        let ok = validate(&specs, &params(json!({"p": "err"}))).unwrap();
        assert_eq!(ok.i64("n"), Some(3), "default applied");
    }

    #[test]
    fn unknown_and_missing_parameters() {
        let specs = vec![spec(
            json!({"name": "dataset", "type": "dataset", "required": true}),
        )];
        let e = validate(&specs, &params(json!({"datset": "tank"}))).unwrap_err();
        assert_eq!((e.param.as_str(), e.rule), ("datset", "unknown"));
        assert!(e.message.contains("dataset"));
        let e = validate(&specs, &params(json!({}))).unwrap_err();
        assert_eq!((e.param.as_str(), e.rule), ("dataset", "required"));
    }

    fn validate_dataset_name(text: &str) -> Result<(), String> {
        DATASET.validate(text)
    }

    fn validate_snapshot_name(text: &str) -> Result<(), String> {
        SNAPSHOT.validate(text)
    }

    #[test]
    fn named_formats_are_unique_and_compile() {
        for (i, f) in NAMED_FORMATS.iter().enumerate() {
            assert!(Regex::new(f.pattern).is_ok(), "{}", f.name);
            assert!(f.pattern.starts_with('^') && f.pattern.ends_with('$'));
            assert!(NAMED_FORMATS[..i].iter().all(|g| g.name != f.name));
            assert!(
                ![
                    "string",
                    "integer",
                    "boolean",
                    "relative_path",
                    "string_list"
                ]
                .contains(&f.name),
                "{} shadows a generic type",
                f.name
            );
        }
    }

    #[test]
    fn zfs_names() {
        assert!(validate_dataset_name("tank/home.backup:x-1").is_ok());
        for bad in [
            "",
            "-tank",
            "tank/../x",
            "tank//x",
            "tank/",
            "tank home",
            "tank;ls",
            "tank@s",
            "/tank",
        ] {
            assert!(validate_dataset_name(bad).is_err(), "{bad:?}");
        }
        assert!(validate_snapshot_name("tank/home@auto-2024-01-01_00:00").is_ok());
        for bad in [
            "tank",
            "tank@",
            "tank@a/b",
            "tank@-x",
            "tank@a b",
            "@s",
            "tank@s@t",
            "tank/..@s",
            "tank//x@s",
        ] {
            assert!(validate_snapshot_name(bad).is_err(), "{bad:?}");
        }
        assert!(validate_dataset_name(&"a".repeat(256)).is_err());
    }

    #[test]
    fn relative_paths_are_normalized_and_confined() {
        let specs = vec![spec(json!({"name": "path", "type": "relative_path"}))];
        let ok = validate(&specs, &params(json!({"path": "etc//./nginx/"}))).unwrap();
        assert_eq!(ok.path("path").unwrap().to_bytes(), b"etc/nginx");
        let b64 = validate(&specs, &params(json!({"path": {"base64": "YS/_/w=="}})));
        assert!(b64.is_err(), "url-safe alphabet is not standard base64");
        let b64 = validate(&specs, &params(json!({"path": {"base64": "YS//"}}))).unwrap();
        assert_eq!(b64.path("path").unwrap().to_bytes(), b"a/\xff");
        assert_eq!(
            validate(&specs, &params(json!({"path": "../etc"})))
                .unwrap_err()
                .rule,
            "path"
        );
        assert_eq!(
            validate(&specs, &params(json!({"path": "/etc"})))
                .unwrap_err()
                .rule,
            "path"
        );
    }

    #[test]
    fn manifest_mistakes_are_refused() {
        let bad = |v: Value| {
            serde_json::from_value::<ParamSpec>(v)
                .unwrap_err()
                .to_string()
        };
        assert!(bad(json!({"name": "x", "type": "strng"})).contains("unknown type"));
        assert!(
            bad(json!({"name": "x", "type": "boolean", "max_len": 3}))
                .contains("`max_len` does not apply")
        );
        assert!(
            bad(json!({"name": "x", "type": "integer", "min": 5, "max": 1}))
                .contains("greater than")
        );
        assert!(
            bad(json!({"name": "x", "type": "string", "pattern": "("})).contains("invalid pattern")
        );
        assert!(
            bad(json!({"name": "x", "type": "integer", "max": 3, "default": 9}))
                .contains("default")
        );
        assert!(bad(json!({"name": "X", "type": "boolean"})).contains("[a-z0-9_]"));
        assert!(bad(json!({"name": "x", "type": "boolean", "extra": 1})).contains("unknown field"));
    }

    #[test]
    fn string_lists() {
        let specs = vec![spec(
            json!({"name": "props", "type": "string_list", "pattern": "[a-z:]+", "max_items": 2}),
        )];
        assert!(validate(&specs, &params(json!({"props": ["used", "available"]}))).is_ok());
        assert_eq!(
            validate(&specs, &params(json!({"props": ["a", "b", "c"]})))
                .unwrap_err()
                .rule,
            "max_items"
        );
        assert_eq!(
            validate(&specs, &params(json!({"props": ["a b"]})))
                .unwrap_err()
                .rule,
            "pattern"
        );
        assert_eq!(
            validate(&specs, &params(json!({"props": [1]})))
                .unwrap_err()
                .rule,
            "type"
        );
    }

    #[test]
    fn json_schema_describes_the_rules() {
        let specs = vec![
            spec(
                json!({"name": "n", "type": "integer", "min": 1, "max": 5, "description": "count", "required": true}),
            ),
            spec(json!({"name": "ds", "type": "dataset"})),
        ];
        let schema = object_schema(&specs);
        assert_eq!(schema["properties"]["n"]["maximum"], 5);
        assert_eq!(schema["properties"]["n"]["description"], "count");
        assert_eq!(schema["required"], json!(["n"]));
        assert_eq!(schema["additionalProperties"], false);
    }

    #[test]
    fn specs_round_trip_through_their_manifest_form() {
        let original = spec(
            json!({"name": "u", "type": "string", "max_len": 9, "pattern": "[a-z]+", "default": "abc"}),
        );
        let again: ParamSpec =
            serde_json::from_value(serde_json::to_value(&original).unwrap()).unwrap();
        assert_eq!(
            serde_json::to_value(&again).unwrap(),
            serde_json::to_value(&original).unwrap()
        );
    }
}
