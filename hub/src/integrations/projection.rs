//! The projection language: which part of a JSON answer a probe keeps.
//!
//! - `select`: an RFC 6901 JSON pointer to the part kept (`""` = all of
//!   it), e.g. `/data/result`.
//! - `fields`: what to keep of each item when the selected part is an
//!   array (or of the part itself when it is an object). Each field is a
//!   `/`-separated path of keys (`labels/instance`); the kept value keeps
//!   its nesting (`{"labels": {"instance": …}}`); a missing key is left
//!   out. An empty list keeps everything.
//! - `max_items` (in the manifest) bounds the array; the result then says
//!   `truncated`.
//!
//! Nothing is evaluated: no expressions, no functions, no recursion into
//! unnamed keys. A field may not name more than 8 levels.

use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Projection {
    select: String,
    fields: Vec<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProjectionError {
    #[error("select {0:?} must be empty or a JSON pointer starting with '/'")]
    Select(String),
    #[error("field {0:?} must be 1 to 8 non-empty keys separated by '/'")]
    Field(String),
    #[error("the answer has no {0} (not the documented format?)")]
    Missing(String),
}

/// What a projection kept.
#[derive(Debug, Clone, PartialEq)]
pub struct Projected {
    pub value: Value,
    /// Items in the selected array before the bound.
    pub total_items: Option<usize>,
    pub truncated: bool,
}

impl Projection {
    pub fn parse(select: &str, fields: &[String]) -> Result<Projection, ProjectionError> {
        if !select.is_empty() && !select.starts_with('/') {
            return Err(ProjectionError::Select(select.to_owned()));
        }
        let mut out = Vec::new();
        for f in fields {
            let keys: Vec<String> = f.split('/').map(str::to_owned).collect();
            if keys.is_empty() || keys.len() > 8 || keys.iter().any(String::is_empty) {
                return Err(ProjectionError::Field(f.clone()));
            }
            out.push(keys);
        }
        Ok(Projection {
            select: select.to_owned(),
            fields: out,
        })
    }

    pub fn apply(&self, answer: Value, max_items: usize) -> Result<Projected, ProjectionError> {
        let mut answer = answer;
        let selected = answer
            .pointer_mut(&self.select)
            .map(Value::take)
            .ok_or_else(|| ProjectionError::Missing(self.select.clone()))?;
        Ok(match selected {
            Value::Array(items) => {
                let total = items.len();
                let kept: Vec<Value> = items
                    .into_iter()
                    .take(max_items)
                    .map(|i| self.keep(i))
                    .collect();
                Projected {
                    value: Value::Array(kept),
                    total_items: Some(total),
                    truncated: total > max_items,
                }
            }
            other => Projected {
                value: self.keep(other),
                total_items: None,
                truncated: false,
            },
        })
    }

    fn keep(&self, item: Value) -> Value {
        if self.fields.is_empty() {
            return item;
        }
        let Value::Object(_) = item else {
            return item;
        };
        let mut out = Map::new();
        for path in &self.fields {
            let mut cur = &item;
            let mut found = true;
            for k in path {
                match cur.get(k) {
                    Some(v) => cur = v,
                    None => {
                        found = false;
                        break;
                    }
                }
            }
            if found {
                insert(&mut out, path, cur.clone());
            }
        }
        Value::Object(out)
    }
}

fn insert(map: &mut Map<String, Value>, path: &[String], value: Value) {
    match path {
        [] => {}
        [last] => {
            map.insert(last.clone(), value);
        }
        [first, rest @ ..] => {
            let entry = map
                .entry(first.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(inner) = entry {
                insert(inner, rest, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn select_fields_and_bounds() {
        let p = Projection::parse(
            "/data/items",
            &["name".into(), "labels/job".into(), "missing/x".into()],
        )
        .unwrap();
        let answer = json!({"data": {"items": [
            {"name": "a", "secret": "x", "labels": {"job": "node", "other": 1}},
            {"name": "b"},
            {"name": "c"}
        ]}});
        let got = p.apply(answer, 2).unwrap();
        assert_eq!(
            got.value,
            json!([{"name": "a", "labels": {"job": "node"}}, {"name": "b"}])
        );
        assert_eq!(got.total_items, Some(3));
        assert!(got.truncated);
        assert!(p.apply(json!({"nothing": 1}), 2).is_err());
        assert!(Projection::parse("data", &[]).is_err());
        assert!(Projection::parse("", &["a//b".into()]).is_err());
        let all = Projection::parse("", &[]).unwrap();
        assert_eq!(
            all.apply(json!({"a": 1}), 1).unwrap().value,
            json!({"a": 1})
        );
    }
}
