//! Byte-exact file names and paths on the wire.
//!
//! On Linux and ZFS a file name may hold any byte except NUL and `/`:
//! spaces, newlines, invalid UTF-8. Sonde never converts names lossily.
//! A name or path is carried as:
//! - a JSON string when its bytes are valid UTF-8 (the common case, readable
//!   by people and models), or
//! - `{"base64": "<standard base64 of the bytes>", "display": "<lossy text>"}`
//!   when they are not. `display` is for reading only (invalid sequences shown
//!   as U+FFFD) and is ignored on input.
//!
//! Either form is accepted as input wherever a path parameter is expected.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// Bytes that are a file name or path, serialized without loss.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct PathBytes(pub Vec<u8>);

impl PathBytes {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        PathBytes(bytes.into())
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Readable text, with U+FFFD for invalid sequences. For display only.
    pub fn display(&self) -> String {
        String::from_utf8_lossy(&self.0).into_owned()
    }

    /// The JSON form described in the module docs.
    pub fn to_json(&self) -> serde_json::Value {
        match std::str::from_utf8(&self.0) {
            Ok(text) => serde_json::Value::String(text.to_owned()),
            Err(_) => {
                serde_json::json!({ "base64": B64.encode(&self.0), "display": self.display() })
            }
        }
    }

    /// Parses the JSON form. Errors say what was wrong.
    pub fn from_json(value: &serde_json::Value) -> Result<Self, String> {
        match value {
            serde_json::Value::String(text) => Ok(PathBytes(text.as_bytes().to_vec())),
            serde_json::Value::Object(map) => {
                if let Some(key) = map.keys().find(|k| *k != "base64" && *k != "display") {
                    return Err(format!("unexpected key {key:?} (expected \"base64\")"));
                }
                let encoded = map
                    .get("base64")
                    .and_then(|v| v.as_str())
                    .ok_or("expected a string or {\"base64\": \"…\"}")?;
                B64.decode(encoded)
                    .map(PathBytes)
                    .map_err(|e| format!("invalid base64: {e}"))
            }
            _ => Err("expected a string or {\"base64\": \"…\"}".to_owned()),
        }
    }
}

impl From<&[u8]> for PathBytes {
    fn from(b: &[u8]) -> Self {
        PathBytes(b.to_vec())
    }
}

impl From<&str> for PathBytes {
    fn from(s: &str) -> Self {
        PathBytes(s.as_bytes().to_vec())
    }
}

impl fmt::Debug for PathBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PathBytes({:?})", self.display())
    }
}

impl Serialize for PathBytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

impl<'de> Deserialize<'de> for PathBytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(d)?;
        PathBytes::from_json(&value).map_err(serde::de::Error::custom)
    }
}

/// A relative path that cannot leave the directory it is joined to:
/// not absolute, no NUL, no `..` segment. `.` and empty segments are
/// dropped, so `a//./b/` is `a/b` and the empty path is the root itself.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct RelativePath {
    segments: Vec<Vec<u8>>,
}

/// Why a path is not an acceptable relative path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RelativePathError {
    #[error(
        "absolute paths are not allowed; give the path relative to the snapshot or directory root"
    )]
    Absolute,
    #[error("`..` segments are not allowed")]
    ParentSegment,
    #[error("paths may not contain NUL bytes")]
    Nul,
    #[error("path is {len} bytes, longer than the {max}-byte limit")]
    TooLong { len: usize, max: usize },
    #[error("path segment is {len} bytes, longer than the 255-byte limit for a file name")]
    SegmentTooLong { len: usize },
}

/// Longest file name on Linux and ZFS.
pub const MAX_NAME_BYTES: usize = 255;

impl RelativePath {
    pub fn parse(bytes: &[u8], max_len: usize) -> Result<Self, RelativePathError> {
        if bytes.len() > max_len {
            return Err(RelativePathError::TooLong {
                len: bytes.len(),
                max: max_len,
            });
        }
        if bytes.contains(&0) {
            return Err(RelativePathError::Nul);
        }
        if bytes.first() == Some(&b'/') {
            return Err(RelativePathError::Absolute);
        }
        let mut segments = Vec::new();
        for segment in bytes.split(|b| *b == b'/') {
            match segment {
                b"" | b"." => {}
                b".." => return Err(RelativePathError::ParentSegment),
                name if name.len() > MAX_NAME_BYTES => {
                    return Err(RelativePathError::SegmentTooLong { len: name.len() });
                }
                name => segments.push(name.to_vec()),
            }
        }
        Ok(RelativePath { segments })
    }

    /// The root (no segments).
    pub fn root() -> Self {
        RelativePath::default()
    }

    pub fn is_root(&self) -> bool {
        self.segments.is_empty()
    }

    pub fn segments(&self) -> &[Vec<u8>] {
        &self.segments
    }

    /// The normalized bytes, `a/b/c` (empty for the root).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.segments.join(&b'/')
    }

    /// The last segment, if any.
    pub fn file_name(&self) -> Option<&[u8]> {
        self.segments.last().map(Vec::as_slice)
    }

    /// The parent path (the root's parent is the root).
    pub fn parent(&self) -> RelativePath {
        let mut segments = self.segments.clone();
        segments.pop();
        RelativePath { segments }
    }

    /// This path with one more segment. `name` must be a single valid file name.
    pub fn join(&self, name: &[u8]) -> Result<RelativePath, RelativePathError> {
        if name.contains(&b'/') || name == b".." || name == b"." || name.is_empty() {
            return Err(RelativePathError::ParentSegment);
        }
        if name.contains(&0) {
            return Err(RelativePathError::Nul);
        }
        let mut segments = self.segments.clone();
        segments.push(name.to_vec());
        Ok(RelativePath { segments })
    }

    pub fn to_wire(&self) -> PathBytes {
        PathBytes(self.to_bytes())
    }
}

impl fmt::Debug for RelativePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "RelativePath({:?})",
            String::from_utf8_lossy(&self.to_bytes())
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn utf8_names_are_plain_strings() {
        let p = PathBytes::from("etc/nginx/nginx conf\n");
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            r#""etc/nginx/nginx conf\n""#
        );
    }

    #[test]
    fn invalid_utf8_is_base64_with_display() {
        let p = PathBytes(b"bad\xffname".to_vec());
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["base64"], "YmFk/25hbWU=");
        assert_eq!(json["display"], "bad\u{fffd}name");
        assert_eq!(serde_json::from_value::<PathBytes>(json).unwrap(), p);
    }

    #[test]
    fn bad_json_forms_are_explained() {
        assert!(PathBytes::from_json(&serde_json::json!(5)).is_err());
        assert!(
            PathBytes::from_json(&serde_json::json!({"base64": "!!"}))
                .unwrap_err()
                .contains("base64")
        );
        assert!(
            PathBytes::from_json(&serde_json::json!({"b64": "AA=="}))
                .unwrap_err()
                .contains("b64")
        );
    }

    #[test]
    fn relative_paths_are_confined() {
        assert_eq!(
            RelativePath::parse(b"/etc", 100),
            Err(RelativePathError::Absolute)
        );
        assert_eq!(
            RelativePath::parse(b"a/../../etc", 100),
            Err(RelativePathError::ParentSegment)
        );
        assert_eq!(
            RelativePath::parse(b"..", 100),
            Err(RelativePathError::ParentSegment)
        );
        assert_eq!(
            RelativePath::parse(b"a\0b", 100),
            Err(RelativePathError::Nul)
        );
        assert_eq!(
            RelativePath::parse(b"abcdef", 3),
            Err(RelativePathError::TooLong { len: 6, max: 3 })
        );
        let p = RelativePath::parse(b"a//./b c/\xff/", 100).unwrap();
        assert_eq!(p.to_bytes(), b"a/b c/\xff");
        assert!(RelativePath::parse(b"", 10).unwrap().is_root());
        assert!(RelativePath::parse(b"./", 10).unwrap().is_root());
        // A name that merely starts with dots is fine.
        assert!(RelativePath::parse(b"...", 10).is_ok());
        assert!(RelativePath::parse(b"..hidden", 10).is_ok());
    }

    proptest! {
        #[test]
        fn prop_path_bytes_round_trip(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let p = PathBytes(bytes);
            let text = serde_json::to_string(&p).unwrap();
            prop_assert_eq!(serde_json::from_str::<PathBytes>(&text).unwrap(), p);
        }

        #[test]
        fn prop_parsed_paths_never_hold_parent_or_root(bytes in prop::collection::vec(
            prop::sample::select(vec![b'a', b'.', b'/', 0xff, b'\n']), 0..32)) {
            if let Ok(p) = RelativePath::parse(&bytes, 4096) {
                for s in p.segments() {
                    prop_assert!(s.as_slice() != b".." && s.as_slice() != b"." && !s.is_empty());
                    prop_assert!(!s.contains(&b'/') && !s.contains(&0));
                }
            }
        }
    }
}
