//! Canonical JSON: the one byte form of a JSON value that Sonde signs and hashes.
//!
//! Rules (stable; changing them is a protocol version bump):
//! - no whitespace anywhere;
//! - object members sorted by the UTF-8 bytes of their keys (duplicate keys
//!   cannot occur: a parsed object keeps one value per key);
//! - strings escaped exactly as `serde_json` writes them: `"` and `\` are
//!   escaped, control characters use `\b \f \n \r \t` or lowercase `\u00XX`,
//!   everything else is raw UTF-8;
//! - integers in plain decimal; other numbers in the shortest form that
//!   round-trips the same `f64` (`serde_json`'s formatting, parsed back with
//!   its exact `float_roundtrip` mode, so decode → encode is the identity).
//!
//! The sort is done here, explicitly, so the result does not depend on whether
//! some other crate in the build enabled `serde_json/preserve_order`.

use serde_json::Value;

/// Appends the canonical encoding of `value` to `out`.
pub fn write(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => out.extend_from_slice(n.to_string().as_bytes()),
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(item, out);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            members.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (i, (key, item)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(key, out);
                out.push(b':');
                write(item, out);
            }
            out.push(b'}');
        }
    }
}

/// The canonical encoding of `value` as a new buffer.
pub fn to_vec(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write(value, &mut out);
    out
}

/// The canonical encoding of any serializable value.
///
/// Fails only if `value` cannot be represented as JSON (e.g. a map with
/// non-string keys or a non-finite float).
pub fn to_vec_of<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    Ok(to_vec(&serde_json::to_value(value)?))
}

fn write_string(s: &str, out: &mut Vec<u8>) {
    // serde_json's string escaping is deterministic and documented above;
    // writing a &str into a Vec cannot fail.
    serde_json::to_writer(&mut *out, s).unwrap_or_else(|_| unreachable!("writing a str to a Vec"));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sorts_keys_and_drops_whitespace() {
        let a: Value = serde_json::from_str(r#"{ "b": 1, "a": [true, null, "x\ny"] }"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a":[true,null,"x\ny"],"b":1}"#).unwrap();
        assert_eq!(to_vec(&a), to_vec(&b));
        assert_eq!(to_vec(&a), br#"{"a":[true,null,"x\ny"],"b":1}"#);
    }

    #[test]
    fn nested_objects_are_sorted_by_bytes() {
        let v = json!({"z": {"b": 2, "B": 1, "é": 3, "a": 0}});
        assert_eq!(to_vec(&v), r#"{"z":{"B":1,"a":0,"b":2,"é":3}}"#.as_bytes());
    }

    #[test]
    fn equivalent_escapes_encode_identically() {
        let a: Value = serde_json::from_str(r#""\u00e9\u001F\/""#).unwrap();
        let b: Value = serde_json::from_str("\"é\\u001f/\"").unwrap();
        assert_eq!(to_vec(&a), to_vec(&b));
        assert_eq!(to_vec(&a), "\"é\\u001f/\"".as_bytes());
    }

    #[test]
    fn numbers_have_one_form() {
        let a: Value =
            serde_json::from_str("[1.0, 1e0, 10E-1, -0, 0, 12345678901234567890]").unwrap();
        assert_eq!(to_vec(&a), b"[1.0,1.0,1.0,-0.0,0,12345678901234567890]");
    }
}
