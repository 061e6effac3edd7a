//! SHA-256 digests, written as lowercase hex on the wire and in the database.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};
use std::fmt;

/// A SHA-256 digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// SHA-256 of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Digest(Sha256::digest(bytes).into())
    }

    /// SHA-256 over several parts, fed in order (no separators are added:
    /// callers that hash variable-length parts must length-prefix them).
    pub fn of_parts(parts: &[&[u8]]) -> Self {
        let mut hasher = Sha256::new();
        for part in parts {
            hasher.update(part);
        }
        Digest(hasher.finalize().into())
    }

    /// SHA-256 of the canonical JSON form of `value`.
    pub fn of_json(value: &serde_json::Value) -> Self {
        Digest::of(&crate::canonical::to_vec(value))
    }

    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The first 16 hex digits, for display next to names.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..8])
    }

    /// Parses 64 hex digits (either case; `sha256:` prefix and `:` separators
    /// as printed by `openssl x509 -fingerprint` are accepted).
    pub fn from_hex(text: &str) -> Result<Self, DigestParseError> {
        let trimmed = text.trim();
        let trimmed = trimmed.strip_prefix("sha256:").unwrap_or(trimmed);
        let cleaned: String = trimmed.chars().filter(|c| *c != ':').collect();
        let bytes = hex::decode(&cleaned).map_err(|_| DigestParseError::NotHex)?;
        let array: [u8; 32] = bytes
            .try_into()
            .map_err(|b: Vec<u8>| DigestParseError::WrongLength(b.len()))?;
        Ok(Digest(array))
    }
}

/// Why a text is not a SHA-256 digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestParseError {
    #[error("not a hex string")]
    NotHex,
    #[error("a SHA-256 digest is 32 bytes (64 hex digits), this one has {0} bytes")]
    WrongLength(usize),
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.short())
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        // On the wire only the plain 64-digit lowercase form is accepted, so
        // one digest has one encoding (frames must stay canonical).
        if text.len() != 64
            || text
                .bytes()
                .any(|b| !matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(serde::de::Error::custom("expected 64 lowercase hex digits"));
        }
        Digest::from_hex(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_lenient_parse() {
        let d = Digest::of(b"abc");
        assert_eq!(
            d.to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(Digest::from_hex(&d.to_hex()).unwrap(), d);
        let colons: Vec<String> = d.0.iter().map(|b| format!("{b:02X}")).collect();
        assert_eq!(Digest::from_hex(&colons.join(":")).unwrap(), d);
        assert_eq!(
            Digest::from_hex("abcd"),
            Err(DigestParseError::WrongLength(2))
        );
        assert_eq!(Digest::from_hex("zz"), Err(DigestParseError::NotHex));
    }

    #[test]
    fn serde_accepts_only_lowercase_hex() {
        let d = Digest::of(b"x");
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), d);
        assert!(serde_json::from_str::<Digest>(&json.to_uppercase()).is_err());
    }
}
