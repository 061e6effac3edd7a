//! A form built from parameter schemas ([`ParamSpec`]), validated as the
//! operator types with the same rules the hub and agent apply
//! (`sonde_protocol::schema`). Also used for the key and token forms, whose
//! fields are declared as parameter schemas too.

use serde_json::{Map, Value};
use sonde_protocol::schema::{self, ParamKind, ParamSpec, RawParamSpec};

/// Longest input kept in one field.
pub const MAX_INPUT: usize = 8192;

/// One field: its schema, what was typed, and what is wrong with it.
#[derive(Debug, Clone)]
pub struct Field {
    pub spec: ParamSpec,
    pub input: String,
    pub error: Option<String>,
}

impl Field {
    /// `string`, `integer 1..=30`, `list of strings`…
    pub fn kind_hint(&self) -> String {
        match &self.spec.kind {
            ParamKind::String { values, .. } => match values {
                Some(v) => format!("one of {}", v.join(", ")),
                None => "text".into(),
            },
            ParamKind::Integer { min, max } => match (*min == i64::MIN, *max == i64::MAX) {
                (true, true) => "integer".into(),
                (false, true) => format!("integer ≥ {min}"),
                (true, false) => format!("integer ≤ {max}"),
                (false, false) => format!("integer {min}..={max}"),
            },
            ParamKind::Boolean => "true/false (Space toggles)".into(),
            ParamKind::RelativePath { .. } => "relative path".into(),
            ParamKind::Named(format) => format.summary.into(),
            ParamKind::StringList { .. } => "comma-separated list".into(),
        }
    }
}

/// A schema-driven form.
#[derive(Debug, Clone)]
pub struct Form {
    pub fields: Vec<Field>,
    pub focus: usize,
}

impl Form {
    pub fn new(specs: Vec<ParamSpec>) -> Form {
        let mut form = Form {
            fields: specs
                .into_iter()
                .map(|spec| Field {
                    spec,
                    input: String::new(),
                    error: None,
                })
                .collect(),
            focus: 0,
        };
        form.revalidate();
        form
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    pub fn focused(&self) -> Option<&Field> {
        self.fields.get(self.focus)
    }

    pub fn next(&mut self) {
        if !self.fields.is_empty() {
            self.focus = (self.focus + 1) % self.fields.len();
        }
    }

    pub fn prev(&mut self) {
        if !self.fields.is_empty() {
            self.focus = (self.focus + self.fields.len() - 1) % self.fields.len();
        }
    }

    pub fn type_char(&mut self, c: char) {
        if c.is_control() {
            return;
        }
        if let Some(f) = self.fields.get_mut(self.focus) {
            if matches!(f.spec.kind, ParamKind::Boolean) && c == ' ' {
                f.input = match parse_bool(&f.input) {
                    Some(true) => "false".into(),
                    _ => "true".into(),
                };
            } else if f.input.chars().count() < MAX_INPUT {
                f.input.push(c);
            }
        }
        self.revalidate();
    }

    pub fn backspace(&mut self) {
        if let Some(f) = self.fields.get_mut(self.focus) {
            f.input.pop();
        }
        self.revalidate();
    }

    pub fn clear_field(&mut self) {
        if let Some(f) = self.fields.get_mut(self.focus) {
            f.input.clear();
        }
        self.revalidate();
    }

    /// Sets a field's text by name (tests, examples).
    pub fn set(&mut self, name: &str, input: &str) {
        if let Some(f) = self.fields.iter_mut().find(|f| f.spec.name == name) {
            f.input = input.chars().take(MAX_INPUT).collect();
        }
        self.revalidate();
    }

    /// Re-checks every field against its schema.
    pub fn revalidate(&mut self) {
        for f in &mut self.fields {
            f.error = match parse(&f.spec, &f.input) {
                Err(e) => Some(e),
                Ok(None) if f.spec.required && f.spec.default.is_none() => Some("required".into()),
                Ok(None) => None,
                Ok(Some(v)) => f.spec.check(&v).err().map(|e| e.message),
            };
        }
    }

    pub fn is_valid(&self) -> bool {
        self.values().is_ok()
    }

    /// The values as the probe would get them (defaults applied), or the
    /// first problem as `name: why`.
    pub fn values(&self) -> Result<Map<String, Value>, String> {
        let mut map = Map::new();
        let mut specs = Vec::new();
        for f in &self.fields {
            match parse(&f.spec, &f.input) {
                Ok(Some(v)) => {
                    map.insert(f.spec.name.clone(), v);
                }
                Ok(None) => {}
                Err(e) => return Err(format!("{}: {e}", f.spec.name)),
            }
            specs.push(f.spec.clone());
        }
        schema::validate(&specs, &map)
            .map(|v| v.into_map())
            .map_err(|e| format!("{}: {}", e.param, e.message))
    }
}

fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "y" | "1" | "on" => Some(true),
        "false" | "no" | "n" | "0" | "off" => Some(false),
        _ => None,
    }
}

/// What the text in a field means for its type: `None` when empty.
fn parse(spec: &ParamSpec, input: &str) -> Result<Option<Value>, String> {
    if input.trim().is_empty() {
        return Ok(None);
    }
    match &spec.kind {
        ParamKind::String { .. } | ParamKind::RelativePath { .. } | ParamKind::Named(_) => {
            Ok(Some(Value::String(input.to_owned())))
        }
        ParamKind::Integer { .. } => input
            .trim()
            .parse::<i64>()
            .map(|n| Some(Value::from(n)))
            .map_err(|_| "must be an integer".to_owned()),
        ParamKind::Boolean => parse_bool(input)
            .map(|b| Some(Value::Bool(b)))
            .ok_or_else(|| "must be true or false".to_owned()),
        ParamKind::StringList { .. } => Ok(Some(Value::Array(
            input
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Value::String(s.to_owned()))
                .collect(),
        ))),
    }
}

/// A field declared like a manifest parameter (for the console's own forms).
fn field(name: &str, kind: &str, description: &str) -> RawParamSpec {
    RawParamSpec {
        name: name.into(),
        kind: kind.into(),
        description: description.into(),
        ..RawParamSpec::default()
    }
}

fn build(raw: Vec<RawParamSpec>) -> Form {
    Form::new(
        raw.into_iter()
            .filter_map(|r| ParamSpec::try_from(r).ok())
            .collect(),
    )
}

/// The "create API key" form.
pub fn key_form() -> Form {
    build(vec![
        RawParamSpec {
            required: true,
            max_len: Some(64),
            pattern: Some("[A-Za-z0-9][A-Za-z0-9_.-]*".into()),
            ..field("name", "string", "A name for the key, e.g. claude-laptop")
        },
        RawParamSpec {
            max_len: Some(128),
            ..field(
                "agents",
                "string_list",
                "Agent patterns (`*` wildcard); empty = all",
            )
        },
        RawParamSpec {
            max_len: Some(128),
            ..field(
                "probes",
                "string_list",
                "Probe patterns (zfs.*); empty = all",
            )
        },
        RawParamSpec {
            max_len: Some(128),
            ..field("tools", "string_list", "MCP tools; empty = all")
        },
        RawParamSpec {
            values: Some(vec!["observe".into(), "interact".into(), "manage".into()]),
            default: Some(Value::String("observe".into())),
            ..field(
                "max_capability",
                "string",
                "Highest capability the key may use",
            )
        },
        RawParamSpec {
            min: Some(1),
            max: Some(3650),
            ..field(
                "expires_in_days",
                "integer",
                "Days until it expires; empty = never",
            )
        },
    ])
}

/// The policy of an OAuth client being approved: an API key's scopes.
pub fn oauth_form() -> Form {
    let mut f = key_form();
    f.fields.retain(|field| field.spec.name != "name");
    f.revalidate();
    f
}

/// The "create enrollment token" form.
pub fn token_form() -> Form {
    build(vec![
        RawParamSpec {
            max_len: Some(64),
            ..field("label", "string", "What the token is for, e.g. nas")
        },
        RawParamSpec {
            min: Some(1),
            max: Some(10_080),
            default: Some(Value::from(15)),
            ..field("ttl_minutes", "integer", "Minutes the token stays valid")
        },
        RawParamSpec {
            default: Some(Value::Bool(false)),
            ..field(
                "auto_approve",
                "boolean",
                "Agents using it join without approval",
            )
        },
    ])
}

/// The built-in integration kinds (`sonde-hub integrations add --kind`).
pub const INTEGRATION_KINDS: [&str; 4] = ["prometheus", "alertmanager", "proxmox", "unifi"];

/// The "add integration" form: what `sonde-hub integrations add` takes.
/// The hub checks everything again and its refusal is shown in the form;
/// these rules only catch typing mistakes early.
pub fn integration_form() -> Form {
    build(vec![
        RawParamSpec {
            required: true,
            max_len: Some(64),
            pattern: Some("[a-z0-9][a-z0-9_-]*".into()),
            ..field(
                "name",
                "string",
                "What MCP clients pass as the target, e.g. prom or pve1",
            )
        },
        RawParamSpec {
            values: Some(INTEGRATION_KINDS.iter().map(|k| (*k).into()).collect()),
            ..field(
                "kind",
                "string",
                "Built-in kind; leave empty for a third-party manifest_dir",
            )
        },
        RawParamSpec {
            required: true,
            max_len: Some(2048),
            pattern: Some("https?://.+".into()),
            ..field(
                "base_url",
                "string",
                "e.g. http://127.0.0.1:9090 or https://pve1.lan:8006",
            )
        },
        RawParamSpec {
            max_len: Some(95),
            pattern: Some("[0-9A-Fa-f]{2}(:?[0-9A-Fa-f]{2}){31}".into()),
            ..field(
                "fingerprint",
                "string",
                "TLS pin: the server certificate's SHA-256 (hex, ':' allowed); empty = system roots",
            )
        },
        RawParamSpec {
            max_len: Some(4096),
            ..field(
                "ca_file",
                "string",
                "TLS pin: a CA certificate (PEM file on this machine) instead of a fingerprint",
            )
        },
        RawParamSpec {
            max_len: Some(MAX_INPUT),
            ..field(
                "queries",
                "string",
                "Prometheus: approved queries, NAME=PROMQL separated by ';'",
            )
        },
        RawParamSpec {
            max_len: Some(64),
            pattern: Some("[A-Za-z0-9_-]+".into()),
            ..field("site", "string", "UniFi: the site id (default `default`)")
        },
        RawParamSpec {
            max_len: Some(4096),
            ..field(
                "manifest_dir",
                "string",
                "Third-party: directory with integration.toml and integration.sig (signed by a publisher key the hub trusts)",
            )
        },
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(raw: RawParamSpec) -> ParamSpec {
        ParamSpec::try_from(raw).unwrap()
    }

    fn probe_form() -> Form {
        Form::new(vec![
            spec(RawParamSpec {
                required: true,
                max_len: Some(5),
                ..field("text", "string", "")
            }),
            spec(RawParamSpec {
                min: Some(1),
                max: Some(3),
                ..field("times", "integer", "")
            }),
            spec(field("flag", "boolean", "")),
            spec(RawParamSpec {
                max_items: Some(2),
                ..field("names", "string_list", "")
            }),
        ])
    }

    #[test]
    fn validates_as_you_type() {
        let mut f = probe_form();
        assert_eq!(f.fields[0].error.as_deref(), Some("required"));
        assert!(!f.is_valid());
        for c in "hello!".chars() {
            f.type_char(c);
        }
        assert!(f.fields[0].error.as_deref().unwrap().contains("at most 5"));
        f.backspace();
        assert_eq!(f.fields[0].error, None);
        f.next();
        f.type_char('9');
        assert!(
            f.fields[1]
                .error
                .as_deref()
                .unwrap()
                .contains("between 1 and 3")
        );
        f.backspace();
        f.type_char('x');
        assert_eq!(f.fields[1].error.as_deref(), Some("must be an integer"));
        f.clear_field();
        f.type_char('2');
        f.next();
        f.type_char(' ');
        assert_eq!(f.fields[2].input, "true");
        f.type_char(' ');
        assert_eq!(f.fields[2].input, "false");
        f.next();
        f.set("names", "a, b,c");
        assert!(f.fields[3].error.as_deref().unwrap().contains("at most 2"));
        f.set("names", "a, b");
        let v = f.values().unwrap();
        assert_eq!(
            Value::Object(v),
            serde_json::json!({"text": "hello", "times": 2, "flag": false, "names": ["a", "b"]})
        );
    }

    #[test]
    fn focus_wraps_and_empty_forms_are_fine() {
        let mut f = probe_form();
        f.prev();
        assert_eq!(f.focus, 3);
        f.next();
        assert_eq!(f.focus, 0);
        let mut empty = Form::new(vec![]);
        empty.next();
        empty.prev();
        empty.type_char('x');
        empty.backspace();
        assert!(empty.is_empty());
        assert_eq!(empty.values().unwrap(), Map::new());
    }

    #[test]
    fn console_forms_build_and_apply_defaults() {
        let mut k = key_form();
        assert_eq!(k.fields.len(), 6);
        assert!(!k.is_valid());
        k.set("name", "claude");
        let v = k.values().unwrap();
        assert_eq!(v["max_capability"], "observe");
        k.set("max_capability", "root");
        assert!(k.values().unwrap_err().contains("max_capability"));
        let t = token_form();
        assert_eq!(t.fields.len(), 3);
        let v = t.values().unwrap();
        assert_eq!(v["ttl_minutes"], 15);
        assert_eq!(v["auto_approve"], false);
    }
}
